"""Fraud scoring, usable with or without Dagster.

``score(df)`` applies the promoted model and the fraud policy to a DataFrame of transactions (the
columns of ``contract.TRANSACTION_COLUMNS``) and returns one decision per row. ``train_on_table``
trains and evaluates the model on a bank's own engineered features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from orchestration_pipelines.audit import AuditEntry, AuditRecord, promote_with_audit
from orchestration_pipelines.fraud.contract import validate_transactions
from orchestration_pipelines.fraud.features import FEATURE_COLUMNS, compute_features
from orchestration_pipelines.fraud.model import (
    FEW_POSITIVES,
    MODEL_NAME,
    FraudModel,
    TrainingResult,
    evaluate,
    paired_difference_intervals,
    train_fraud_model,
)
from orchestration_pipelines.fraud.policy import FraudPolicy, load_policy
from orchestration_pipelines.fraud.scoring import make_decisions, score_features
from orchestration_pipelines.fraud.table import binary_label, parse_time_column
from orchestration_pipelines.model_registry import ModelNotFound, ModelRegistry
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.settings import paths

__all__ = [
    "MODEL_NAME",
    "Baseline",
    "current_model_baseline",
    "load_current_model",
    "promote_model",
    "score",
    "train_builtin",
    "train_on_table",
]


def _registry(registry: ModelRegistry | None) -> ModelRegistry:
    return registry or ModelRegistry(paths().models)


def load_current_model(
    registry: ModelRegistry | None = None, version: str | None = None
) -> tuple[FraudModel, dict]:
    return _registry(registry).load(MODEL_NAME, version)


def score(
    df: pd.DataFrame,
    *,
    history: pd.DataFrame | None = None,
    registry: ModelRegistry | None = None,
    model_version: str | None = None,
    policy: FraudPolicy | None = None,
) -> pd.DataFrame:
    """Decisions for ``df`` with the promoted (or given) model version and the packaged policy.

    For the built-in model ``df`` holds raw transactions, validated against the data contract, and
    ``history`` (same columns) gives account context. For a model trained with ``train_on_table``
    ``df`` holds that model's feature columns; every other column is passed through.
    """
    model, card = load_current_model(registry, model_version)
    policy = policy or load_policy()
    if model.feature_set == "builtin":
        features = compute_features(validate_transactions(df, intake=policy.intake), history)
    else:
        features = df.reset_index(drop=True)
    return make_decisions(score_features(features, model, card["version"], policy), policy)


def train_on_table(
    df: pd.DataFrame,
    label: str,
    *,
    time_column: str | None = None,
    feature_columns: list[str] | None = None,
    registry: ModelRegistry | None = None,
    source: str | Path | None = None,
) -> tuple[str, TrainingResult]:
    """Train and evaluate on a user's labelled table; saves (does not promote) a model version.

    Features default to every numeric column except the label and time columns. The time column may
    hold datetimes, ISO 8601 strings or numbers; rows without a usable time are left out and reported
    in ``result.time``. Returns the saved version and the training result with its hold-out metrics.
    """
    missing = [c for c in [label, time_column, *(feature_columns or [])] if c and c not in df.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the table; its columns are {list(df.columns)}")
    for role, column in (("label", label), ("time", time_column)):
        if column and column in (feature_columns or []):
            raise ValueError(f"{role} column {column!r} is among the features: it would leak into the model")
    df = df.assign(**{label: binary_label(df[label])})
    time_report = None
    if time_column:
        parsed = parse_time_column(df[time_column])
        time_report = parsed.report(time_column)
        df = df.assign(**{time_column: parsed.values})[parsed.values.notna().to_numpy()]
    excluded = {label, time_column}
    columns = feature_columns or [
        c for c in df.columns if c not in excluded and pd.api.types.is_numeric_dtype(df[c])
    ]
    if not columns:
        raise ValueError("no numeric feature columns found")
    binary_label(df[label])  # both classes must survive the rows left out for want of a time
    result = train_fraud_model(df, columns, label=label, time_column=time_column, feature_set="custom")
    result.time = time_report
    version = _registry(registry).save(
        MODEL_NAME,
        result.model,
        {
            "feature_set": "custom",
            "feature_columns": columns,
            "label": label,
            "time_column": time_column,
            "time": time_report,
            "split": result.split,
            "metrics": result.metrics,
            "selection": result.selection,
            "source": str(source) if source else None,
        },
    )
    return version, result


def train_builtin(history: pd.DataFrame, *, seed: int = 0) -> TrainingResult:
    """Train the built-in model on labelled transactions, holding out the latest 20% of time.

    Optional columns ``sample_weight`` and ``train_only`` (rows that always train, never judge: see
    ``orchestration_pipelines.learning.fraud``) pass through to ``train_fraud_model``.
    """
    features = compute_features(history)
    extra = [c for c in ("sample_weight", "train_only") if c in history.columns]
    for column in ["is_fraud", *extra]:
        features[column] = history[column].to_numpy()
    return train_fraud_model(
        features,
        FEATURE_COLUMNS,
        time_column="timestamp",
        seed=seed,
        weight_column="sample_weight" if "sample_weight" in extra else None,
        train_only_column="train_only" if "train_only" in extra else None,
    )


@dataclass(frozen=True)
class Baseline:
    """The promoted model judged on a candidate's hold-out, so the two compare like for like.

    ``not_comparable`` says why no such comparison exists; then there are no metrics.
    """

    version: str
    metrics: dict | None = None
    probability: np.ndarray | None = None
    difference_ci: dict | None = None  # paired bootstrap intervals of candidate minus current
    not_comparable: str | None = None

    def card_entry(self) -> dict:
        """What the candidate's card records about the current model (``promotion_verdict`` reads it)."""
        return {
            "version": self.version,
            "metrics": self.metrics,
            "difference_ci": self.difference_ci,
            "not_comparable": self.not_comparable,
        }


