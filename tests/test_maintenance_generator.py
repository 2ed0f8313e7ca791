import dataclasses

import numpy as np
import pandas as pd
from maintenance_helpers import SMALL, small_plant

from orchestration_pipelines.maintenance.generator import simulate_plant


def test_the_same_scenario_gives_the_same_plant_and_another_seed_another():
    again = simulate_plant(SMALL)
    pd.testing.assert_frame_equal(again.readings, small_plant().readings)
    pd.testing.assert_frame_equal(again.failures, small_plant().failures)
    other = simulate_plant(dataclasses.replace(SMALL, seed=SMALL.seed + 1))
    assert not other.readings["vibration"].equals(small_plant().readings["vibration"])


def test_degradations_are_labelled_with_onset_speed_and_end_in_a_logged_failure():
    sim = small_plant()
    failures = sim.failures
    assert set(failures["mode"]) == {"bearing_wear", "overheating", "pressure_loss"}
    for failure in failures.itertuples():
        low, high = SMALL.onset_hours[failure.mode]
        hours = (failure.failure_time - failure.onset) / pd.Timedelta(hours=1)
        assert low <= hours <= high
        assert failure.onset >= pd.Timestamp(SMALL.start, tz="UTC") + pd.Timedelta(
            days=SMALL.first_failure_day
        )
        assert failure.repaired_at > failure.failure_time
        if failure.mode == "pressure_loss":
            assert "pressure" in sim.plant.machine_type(failure.machine_id).sensors
        logged = sim.events[
            (sim.events["machine_id"] == failure.machine_id) & (sim.events["event"] == "failure")
        ]
        assert failure.failure_time in set(logged["timestamp"])


def _signal(sim, machine_id, column, start, end):
    r = sim.readings
    rows = (r["machine_id"] == machine_id) & (r["timestamp"] >= start) & (r["timestamp"] < end)
    return r.loc[rows, column].median()


def test_each_mode_moves_its_signal_before_the_failure():
    sim = small_plant()
    column = {"bearing_wear": "vibration", "overheating": "temperature", "pressure_loss": "pressure"}
    for f in sim.failures.itertuples():
        # Same hour of the previous day, so load and ambient are comparable.
        before = _signal(
            sim,
            f.machine_id,
            column[f.mode],
            f.failure_time - pd.Timedelta(hours=25),
            f.failure_time - pd.Timedelta(hours=24),
        )
        late = _signal(
            sim, f.machine_id, column[f.mode], f.failure_time - pd.Timedelta(hours=1), f.failure_time
        )
        expected = {
            "bearing_wear": late > 1.3 * before,
            "overheating": late > before + 10,
            "pressure_loss": late < 0.85 * before,
        }
        assert expected[f.mode], (f.mode, before, late)


def test_noise_dropouts_silences_maintenance_and_event_logs_are_present():
    sim = small_plant()
    readings = sim.readings
    assert readings[["temperature", "vibration", "current"]].isna().any().all()  # single-sensor dropouts
    steps = readings.groupby("machine_id")["timestamp"].diff().dropna()
    assert (steps > pd.Timedelta(hours=1)).any()  # a whole machine silent for hours
    assert readings.loc[readings["machine_id"].str.startswith("SP"), "pressure"].isna().all()
    assert set(sim.events["event"]) >= {
        "error",
        "warning",
        "maintenance_start",
        "maintenance_end",
        "restart",
        "failure",
    }
    assert set(sim.maintenance["kind"]) == {"preventive", "repair"}
    # A machine under maintenance stands still.
    window = sim.maintenance.iloc[0]
    inside = readings[
        (readings["machine_id"] == window.machine_id)
        & (readings["timestamp"] >= window.start)
        & (readings["timestamp"] < window.end)
    ]
    assert len(inside) and (inside["rotational_speed"] < 1).all()
    # Load drives the signals: the day shift runs hotter than the night.
    pump = readings[readings["machine_id"] == "PU-001"].set_index("timestamp")["temperature"]
    day = pump.between_time("10:00", "16:00").median()
    night = pump.between_time("00:00", "04:00").median()
    assert day > night + 2
    assert np.isfinite(sim.ambient).all()
