"""Anomaly scores per machine type, learnt from healthy history only.

Each machine's features are taken relative to its own healthy median (machines of one type differ by a
few percent), scaled per type, and scored by their Mahalanobis distance under a shrunk covariance of
healthy windows (scikit-learn's Ledoit-Wolf). Load and ambient temperature move the signals together
along directions that the covariance knows, so only departures from the healthy pattern score high.
Scores are divided by a high quantile of healthy scores: 1.0 means "as unusual as the top 1% of
healthy windows".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score

from orchestration_pipelines.maintenance.features import feature_columns
from orchestration_pipelines.maintenance.plant import PlantConfig
from orchestration_pipelines.maintenance.policy import MaintenancePolicy

MODEL_NAME = "maintenance_anomaly"  # in the model registry
MIN_TRAINING_WINDOWS = 50


@dataclass
class TypeModel:
    machine_type: str
    sensors: tuple[str, ...]
    columns: list[str]
    machine_center: pd.DataFrame  # machine_id -> healthy median per column
    type_center: pd.Series
    scale: np.ndarray
    covariance: LedoitWolf
    healthy_level: float  # the policy's quantile of healthy distances

    def standardized(self, frame: pd.DataFrame) -> np.ndarray:
        center = self.machine_center.reindex(frame["machine_id"]).to_numpy()
        center = np.where(np.isnan(center), self.type_center.to_numpy(), center)
        return (frame[self.columns].to_numpy(dtype="float64") - center) / self.scale

    def distance(self, frame: pd.DataFrame) -> np.ndarray:
        z = self.standardized(frame)
        out = np.full(len(frame), np.nan)
        ok = np.isfinite(z).all(axis=1)
        if ok.any():
            out[ok] = np.sqrt(self.covariance.mahalanobis(z[ok]))
        return out


class NotEnoughHealthyHistory(ValueError):
    pass


def scorable(features: pd.DataFrame) -> pd.Series:
    return ~(features["dropout"] | features["in_maintenance"])


def train_models(
    features: pd.DataFrame, plant: PlantConfig, policy: MaintenancePolicy, healthy: pd.Series
) -> dict[str, TypeModel]:
    """One model per machine type from the windows marked ``healthy`` (and usable)."""
    models = {}
    for machine_type, spec in plant.machine_types.items():
        columns = feature_columns(spec.sensors)
        rows = features[(features["machine_type"] == machine_type) & healthy & scorable(features)]
        rows = rows.dropna(subset=columns)
        if len(rows) < MIN_TRAINING_WINDOWS:
            if machine_type in plant.machines.values():
                raise NotEnoughHealthyHistory(
                    f"{machine_type}: {len(rows)} healthy windows, at least {MIN_TRAINING_WINDOWS} needed"
                )
            continue
        machine_center = rows.groupby("machine_id")[columns].median()
        deviation = rows[columns].to_numpy() - machine_center.reindex(rows["machine_id"]).to_numpy()
        q75, q25 = np.percentile(deviation, [75, 25], axis=0)
        scale = np.maximum((q75 - q25) / 1.349, 1e-6)
        z = deviation / scale
        covariance = LedoitWolf().fit(z)
        distances = np.sqrt(covariance.mahalanobis(z))
        models[machine_type] = TypeModel(
            machine_type=machine_type,
            sensors=spec.sensors,
            columns=columns,
            machine_center=machine_center,
            type_center=rows[columns].median(),
            scale=scale,
            covariance=covariance,
            healthy_level=float(np.quantile(distances, policy.healthy_quantile)),
        )
    return models


def score_features(features: pd.DataFrame, models: dict[str, TypeModel]) -> pd.DataFrame:
    """Features plus ``anomaly_score`` (NaN where the window is not scorable) and ``top_sensor``.

    ``top_sensor`` names the sensor whose window median departs most from the machine's healthy level,
    for the work order's evidence.
    """
    scored = features.copy()
    scored["anomaly_score"] = np.nan
    scored["top_sensor"] = ""
    usable = scorable(features)
    for machine_type, model in models.items():
        rows = (features["machine_type"] == machine_type) & usable
        if not rows.any():
            continue
        part = features[rows]
        scored.loc[rows, "anomaly_score"] = model.distance(part) / model.healthy_level
        z = np.abs(model.standardized(part)[:, : len(model.sensors)])
        top = np.nanargmax(np.where(np.isnan(z), -1, z), axis=1)
        scored.loc[rows, "top_sensor"] = np.array(model.sensors)[top]
    return scored


def evaluate_scores(scored: pd.DataFrame, degrading: pd.Series) -> pd.DataFrame:
    """Per machine type: ROC-AUC of the window score for degrading vs healthy windows, and alert-level
    shares above 1 (healthy) and in the degrading windows."""
    rows = []
    for machine_type, part in scored[scored["anomaly_score"].notna()].groupby("machine_type"):
        label = degrading.loc[part.index].to_numpy()
        score = part["anomaly_score"].to_numpy()
        rows.append(
            {
                "machine_type": machine_type,
                "windows": len(part),
                "degrading_windows": int(label.sum()),
                "roc_auc": float(roc_auc_score(label, score)) if 0 < label.sum() < len(label) else np.nan,
                "healthy_above_1": float((score[~label] > 1).mean()),
                "degrading_above_1": float((score[label] > 1).mean()) if label.any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


def degrading_windows(features: pd.DataFrame, failures: pd.DataFrame, window: pd.Timedelta) -> pd.Series:
    """True for windows between a labelled onset and its failure (ground truth for evaluation)."""
    flag = pd.Series(False, index=features.index)
    merged = features[["machine_id", "window_start"]].reset_index().merge(failures, on="machine_id")
    inside = (merged["window_start"] + window > merged["onset"]) & (
        merged["window_start"] < merged["failure_time"]
    )
    flag.loc[merged.loc[inside, "index"].unique()] = True
    return flag


# A candidate may be this much worse than the current model, per machine type, before it is refused:
# ROC-AUC and the share of degrading windows scored above 1 must not drop, the share of healthy windows
# above 1 (false alarms) must not rise, by more than these (absolute).
PROMOTION_TOLERANCE = {"roc_auc": 0.02, "degrading_above_1": 0.05, "healthy_above_1": 0.01}
_LOWER_IS_BETTER = {"healthy_above_1"}


def current_model_baseline(
    current: dict[str, TypeModel],
    current_card: dict,
    candidate: dict[str, TypeModel],
    holdout: pd.DataFrame,
    degrading: pd.Series,
) -> dict:
    """The current model on the candidate's hold-out (``evaluation``), or why that comparison would not
    be like for like (``not_comparable``): other machine types or sensors, or a model that was trained
    on windows of this hold-out."""
    entry = {"version": current_card.get("version")}
    inputs = {t: m.columns for t, m in current.items()}
    wanted = {t: m.columns for t, m in candidate.items()}
    if inputs != wanted:
        return {**entry, "not_comparable": f"the current model reads {inputs}, the candidate {wanted}"}
    trained_through = current_card.get("trained_through")
    if trained_through and pd.Timestamp(trained_through) >= holdout["window_start"].min():
        return {
            **entry,
            "not_comparable": f"the current model was trained on windows up to {trained_through}, inside "
            f"the candidate's hold-out (from {holdout['window_start'].min()})",
        }
    return {
        **entry,
        "evaluation": evaluate_scores(score_features(holdout, current), degrading).to_dict("records"),
    }


def promotion_verdict(candidate: list[dict], baseline: dict | None) -> tuple[bool, str]:
    """Whether the candidate (its hold-out ``evaluation`` records) may replace the current model, and why."""
    if baseline is None:
        return True, "no current model: the candidate becomes the first promoted version"
    if "not_comparable" in baseline:
        return False, f"not promoted, no like-for-like comparison: {baseline['not_comparable']}"
    current = {row["machine_type"]: row for row in baseline["evaluation"]}
    worse, compared = [], []
    for row in candidate:
        for metric, tolerance in PROMOTION_TOLERANCE.items():
            ours, theirs = row[metric], current[row["machine_type"]][metric]
            if pd.isna(ours) or pd.isna(theirs):
                continue  # e.g. no degrading windows in the hold-out: not measurable for either
            text = f"{row['machine_type']} {metric} {ours:.4f} vs current {theirs:.4f}"
            compared.append(text)
            sign = -1 if metric in _LOWER_IS_BETTER else 1
            if sign * (ours - theirs) < -tolerance:
                worse.append(f"{text} (tolerance {tolerance})")
    if worse:
        return False, "candidate is worse than the current model on the same hold-out: " + "; ".join(worse)
    return True, "not worse on the same hold-out: " + ("; ".join(compared) or "nothing measurable")
