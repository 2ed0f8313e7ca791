"""Classification and routing of accepted tickets: the local classifier first, then the router.

Per ticket the router (``orchestration_pipelines.router``) chooses the local answer, the small or the
strong LLM tier, or a person, from the classifier's calibrated confidence, the intent's risk
(``policies/support.yaml``), the language and the remaining LLM budget. LLM routes ask through the
``ask_for`` callable (in the product: the gateway with the versioned ``support_intent`` prompt), so
this module stays free of Dagster and of any network. Every ticket's route, answering level, cost,
reason and the versions involved are in the result.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import pandas as pd

from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.prompt_registry import Prompt, PromptRegistry
from orchestration_pipelines.router import (
    Ask,
    Route,
    RouterPolicy,
    RoutingContext,
    TierAnswer,
    carry_out,
    route,
)
from orchestration_pipelines.shadow import ShadowExperiment, VariantOutcome, run_shadow
from orchestration_pipelines.support.classifier import TicketClassifier
from orchestration_pipelines.support.policy import SupportPolicy

INTENT_PROMPT_ID = "support_intent"
ROUTER_KIND, ROUTER_NAME = "router_policy", "router"  # how router policies are versioned (shadow)
TRIAGE_COLUMNS = (
    "ticket_id",
    "local_intent",
    "local_confidence",
    "urgency",
    "intent",
    "risk",
    "route",
    "answered_by",
    "escalated",
    "cost_usd",
    "reason",
    "needs_approval",
    "router_policy_version",
    "support_policy_version",
    "classifier_version",
)


def intent_prompt(intents: list[str], store: OpStore | None = None) -> Prompt:
    """The active intent prompt (a version promoted in ``store``, else the newest released file) with its
    output restricted to the classifier's intents, so a company's own intent names are the only answers
    a model may give."""
    prompt = PromptRegistry().active(INTENT_PROMPT_ID, store)
    schema = prompt.output_schema | {
        "properties": prompt.output_schema["properties"]
        | {"intent": prompt.output_schema["properties"]["intent"] | {"enum": list(intents)}}
    }
    return replace(prompt, output_schema=schema)


@dataclass(frozen=True)
class Triage:
    """What routing needs besides the tickets: versions, policies, LLM prices and the budget left."""

    classifier_version: str
    policy: SupportPolicy
    router_policy: RouterPolicy
    tier_cost_usd: Mapping[str, float] = field(default_factory=dict)
    remaining_budget_usd: Callable[[], float] = lambda: math.inf


CLASSIFICATION_COLUMNS = (
    "ticket_id",
    "local_intent",
    "local_confidence",
    "urgency",
    "urgency_confidence",
    "intent_probabilities",
)


def classify_tickets(tickets: pd.DataFrame, classifier: TicketClassifier) -> pd.DataFrame:
    """The local classifier's answer per ticket; ``intent_probabilities`` is the whole calibrated
    distribution as JSON, which the router's cascade checks LLM answers against."""
    predictions = classifier.predict(tickets)
    no_urgency = [None] * len(tickets)
    return pd.DataFrame(
        {
            "ticket_id": tickets["ticket_id"].to_numpy(),
            "local_intent": predictions.intent,
            "local_confidence": predictions.intent_confidence.round(4),
            "urgency": no_urgency if predictions.urgency is None else predictions.urgency,
            "urgency_confidence": no_urgency
            if predictions.urgency_confidence is None
            else predictions.urgency_confidence.round(4),
            "intent_probabilities": [
                json.dumps(dict(zip(predictions.intents, row.round(4).tolist(), strict=True)))
                for row in predictions.intent_probabilities
            ],
        },
        columns=list(CLASSIFICATION_COLUMNS),
    )


