"""The versioned alerting policy: feature windows, evidence, hysteresis and confidence thresholds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from orchestration_pipelines.config_files import parse_yaml


class MaintenancePolicyError(ValueError):
    pass


@dataclass(frozen=True)
class MaintenancePolicy:
    policy_id: str
    version: str
    window: pd.Timedelta
    rolling_windows: int
    min_coverage: float
    healthy_quantile: float
    enter_score: float
    evidence_windows: int
    exit_score: float
    release_windows: int
    high_score: float
    work_order_confidence: float
    source_sha256: str


def load_maintenance_policy(path: str | Path | None = None) -> MaintenancePolicy:
    """Read and validate a policy file; the packaged ``policies/maintenance.yaml`` by default."""
    text = (
        Path(path).read_text()
        if path
        else resources.files("orchestration_pipelines").joinpath("policies/maintenance.yaml").read_text()
    )
    raw = parse_yaml(text)
    try:
        features, anomaly, alerts = raw["features"], raw["anomaly"], raw["alerts"]
        policy = MaintenancePolicy(
            policy_id=str(raw["policy_id"]),
            version=str(raw["version"]),
            window=pd.Timedelta(features["window"]),
            rolling_windows=int(features["rolling_windows"]),
            min_coverage=float(features["min_coverage"]),
            healthy_quantile=float(anomaly["healthy_quantile"]),
            enter_score=float(alerts["enter_score"]),
            evidence_windows=int(alerts["evidence_windows"]),
            exit_score=float(alerts["exit_score"]),
            release_windows=int(alerts["release_windows"]),
            high_score=float(alerts["high_score"]),
            work_order_confidence=float(alerts["work_order_confidence"]),
            source_sha256=hashlib.sha256(text.encode()).hexdigest(),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MaintenancePolicyError(f"invalid maintenance policy: {exc!r}") from exc
    if not policy.exit_score <= policy.enter_score < policy.high_score:
        raise MaintenancePolicyError("scores must satisfy exit_score <= enter_score < high_score")
    if policy.evidence_windows < 1 or policy.release_windows < 1 or policy.rolling_windows < 1:
        raise MaintenancePolicyError("window counts must be at least 1")
    if pd.Timedelta(days=1) % policy.window:
        raise MaintenancePolicyError("the feature window must divide a day")
    return policy
