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

from orchestration_pipelines.fraud.contract import validate_transactions
from orchestration_pipelines.fraud.features import FEATURE_COLUMNS, compute_features
from orchestration_pipelines.fraud.model import (
    MODEL_NAME,
    FraudModel,
    TrainingResult,
    evaluate,
    train_fraud_model,
)
from orchestration_pipelines.fraud.policy import FraudPolicy, load_policy
from orchestration_pipelines.fraud.scoring import make_decisions, score_features
from orchestration_pipelines.model_registry import ModelNotFound, ModelRegistry
from orchestration_pipelines.settings import paths

__all__ = [
    "MODEL_NAME",
    "Baseline",
    "current_model_baseline",
    "load_current_model",
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

    Features default to every numeric column except the label and time columns. Returns the saved
    version and the training result with its hold-out metrics.
    """
    if label not in df.columns:
        raise ValueError(f"label column {label!r} not found; columns are {list(df.columns)}")
    if time_column:
        if time_column not in df.columns:
            raise ValueError(f"time column {time_column!r} not found")
        df = df.assign(**{time_column: pd.to_datetime(df[time_column], utc=True)})
    excluded = {label, time_column}
    columns = feature_columns or [
        c for c in df.columns if c not in excluded and pd.api.types.is_numeric_dtype(df[c])
    ]
    if not columns:
        raise ValueError("no numeric feature columns found")
    result = train_fraud_model(df, columns, label=label, time_column=time_column, feature_set="custom")
    version = _registry(registry).save(
        MODEL_NAME,
        result.model,
        {
            "feature_set": "custom",
            "feature_columns": columns,
            "label": label,
            "time_column": time_column,
            "split": result.split,
            "metrics": result.metrics,
            "source": str(source) if source else None,
        },
    )
    return version, result


def train_builtin(history: pd.DataFrame) -> TrainingResult:
    """Train the built-in model on labelled transactions, holding out the latest 20% of time."""
    features = compute_features(history)
    features["is_fraud"] = history["is_fraud"].to_numpy()
    return train_fraud_model(features, FEATURE_COLUMNS, time_column="timestamp")


@dataclass(frozen=True)
class Baseline:
    """The promoted model judged on a candidate's hold-out, so the two compare like for like."""

    version: str
    metrics: dict
    probability: np.ndarray


def current_model_baseline(result: TrainingResult, registry: ModelRegistry | None = None) -> Baseline | None:
    """The promoted model on the candidate's hold-out, or None when there is none or it is not comparable."""
    try:
        current, card = load_current_model(registry)
    except ModelNotFound:
        return None
    if current.feature_set != "builtin" or set(current.feature_columns) - set(result.holdout.columns):
        return None
    probability, _ = current.predict(result.holdout)
    return Baseline(
        card["version"], evaluate(probability, result.holdout["is_fraud"].to_numpy()), probability
    )
