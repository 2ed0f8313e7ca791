"""Review test helpers: requests of each kind and a team of reviewers, one per role."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from orchestration_pipelines.review import ReviewRequest, create_reviewer

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
WORKFLOW_OF = {
    "fraud_analyst_review": "fraud",
    "fraud_block_pending_approval": "fraud",
    "support_escalation": "support",
    "support_high_risk_reply": "support",
    "maintenance_low_confidence_alert": "maintenance",
}
TEAM = {
    "ana": ("Ana Analyst", ["analyst"]),
    "bob": ("Bob Analyst", ["analyst"]),
    "sen": ("Sena Senior", ["analyst", "senior_analyst"]),
    "sup": ("Sam Support", ["support_agent"]),
    "lead": ("Lee Lead", ["support_lead"]),
    "plan": ("Pat Planner", ["maintenance_planner"]),
    "adm": ("Ada Admin", ["admin"]),
}


def request(case_id: str, kind: str = "fraud_block_pending_approval", **context) -> ReviewRequest:
    return ReviewRequest(
        workflow=WORKFLOW_OF[kind],
        kind=kind,
        case_id=case_id,
        reason="risk 0.93 at or above the block threshold",
        context={"amount_eur": 120.0, "batch_id": "batch-1.csv", **context},
        input_sha256=hashlib.sha256(case_id.encode()).hexdigest(),
        model_version="fraud-v1",
        automatic_decision="block_pending_approval",
    )


def add_team(store) -> dict[str, str]:
    """Every reviewer of ``TEAM``; returns their tokens."""
    return {rid: create_reviewer(store, rid, name, roles) for rid, (name, roles) in TEAM.items()}
