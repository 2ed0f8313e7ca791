"""Builders shared by the support tests: a small labelled world and a classifier trained on it."""

from __future__ import annotations

import json
from functools import cache

import pandas as pd

from orchestration_pipelines.governance import load_data_policy
from orchestration_pipelines.router import load_router_policy
from orchestration_pipelines.support.classifier import TicketClassifier, train_classifier
from orchestration_pipelines.support.generator import generate_tickets, make_customers, make_orders
from orchestration_pipelines.support.policy import load_support_policy
from orchestration_pipelines.support.triage import Triage


@cache
def world() -> tuple[pd.DataFrame, pd.DataFrame]:
    customers = make_customers(60, seed=21)
    return customers, make_orders(customers, 3, seed=21)


@cache
def trained_classifier() -> TicketClassifier:
    customers, orders = world()
    history = generate_tickets(700, seed=22, customers=customers, orders=orders)
    classifier, _ = train_classifier(
        history, text_columns=("subject", "body"), intent="intent", urgency="urgency"
    )
    return classifier


def tickets(n: int, seed: int) -> pd.DataFrame:
    customers, orders = world()
    return generate_tickets(n, seed=seed, customers=customers, orders=orders, id_prefix=f"S{seed}-")


def triage_setup(**overrides) -> Triage:
    return Triage(
        classifier_version="test-version",
        policy=load_support_policy(),
        router_policy=load_router_policy(),
        **overrides,
    )


def with_names(tickets: pd.DataFrame) -> pd.DataFrame:
    customers, _ = world()
    names = customers.set_index("customer_id")["name"]
    return tickets.assign(customer_name=tickets["customer_id"].map(names))


def oracle_responder(labelled: pd.DataFrame):
    """The test server answers each ticket's true intent, recognised by its body as the gateway sends
    it (redacted), and a fixed wrong intent for anything it does not know."""
    policy = load_data_policy().for_workflow("support")
    truth = {
        policy.prepare(record).values["body"]: (record["intent"], record["urgency"])
        for record in with_names(labelled).to_dict("records")
    }

    def respond(body: dict) -> str:
        sent = body["messages"][-1]["content"].split("Body: ", 1)[1].strip()
        intent, urgency = truth.get(sent, ("billing", "normal"))
        return json.dumps({"intent": intent, "urgency": urgency})

    return respond
