"""Low-confidence maintenance alerts, as review requests with the evidence a planner decides on.

An alert below the policy's work-order confidence goes to a maintenance planner instead of opening a
work order: a ``maintenance_low_confidence_alert`` item with the machine, its signals at the alert,
the score and confidence, and the evidence PNG (signals with the anomaly window marked). The PNG's
name is derived from the day and the item id only, never from outside names, and is relative to the
evidence folder, the only folder the inbox serves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import pandas as pd

from orchestration_pipelines.maintenance.alerts import HUMAN_REVIEW
from orchestration_pipelines.maintenance.evidence import evidence_png
from orchestration_pipelines.maintenance.features import median_column, rolling_column
from orchestration_pipelines.maintenance.plant import PlantConfig
from orchestration_pipelines.maintenance.policy import MaintenancePolicy
from orchestration_pipelines.review import ReviewRequest, content_sha256, json_ready

WORKFLOW = "maintenance"
KIND = "maintenance_low_confidence_alert"


@dataclass(frozen=True)
class AlertReview:
    request: ReviewRequest
    evidence_path: str  # relative to the evidence folder
    evidence_png: bytes


def _checked_day(day: str) -> str:
    """The partition key, which names the evidence folder: a real date, nothing else."""
    try:
        valid = datetime.strptime(day, "%Y-%m-%d").strftime("%Y-%m-%d") == day
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"{day!r} is not a day like 2026-11-08")
    return day


def low_confidence_reviews(
    alerts: pd.DataFrame, scored: pd.DataFrame, plant: PlantConfig, policy: MaintenancePolicy, day: str
) -> list[AlertReview]:
    """One review per ``human_review`` alert of ``day`` (``alerts``: the published alerts; ``scored``: the
    day's scored windows with ``window_start`` and ``alerted_at`` as UTC timestamps)."""
    day = _checked_day(day)
    reviews = []
    for alert in alerts[alerts["status"] == HUMAN_REVIEW].sort_values("episode_id").itertuples(index=False):
        windows = scored[scored["machine_id"] == alert.machine_id].sort_values("window_start")
        evidence_start = alert.alerted_at - policy.evidence_windows * policy.window
        evidence = windows[windows["window_start"].between(evidence_start, alert.alerted_at)]
        sensors = plant.machine_types[alert.machine_type].sensors
        at_alert = windows[windows["window_start"] <= alert.alerted_at].tail(1)
        signals = {
            sensor: {
                "median": json_ready(at_alert[median_column(sensor)].iloc[0]) if len(at_alert) else None,
                "trend": json_ready(at_alert[rolling_column(sensor)].iloc[0]) if len(at_alert) else None,
                "unit": plant.sensors[sensor].unit,
            }
            for sensor in sensors
        }
        seen = evidence[["window_start", "anomaly_score", *map(median_column, sensors)]]
        model_version = str(windows["model_version"].iloc[0]) if len(windows) else "unknown"
        request = ReviewRequest(
            workflow=WORKFLOW,
            kind=KIND,
            case_id=str(alert.episode_id),
            reason=f"{alert.top_sensor} departs from its healthy level with confidence "
            f"{alert.confidence:.2f}, below the {policy.work_order_confidence} a work order needs",
            context={},  # completed below, once the evidence path (named after the item) is known
            input_sha256=content_sha256({"machine_id": alert.machine_id, "windows": seen.to_dict("records")}),
            model_version=model_version,
            automatic_decision=HUMAN_REVIEW,
        )
        path = f"{WORKFLOW}/{day}/{request.item_id}.png"
        context = {
            "batch_id": day,
            "machine_id": alert.machine_id,
            "machine_type": alert.machine_type,
            "team": alert.team,
            "episode_id": alert.episode_id,
            "alerted_at": json_ready(alert.alerted_at),
            "anomaly_score": json_ready(alert.anomaly_score),
            "confidence": json_ready(alert.confidence),
            "work_order_confidence": policy.work_order_confidence,
            "top_sensor": alert.top_sensor,
            "signals": signals,
            "reason_codes": [f"LOW_CONFIDENCE:{alert.top_sensor}"],
            "evidence_path": path,
            "maintenance_policy_version": alert.policy_version,
        }
        png = evidence_png(windows, pd.Series(alert._asdict()), policy)
        reviews.append(AlertReview(replace(request, context=context), path, png))
    return reviews
