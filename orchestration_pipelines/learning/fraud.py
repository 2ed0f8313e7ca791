"""Analysts' fraud verdicts as training labels for the built-in fraud model.

A correction of ``is_fraud`` on a transaction overrides its label in the labelled history, or adds the
transaction (from the scored batches) with that label when history does not hold it yet: the cases a
model got wrong are exactly the ones it must learn from. Corrected rows weigh ``FEEDBACK_WEIGHT`` times
an ordinary row (see there why 1), and they always train and never enter the hold-out: reviewers pick
their cases, so they are no sample of traffic to judge a model by.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from orchestration_pipelines.fraud import train_builtin
from orchestration_pipelines.fraud.contract import TRANSACTION_COLUMNS
from orchestration_pipelines.fraud.model import TrainingResult
from orchestration_pipelines.learning.feedback import latest_corrections

LABEL_FIELD = "is_fraud"
LABEL_VALUES = {"1": 1, "true": 1, "fraud": 1, "0": 0, "false": 0, "legitimate": 0, "not_fraud": 0}
# Measured on benchmarks/feedback.py: the model's balanced class weights already count each fraud case
# about as much as the legitimate traffic of a few hundred accounts, so corrected rows keep weight 1
# (the new pattern went from 45% to 100% recall, PR-AUC on other traffic 0.847 -> 0.845); at 5 they
# drowned the traffic (PR-AUC 0.85 -> 0.73, legitimate cases flagged 0.5% -> 1.9%).
FEEDBACK_WEIGHT = 1.0


@dataclass(frozen=True)
class FeedbackUse:
    """What a retrain took from feedback: the model card and the run's metadata report it."""

    used_ids: list[str]
    by_label: dict[str, int]
    overridden: int  # history rows whose label was corrected
    added: int  # scored transactions added with their corrected label
    changed_label: int  # history rows whose label the correction changed
    unmatched_ids: list[str] = field(default_factory=list)  # cases found neither in history nor batches
    superseded_ids: list[str] = field(default_factory=list)  # older corrections of a corrected case
    weight: float = FEEDBACK_WEIGHT

    def card_entry(self) -> dict:
        return {
            "rows_used": len(self.used_ids),
            "by_label": self.by_label,
            "overridden_history_labels": self.overridden,
            "added_transactions": self.added,
            "changed_labels": self.changed_label,
            "unmatched": len(self.unmatched_ids),
            "superseded": len(self.superseded_ids),
            "weight": self.weight,
            "feedback_ids": self.used_ids,
        }


def apply_fraud_feedback(
    history: pd.DataFrame,
    feedback: pd.DataFrame,
    transactions: pd.DataFrame | None = None,
    weight: float = FEEDBACK_WEIGHT,
) -> tuple[pd.DataFrame, FeedbackUse]:
    """History with corrected labels, ``sample_weight`` and ``train_only`` columns, and what was used.

    ``transactions`` holds scored transactions (the contract's columns) that corrections may refer to;
    a case found in neither frame is reported unmatched and not used.
    """
    if weight <= 0:
        raise ValueError(f"feedback weight must be positive, got {weight}")
    corrections = latest_corrections(feedback, LABEL_FIELD, LABEL_VALUES).set_index("case_id")
    in_history = history["transaction_id"].isin(corrections.index).to_numpy()
    known = set(history["transaction_id"][in_history])
    extra = pd.DataFrame(columns=[*TRANSACTION_COLUMNS, "is_fraud"])
    if transactions is not None and len(transactions):
        wanted = transactions["transaction_id"].isin(corrections.index.difference(list(known)))
        extra = transactions.loc[wanted, list(TRANSACTION_COLUMNS)].drop_duplicates("transaction_id")
    matched = known | set(extra["transaction_id"])

    labels = history["is_fraud"].to_numpy().copy()
    corrected = corrections["value"].reindex(history["transaction_id"][in_history]).to_numpy()
    changed = int((labels[in_history] != corrected).sum())
    labels[in_history] = corrected
    out = history.assign(is_fraud=labels, sample_weight=1.0, train_only=False)
    out.loc[in_history, "sample_weight"] = weight
    out.loc[in_history, "train_only"] = True
    if len(extra):
        added = extra.assign(
            is_fraud=corrections["value"].reindex(extra["transaction_id"]).to_numpy(),
            sample_weight=weight,
            train_only=True,
        )
        out = pd.concat([out, added], ignore_index=True).sort_values("timestamp", kind="stable")
        out = out.reset_index(drop=True)
    out["is_fraud"] = out["is_fraud"].astype("int8")

    used = corrections[corrections.index.isin(list(matched))]
    return out, FeedbackUse(
        used_ids=used["feedback_id"].astype(str).tolist(),
        by_label={
            "fraud": int((used["value"] == 1).sum()),
            "legitimate": int((used["value"] == 0).sum()),
        },
        overridden=int(in_history.sum()),
        added=len(extra),
        changed_label=changed,
        unmatched_ids=corrections.loc[~corrections.index.isin(list(matched)), "feedback_id"]
        .astype(str)
        .tolist(),
        superseded_ids=[str(i) for ids in used["superseded_ids"] for i in ids],
        weight=weight,
    )


def train_with_feedback(
    history: pd.DataFrame,
    feedback: pd.DataFrame,
    transactions: pd.DataFrame | None = None,
    *,
    weight: float = FEEDBACK_WEIGHT,
    seed: int = 0,
) -> tuple[TrainingResult, FeedbackUse]:
    """``train_builtin`` on history with analysts' labels applied (see ``apply_fraud_feedback``)."""
    labelled, use = apply_fraud_feedback(history, feedback, transactions, weight)
    return train_builtin(labelled, seed=seed), use
