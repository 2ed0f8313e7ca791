import numpy as np
import pandas as pd
import pytest
from maintenance_helpers import small_plant

from orchestration_pipelines.maintenance.contract import ReadingsFileRejected, check_readings


def _clean_day() -> pd.DataFrame:
    sim = small_plant()
    day = sim.readings[sim.readings["timestamp"] < pd.Timestamp("2026-11-03T00:00Z")]
    return day.assign(timestamp=day["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).reset_index(drop=True)


def test_generated_readings_pass_without_problems():
    sim = small_plant()
    check = check_readings(sim.readings, sim.plant)
    assert [p["kind"] for p in check.problems] == ["spans_days"]
    assert check.rejected.empty
    assert len(check.readings) == len(sim.readings)
    assert len(check.days) == 9


def test_every_bad_input_is_reported_in_one_pass_and_no_row_is_lost_silently():
    sim = small_plant()
    raw = _clean_day().astype({"temperature": object})
    good_rows = len(raw)
    raw.loc[11, "vibration"] = 1e6  # physically impossible: value dropped, row kept
    raw.loc[12, "temperature"] = "hot"  # not a number: value dropped, row kept
    bad = pd.DataFrame(
        [
            {**raw.iloc[10].to_dict(), "machine_id": "XX-999"},  # unknown machine
            {**raw.iloc[13].to_dict(), "timestamp": "yesterday"},  # unparsable timestamp
            raw.iloc[14].to_dict(),  # exact duplicate: dropped
            {
                **raw.iloc[15].to_dict(),
                "current": 1.0,
            },  # same machine and time, other values: both quarantined
            {**raw.iloc[16].to_dict(), "timestamp": "2026-11-03T00:05:00Z"},  # spills into the next day
        ]
    )
    messy = pd.concat([raw.iloc[::-1], bad], ignore_index=True)  # reversed: out of order
    check = check_readings(messy, sim.plant)

    kinds = {p["kind"] for p in check.problems}
    assert kinds == {
        "unknown_machine",
        "impossible_value",
        "unparsable_value",
        "unparsable_timestamp",
        "duplicate",
        "conflicting_duplicate",
        "out_of_order",
        "spans_days",
    }
    reasons = check.rejected["reason"].value_counts().to_dict()
    assert reasons == {
        "unknown_machine": 1,
        "impossible_value": 1,
        "unparsable_value": 1,
        "unparsable_timestamp": 1,
        "conflicting_duplicate": 2,
    }
    assert check.rejected.loc[check.rejected["reason"] == "impossible_value", "value"].item() == "1000000.0"
    # Accounting: every input row is a reading, a counted duplicate or a quarantined row.
    row_level = check.rejected[check.rejected["column"] == ""]
    assert len(check.readings) + 1 + len(row_level) == len(messy)
    assert len(check.readings) == good_rows  # the conflicting original out, the spill in
    # Values that could not be trusted are missing, the rest of their row is kept.
    kept = check.readings.set_index(["machine_id", "timestamp"])
    key = (raw.iloc[11]["machine_id"], pd.Timestamp(raw.iloc[11]["timestamp"]))
    assert np.isnan(kept.loc[key, "vibration"]) and not np.isnan(kept.loc[key, "current"])
    # Sorted per machine; the two days are separable.
    assert check.readings.groupby("machine_id")["timestamp"].is_monotonic_increasing.all()
    assert [d.day for d in check.days] == [2, 3]
    assert len(check.for_day(check.days[1])) == 1


def test_a_file_without_key_columns_is_rejected_as_a_whole():
    sim = small_plant()
    with pytest.raises(ReadingsFileRejected, match="missing columns: machine_id"):
        check_readings(_clean_day().drop(columns=["machine_id"]), sim.plant)
    with pytest.raises(ReadingsFileRejected, match="no sensor column"):
        check_readings(_clean_day()[["machine_id", "timestamp"]], sim.plant)


def test_naive_times_are_utc_and_undeclared_or_absent_sensors_are_reported():
    sim = small_plant()
    raw = _clean_day().drop(columns=["pressure"]).assign(humidity=40.0)
    raw["timestamp"] = raw["timestamp"].str.rstrip("Z")
    check = check_readings(raw, sim.plant)
    assert str(check.readings["timestamp"].dt.tz) == "UTC"
    assert {p["kind"] for p in check.problems} == {"unknown_column", "absent_sensor"}
    assert check.readings["pressure"].isna().all()
    assert "humidity" not in check.readings
