"""Training and evaluation of the fraud model: a supervised classifier beside an anomaly detector.

Fraud is rare (well under 1% of transactions), so accuracy says nothing: the model is judged by
precision-recall AUC and by the recall it achieves while flagging at most 1% of legitimate
transactions, on a hold-out that lies after the training period in time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split

MODEL_NAME = "fraud"
MIN_POSITIVES = 5
ANOMALY_SAMPLE = 50_000


@dataclass
class FraudModel:
    """What the scoring path needs: both detectors and the columns they read."""

    supervised: HistGradientBoostingClassifier
    anomaly: IsolationForest
    anomaly_reference: np.ndarray  # sorted anomaly scores of the training sample
    feature_columns: list[str]
    feature_set: str  # "builtin": computed by fraud.features; "custom": columns supplied by the user

    def predict(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(fraud probability, anomaly percentile versus training traffic) per row."""
        missing = [c for c in self.feature_columns if c not in features.columns]
        if missing:
            raise ValueError(f"missing feature columns for this model: {missing}")
        x = features[self.feature_columns].to_numpy(dtype="float64")
        probability = self.supervised.predict_proba(x)[:, 1]
        anomaly = -self.anomaly.score_samples(x)
        percentile = np.searchsorted(self.anomaly_reference, anomaly, side="right") / len(
            self.anomaly_reference
        )
        return probability, percentile


@dataclass
class TrainingResult:
    model: FraudModel
    metrics: dict[str, float]
    holdout: pd.DataFrame = field(repr=False)  # features + label of the hold-out rows
    split: str = "time"


def evaluate(probability: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Imbalance-aware metrics: PR-AUC, recall at 1% false-positive rate, ROC-AUC, base rate."""
    labels = np.asarray(labels).astype(int)
    fpr, tpr, _ = roc_curve(labels, probability)
    return {
        "pr_auc": float(average_precision_score(labels, probability)),
        "recall_at_1pct_fpr": float(tpr[fpr <= 0.01].max(initial=0.0)),
        "roc_auc": float(roc_auc_score(labels, probability)),
        "base_rate": float(labels.mean()),
        "n_rows": len(labels),
        "n_positive": int(labels.sum()),
    }


def _split(frame: pd.DataFrame, label: str, time_column: str | None, holdout_fraction: float, seed: int):
    if time_column:
        cutoff = frame[time_column].quantile(1 - holdout_fraction)
        train, holdout = frame[frame[time_column] < cutoff], frame[frame[time_column] >= cutoff]
    else:
        train, holdout = train_test_split(
            frame, test_size=holdout_fraction, stratify=frame[label], random_state=seed
        )
    for part, name in ((train, "training"), (holdout, "hold-out")):
        positives = int(part[label].sum())
        if positives < MIN_POSITIVES:
            raise ValueError(
                f"the {name} split has {positives} fraud cases (needs at least {MIN_POSITIVES}); "
                "supply more labelled history or a larger hold-out fraction"
            )
    return train, holdout


def train_fraud_model(
    frame: pd.DataFrame,
    feature_columns: list[str],
    label: str = "is_fraud",
    time_column: str | None = None,
    feature_set: str = "builtin",
    holdout_fraction: float = 0.2,
    seed: int = 0,
) -> TrainingResult:
    """Fit both detectors on the earlier part of ``frame`` and evaluate on the later part.

    Without ``time_column`` the hold-out is a stratified random sample instead.
    """
    bad = [c for c in feature_columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise ValueError(f"feature columns must be numeric: {bad}")
    if not set(pd.unique(frame[label])) <= {0, 1}:
        raise ValueError(f"label column {label!r} must hold only 0 and 1")
    train, holdout = _split(frame, label, time_column, holdout_fraction, seed)
    x_train = train[feature_columns].to_numpy(dtype="float64")
    y_train = train[label].to_numpy().astype(int)

    # Balanced class weights keep the rare class from being ignored; early stopping guards against
    # memorising the few positives.
    supervised = HistGradientBoostingClassifier(
        max_iter=300,
        learning_rate=0.08,
        max_leaf_nodes=31,
        l2_regularization=1.0,
        class_weight="balanced",
        early_stopping=True,
        validation_fraction=0.15,
        n_iter_no_change=25,
        random_state=seed,
    ).fit(x_train, y_train)

    rng = np.random.default_rng(seed)
    sample = x_train[rng.choice(len(x_train), size=min(ANOMALY_SAMPLE, len(x_train)), replace=False)]
    anomaly = IsolationForest(n_estimators=100, max_samples=256, random_state=seed).fit(sample)
    model = FraudModel(
        supervised=supervised,
        anomaly=anomaly,
        anomaly_reference=np.sort(-anomaly.score_samples(sample)),
        feature_columns=list(feature_columns),
        feature_set=feature_set,
    )
    probability, _ = model.predict(holdout)
    metrics = evaluate(probability, holdout[label].to_numpy())
    metrics["n_train"] = len(train)
    metrics["n_train_positive"] = int(y_train.sum())
    return TrainingResult(
        model, metrics, holdout[[*feature_columns, label]], "time" if time_column else "random"
    )


# A candidate may trail the current model by this much (noise on a few hundred positives) and still ship.
PROMOTION_TOLERANCE = {"pr_auc": 0.01, "recall_at_1pct_fpr": 0.02}


def promotion_verdict(candidate: dict[str, float], baseline: dict[str, float] | None) -> tuple[bool, str]:
    """Whether the candidate may replace the current model, judged on the same hold-out."""
    if baseline is None:
        return True, "no comparable current model: the candidate becomes the first promoted version"
    worse = [
        f"{metric} {candidate[metric]:.4f} < current {baseline[metric]:.4f} - {tolerance}"
        for metric, tolerance in PROMOTION_TOLERANCE.items()
        if candidate[metric] < baseline[metric] - tolerance
    ]
    if worse:
        return False, "candidate is worse than the current model: " + "; ".join(worse)
    return True, (
        f"candidate PR-AUC {candidate['pr_auc']:.4f} vs current {baseline['pr_auc']:.4f}, "
        f"recall@1%FPR {candidate['recall_at_1pct_fpr']:.4f} vs {baseline['recall_at_1pct_fpr']:.4f}"
    )
