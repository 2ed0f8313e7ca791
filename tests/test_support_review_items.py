"""Support raises its review items: the domain function on frames, and the asset on a real instance."""

import json
import os
from datetime import datetime, timedelta

import duckdb
import pandas as pd
import pytest
from dagster import AssetKey, instance_for_test, materialize
from review_helpers import add_team

from assets.support import SUPPORT_BATCH_ASSETS, SUPPORT_REFERENCE_ASSETS, support_batches
from assets.support_review import review_items
from orchestration_pipelines.audit import read_audit_log, verify_audit_chain
from orchestration_pipelines.definitions import build_resources
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.review import decide, list_items
from orchestration_pipelines.support.generator import write_demo_files
from orchestration_pipelines.support.review import CASE_COLUMNS, review_requests


def _cases(**overrides) -> pd.DataFrame:
    base = {
        "ticket_id": ["S1", "S2", "S3"],
        "customer_id": ["C1", "C2", "C3"],
        "channel": ["email"] * 3,
        "language": ["en", "de", "en"],
        "created_at": pd.to_datetime(["2026-11-01T10:00:00Z"] * 3),
        "order_id": ["O1", None, ""],
        "subject": ["Refund please", "Anwalt", "Where is it"],
        "body": ["Refund O1 to jane.doe@example.com or call +44 20 7946 0958", "Ich klage", "Late"],
        "batch_id": ["tickets_001.csv"] * 3,
        "status": ["awaiting_approval", "human_review", "ready"],
        "reply": ["Dear Jane, your refund is on its way.", None, "It ships today."],
        "intent": ["refund", None, "delivery"],
        "route": ["local", "human", "local"],
        "answered_by": ["local", "human", "local"],
        "why": [
            "template reply for intent refund; no issue; "
            "intent refund needs a person's approval before sending",
            "risk 0.95 at or above the person threshold",
            "template reply",
        ],
        "local_intent": ["refund", "legal_complaint", "delivery"],
        "local_confidence": [0.97, 0.61, 0.99],
        "urgency": ["high", "high", "low"],
        "urgency_confidence": [0.88, 0.7, 0.9],
        "intent_probabilities": [json.dumps({"refund": 0.97, "delivery": 0.03})] * 3,
        "risk": [0.3, 0.95, 0.1],
        "route_reason": ["confident", "risk 0.95 at or above the person threshold", "confident"],
        "escalated": [False, False, False],
        "router_policy_version": ["r1"] * 3,
        "support_policy_version": ["s1"] * 3,
        "classifier_version": ["clf-1"] * 3,
        "prompt": ["support_intent.v2"] * 3,
        "reply_source": ["template", None, "template"],
        "article_ids": [json.dumps(["KB-REFUND-1"]), None, json.dumps(["KB-SHIP-2"])],
        "order_ids": ["[]", None, "[]"],
    }
    return pd.DataFrame({**base, **overrides}, columns=list(CASE_COLUMNS))


def test_replies_awaiting_approval_and_escalations_become_requests_with_their_context():
    high_risk, escalation = review_requests(_cases())
    assert (high_risk.kind, high_risk.case_id, high_risk.automatic_decision) == (
        "support_high_risk_reply",
        "S1",
        "awaiting_approval",
    )
    assert (escalation.kind, escalation.case_id) == ("support_escalation", "S2")
    context = high_risk.context
    assert context["reply"].startswith("Dear Jane") and context["article_ids"] == ["KB-REFUND-1"]
    assert context["intent_probabilities"] == {"refund": 0.97, "delivery": 0.03}
    assert (context["local_confidence"], context["urgency"], context["urgency_confidence"]) == (
        0.97,
        "high",
        0.88,
    )
    assert context["route"] == "local" and context["batch_id"] == "tickets_001.csv"
    assert "intent refund needs a person's approval before sending" in context["reason_codes"]
    body = context["ticket"]["body"]  # the ticket enters the item (and its audit entry) redacted
    assert "jane.doe@example.com" not in body and "7946" not in body and body.startswith("Refund O1")
    assert context["ticket"]["created_at"].startswith("2026-11-01T10:00:00")
    assert (high_risk.model_version, high_risk.prompt_version) == ("clf-1", "support_intent.v2")
    assert high_risk.reason == "intent refund needs a person's approval before the reply is sent"
    assert escalation.reason.startswith("escalated to a person (human route)")
    assert escalation.context["reply"] is None and escalation.context["article_ids"] == []
    json.dumps([high_risk.context, escalation.context])  # the context is plain JSON
    again = review_requests(_cases())
    assert [r.input_sha256 for r in again] == [high_risk.input_sha256, escalation.input_sha256]
    changed = review_requests(_cases(body=["Refund O2", "Ich klage", "Late"]))
    assert changed[0].input_sha256 != high_risk.input_sha256  # the hash covers the ticket as stored


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, data_env, monkeypatch):
    """The operational store of the run: SQLite, then a fresh PostgreSQL database."""
    if request.param == "postgresql":
        monkeypatch.setenv("OP_OPSTORE_URL", request.getfixturevalue("postgres_database")["url"])
    return os.environ["OP_OPSTORE_URL"]


