"""Training and evaluation of the fraud model: a supervised classifier beside an anomaly detector.

Fraud is rare (well under 1% of transactions), so accuracy says nothing: the model is judged by
precision-recall AUC and by the recall it achieves while flagging at most 1% of legitimate
transactions, on a hold-out that lies after the training period in time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split

MODEL_NAME = "fraud"
MIN_POSITIVES = 5
ANOMALY_SAMPLE = 50_000
# The anomaly percentile only ranks the strangest cases for review, and its cost at scoring time grows
# with the number of trees: 40 shallow trees rank the top 0.01% like 100 did, at 40% of the cost.
ANOMALY_TREES = 40
BOOTSTRAP_REPLICATES = 1000
# Intervals are reported while the hold-out has at most this many fraud cases; beyond, they are narrow.
FEW_POSITIVES = 2000
_BOOTSTRAP_CHUNK_VALUES = 4_000_000  # replicates are drawn in chunks of about this many counts (memory)
MAX_FPR = 0.01


@dataclass(frozen=True)
class BoostingConfig:
    """One candidate setting of the supervised model; the iteration count is chosen up to ``max_iter``."""

    learning_rate: float
    max_iter: int
    class_weight: str | None  # "balanced" up-weights the rare class; None learns the raw frequencies

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        iterations: int,
        seed: int,
        negative_share: float = 1.0,
        row_weight: np.ndarray | None = None,
    ) -> HistGradientBoostingClassifier:
        """Fit on ``x``, where only ``negative_share`` of the negatives were kept: weights restore them.

        Weights are given per row rather than as ``class_weight``, which turns into the same thing:
        either way scikit-learn then bins each feature with weighted percentiles, the slow part of a fit,
        so unweighted fits on all rows pass no weights at all. ``row_weight`` multiplies the class
        weights row by row (reviewers' labels count more than ordinary history).
        """
        positives = int(y.sum())
        negatives = (len(y) - positives) / negative_share
        if self.class_weight == "balanced":
            total = positives + negatives
            weights = (total / (2 * positives), total / (2 * negatives) / negative_share)
        else:
            weights = (1.0, 1.0 / negative_share)
        sample_weight = None if weights == (1.0, 1.0) else np.where(y == 1, *weights)
        if row_weight is not None:
            sample_weight = row_weight if sample_weight is None else sample_weight * row_weight
        return HistGradientBoostingClassifier(
            max_iter=iterations,
            learning_rate=self.learning_rate,
            max_leaf_nodes=31,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        ).fit(x, y, sample_weight=sample_weight)


# Few and cheap on purpose: together they keep a 300k-row table under 30 s on one core, and fewer
# iterations also make scoring faster.
CANDIDATE_CONFIGS = (
    BoostingConfig(learning_rate=0.2, max_iter=60, class_weight="balanced"),
    BoostingConfig(learning_rate=0.1, max_iter=120, class_weight="balanced"),
    BoostingConfig(learning_rate=0.1, max_iter=120, class_weight=None),
)
DEFAULT_CONFIG = CANDIDATE_CONFIGS[1]
SEARCH_NEGATIVES = 50_000
VALIDATION_STEP = 10  # iteration counts compared on the validation slice: 10, 20, ...
# A configuration within this validation PR-AUC of the best counts as equally good; the one with the
# fewest iterations among them wins, being cheaper to score and less fitted to the training period.
SELECTION_TOLERANCE = 0.005


@dataclass
class FraudModel:
    """What the scoring path needs: both detectors and the columns they read."""

    supervised: HistGradientBoostingClassifier
    anomaly: IsolationForest
    anomaly_reference: np.ndarray  # sorted anomaly scores of the training sample
    feature_columns: list[str]
    feature_set: str  # "builtin": computed by fraud.features; "custom": columns supplied by the user
    anomaly_fill: np.ndarray | None = None  # training medians standing in for gaps, which the forest refuses
    # Multiplies the fraud odds of a model fitted without class weights, putting its probabilities on the
    # class-balanced scale that the policy thresholds are written for (a prior shift; ranking unchanged).
    odds_scale: float = 1.0

    def predict(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(fraud probability, anomaly percentile versus training traffic) per row."""
        missing = [c for c in self.feature_columns if c not in features.columns]
        if missing:
            raise ValueError(f"missing feature columns for this model: {missing}")
        x = _matrix(features, self.feature_columns)
        probability = self.supervised.predict_proba(x)[:, 1]
        if self.odds_scale != 1.0:
            odds = probability * self.odds_scale
            probability = odds / (odds + 1 - probability)
        anomaly = -self.anomaly.score_samples(_filled(x, self.anomaly_fill))
        percentile = np.searchsorted(self.anomaly_reference, anomaly, side="right") / len(
            self.anomaly_reference
        )
        return probability, percentile


def _matrix(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The features as one row per case in memory (C order): the trees read a row's features together,
    and predict about 10% faster than from pandas' column-major layout."""
    x = np.ascontiguousarray(frame[columns].to_numpy(dtype="float64", na_value=np.nan))
    x[np.isinf(x)] = np.nan
    return x


def _filled(x: np.ndarray, fill: np.ndarray | None) -> np.ndarray:
    if fill is None or not np.isnan(x).any():
        return x
    return np.where(np.isnan(x), fill, x)


@dataclass
class TrainingResult:
    model: FraudModel
    metrics: dict[str, Any]
    holdout: pd.DataFrame = field(repr=False)  # features + label of the hold-out rows
    split: str = "time"
    selection: dict[str, Any] = field(default_factory=dict)  # the configuration search and its winner
    holdout_period: list[str] | None = None  # first and last time in the hold-out (time split)
    time: dict[str, Any] | None = None  # how a user's time column was read, and the rows without a time


def evaluate(probability: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Imbalance-aware metrics: PR-AUC, recall at 1% false-positive rate, ROC-AUC, base rate."""
    labels = np.asarray(labels).astype(int)
    fpr, tpr, _ = roc_curve(labels, probability)
    return {
        "pr_auc": float(average_precision_score(labels, probability)),
        "recall_at_1pct_fpr": float(tpr[fpr <= MAX_FPR].max(initial=0.0)),
        "roc_auc": float(roc_auc_score(labels, probability)),
        "base_rate": float(labels.mean()),
        "n_rows": len(labels),
        "n_positive": int(labels.sum()),
    }


def _one_hot(index: np.ndarray, width: int) -> sparse.csr_matrix:
    return sparse.csr_matrix((np.ones(len(index)), (np.arange(len(index)), index)), shape=(len(index), width))


def _replicate_metrics(
    labels: np.ndarray,
    probabilities: list[np.ndarray],
    n_boot: int = BOOTSTRAP_REPLICATES,
    seed: int = 0,
    unit_weights: bool = False,
) -> np.ndarray:
    """PR-AUC and recall at 1% FPR of each score on ``n_boot`` stratified bootstrap resamples.

    Shape (scores, 2, n_boot). Every score sees the same resamples, so differences are paired. Rather
    than resampling rows, each replicate draws how many times each positive and each cell of negatives
    (negatives between the same consecutive positive scores, under every model) is picked: the metrics
    only depend on those counts, so a replicate costs the number of positives, not of rows.
    ``unit_weights`` gives the one replicate that is the sample itself (for testing).
    """
    y = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    rng = np.random.default_rng(seed)
    groups, bins, widths = [], [], []
    for probability in probabilities:
        thresholds = np.unique(probability[y])  # distinct positive scores, ascending
        width = len(thresholds)
        # 0 = the highest threshold; a negative counts as flagged from the first threshold at or below it
        groups.append(width - np.searchsorted(thresholds, probability[y], side="right"))
        bins.append(width - np.searchsorted(thresholds, probability[~y], side="right"))
        widths.append(width)
    cells, cell_of_negative = np.unique(np.stack(bins), axis=1, return_inverse=True)
    cell_sizes = np.bincount(cell_of_negative.ravel(), minlength=cells.shape[1])
    out = np.empty((len(probabilities), 2, n_boot))
    per_chunk = max(1, _BOOTSTRAP_CHUNK_VALUES // (n_pos + cells.shape[1] + 3 * max(widths)))
    for start in range(0, n_boot, per_chunk):
        size = min(per_chunk, n_boot - start)
        if unit_weights:
            positive_draws = np.ones((size, n_pos))
            negative_draws = np.tile(cell_sizes, (size, 1)).astype(float)
        else:
            positive_draws = rng.multinomial(n_pos, np.full(n_pos, 1 / n_pos), size=size)
            negative_draws = rng.multinomial(n_neg, cell_sizes / n_neg, size=size)
        for i, width in enumerate(widths):
            gained = np.asarray(positive_draws @ _one_hot(groups[i], width))
            true_pos = np.cumsum(gained, axis=1)
            flagged = np.asarray(negative_draws @ _one_hot(cells[i], width + 1))[:, :width]
            false_pos = np.cumsum(flagged, axis=1)
            chunk = slice(start, start + size)
            out[i, 0, chunk] = (gained * true_pos / np.maximum(true_pos + false_pos, 1)).sum(axis=1) / n_pos
            out[i, 1, chunk] = np.where(false_pos <= MAX_FPR * n_neg, true_pos, 0).max(axis=1) / n_pos
    return out


def _interval(replicates: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in np.percentile(replicates, [2.5, 97.5])]


def bootstrap_intervals(labels: np.ndarray, probability: np.ndarray, seed: int = 0) -> dict[str, list[float]]:
    """95% bootstrap intervals of PR-AUC and recall at 1% FPR: how much a small hold-out can be trusted."""
    replicates = _replicate_metrics(labels, [probability], seed=seed)[0]
    return {"pr_auc": _interval(replicates[0]), "recall_at_1pct_fpr": _interval(replicates[1])}


def paired_difference_intervals(
    labels: np.ndarray, candidate: np.ndarray, current: np.ndarray, seed: int = 0
) -> dict[str, list[float]]:
    """95% intervals of (candidate - current) on the same resamples of one hold-out."""
    replicates = _replicate_metrics(labels, [candidate, current], seed=seed)
    difference = replicates[0] - replicates[1]
    return {"pr_auc": _interval(difference[0]), "recall_at_1pct_fpr": _interval(difference[1])}


def _split(frame: pd.DataFrame, label: str, time_column: str | None, fraction: float, seed: int, name: str):
    """(earlier, later) by time, else a stratified random split; each must hold enough fraud cases."""
    if time_column:
        cutoff = frame[time_column].quantile(1 - fraction)
        first, second = frame[frame[time_column] < cutoff], frame[frame[time_column] >= cutoff]
    else:
        first, second = train_test_split(frame, test_size=fraction, stratify=frame[label], random_state=seed)
    for part, part_name in ((first, f"{name} training"), (second, name)):
        positives = int(part[label].sum())
        if positives < MIN_POSITIVES:
            raise ValueError(
                f"the {part_name} split has {positives} fraud cases (needs at least {MIN_POSITIVES}); "
                "supply more labelled history or a larger hold-out fraction"
            )
    return first, second


def _period(frame: pd.DataFrame, time_column: str | None) -> list[str] | None:
    """First and last time of ``frame`` (a list, as it reads back from a JSON card)."""
    if not time_column:
        return None
    return [str(frame[time_column].min()), str(frame[time_column].max())]


def _quantile_bins(fit: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both matrices with each feature replaced by its quantile bin on ``fit`` (at most 255 values).

    The search's weighted fits would otherwise spend most of their time in scikit-learn binning each
    feature with 254 weighted percentiles; with few distinct values it bins them directly. Ranking
    configurations needs no finer resolution, and the final model is fitted on the raw values.
    """
    binned = np.full_like(fit, np.nan), np.full_like(other, np.nan)
    for j in range(fit.shape[1]):
        known = fit[~np.isnan(fit[:, j]), j]
        edges = np.unique(np.quantile(known, np.linspace(0, 1, 256)[1:-1])) if len(known) else known
        for source, target in zip((fit, other), binned, strict=True):
            present = ~np.isnan(source[:, j])
            target[present, j] = np.searchsorted(edges, source[present, j])
    return binned


def choose_config(
    train: pd.DataFrame, feature_columns: list[str], label: str, time_column: str | None, seed: int
) -> dict[str, Any]:
    """Pick learning rate, iterations and class weighting on the latest 20% of the training period.

    Each candidate is fitted once on the earlier 80% and judged by validation PR-AUC every
    ``VALIDATION_STEP`` iterations. The hold-out is never seen here.
    """
    try:
        fit_part, validation = _split(train, label, time_column, 0.2, seed, "validation")
    except ValueError as exc:
        return {
            "chosen": _config_summary(DEFAULT_CONFIG, DEFAULT_CONFIG.max_iter),
            "candidates": [],
            "why": f"default configuration: too few fraud cases to compare on a validation slice ({exc})",
            "validation_period": None,
        }
    # Every fraud case but at most SEARCH_NEGATIVES legitimate ones: the comparison needs the rare
    # class, and a sample of the common one keeps the search a fraction of the final fit's cost.
    negative = fit_part[label].to_numpy() == 0
    negative_share = min(1.0, SEARCH_NEGATIVES / negative.sum())
    if negative_share < 1.0:
        keep = ~negative
        keep[
            np.random.default_rng(seed).choice(np.flatnonzero(negative), SEARCH_NEGATIVES, replace=False)
        ] = True
        fit_part = fit_part[keep]
    x_fit, x_val = _quantile_bins(_matrix(fit_part, feature_columns), _matrix(validation, feature_columns))
    y_fit, y_val = fit_part[label].to_numpy(), validation[label].to_numpy()
    candidates, points = [], []
    for config in CANDIDATE_CONFIGS:
        fitted = config.fit(x_fit, y_fit, config.max_iter, seed, negative_share)
        curve = [
            (iteration, float(average_precision_score(y_val, proba[:, 1])))
            for iteration, proba in enumerate(fitted.staged_predict_proba(x_val), start=1)
            if iteration % VALIDATION_STEP == 0 or iteration == fitted.n_iter_
        ]
        points += [(config, iteration, score) for iteration, score in curve]
        iterations, score = max(curve, key=lambda point: point[1])
        candidates.append(
            {
                **_config_summary(config, iterations),
                "max_iterations": config.max_iter,
                "validation_pr_auc": round(score, 4),
            }
        )
    best = max(score for _, _, score in points)
    config, iterations, score = min(
        (p for p in points if p[2] >= best - SELECTION_TOLERANCE), key=lambda p: (p[1], -p[2])
    )
    return {
        "chosen": _config_summary(config, iterations),
        "candidates": candidates,
        "why": (
            f"validation PR-AUC {score:.4f} against the best {best:.4f} of {len(candidates)} configurations: "
            f"the fewest iterations within {SELECTION_TOLERANCE} of the best (cheaper to score, less fitted "
            f"to the past), on {len(validation)} validation rows with {int(y_val.sum())} fraud cases"
        ),
        "validation_period": _period(validation, time_column),
    }


def _config_summary(config: BoostingConfig, iterations: int) -> dict[str, Any]:
    return {
        "learning_rate": config.learning_rate,
        "iterations": int(iterations),
        "class_weight": config.class_weight or "none",
    }


def train_fraud_model(
    frame: pd.DataFrame,
    feature_columns: list[str],
    label: str = "is_fraud",
    time_column: str | None = None,
    feature_set: str = "builtin",
    holdout_fraction: float = 0.2,
    seed: int = 0,
    weight_column: str | None = None,
    train_only_column: str | None = None,
) -> TrainingResult:
    """Choose a configuration, fit both detectors on the earlier part of ``frame``, evaluate on the later.

    Without ``time_column`` the hold-out (and the validation slice) are stratified random samples.
    ``weight_column`` weighs rows in the final fit; rows true in ``train_only_column`` (reviewers'
    corrections: a chosen sample, not traffic) always train and never enter the hold-out or the
    configuration search, so the metrics stay those of ordinary traffic.
    """
    bad = [c for c in feature_columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise ValueError(f"feature columns must be numeric: {bad}")
    if not set(pd.unique(frame[label])) <= {0, 1}:
        raise ValueError(f"label column {label!r} must hold only 0 and 1")
    pinned = frame[train_only_column].to_numpy(bool) if train_only_column else np.zeros(len(frame), bool)
    train, holdout = _split(frame[~pinned], label, time_column, holdout_fraction, seed, "hold-out")
    selection = choose_config(train, feature_columns, label, time_column, seed)
    train = pd.concat([train, frame[pinned]]) if pinned.any() else train
    chosen = selection["chosen"]
    config = BoostingConfig(
        chosen["learning_rate"],
        chosen["iterations"],
        None if chosen["class_weight"] == "none" else "balanced",
    )
    x_train = _matrix(train, feature_columns)
    y_train = train[label].to_numpy().astype(int)
    row_weight = train[weight_column].to_numpy("float64") if weight_column else None
    if row_weight is not None and (row_weight == 1).all():
        row_weight = None  # unit weights would only slow the fit down (weighted binning)
    supervised = config.fit(x_train, y_train, config.max_iter, seed, row_weight=row_weight)

    rng = np.random.default_rng(seed)
    sample = x_train[rng.choice(len(x_train), size=min(ANOMALY_SAMPLE, len(x_train)), replace=False)]
    fill = np.nan_to_num(np.nanmedian(sample, axis=0)) if np.isnan(sample).any() else None
    sample = _filled(sample, fill)
    anomaly = IsolationForest(n_estimators=ANOMALY_TREES, max_samples=256, random_state=seed).fit(sample)
    model = FraudModel(
        supervised=supervised,
        anomaly=anomaly,
        anomaly_reference=np.sort(-anomaly.score_samples(sample)),
        feature_columns=list(feature_columns),
        feature_set=feature_set,
        anomaly_fill=fill,
        odds_scale=1.0 if config.class_weight else float((y_train == 0).sum() / y_train.sum()),
    )
    probability, _ = model.predict(holdout)
    labels = holdout[label].to_numpy()
    metrics: dict[str, Any] = evaluate(probability, labels)
    if metrics["n_positive"] <= FEW_POSITIVES:
        intervals = bootstrap_intervals(labels, probability, seed)
        metrics["pr_auc_ci"] = intervals["pr_auc"]
        metrics["recall_at_1pct_fpr_ci"] = intervals["recall_at_1pct_fpr"]
    metrics["n_train"] = len(train)
    metrics["n_train_positive"] = int(y_train.sum())
    return TrainingResult(
        model,
        metrics,
        holdout[[*feature_columns, label]],
        "time" if time_column else "random",
        selection,
        _period(holdout, time_column),
    )


# A candidate may trail the current model by this much (noise on a few hundred positives) and still ship.
PROMOTION_TOLERANCE = {"pr_auc": 0.01, "recall_at_1pct_fpr": 0.02}


def promotion_verdict(candidate: dict[str, Any], baseline: dict[str, Any] | None) -> tuple[bool, str]:
    """Whether the candidate may replace the current model, judged on the same hold-out.

    ``baseline`` is the current model's entry in the candidate's card: its ``version`` and either its
    ``metrics`` on the candidate's hold-out (with ``difference_ci``, the paired bootstrap intervals of
    candidate minus current) or ``not_comparable``, the reason no like-for-like comparison exists.
    """
    if baseline is None:
        return True, "no current model: the candidate becomes the first promoted version"
    if baseline.get("not_comparable"):
        return False, f"not promoted: {baseline['not_comparable']}"
    current = baseline["metrics"]
    noise = baseline.get("difference_ci") or {}
    compared = []
    for metric, tolerance in PROMOTION_TOLERANCE.items():
        text = f"{metric} {candidate[metric]:.4f} vs current {current[metric]:.4f}"
        if metric in noise:
            low, high = noise[metric]
            within = " within noise" if low <= 0 <= high else ""
            text += f" (difference 95% CI [{low:+.4f}, {high:+.4f}]{within})"
        compared.append((candidate[metric] < current[metric] - tolerance, text, tolerance))
    worse = [f"{text}, tolerance {tolerance}" for is_worse, text, tolerance in compared if is_worse]
    if worse:
        return False, "candidate is worse than the current model: " + "; ".join(worse)
    return True, "; ".join(text for _, text, _ in compared)
