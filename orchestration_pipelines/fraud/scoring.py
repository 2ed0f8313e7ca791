"""From features to decisions: combine the model, the anomaly detector and the policy rules."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import numpy as np
import pandas as pd
from pandas.api.types import is_extension_array_dtype

from orchestration_pipelines.fraud.features import CONTEXT_COLUMNS
from orchestration_pipelines.fraud.model import FraudModel
from orchestration_pipelines.fraud.policy import DECISIONS, FraudPolicy, apply_rules, decide, reason_strings

MODEL_HIGH_RISK = "MODEL_HIGH_RISK"
ANOMALOUS = "ANOMALOUS"
SCORE_COLUMNS = [
    "model_probability",
    "anomaly_percentile",
    "rule_risk",
    "risk_score",
    "reason_codes",
    "model_version",
]
DECISION_COLUMNS = ["decision", "confidence", "policy_version", "decided_at"]


def score_features(
    features: pd.DataFrame, model: FraudModel, model_version: str, policy: FraudPolicy
) -> pd.DataFrame:
    """Append risk scores and reason codes to ``features``' identifying columns.

    Risk is the supervised probability raised to the floor of any policy rule that fired; the anomaly
    percentile is kept beside it so the policy can send the strangest cases to a person. Policy rules
    read the built-in features, so models trained on a user's own features are scored without them.
    """
    probability, anomaly = model.predict(features)
    if model.feature_set == "builtin":
        rule_risk, bits = apply_rules(features, policy)
    else:
        rule_risk, bits = np.zeros(len(features)), np.zeros(len(features), dtype="int64")
    n_rules = len(policy.rules)
    bits |= (probability >= policy.auto_clear_below).astype("int64") << n_rules
    bits |= (anomaly >= policy.anomaly_review_percentile).astype("int64") << (n_rules + 1)
    codes = [*(r.code for r in policy.rules), MODEL_HIGH_RISK, ANOMALOUS]

    identity = [c for c in features.columns if c not in model.feature_columns]
    scored = features[identity].copy()
    scored["model_probability"] = probability
    scored["anomaly_percentile"] = anomaly
    scored["rule_risk"] = rule_risk
    scored["risk_score"] = np.maximum(probability, rule_risk)
    scored["reason_codes"] = reason_strings(bits, codes)
    scored["model_version"] = model_version
    return scored


def with_context(transactions: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """``scores`` with each transaction's context columns (``CONTEXT_COLUMNS``) before its scores.

    The scheduled path's features and scores tables keep only the transaction id of the context, so
    each transaction's text columns are written once before publication; here they are joined back on
    ``transaction_id``, in the order of ``scores``. Context columns that ``scores`` carries (the derived
    ``amount_eur``) are taken from it. Every score must have its transaction.
    """
    ids = scores["transaction_id"].to_numpy()
    if len(ids) == len(transactions) and np.array_equal(ids, transactions["transaction_id"].to_numpy()):
        rows = None  # handed on within a run: already in the same order
    else:
        rows = pd.Index(transactions["transaction_id"]).get_indexer(ids)
        if (rows < 0).any():
            missing = scores.loc[rows < 0, "transaction_id"]
            raise ValueError(
                f"{len(missing)} scored transactions have no transaction row: {missing.head(5).tolist()}"
            )
    # Inserted one by one into a shallow copy: building a new frame would scan every text value for
    # dates and copy all columns into one block, about a second at a million rows.
    joined = scores.copy(deep=False)
    for previous, column in pairwise(CONTEXT_COLUMNS):
        if column not in joined:
            source = transactions[column]
            # Extension arrays (zoned timestamps) as they are; numpy ones (text) without pandas' wrapper,
            # whose conversion back to numpy scans every value for missing ones.
            values = source.array if is_extension_array_dtype(source.dtype) else source.to_numpy()
            values = values if rows is None else values.take(rows)
            column_values = pd.Series(values, index=joined.index, dtype=source.dtype, copy=False)
            joined.insert(joined.columns.get_loc(previous) + 1, column, column_values)
    return joined


def make_decisions(
    scores: pd.DataFrame, policy: FraudPolicy, decided_at: datetime | None = None
) -> pd.DataFrame:
    """Route each scored case to a queue and record why: the policy version travels with every row."""
    decided = scores.copy(deep=False)  # new columns only: the scores frame is left as it was
    risk = scores["risk_score"].to_numpy()
    decided["decision"] = decide(risk, scores["anomaly_percentile"].to_numpy(), policy)
    decided["confidence"] = np.abs(2 * risk - 1)  # distance from a coin flip, 0..1
    decided["policy_version"] = policy.version
    decided["decided_at"] = pd.Timestamp(decided_at or datetime.now(UTC))
    return decided


def decision_counts(decisions: pd.DataFrame) -> dict[str, int]:
    counts = decisions["decision"].value_counts()
    return {d: int(counts.get(d, 0)) for d in DECISIONS}
