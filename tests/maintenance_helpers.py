"""A small simulated plant shared by the maintenance tests: three machines, a few days, 5-minute readings."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd
from dagster import materialize

from assets.maintenance import MAINTENANCE_TRAINING_ASSETS, anomaly_candidate_not_worse
from orchestration_pipelines.definitions import build_resources
from orchestration_pipelines.maintenance.generator import PlantSimulation, Scenario, simulate_plant
from orchestration_pipelines.maintenance.plant import plant_file_text
from orchestration_pipelines.maintenance.policy import MaintenancePolicy, load_maintenance_policy
from resources.maintenance import MaintenanceConfigResource, MaintenanceSystemResource, NotifierResource

SMALL = Scenario(
    seed=7,
    start="2026-11-02",
    days=9,
    machines_per_type={"pump": 2, "compressor": 1, "spindle": 2},
    onset_hours={"bearing_wear": (20, 30), "overheating": (10, 14), "pressure_loss": (20, 30)},
    failures_per_machine_week=2.0,
    interval="5min",
    first_failure_day=5,
)
TRAIN_UNTIL = pd.Timestamp(SMALL.start, tz="UTC") + pd.Timedelta(days=SMALL.first_failure_day)


@cache
def small_plant() -> PlantSimulation:
    return simulate_plant(SMALL)


def policy() -> MaintenancePolicy:
    return load_maintenance_policy()


def _csv(frame: pd.DataFrame, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def write_plant_files(data_env: Path, tmp_path: Path) -> Path:
    """History before TRAIN_UNTIL; landing files after it, including the awkward ones of the issue.
    Returns the plant file."""
    sim = small_plant()
    plant_path = tmp_path / "plant.yaml"
    plant_path.write_text(plant_file_text(sim.plant))
    readings, events = sim.readings, sim.events
    history = data_env / "history" / "maintenance"
    _csv(readings[readings["timestamp"] < TRAIN_UNTIL], history / "readings.csv")
    _csv(events[events["timestamp"] < TRAIN_UNTIL], history / "events.csv")
    _csv(sim.failures[sim.failures["onset"] < TRAIN_UNTIL], history / "failures.csv")

    landing = data_env / "landing" / "maintenance"
    later = readings[readings["timestamp"] >= TRAIN_UNTIL]
    midday = pd.Timestamp("2026-11-08T12:00Z")
    first, second = later[later["timestamp"] < midday].copy(), later[later["timestamp"] >= midday]
    first.loc[first.index[5], "vibration"] = 1e6  # impossible: that value is quarantined, the row kept
    unknown = first.head(3).assign(machine_id="XX-999")
    _csv(pd.concat([first, unknown]).sample(frac=1, random_state=1), landing / "readings" / "plant_a.csv")
    _csv(second, landing / "readings" / "plant_b.csv")
    _csv(first.head(500), landing / "readings" / "plant_a_resent.csv")  # the same rows under a new name
    _csv(first.drop(columns=["machine_id"]).head(10), landing / "readings" / "broken.csv")
    _csv(events, landing / "events" / "events.csv")
    return plant_path


def wiring_resources(plant_path: Path, webhook_url: str | None, policy_path: Path | None = None) -> dict:
    """The definitions' resources with the test plant (and policy), webhooks without back-off waits."""
    resources = build_resources()
    url = resources["opstore"].url
    return {
        **resources,
        "maintenance_config": MaintenanceConfigResource(
            plant_path=str(plant_path), policy_path=str(policy_path or "")
        ),
        "maintenance_system": MaintenanceSystemResource(
            opstore_url=url, webhook_url=webhook_url or "", backoff_seconds=0.01
        ),
        "notifier": NotifierResource(opstore_url=url, webhook_url=webhook_url or "", backoff_seconds=0.01),
    }


def train_on_history(instance, resources: dict, **kwargs):
    """The training job's assets and check, materialised on ``instance``: candidate, check, promotion."""
    return materialize(
        [*MAINTENANCE_TRAINING_ASSETS, anomaly_candidate_not_worse],
        resources=resources,
        instance=instance,
        **kwargs,
    )