def _triage(instance, partition):
    instance.add_dynamic_partitions(support_batches.name, [partition])
    return materialize(
        [*SUPPORT_BATCH_ASSETS, *SUPPORT_REFERENCE_ASSETS, review_items],
        selection=[*SUPPORT_BATCH_ASSETS, review_items],
        partition_key=partition,
        resources=build_resources(),
        instance=instance,
    )


def _metadata(instance) -> dict:
    event = instance.get_latest_materialization_event(AssetKey(["support", "review_items"]))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_the_asset_raises_each_ticket_once_and_a_decision_takes_it_out_of_the_queue(data_env, store_url):
    write_demo_files(data_env / "history" / "support", data_env / "landing" / "support",
                     tickets=500, batches=2, batch_size=60, seed=5)  # fmt: skip
    batches = ["tickets_001.csv", "tickets_002.csv"]
    store = OpStore(store_url)
    with instance_for_test() as instance:
        assert materialize(SUPPORT_REFERENCE_ASSETS, resources=build_resources(), instance=instance).success
        for batch in batches:
            assert _triage(instance, batch).success
        with duckdb.connect(str(data_env / "warehouse.duckdb")) as con:
            outbox = con.execute("SELECT batch_id, ticket_id, status, reply FROM support.outbox").df()
        waiting = outbox[outbox["status"].isin(["awaiting_approval", "human_review"])]
        items = list_items(store, workflow="support")
        assert {(i.context["batch_id"], i.case_id) for i in items} == set(
            zip(waiting["batch_id"], waiting["ticket_id"], strict=True)
        )
        expected_kind = {"awaiting_approval": "support_high_risk_reply", "human_review": "support_escalation"}
        status_of = dict(zip(waiting["ticket_id"], waiting["status"], strict=True))
        assert {i.kind for i in items} == set(expected_kind.values())  # the demo has both
        for item in items:
            assert item.kind == expected_kind[status_of[item.case_id]]
            role, hours = {"support_high_risk_reply": ("support_lead", 4), "support_escalation": (
                "support_agent", 8)}[item.kind]  # fmt: skip
            created = datetime.fromisoformat(item.created_at)
            assert item.required_role == role
            assert datetime.fromisoformat(item.deadline_at) - created == timedelta(hours=hours)
            assert {"ticket", "intent_probabilities", "route", "route_reason", "reply", "article_ids"} <= set(
                item.context
            )
            assert item.model_version and item.prompt_version and item.policy_version
        replies = [i for i in items if i.kind == "support_high_risk_reply"]
        assert all(i.context["reply"] for i in replies) and any(i.context["article_ids"] for i in replies)
        assert len(_metadata(instance)) and _metadata(instance)["items_raised"] == sum(
            1 for i in items if i.context["batch_id"] == batches[1]
        )

        # Re-running the first batch, with the second one present, raises nothing new.
        first = [i for i in items if i.context["batch_id"] == batches[0]]
        assert _triage(instance, batches[0]).success
        rerun = _metadata(instance)
        assert (rerun["items_raised"], rerun["items_already_raised"]) == (0, len(first))
        assert rerun["open_items_no_longer_needed"] == 0
        assert len(list_items(store, workflow="support")) == len(items)
    raised = [e for e in read_audit_log(store, "support") if e.event == "review_item_raised"]
    assert len(raised) == len(items) and verify_audit_chain(store) == []

    add_team(store)
    reply = replies[0]
    outcome = decide(store, reply.item_id, "lead", "approve")
    assert outcome.item.status == "decided" and outcome.action_keys == [f"{reply.item_id}:send_reply"]
    assert reply.item_id not in {i.item_id for i in list_items(store, workflow="support")}
    assert len(list_items(store, workflow="support")) == len(items) - 1