def route_tickets(
    tickets: pd.DataFrame,
    classification: pd.DataFrame,
    triage: Triage,
    ask_for: Callable[[Mapping[str, object]], Ask] | None = None,
    shadow: RouterShadow | None = None,
) -> pd.DataFrame:
    """One row per ticket (``TRIAGE_COLUMNS``). Without ``ask_for`` no LLM tier is offered to the router.

    With ``shadow`` every ticket is also routed by the candidate policy through ``run_shadow``; only the
    active policy's rows are returned and acted on. The candidate reuses an LLM answer the active route
    already got for that ticket and tier; a tier only it chooses is asked (and costs) for real.
    """
    tier_costs = triage.tier_cost_usd if ask_for else {}
    by_id = {row["ticket_id"]: row for row in classification.to_dict("records")}
    positions = {ticket_id: position for position, ticket_id in enumerate(tickets["ticket_id"])}
    # Only what routing reads, row by row; the whole ticket is built for the few that go to an LLM.
    routed = tickets[["ticket_id", "language"]].to_dict("records")
    answers: dict[str, dict[Route, TierAnswer]] = {}

    def ask_once(ticket_id: str) -> Ask:
        asked = answers.setdefault(ticket_id, {})

        def ask(tier: Route) -> TierAnswer:
            if tier not in asked:
                asked[tier] = ask_for(tickets.iloc[positions[ticket_id]].to_dict())(tier)
            return asked[tier]

        return ask

    def row_for(ticket: Mapping[str, str], policy: RouterPolicy) -> tuple:
        local = by_id[ticket["ticket_id"]]
        local_intent, confidence, urgency = (
            local["local_intent"],
            float(local["local_confidence"]),
            local["urgency"],
        )
        urgency = urgency if isinstance(urgency, str) else None
        risk = triage.policy.risk(local_intent, urgency)
        decision = route(
            RoutingContext(
                local_confidence=confidence,
                risk_score=risk,
                language=ticket["language"],
                remaining_budget_usd=triage.remaining_budget_usd() if tier_costs else math.inf,
                tier_cost_usd=tier_costs,
            ),
            policy,
        )
        uses_llm = decision.route in (Route.SMALL, Route.STRONG)
        distribution = json.loads(local["intent_probabilities"])
        ask = ask_once(ticket["ticket_id"]) if uses_llm else _no_llm
        answer = carry_out(decision, distribution, ask)
        reason = decision.reason
        if uses_llm and answer.label is None:
            reason += "; no LLM tier answered: a person decides"
        return (
            ticket["ticket_id"],
            local_intent,
            confidence,
            urgency,
            answer.label,
            round(risk, 4),
            str(decision.route),
            str(answer.level),
            answer.escalated,
            answer.cost_usd,
            reason,
            triage.policy.needs_approval(answer.label if answer.label is not None else local_intent),
            decision.policy_version,
            triage.policy.version,
            triage.classifier_version,
        )

    if shadow is None:
        rows = [row_for(ticket, triage.router_policy) for ticket in routed]
        return pd.DataFrame(rows, columns=list(TRIAGE_COLUMNS))

    active_rows: dict[str, tuple] = {}

    def outcome(row: tuple) -> VariantOutcome:
        answered = dict(zip(TRIAGE_COLUMNS, row, strict=True))
        return VariantOutcome(answered["intent"], answered["route"], answered["cost_usd"])

    def active(ticket: Mapping[str, str]) -> VariantOutcome:
        active_rows[ticket["ticket_id"]] = row_for(ticket, triage.router_policy)
        return outcome(active_rows[ticket["ticket_id"]])

    run_shadow(
        shadow.store,
        shadow.experiment(triage.router_policy),
        ((ticket["ticket_id"], ticket) for ticket in routed),
        active,
        lambda ticket: outcome(row_for(ticket, shadow.candidate)),
    )
    return pd.DataFrame([active_rows[t["ticket_id"]] for t in routed], columns=list(TRIAGE_COLUMNS))


@dataclass(frozen=True)
class RouterShadow:
    """A candidate router policy run beside the active one; results go to ``store``'s shadow results."""

    store: OpStore
    candidate: RouterPolicy

    def experiment(self, active: RouterPolicy) -> ShadowExperiment:
        return router_shadow_experiment(active, self.candidate)


def router_shadow_experiment(active: RouterPolicy, candidate: RouterPolicy) -> ShadowExperiment:
    """The support router's shadow experiment of ``candidate`` beside ``active``."""
    return ShadowExperiment(ROUTER_KIND, ROUTER_NAME, active.version, candidate.version, "support")


def triage_tickets(
    tickets: pd.DataFrame,
    classifier: TicketClassifier,
    triage: Triage,
    ask_for: Callable[[Mapping[str, object]], Ask] | None = None,
) -> pd.DataFrame:
    """Classify and route in one go (what the benchmark and plain-Python callers use)."""
    return route_tickets(tickets, classify_tickets(tickets, classifier), triage, ask_for)


def _no_llm(tier: Route):
    raise AssertionError(f"the router chose {tier} although no LLM tier was offered")
