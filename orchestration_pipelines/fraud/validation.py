"""The audit of write-audit-publish: what a staged batch of decisions must satisfy to be published."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from orchestration_pipelines.fraud.policy import DECISIONS, FraudPolicy

# Column -> the kind of values the published table promises its readers.
DECISION_SCHEMA: dict[str, str] = {
    "batch_id": "string",
    "run_id": "string",
    "transaction_id": "string",
    "account_id": "string",
    "card_id": "string",
    "device_id": "string",
    "merchant_category": "string",
    "country": "string",
    "channel": "string",
    "timestamp": "datetime",
    "amount": "number",
    "currency": "string",
    "amount_eur": "number",
    "model_probability": "number",
    "anomaly_percentile": "number",
    "rule_risk": "number",
    "risk_score": "number",
    "reason_codes": "string",
    "model_version": "string",
    "decision": "string",
    "confidence": "number",
    "policy_version": "string",
    "decided_at": "datetime",
}

_KIND_TEST = {
    "string": lambda s: pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s),
    "number": pd.api.types.is_numeric_dtype,
    "datetime": pd.api.types.is_datetime64_any_dtype,
}
# Each blocking check judges exactly the rows one run staged for one batch; what each one promises:
CHECK_DESCRIPTIONS = {
    "schema_matches": "Every column the published table promises is present with the right type.",
    "no_missing_values": "No decision column is empty (reason codes may be).",
    "unique_transaction_ids": "No transaction id repeats within the batch or was published by another batch.",
    "scores_in_range": "Probabilities, percentiles, risk and confidence all lie in [0, 1].",
    "decision_mix_within_policy": "The batch's review and block shares stay within the policy's bounds.",
}
CHECK_NAMES = tuple(CHECK_DESCRIPTIONS)


@dataclass
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _schema(df: pd.DataFrame) -> CheckOutcome:
    missing = [c for c in DECISION_SCHEMA if c not in df.columns]
    wrong = {
        c: str(df[c].dtype) for c, kind in DECISION_SCHEMA.items() if c in df and not _KIND_TEST[kind](df[c])
    }
    if missing or wrong:
        return CheckOutcome(False, f"missing columns {missing}; wrong types {wrong}", {"missing": missing})
    return CheckOutcome(True, f"all {len(DECISION_SCHEMA)} contract columns present with the right types")


def _nulls(df: pd.DataFrame) -> CheckOutcome:
    present = [c for c in DECISION_SCHEMA if c in df.columns and c != "reason_codes"]
    counts = {c: int(n) for c, n in df[present].isna().sum().items() if n}
    if counts:
        return CheckOutcome(False, f"missing values in {counts}", {"null_counts": counts})
    return CheckOutcome(True, "no missing values")


def _unique_ids(df: pd.DataFrame, published_elsewhere: pd.DataFrame | None) -> CheckOutcome:
    duplicated = df["transaction_id"].duplicated(keep=False)
    if duplicated.any():
        examples = df.loc[duplicated, "transaction_id"].drop_duplicates().head(5).tolist()
        return CheckOutcome(
            False,
            f"{int(duplicated.sum())} rows share a transaction id, e.g. {examples}",
            {"duplicate_rows": int(duplicated.sum())},
        )
    # Intake refuses ids another batch published; this catches two batches racing past intake together.
    if published_elsewhere is not None and len(published_elsewhere):
        examples = published_elsewhere["transaction_id"].head(5).tolist()
        batches = sorted(published_elsewhere["batch_id"].unique())
        return CheckOutcome(
            False,
            f"{len(published_elsewhere)} transaction ids were already published by {batches[:5]}, "
            f"e.g. {examples}",
            {"published_elsewhere": len(published_elsewhere)},
        )
    return CheckOutcome(True, "every transaction id is unique and new to the published table")


def _score_range(df: pd.DataFrame) -> CheckOutcome:
    columns = ["model_probability", "anomaly_percentile", "rule_risk", "risk_score", "confidence"]
    outside = {c: int((~df[c].between(0.0, 1.0)).sum()) for c in columns if c in df}
    outside = {c: n for c, n in outside.items() if n}
    if outside:
        return CheckOutcome(False, f"values outside [0, 1]: {outside}", {"out_of_range": outside})
    return CheckOutcome(True, "all scores within [0, 1]")


def _decision_mix(df: pd.DataFrame, policy: FraudPolicy) -> CheckOutcome:
    counts = df["decision"].value_counts().reindex(DECISIONS, fill_value=0)
    shares = counts / max(len(df), 1)
    unknown = sorted(set(df["decision"].unique()) - set(DECISIONS))
    metadata = {
        "batch_rows": len(df),
        **{f"share_{d}": round(float(shares[d]), 5) for d in DECISIONS},
        **{f"cases_{d}": f"{counts[d]:,}/{len(df):,}" for d in DECISIONS},
    }
    problems = []
    if unknown:
        problems.append(f"unknown decisions {unknown}")
    if shares["analyst_review"] > policy.max_review_share:
        problems.append(f"review share {shares['analyst_review']:.2%} exceeds {policy.max_review_share:.2%}")
    if shares["block_pending_approval"] > policy.max_block_share:
        problems.append(
            f"block share {shares['block_pending_approval']:.2%} exceeds {policy.max_block_share:.2%}"
        )
    if problems:
        return CheckOutcome(False, "; ".join(problems) + f" (policy {policy.version})", metadata)
    return CheckOutcome(True, f"decision mix within policy {policy.version} bounds", metadata)


def validate_staged_decisions(
    df: pd.DataFrame, policy: FraudPolicy, published_elsewhere: pd.DataFrame | None = None
) -> dict[str, CheckOutcome]:
    """Every check by name; later checks are skipped (failed) when the schema itself is wrong.

    ``published_elsewhere`` (``transaction_id``, ``batch_id``) lists the batch's ids that another batch
    already published."""
    schema = _schema(df)
    if not schema.passed:
        skipped = CheckOutcome(False, "not evaluated: the staged table does not match the schema")
        return {name: schema if name == "schema_matches" else skipped for name in CHECK_NAMES}
    return {
        "schema_matches": schema,
        "no_missing_values": _nulls(df),
        "unique_transaction_ids": _unique_ids(df, published_elsewhere),
        "scores_in_range": _score_range(df),
        "decision_mix_within_policy": _decision_mix(df, policy),
    }
