"""A small simulated plant shared by the maintenance tests: three machines, a few days, 5-minute readings."""

from __future__ import annotations

from functools import cache

import pandas as pd

from orchestration_pipelines.maintenance.generator import PlantSimulation, Scenario, simulate_plant
from orchestration_pipelines.maintenance.policy import MaintenancePolicy, load_maintenance_policy

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
