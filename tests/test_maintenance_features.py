import numpy as np
import pandas as pd
from maintenance_helpers import policy, small_plant

from orchestration_pipelines.maintenance.features import (
    day_features,
    maintenance_windows,
    median_column,
    rolling_column,
)

DAYS = pd.date_range("2026-11-02", periods=4, freq="D", tz="UTC")


def _run_days(days, tail=None):
    sim = small_plant()
    windows = maintenance_windows(sim.events)
    frames = []
    for day in days:
        features, tail = day_features(sim.readings, day, sim.plant, policy(), windows, tail)
        frames.append(features)
    return pd.concat(frames, ignore_index=True), tail


def test_day_by_day_with_the_carried_tail_equals_rolling_over_the_whole_stretch():
    features, _ = _run_days(DAYS)
    p = policy()
    medians = [median_column(s) for s in small_plant().plant.sensor_names]
    reference = (
        features.groupby("machine_id")[medians]
        .rolling(p.rolling_windows, min_periods=1)
        .mean()
        .reset_index(level=0, drop=True)
        .sort_index()
    )
    rolled = features[[rolling_column(c.removesuffix("_median")) for c in medians]].to_numpy()
    np.testing.assert_allclose(rolled, reference.to_numpy(), equal_nan=True)
    # Without the tail the first windows of a day would differ: the tail is doing the work.
    alone, _ = _run_days(DAYS[1:2])
    first = features[features["window_start"] == DAYS[1]].set_index("machine_id")["vibration_rolling"]
    first_alone = alone[alone["window_start"] == DAYS[1]].set_index("machine_id")["vibration_rolling"]
    assert not np.allclose(first.dropna(), first_alone.reindex(first.dropna().index), equal_nan=True)


def test_the_tail_is_bounded_whatever_the_history():
    p = policy()
    machines = len(small_plant().plant.machines)
    _, after_one = _run_days(DAYS[:1])
    _, after_four = _run_days(DAYS)
    assert len(after_one) == len(after_four) == machines * (p.rolling_windows - 1)
    assert after_four["window_start"].min() >= DAYS[-1]


def test_every_window_of_the_day_has_a_row_and_silences_dropouts_maintenance_are_flagged():
    sim = small_plant()
    p = policy()
    features, _ = _run_days(DAYS)
    per_day = pd.Timedelta(days=1) / p.window
    assert len(features) == len(sim.plant.machines) * per_day * len(DAYS)
    assert features["coverage"].between(0, 1).all()
    silent = features[features["coverage"] == 0]
    assert len(silent) and silent["dropout"].all() and silent["vibration_median"].isna().all()

    # A known maintenance window: its windows keep their rows, flagged, and feed no trend.
    windows = pd.DataFrame(
        {
            "machine_id": ["PU-001"],
            "start": [pd.Timestamp("2026-11-03T10:00Z")],
            "end": [pd.Timestamp("2026-11-03T12:00Z")],
        }
    )
    day, _ = day_features(sim.readings, DAYS[1], sim.plant, p, windows)
    flagged = day.loc[day["in_maintenance"], ["machine_id", "window_start"]]
    assert flagged["machine_id"].unique().tolist() == ["PU-001"]
    assert len(flagged) == pd.Timedelta(hours=2) / p.window
    assert day.loc[day["in_maintenance"], "temperature_median"].isna().all()
    after = day[(day["machine_id"] == "PU-001") & (day["window_start"] == pd.Timestamp("2026-11-03T12:00Z"))]
    assert not after["in_maintenance"].item()


def test_maintenance_windows_pair_start_and_end_and_keep_an_open_one_open():
    events = pd.DataFrame(
        {
            "machine_id": ["A", "A", "A", "B"],
            "timestamp": pd.to_datetime(
                ["2026-11-02T06:00Z", "2026-11-02T08:00Z", "2026-11-03T01:00Z", "2026-11-02T05:00Z"]
            ),
            "event": ["maintenance_start", "maintenance_end", "maintenance_start", "error"],
            "code": ["", "", "", "E101"],
        }
    )
    windows = maintenance_windows(events)
    assert windows["machine_id"].tolist() == ["A", "A"]
    assert windows.iloc[0]["end"] == pd.Timestamp("2026-11-02T08:00Z")
    assert windows.iloc[1]["end"] > pd.Timestamp("2100-01-01", tz="UTC")
