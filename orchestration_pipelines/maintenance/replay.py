"""Replay a plant's history day by day, exactly as the daily partitions run, and evaluate it.

Used by the benchmark and by anyone evaluating a policy or a real plant's labelled history: readings
are checked per day, features carry their tail from day to day, models learn from the healthy windows
before ``train_until``, and alerts carry their state and see the work orders still open at the start of
each day. A proposed work order stays open until the machine's next maintenance ends, or until
``inspection`` has passed (a technician found nothing and closed it).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from orchestration_pipelines.maintenance.alerts import ALERT_COLUMNS, SUPPRESSED, WORK_ORDER, track_alerts
from orchestration_pipelines.maintenance.anomaly import (
    TypeModel,
    degrading_windows,
    evaluate_scores,
    scorable,
    score_features,
    train_models,
)
from orchestration_pipelines.maintenance.contract import check_readings
from orchestration_pipelines.maintenance.evaluation import evaluate_alerts, naive_alerts, naive_thresholds
from orchestration_pipelines.maintenance.features import day_features, maintenance_windows
from orchestration_pipelines.maintenance.plant import PlantConfig
from orchestration_pipelines.maintenance.policy import MaintenancePolicy

PROPOSAL = ["machine_id", "alerted_at"]
INSPECTION = pd.Timedelta(hours=48)  # a work order nobody acted on is closed after this


@dataclass
class ReplayResult:
    features: pd.DataFrame
    scored: pd.DataFrame
    alerts: pd.DataFrame
    models: dict[str, TypeModel]
    score_evaluation: pd.DataFrame
    evaluation: dict[str, float]


def history_features(
    readings: pd.DataFrame, events: pd.DataFrame, plant: PlantConfig, policy: MaintenancePolicy
) -> pd.DataFrame:
    """Features of every day in ``readings``, one day at a time with the carried tail."""
    checked = check_readings(readings, plant)
    maintenance = maintenance_windows(events)
    tail, days = None, []
    for day in checked.days:
        features, tail = day_features(checked.for_day(day), day, plant, policy, maintenance, tail)
        days.append(features)
    return pd.concat(days, ignore_index=True)


def open_work_orders(
    proposals: pd.DataFrame, events: pd.DataFrame, at: pd.Timestamp, inspection: pd.Timedelta
) -> dict[str, pd.Timestamp]:
    """Machine -> alert time of its earliest work order proposed before ``at`` and not yet closed."""
    recent = proposals[(proposals["alerted_at"] <= at) & (proposals["alerted_at"] > at - inspection)]
    ends = events[(events["event"] == "maintenance_end") & (events["timestamp"] <= at)]
    last_end = recent["machine_id"].map(ends.groupby("machine_id")["timestamp"].max())
    still_open = recent[last_end.isna() | (recent["alerted_at"] > last_end)]
    return still_open.groupby("machine_id")["alerted_at"].min().to_dict()


def naive_evaluation(
    features: pd.DataFrame,
    failures: pd.DataFrame,
    plant: PlantConfig,
    policy: MaintenancePolicy,
    train_until: pd.Timestamp,
    margin: float,
) -> dict[str, float]:
    """The naive threshold rule on the same windows: bands from the healthy training windows, widened
    by ``margin`` times their width on each side (the benchmark tunes it on development data)."""
    training = features["window_start"] < train_until
    healthy = training & ~degrading_windows(features, failures, policy.window) & scorable(features)
    thresholds = naive_thresholds(features, healthy)
    width = thresholds["high"] - thresholds["low"]
    thresholds["low"] -= margin * width
    thresholds["high"] += margin * width
    alerts = naive_alerts(features[~training], thresholds, policy.window)
    period = (pd.Timestamp(train_until), features["window_start"].max() + policy.window)
    return evaluate_alerts(alerts, failures, len(plant.machines), period)


def replay(
    readings: pd.DataFrame,
    events: pd.DataFrame,
    failures: pd.DataFrame,
    plant: PlantConfig,
    policy: MaintenancePolicy,
    train_until: pd.Timestamp,
    inspection: pd.Timedelta = INSPECTION,
) -> ReplayResult:
    """Train on the healthy windows before ``train_until``, then alert day by day after it."""
    features = history_features(readings, events, plant, policy)
    degrading = degrading_windows(features, failures, policy.window)
    training = features["window_start"] < train_until
    models = train_models(features, plant, policy, training & ~degrading)
    scored = score_features(features, models)

    state, alerts = None, []
    proposals: list[tuple[str, pd.Timestamp]] = []
    evaluated = scored[~training]
    for day, windows in evaluated.groupby(evaluated["window_start"].dt.normalize()):
        day_alerts, state = track_alerts(
            windows,
            plant,
            policy,
            state,
            open_work_orders(pd.DataFrame(proposals, columns=PROPOSAL), events, day, inspection),
        )
        alerts.append(day_alerts)
        proposed = day_alerts.loc[day_alerts["status"] == WORK_ORDER, PROPOSAL]
        proposals += list(proposed.itertuples(index=False, name=None))
    raised_days = [a for a in alerts if len(a)]
    all_alerts = (
        pd.concat(raised_days, ignore_index=True) if raised_days else pd.DataFrame(columns=ALERT_COLUMNS)
    )
    raised = all_alerts[all_alerts["status"] != SUPPRESSED].drop_duplicates("episode_id")
    period = (pd.Timestamp(train_until), features["window_start"].max() + policy.window)
    machines = len(plant.machines)
    return ReplayResult(
        features=features,
        scored=scored,
        alerts=all_alerts,
        models=models,
        score_evaluation=evaluate_scores(scored[~training], degrading[~training]),
        evaluation=evaluate_alerts(raised, failures, machines, period),
    )
