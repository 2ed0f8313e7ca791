"""The maintenance landing sensor against a real instance: one run per complete day a new file covers."""

import pandas as pd
from dagster import build_sensor_context, instance_for_test
from maintenance_helpers import small_plant

from orchestration_pipelines.definitions import build_resources
from sensors.maintenance import LANDING_SHA_TAG, maintenance_landing_sensor


def _tick(instance, cursor=None):
    with build_sensor_context(instance=instance, cursor=cursor, resources=build_resources()) as context:
        result = maintenance_landing_sensor(context)
    return result, result.cursor


def _write(folder, name: str, start: str, end: str) -> None:
    readings = small_plant().readings
    rows = readings[
        (readings["timestamp"] >= pd.Timestamp(start)) & (readings["timestamp"] < pd.Timestamp(end))
    ]
    folder.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(folder / name, index=False) if name.endswith(".parquet") else rows.to_csv(
        folder / name, index=False
    )


def test_new_files_request_each_day_they_cover_once(data_env):
    folder = data_env / "landing" / "maintenance" / "readings"
    _write(folder, "a.csv", "2026-11-03T00:00Z", "2026-11-04T00:00Z")
    _write(folder, "spans.parquet", "2026-11-04T18:00Z", "2026-11-05T06:00Z")  # two days
    _write(folder, ".partial.csv.tmp", "2026-11-06T00:00Z", "2026-11-06T01:00Z")  # still being copied
    with instance_for_test() as instance:
        result, cursor = _tick(instance)
        requested = sorted((r.partition_key, r.run_key.split(":")[1]) for r in result.run_requests)
        assert requested == [
            ("2026-11-03", "a.csv"),
            ("2026-11-04", "spans.parquet"),
            ("2026-11-05", "spans.parquet"),
        ]
        assert all(r.tags[LANDING_SHA_TAG] for r in result.run_requests)

        again, cursor = _tick(instance, cursor)
        assert again.run_requests == [] and "no new or changed files" in again.skip_reason.skip_message

        # The same rows re-sent under a new name: runs again (idempotent downstream), under new keys.
        _write(folder, "a_again.csv", "2026-11-03T00:00Z", "2026-11-04T00:00Z")
        resent, cursor = _tick(instance, cursor)
        assert [r.partition_key for r in resent.run_requests] == ["2026-11-03"]
        assert resent.run_requests[0].run_key != result.run_requests[0].run_key


def test_unreadable_files_and_incomplete_days_request_nothing_and_say_why(data_env):
    folder = data_env / "landing" / "maintenance" / "readings"
    folder.mkdir(parents=True)
    (folder / "garbage.csv").write_text("machine,when\nPU-001,yesterday\n")
    today = pd.Timestamp.now(tz="UTC").normalize()
    frame = small_plant().readings.head(10).assign(timestamp=today + pd.Timedelta(minutes=5))
    frame.to_csv(folder / "today.csv", index=False)
    with instance_for_test() as instance:
        result, _ = _tick(instance)
    message = result.skip_reason.skip_message
    assert result.run_requests == []
    assert "garbage.csv: no readable timestamp column" in message and "quarantines it" in message
    assert f"today.csv: {today:%Y-%m-%d} not complete yet" in message
