"""A reproducible plant simulation with labelled degradations that end in failure.

Machines of several types follow a shift load pattern; their signals drift with load and with the
ambient temperature, carry sensor noise, isolated spikes, single-sensor dropouts and whole-machine
silences, and slowly wear between preventive maintenance, which resets the wear. Degradations
(bearing wear: rising vibration; overheating; pressure loss) start at a known time, grow with a
chosen onset speed and end in a failure, followed by a repair. Every event is in the event log.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from orchestration_pipelines.maintenance.plant import PlantConfig, load_plant

MODES = ("bearing_wear", "overheating", "pressure_loss")
# Nominal behaviour per machine type: value = base + per_load * load (speed: nominal * (0.5 + 0.5 load)).
TYPE_SIGNALS = {
    "pump": {
        "temperature": (42, 14),
        "vibration": (1.8, 1.2),
        "pressure": (3.0, 4.0),
        "speed": 1480,
        "current": (18, 24),
    },
    "compressor": {
        "temperature": (55, 20),
        "vibration": (2.6, 1.8),
        "pressure": (6.0, 3.0),
        "speed": 2950,
        "current": (35, 40),
    },
    "spindle": {
        "temperature": (35, 18),
        "vibration": (1.2, 2.0),
        "pressure": (0.0, 0.0),
        "speed": 9000,
        "current": (8, 26),
    },
}
WARNING_CODES = {
    "bearing_wear": "W201_VIBRATION",
    "overheating": "W202_TEMPERATURE",
    "pressure_loss": "W203_PRESSURE",
}
BENIGN_CODES = ("E101_COMM_TIMEOUT", "E102_DOOR_OPEN", "E103_OPERATOR_STOP")


@dataclass(frozen=True)
class Scenario:
    """What to simulate. Onset hours per mode: the degradation lasts uniformly within that range."""

    seed: int
    start: str
    days: int
    machines_per_type: dict[str, int]
    onset_hours: dict[str, tuple[float, float]]
    failures_per_machine_week: float = 0.2
    interval: str = "1min"
    first_failure_day: float = 0.0  # no failure before this day (keeps a training stretch healthy)


# Development uses these onset speeds; the benchmark holds out other seeds and speeds.
DEVELOPMENT = Scenario(
    seed=101,
    start="2026-09-07",
    days=42,
    machines_per_type={"pump": 14, "compressor": 12, "spindle": 14},
    onset_hours={"bearing_wear": (48, 120), "overheating": (12, 36), "pressure_loss": (24, 72)},
    first_failure_day=14,
)


@dataclass
class PlantSimulation:
    plant: PlantConfig
    readings: pd.DataFrame  # machine_id, timestamp, one column per declared sensor
    events: pd.DataFrame  # machine_id, timestamp, event, code
    failures: pd.DataFrame  # machine_id, mode, onset, failure_time, repaired_at
    maintenance: pd.DataFrame  # machine_id, start, end, kind (preventive / repair)
    ambient: pd.Series = field(repr=False)


def _smooth(x: np.ndarray, steps: float) -> np.ndarray:
    """First-order lag with a time constant of ``steps`` samples (thermal and mechanical inertia)."""
    alpha = 1.0 / max(steps, 1.0)
    return lfilter([alpha], [1, alpha - 1], x, zi=[x[0] * (1 - alpha)])[0]


def _ar_noise(rng: np.random.Generator, n: int, sd: float, steps: float) -> np.ndarray:
    phi = np.exp(-1.0 / steps)
    return lfilter([sd * np.sqrt(1 - phi**2)], [1, -phi], rng.normal(size=n))


def _machine_ids(machines_per_type: dict[str, int]) -> dict[str, str]:
    prefix = {"pump": "PU", "compressor": "CO", "spindle": "SP"}
    return {
        f"{prefix.get(t, t[:2].upper())}-{i + 1:03d}": t
        for t, n in machines_per_type.items()
        for i in range(n)
    }


def _mask(times: pd.DatetimeIndex, windows: list[tuple[pd.Timestamp, pd.Timestamp]]) -> np.ndarray:
    mask = np.zeros(len(times), dtype=bool)
    for start, end in windows:
        mask[times.searchsorted(start) : times.searchsorted(end)] = True
    return mask


def _plan_failures(
    rng, scenario, modes, begin, end
) -> list[tuple[str, pd.Timestamp, pd.Timestamp, pd.Timestamp]]:
    """Non-overlapping (mode, onset, failure, repaired) episodes for one machine."""
    weeks = (end - begin) / pd.Timedelta(days=7)
    episodes = []
    earliest = begin + pd.Timedelta(days=scenario.first_failure_day)
    for _ in range(rng.poisson(scenario.failures_per_machine_week * weeks)):
        mode = str(rng.choice(modes))
        low, high = scenario.onset_hours[mode]
        duration = pd.Timedelta(hours=float(rng.uniform(low, high)))
        failure = (
            earliest
            + duration
            + pd.Timedelta(hours=float(rng.uniform(0, (end - earliest).total_seconds() / 3600)))
        )
        repaired = failure + pd.Timedelta(hours=float(rng.uniform(4, 12)))
        busy = any(
            failure - duration < other_repaired + pd.Timedelta(days=1)
            and other_onset < repaired + pd.Timedelta(days=1)
            for _, other_onset, _, other_repaired in episodes
        )
        if repaired < end and not busy:
            episodes.append((mode, failure - duration, failure, repaired))
    return sorted(episodes, key=lambda e: e[2])


def _preventive_windows(rng, plant, begin, end, busy) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Preventive maintenance every two to three weeks, in calendar downtime, never inside an episode."""
    windows, cursor = [], begin + pd.Timedelta(days=float(rng.uniform(3, 18)))
    while cursor < end:
        start, stop = plant.next_downtime(cursor)
        if stop < end and not any(start < b_end and b_start < stop for b_start, b_end in busy):
            windows.append((start, stop))
        cursor = stop + pd.Timedelta(days=float(rng.uniform(14, 21)))
    return windows


