"""Classification and routing of accepted tickets: the local classifier first, then the router.

Per ticket the router (``orchestration_pipelines.router``) chooses the local answer, the small or the
strong LLM tier, or a person, from the classifier's calibrated confidence, the intent's risk
(``policies/support.yaml``), the language and the remaining LLM budget. LLM routes ask through the
``ask_for`` callable (in the product: the gateway with the versioned ``support_intent`` prompt), so
this module stays free of Dagster and of any network. Every ticket's route, answering level, cost,
reason and the versions involved are in the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import pandas as pd

from orchestration_pipelines.prompt_registry import Prompt, PromptRegistry
from orchestration_pipelines.router import Ask, Route, RouterPolicy, RoutingContext, carry_out, route
from orchestration_pipelines.support.classifier import TicketClassifier
from orchestration_pipelines.support.policy import SupportPolicy

INTENT_PROMPT_ID = "support_intent"
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


def intent_prompt(
    intents: list[str], registry: PromptRegistry | None = None, version: int | None = None
) -> Prompt:
    """The versioned intent prompt with its output restricted to the classifier's intents, so a company's
    own intent names are the only answers a model may give."""
    registry = registry or PromptRegistry()
    prompt = registry.get(INTENT_PROMPT_ID, version) if version else registry.active(INTENT_PROMPT_ID)
    schema = prompt.output_schema | {
        "properties": prompt.output_schema["properties"]
        | {"intent": prompt.output_schema["properties"]["intent"] | {"enum": list(intents)}}
    }
    return replace(prompt, output_schema=schema)


@dataclass(frozen=True)
class Triage:
    classifier: TicketClassifier
    classifier_version: str
    policy: SupportPolicy
    router_policy: RouterPolicy
    tier_cost_usd: Mapping[str, float] = field(default_factory=dict)
    remaining_budget_usd: Callable[[], float] = lambda: math.inf


def triage_tickets(
    tickets: pd.DataFrame, triage: Triage, ask_for: Callable[[Mapping[str, object]], Ask] | None = None
) -> pd.DataFrame:
    """One row per ticket (``TRIAGE_COLUMNS``). Without ``ask_for`` no LLM tier is offered to the router."""
    predictions = triage.classifier.predict(tickets)
    tier_costs = triage.tier_cost_usd if ask_for else {}
    rows = []
    for index, ticket in enumerate(tickets.to_dict("records")):
        local_intent = str(predictions.intent[index])
        confidence = float(predictions.intent_confidence[index])
        urgency = None if predictions.urgency is None else str(predictions.urgency[index])
        risk = triage.policy.risk(local_intent, urgency)
        decision = route(
            RoutingContext(
                local_confidence=confidence,
                risk_score=risk,
                language=ticket["language"],
                remaining_budget_usd=triage.remaining_budget_usd() if tier_costs else math.inf,
                tier_cost_usd=tier_costs,
            ),
            triage.router_policy,
        )
        if decision.route in (Route.SMALL, Route.STRONG):
            answer = carry_out(decision, predictions.distribution(index), ask_for(ticket))
        else:
            answer = carry_out(decision, predictions.distribution(index), _no_llm)
        reason = decision.reason
        if decision.route in (Route.SMALL, Route.STRONG) and answer.label is None:
            reason += "; no LLM tier answered: a person decides"
        rows.append(
            (
                ticket["ticket_id"],
                local_intent,
                round(confidence, 4),
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
        )
    return pd.DataFrame(rows, columns=list(TRIAGE_COLUMNS))


def _no_llm(tier: Route):
    raise AssertionError(f"the router chose {tier} although no LLM tier was offered")
