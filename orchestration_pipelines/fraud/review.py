"""Fraud cases that wait for a person, as review requests with everything a reviewer needs to decide.

``analyst_review`` cases become ``fraud_analyst_review`` items and ``block_pending_approval`` cases
``fraud_block_pending_approval`` items (approval by the review policy, four eyes above an amount).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from orchestration_pipelines.fraud.features import CONTEXT_COLUMNS
from orchestration_pipelines.fraud.policy import FraudPolicy
from orchestration_pipelines.review import ReviewRequest, content_sha256, json_ready

WORKFLOW = "fraud"
KIND_OF_DECISION = {
    "analyst_review": "fraud_analyst_review",
    "block_pending_approval": "fraud_block_pending_approval",
}
_SCORE_COLUMNS = ("risk_score", "model_probability", "anomaly_percentile", "rule_risk", "confidence")


def input_sha256(row: dict[str, Any]) -> str:
    """Hash of the transaction as the scorer saw it (its context columns), stable across re-reads."""
    return content_sha256({column: row.get(column) for column in CONTEXT_COLUMNS})


def _why(row: dict[str, Any], policy: FraudPolicy) -> str:
    risk, reasons = row["risk_score"], row.get("reason_codes") or "no rule fired"
    if row["decision"] == "block_pending_approval":
        return f"risk {risk:.3f} at or above the block threshold {policy.block_at_or_above}: {reasons}"
    if risk < policy.auto_clear_below:
        return f"anomalous beyond the {policy.anomaly_review_percentile} percentile: {reasons}"
    return f"risk {risk:.3f} between {policy.auto_clear_below} and {policy.block_at_or_above}: {reasons}"


def review_requests(decisions: pd.DataFrame, policy: FraudPolicy) -> list[ReviewRequest]:
    """One request per published case that needs a person (the other cases are skipped)."""
    needing = decisions[decisions["decision"].isin(list(KIND_OF_DECISION))]
    thresholds = {
        "auto_clear_below": policy.auto_clear_below,
        "block_at_or_above": policy.block_at_or_above,
        "anomaly_review_percentile": policy.anomaly_review_percentile,
    }
    requests = []
    for raw in needing.to_dict("records"):
        row = {key: json_ready(value) for key, value in raw.items()}
        reasons = [code for code in (row.get("reason_codes") or "").split(";") if code]
        context = {
            **{column: row.get(column) for column in CONTEXT_COLUMNS},
            **{column: row.get(column) for column in _SCORE_COLUMNS},
            "reason_codes": reasons,
            "batch_id": row.get("batch_id"),
            "policy_version": row.get("policy_version"),
            "policy_thresholds": thresholds,
        }
        requests.append(
            ReviewRequest(
                workflow=WORKFLOW,
                kind=KIND_OF_DECISION[row["decision"]],
                case_id=str(row["transaction_id"]),
                reason=_why(row, policy),
                context=context,
                input_sha256=input_sha256(row),
                model_version=str(row.get("model_version") or "unknown"),
                automatic_decision=row["decision"],
            )
        )
    return requests