def _simulate_machine(rng, plant, machine_id, machine_type, scenario, times, ambient):
    n = len(times)
    step_minutes = (times[1] - times[0]).total_seconds() / 60
    per_hour = 60 / step_minutes
    hour = times.hour.to_numpy() + times.minute.to_numpy() / 60
    weekday = times.weekday.to_numpy()
    shift = np.where(weekday < 5, np.where((hour >= 6) & (hour < 22), 0.8, 0.45), 0.3)
    load = np.clip(_smooth(shift, 0.25 * per_hour) + _ar_noise(rng, n, 0.08, per_hour), 0.05, 1.0)
    warm_load = _smooth(load, 0.4 * per_hour)

    spec = {k: (np.array(v) * rng.normal(1, 0.05, np.size(v))) for k, v in TYPE_SIGNALS[machine_type].items()}
    sensors = plant.machine_types[machine_type].sensors
    begin, end = times[0], times[-1] + (times[1] - times[0])
    modes = [m for m in MODES if m != "pressure_loss" or "pressure" in sensors]
    episodes = _plan_failures(rng, scenario, modes, begin, end)
    busy = [(onset - pd.Timedelta(days=1), repaired) for _, onset, _, repaired in episodes]
    preventive = _preventive_windows(rng, plant, begin, end, busy)
    maintenance = [(s, e, "preventive") for s, e in preventive] + [
        (f, r, "repair") for _, _, f, r in episodes
    ]
    off = _mask(times, [(s, e) for s, e, _ in maintenance])

    # Wear creeps up between maintenance and resets after each one.
    resets = np.sort(np.array([times.searchsorted(e) for _, e, _ in maintenance] + [0]))
    since_reset = np.arange(n) - resets[np.searchsorted(resets, np.arange(n), side="right") - 1]
    wear = 0.004 * since_reset / (per_hour * 24)

    temperature = spec["temperature"][0] + spec["temperature"][1] * warm_load + 0.5 * (ambient - 18)
    vibration = (spec["vibration"][0] + spec["vibration"][1] * load) * (1 + wear)
    pressure = spec["pressure"][0] + spec["pressure"][1] * load
    speed = spec["speed"][0] * (0.5 + 0.5 * load)
    current = spec["current"][0] + spec["current"][1] * load
    warnings = []
    failures = []
    for mode, onset, failure, repaired in episodes:
        i0, i1 = times.searchsorted(onset), times.searchsorted(failure)
        severity = np.linspace(0, 1, i1 - i0, endpoint=False) ** 2
        if mode == "bearing_wear":
            vibration[i0:i1] *= 1 + 3 * severity
            temperature[i0:i1] += 6 * severity
        elif mode == "overheating":
            temperature[i0:i1] += 30 * severity
            current[i0:i1] += 0.12 * spec["current"].sum() * severity
        else:
            pressure[i0:i1] *= 1 - 0.5 * severity
            current[i0:i1] += 0.05 * spec["current"].sum() * severity
        hourly = severity[:: int(per_hour)] if i1 > i0 else np.array([])
        fired = rng.poisson(3 * hourly)
        warnings += [
            (times[i0 + h * int(per_hour)], "warning", WARNING_CODES[mode]) for h in np.flatnonzero(fired)
        ]
        failures.append(
            {
                "machine_id": machine_id,
                "mode": mode,
                "onset": onset,
                "failure_time": failure,
                "repaired_at": repaired,
            }
        )

    temperature = temperature + rng.normal(0, 0.6, n)
    vibration = vibration * rng.lognormal(0, 0.08, n)
    pressure = pressure + rng.normal(0, 0.08, n)
    speed = speed + rng.normal(0, 0.004 * spec["speed"][0], n)
    current = current + rng.normal(0, 0.6, n)
    # A stopped machine cools to ambient, stands still and draws almost nothing.
    temperature[off] = ambient[off] + rng.normal(0, 0.3, off.sum())
    for signal in (vibration, pressure, speed, current):
        signal[off] = np.abs(rng.normal(0, 0.02, off.sum()))
    frame = pd.DataFrame(
        {
            "temperature": temperature,
            "vibration": vibration,
            "pressure": pressure,
            "rotational_speed": speed,
            "current": current,
        }
    )
    for column in plant.sensor_names:
        if column not in frame or column not in sensors:
            frame[column] = np.nan
    frame = frame[plant.sensor_names]

    days = n / (per_hour * 24)
    for column in sensors:
        spikes = rng.integers(0, n, rng.poisson(days))
        frame.loc[spikes, column] *= rng.uniform(1.8, 3.0, len(spikes))
        for _ in range(rng.poisson(0.3 * days)):
            start = int(rng.integers(0, n))
            frame.loc[start : start + int(rng.uniform(10 / step_minutes, 2 * per_hour)), column] = np.nan
    for column, sensor in plant.sensors.items():
        frame[column] = frame[column].clip(sensor.min, sensor.max).round(3)
    frame.insert(0, "timestamp", times)
    frame.insert(0, "machine_id", machine_id)
    silent = np.zeros(n, dtype=bool)
    for _ in range(rng.poisson(0.05 * days)):
        start = int(rng.integers(0, n))
        silent[start : start + int(rng.uniform(1, 6) * per_hour)] = True

    events = [(t, "warning", c) for t, _, c in warnings]
    events += [
        (times[i], "error", str(rng.choice(BENIGN_CODES))) for i in rng.integers(0, n, rng.poisson(days))
    ]
    for start, stop, kind in maintenance:
        events += [(start, "maintenance_start", kind), (stop, "maintenance_end", kind), (stop, "restart", "")]
    events += [(f, "failure", WARNING_CODES[m].replace("W", "F", 1)) for m, _, f, _ in episodes]
    event_frame = pd.DataFrame(events, columns=["timestamp", "event", "code"])
    event_frame.insert(0, "machine_id", machine_id)
    windows = pd.DataFrame(maintenance, columns=["start", "end", "kind"])
    windows.insert(0, "machine_id", machine_id)
    return frame[~silent], event_frame, failures, windows


