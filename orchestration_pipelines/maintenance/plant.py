"""The plant configuration: sensors with their physical ranges, machine types, machines and downtime.

Every plant brings its own file; nothing downstream assumes the demo's five signals. Readings are
checked against the ranges here, features are computed for the sensors a machine type declares, and
work orders are proposed into the next downtime window of the calendar.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import pandas as pd

from orchestration_pipelines.config_files import parse_yaml

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class PlantConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Sensor:
    name: str
    unit: str
    min: float
    max: float


@dataclass(frozen=True)
class MachineType:
    name: str
    team: str
    sensors: tuple[str, ...]


@dataclass(frozen=True)
class DowntimeWindow:
    weekday: int  # Monday = 0
    start: pd.Timedelta  # time of day
    duration: pd.Timedelta


@dataclass(frozen=True)
class PlantConfig:
    plant_id: str
    version: str
    reading_interval: pd.Timedelta
    sensors: dict[str, Sensor]
    machine_types: dict[str, MachineType]
    machines: dict[str, str]  # machine id -> machine type
    downtime_windows: tuple[DowntimeWindow, ...]
    source_sha256: str

    @property
    def sensor_names(self) -> list[str]:
        return list(self.sensors)

    def machine_type(self, machine_id: str) -> MachineType:
        return self.machine_types[self.machines[machine_id]]

    def with_machines(self, machines: dict[str, str]) -> PlantConfig:
        """The same plant with another machine list (the generator sizes plants for benchmarks)."""
        unknown = sorted(set(machines.values()) - set(self.machine_types))
        if unknown:
            raise PlantConfigError(f"machines refer to undeclared machine types: {unknown}")
        return replace(self, machines=dict(machines))

    def next_downtime(self, after: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
        """(start, end) of the first calendar window starting at or after ``after`` (UTC); (NaT, NaT)
        when the plant has no calendar (the work order is then scheduled by hand)."""
        after = pd.Timestamp(after)
        day = after.normalize()
        candidates = []
        for window in self.downtime_windows:
            days_ahead = (window.weekday - day.weekday()) % 7
            start = day + pd.Timedelta(days=days_ahead) + window.start
            if start < after:
                start += pd.Timedelta(days=7)
            candidates.append((start, start + window.duration))
        return min(candidates, default=(pd.NaT, pd.NaT))


def plant_file_text(plant: PlantConfig) -> str:
    """``plant`` as a plant file (JSON is YAML) that ``load_plant`` reads back: for generated plants."""
    return json.dumps(
        {
            "plant_id": plant.plant_id,
            "version": plant.version,
            "reading_interval": str(plant.reading_interval),
            "sensors": {s.name: {"unit": s.unit, "min": s.min, "max": s.max} for s in plant.sensors.values()},
            "machine_types": {
                t.name: {"team": t.team, "sensors": list(t.sensors)} for t in plant.machine_types.values()
            },
            "machines": plant.machines,
            "downtime_windows": [
                {
                    "weekday": WEEKDAYS[w.weekday],
                    "start": f"{w.start.components.hours:02d}:{w.start.components.minutes:02d}",
                    "hours": w.duration / pd.Timedelta(hours=1),
                }
                for w in plant.downtime_windows
            ],
        }
    )


def _parse(raw: dict, text: str) -> PlantConfig:
    sensors = {
        name: Sensor(name, str(spec["unit"]), float(spec["min"]), float(spec["max"]))
        for name, spec in raw["sensors"].items()
    }
    types = {
        name: MachineType(name, str(spec["team"]), tuple(spec["sensors"]))
        for name, spec in raw["machine_types"].items()
    }
    windows = tuple(
        DowntimeWindow(
            weekday=WEEKDAYS.index(str(w["weekday"]).lower()[:3]),
            start=pd.Timedelta(f"{w['start']}:00"),
            duration=pd.Timedelta(hours=float(w["hours"])),
        )
        for w in raw.get("downtime_windows") or []
    )
    return PlantConfig(
        plant_id=str(raw["plant_id"]),
        version=str(raw["version"]),
        reading_interval=pd.Timedelta(raw.get("reading_interval", "1min")),
        sensors=sensors,
        machine_types=types,
        machines={str(k): str(v) for k, v in (raw.get("machines") or {}).items()},
        downtime_windows=windows,
        source_sha256=hashlib.sha256(text.encode()).hexdigest(),
    )


def load_plant(path: str | Path | None = None) -> PlantConfig:
    """Read and validate a plant file; the packaged demo plant by default."""
    text = (
        Path(path).read_text()
        if path
        else resources.files("orchestration_pipelines")
        .joinpath("policies/maintenance_plant.yaml")
        .read_text()
    )
    try:
        plant = _parse(parse_yaml(text), text)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PlantConfigError(f"invalid plant configuration: {exc!r}") from exc
    problems = [
        f"{s.name}: min {s.min} is not below max {s.max}" for s in plant.sensors.values() if s.min >= s.max
    ]
    problems += [
        f"machine type {t.name} declares unknown sensors {sorted(set(t.sensors) - set(plant.sensors))}"
        for t in plant.machine_types.values()
        if set(t.sensors) - set(plant.sensors)
    ]
    problems += [
        f"machine {m} has undeclared type {t!r}"
        for m, t in plant.machines.items()
        if t not in plant.machine_types
    ]
    if not plant.machine_types:
        problems.append("no machine types declared")
    if problems:
        raise PlantConfigError("invalid plant configuration: " + "; ".join(problems))
    return plant