def current_model_baseline(result: TrainingResult, registry: ModelRegistry | None = None) -> Baseline | None:
    """The promoted model on the candidate's hold-out; None only when no model is promoted yet."""
    try:
        current, card = load_current_model(registry)
    except ModelNotFound:
        return None
    version = card["version"]
    if current.feature_set != "builtin":
        return Baseline(
            version,
            not_comparable=(
                f"the current model {version} was trained with `fraud train` on the bank's own features "
                f"({', '.join(current.feature_columns)}), so the built-in candidate cannot be judged on the "
                "same hold-out; it stays current. To switch deliberately, run "
                "`orchestration-pipelines fraud promote <candidate version>`"
            ),
        )
    absent = sorted(set(current.feature_columns) - set(result.holdout.columns))
    if absent:
        return Baseline(
            version,
            not_comparable=(
                f"the current model {version} reads features the candidate's hold-out lacks ({absent}); "
                "it stays current. To switch deliberately, run "
                "`orchestration-pipelines fraud promote <candidate version>`"
            ),
        )
    probability, _ = current.predict(result.holdout)
    labels = result.holdout["is_fraud"].to_numpy()
    candidate, _ = result.model.predict(result.holdout)
    few = labels.sum() <= FEW_POSITIVES
    return Baseline(
        version,
        evaluate(probability, labels),
        probability,
        paired_difference_intervals(labels, candidate, probability) if few else None,
    )


def promote_model(
    store: OpStore,
    version: str,
    *,
    registry: ModelRegistry | None = None,
    actor: str,
    run_id: str | None = None,
    details: dict | None = None,
) -> tuple[AuditRecord, AuditEntry | None]:
    """Make ``version`` the model scoring uses, with its ``model_promoted`` audit record.

    The one way every path promotes (the ``model`` asset, ``fraud train --promote``, ``fraud
    promote``); the registry refuses versions it does not hold. The record travels in the pointer
    write and is delivered at once; the entry is ``None`` while the store is unreachable.
    """
    return promote_with_audit(
        _registry(registry),
        store,
        workflow="fraud",
        model_name=MODEL_NAME,
        version=version,
        details=details or {},
        actor=actor,
        run_id=run_id,
    )