def simulate_plant(scenario: Scenario = DEVELOPMENT, plant: PlantConfig | None = None) -> PlantSimulation:
    """Simulate ``scenario`` on the demo plant's sensors and types with the scenario's machine counts."""
    rng = np.random.default_rng(scenario.seed)
    plant = replace(
        (plant or load_plant()).with_machines(_machine_ids(scenario.machines_per_type)),
        reading_interval=pd.Timedelta(scenario.interval),
    )
    start = pd.Timestamp(scenario.start, tz="UTC")
    times = pd.date_range(
        start, start + pd.Timedelta(days=scenario.days), freq=scenario.interval, inclusive="left"
    )
    hour = times.hour.to_numpy() + times.minute.to_numpy() / 60
    per_hour = pd.Timedelta(hours=1) / pd.Timedelta(scenario.interval)
    ambient = 18 + 5 * np.sin(2 * np.pi * (hour - 9) / 24) + _ar_noise(rng, len(times), 2.0, 48 * per_hour)
    parts = [
        _simulate_machine(
            np.random.default_rng([scenario.seed, i]),
            plant,
            machine_id,
            machine_type,
            scenario,
            times,
            ambient,
        )
        for i, (machine_id, machine_type) in enumerate(plant.machines.items())
    ]
    failures = pd.DataFrame(
        [f for part in parts for f in part[2]],
        columns=["machine_id", "mode", "onset", "failure_time", "repaired_at"],
    )
    return PlantSimulation(
        plant=plant,
        readings=pd.concat([p[0] for p in parts], ignore_index=True),
        events=pd.concat([p[1] for p in parts], ignore_index=True).sort_values(
            ["machine_id", "timestamp"], ignore_index=True
        ),
        failures=failures,
        # A short or small simulation may plan no maintenance at all: an empty table, not an error.
        maintenance=pd.concat([p[3] for p in parts if len(p[3])] or [parts[0][3]], ignore_index=True),
        ambient=pd.Series(ambient, index=times, name="ambient_temperature"),
    )


