"""Rolling-window features per machine, computed one day at a time with a bounded carried tail.

Readings are summarised per machine and window (medians resist spikes); every window of the day gets
a row, so a silent machine shows up as dropout windows rather than disappearing. Trend features look
back ``rolling_windows`` windows: the day's computation takes the previous day's last windows (the
tail) as input and hands its own tail to the next day, so a day costs that day, never the history.
Maintenance and dropout windows keep their row but contribute nothing to trends or scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from orchestration_pipelines.maintenance.plant import PlantConfig
from orchestration_pipelines.maintenance.policy import MaintenancePolicy


def median_column(sensor: str) -> str:
    return f"{sensor}_median"


def rolling_column(sensor: str) -> str:
    return f"{sensor}_rolling"


def feature_columns(sensors: list[str] | tuple[str, ...]) -> list[str]:
    return [median_column(s) for s in sensors] + [rolling_column(s) for s in sensors]


def maintenance_windows(events: pd.DataFrame) -> pd.DataFrame:
    """(machine_id, start, end) from an event log's maintenance_start / maintenance_end pairs.

    A start without an end yet is open-ended: the machine is under maintenance until it reports back.
    """
    marks = events[events["event"].isin(["maintenance_start", "maintenance_end"])].sort_values(
        ["machine_id", "timestamp"], kind="stable"
    )
    rows = []
    for machine_id, group in marks.groupby("machine_id", sort=False):
        start = None
        for timestamp, event in zip(group["timestamp"], group["event"], strict=True):
            if event == "maintenance_start" and start is None:
                start = timestamp
            elif event == "maintenance_end" and start is not None:
                rows.append((machine_id, start, timestamp))
                start = None
        if start is not None:
            rows.append((machine_id, start, pd.Timestamp.max.tz_localize("UTC")))
    return pd.DataFrame(rows, columns=["machine_id", "start", "end"])


def _window_grid(plant: PlantConfig, day: pd.Timestamp, window: pd.Timedelta) -> pd.DataFrame:
    starts = pd.date_range(day, day + pd.Timedelta(days=1), freq=window, inclusive="left")
    machines = list(plant.machines)
    return pd.DataFrame(
        {"machine_id": np.repeat(machines, len(starts)), "window_start": np.tile(starts, len(machines))}
    )


def _in_maintenance(grid: pd.DataFrame, windows: pd.DataFrame, window: pd.Timedelta) -> np.ndarray:
    flag = np.zeros(len(grid), dtype=bool)
    if windows.empty:
        return flag
    merged = grid.reset_index().merge(windows, on="machine_id")
    overlap = (merged["window_start"] < merged["end"]) & (merged["window_start"] + window > merged["start"])
    flag[merged.loc[overlap, "index"].unique()] = True
    return flag


def day_features(
    readings: pd.DataFrame,
    day: pd.Timestamp,
    plant: PlantConfig,
    policy: MaintenancePolicy,
    maintenance: pd.DataFrame,
    tail: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features of every machine and window of ``day``, the tail the next day needs).

    ``readings`` are the day's checked readings; ``maintenance`` the (machine_id, start, end) windows
    overlapping the day; ``tail`` what the previous day returned (None on the first day).
    """
    day = pd.Timestamp(day).normalize()
    window = policy.window
    sensors = plant.sensor_names
    expected = window / plant.reading_interval
    grid = _window_grid(plant, day, window)
    in_day = readings[(readings["timestamp"] >= day) & (readings["timestamp"] < day + pd.Timedelta(days=1))]
    keys = [in_day["machine_id"], in_day["timestamp"].dt.floor(window).rename("window_start")]
    grouped = in_day[sensors].groupby(keys)
    summary = grouped.median().add_suffix("_median").join(grouped.count().add_suffix("_count"))
    frame = grid.merge(summary.reset_index(), on=["machine_id", "window_start"], how="left")

    declared = np.zeros((len(frame), len(sensors)), dtype=bool)
    types = frame["machine_id"].map(plant.machines)
    for j, sensor in enumerate(sensors):
        declared[:, j] = types.map(lambda t, s=sensor: s in plant.machine_types[t].sensors).to_numpy()
    counts = frame[[f"{s}_count" for s in sensors]].fillna(0).to_numpy()
    coverage = np.where(declared, counts / expected, np.inf).min(axis=1)
    frame["coverage"] = np.clip(coverage, 0, 1)
    frame["dropout"] = frame["coverage"] < policy.min_coverage
    frame["in_maintenance"] = _in_maintenance(frame, maintenance, window)
    usable = ~(frame["dropout"] | frame["in_maintenance"])
    medians = [median_column(s) for s in sensors]
    frame.loc[~usable, medians] = np.nan
    frame = frame.drop(columns=[f"{s}_count" for s in sensors])

    history = frame[["machine_id", "window_start", *medians]]
    if tail is not None and not tail.empty:
        history = pd.concat([tail[history.columns], history], ignore_index=True)
    history = history.sort_values(["machine_id", "window_start"], kind="stable").reset_index(drop=True)
    rolled = (
        history.groupby("machine_id", sort=False)[medians]
        .rolling(policy.rolling_windows, min_periods=1)
        .mean()
        .reset_index(level=0, drop=True)
    )
    history[[rolling_column(s) for s in sensors]] = rolled.to_numpy()
    history = history[history["window_start"] >= day]
    frame = frame.merge(
        history[["machine_id", "window_start", *[rolling_column(s) for s in sensors]]],
        on=["machine_id", "window_start"],
    )
    frame["machine_type"] = frame["machine_id"].map(plant.machines)
    frame = frame.sort_values(["machine_id", "window_start"], ignore_index=True)
    next_tail = frame.groupby("machine_id", sort=False).tail(policy.rolling_windows - 1)
    return frame, next_tail[["machine_id", "window_start", *medians]].reset_index(drop=True)
