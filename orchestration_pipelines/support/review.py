"""Support tickets that wait for a person, as review requests with everything a reviewer needs.

An outbox row ``awaiting_approval`` (a drafted reply to a refund, a legal threat, an account change)
becomes a ``support_high_risk_reply`` item: a person approves the reply before it leaves. A row in
``human_review`` (routed to a person, or no tier or agent produced a reply) becomes a
``support_escalation`` item. The ticket's text enters the item redacted (e-mails, phones, cards,
IBANs): the item's context is copied into the append-only audit log.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from orchestration_pipelines.governance import redact_text
from orchestration_pipelines.review import ReviewRequest, content_sha256, json_ready

WORKFLOW = "support"
KIND_OF_STATUS = {"awaiting_approval": "support_high_risk_reply", "human_review": "support_escalation"}
TICKET_FIELDS = (
    "ticket_id",
    "customer_id",
    "channel",
    "language",
    "created_at",
    "order_id",
    "subject",
    "body",
)
# What the review asset reads per case: the outbox row with its ticket, classification, route and reply.
CASE_COLUMNS = (
    *TICKET_FIELDS, "batch_id", "status", "reply", "intent", "route", "answered_by", "why", "local_intent",
    "local_confidence", "urgency", "urgency_confidence", "intent_probabilities", "risk", "route_reason",
    "escalated", "router_policy_version", "support_policy_version", "classifier_version", "prompt",
    "reply_source", "article_ids", "order_ids",
)  # fmt: skip


def input_sha256(case: dict[str, Any]) -> str:
    """Hash of the ticket as stored (before redaction), stable across re-reads."""
    return content_sha256({field: case.get(field) for field in TICKET_FIELDS})


def _json(text: Any, empty: Any) -> Any:
    return json.loads(text) if isinstance(text, str) and text else empty


def _why(case: dict[str, Any]) -> str:
    if case["status"] == "awaiting_approval":
        return f"intent {case['intent']} needs a person's approval before the reply is sent"
    return f"escalated to a person ({case['route']} route): {case['why'] or 'no reply drafted'}"


def review_requests(cases: pd.DataFrame) -> list[ReviewRequest]:
    """One request per case awaiting approval or a person (``CASE_COLUMNS``); other rows are skipped."""
    requests = []
    for raw in cases[cases["status"].isin(list(KIND_OF_STATUS))].to_dict("records"):
        case = {key: json_ready(value) for key, value in raw.items()}
        ticket = {field: case.get(field) for field in TICKET_FIELDS}
        for field in ("subject", "body"):
            ticket[field] = redact_text(ticket[field] or "").values["text"]
        context = {
            "batch_id": case["batch_id"],
            "ticket": ticket,
            "intent": case["intent"],
            "local_intent": case["local_intent"],
            "local_confidence": case["local_confidence"],
            "intent_probabilities": _json(case["intent_probabilities"], {}),
            "urgency": case["urgency"],
            "urgency_confidence": case["urgency_confidence"],
            "risk": case["risk"],
            "route": case["route"],
            "answered_by": case["answered_by"],
            "route_reason": case["route_reason"],
            "reason_codes": [part for part in (case["why"] or "").split("; ") if part],
            "reply": case["reply"],
            "reply_source": case["reply_source"],
            "article_ids": _json(case["article_ids"], []),
            "order_ids": _json(case["order_ids"], []),
            "classifier_version": case["classifier_version"],
            "prompt_version": case["prompt"],
            "support_policy_version": case["support_policy_version"],
            "router_policy_version": case["router_policy_version"],
        }
        requests.append(
            ReviewRequest(
                workflow=WORKFLOW,
                kind=KIND_OF_STATUS[case["status"]],
                case_id=str(case["ticket_id"]),
                reason=_why(case),
                context=context,
                input_sha256=input_sha256(case),
                model_version=str(case["classifier_version"] or "unknown"),
                prompt_version=case["prompt"],
                automatic_decision=case["status"],
            )
        )
    return requests