# The demo plant (the packaged plant file's twelve machines): five healthy days to learn from, then
# days with fast degradations, so the first day after training raises confident and uncertain alerts.
DEMO = Scenario(
    seed=11,
    start="2026-11-02",
    days=8,
    machines_per_type={"pump": 4, "compressor": 3, "spindle": 5},
    onset_hours={"bearing_wear": (20, 30), "overheating": (10, 14), "pressure_loss": (20, 30)},
    failures_per_machine_week=1.0,
    first_failure_day=5,
)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write under a hidden name, then rename: a landing scan never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    frame.to_csv(partial, index=False)
    partial.rename(path)


def write_demo_files(history: Path, landing: Path, scenario: Scenario = DEMO) -> pd.Timestamp:
    """Labelled history (readings, events, failures) before the first failure day into ``history``, the
    readings of the first day after it into ``landing/readings`` and the event log up to that day's end
    into ``landing/events``. Returns that first landed day."""
    sim = simulate_plant(scenario)
    day = pd.Timestamp(scenario.start, tz="UTC") + pd.Timedelta(days=scenario.first_failure_day)
    readings, events, failures = sim.readings, sim.events, sim.failures
    _write_csv(readings[readings["timestamp"] < day], history / "readings.csv")
    _write_csv(events[events["timestamp"] < day], history / "events.csv")
    _write_csv(failures[failures["onset"] < day], history / "failures.csv")
    end = day + pd.Timedelta(days=1)
    in_day = (readings["timestamp"] >= day) & (readings["timestamp"] < end)
    _write_csv(readings[in_day], landing / "readings" / f"readings_{day:%Y-%m-%d}.csv")
    _write_csv(events[events["timestamp"] < end], landing / "events" / "events.csv")
    return day
