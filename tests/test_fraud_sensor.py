"""The landing sensor against a real instance: idempotent per content, cursor across restarts."""

import pytest
from dagster import build_sensor_context, instance_for_test, materialize
from fraud_helpers import write_history, write_landing_file

from assets.fraud import FRAUD_SCORING_ASSETS, FRAUD_TRAINING_ASSETS, fraud_batches
from orchestration_pipelines.definitions import build_resources
from sensors.fraud import fraud_landing_sensor


@pytest.fixture
def instance():
    with instance_for_test() as instance:
        yield instance


def tick(instance, cursor=None):
    with build_sensor_context(instance=instance, cursor=cursor, resources=build_resources()) as context:
        result = fraud_landing_sensor(context)
    return result, result.cursor


def test_each_file_content_gets_exactly_one_run(data_env, small_world, instance):
    landing = data_env / "landing" / "fraud"
    write_landing_file(landing, "a.csv", small_world.batches[0])
    write_landing_file(landing, "b.parquet", small_world.batches[1])
    (landing / ".c.csv.tmp").write_text("still copying")

    result, cursor = tick(instance)
    assert sorted(r.partition_key for r in result.run_requests) == ["a.csv", "b.parquet"]
    assert all(r.run_key.startswith(r.partition_key + ":") for r in result.run_requests)
    assert result.dynamic_partitions_requests[0].partition_keys == ["a.csv", "b.parquet"]
    instance.add_dynamic_partitions(fraud_batches.name, ["a.csv", "b.parquet"])

    again, cursor = tick(instance, cursor)  # the cursor is what the daemon stores between ticks
    assert again.run_requests == [] and "no new or changed files" in again.skip_reason.skip_message

    write_landing_file(landing, "a.csv", small_world.batches[2])  # same name, new content
    changed, cursor = tick(instance, cursor)
    assert [r.partition_key for r in changed.run_requests] == ["a.csv"]
    assert changed.run_requests[0].run_key != result.run_requests[0].run_key
    assert changed.dynamic_partitions_requests[0].partition_keys == []  # partition already known


def test_lost_cursor_does_not_rescore_ingested_content(data_env, small_world, instance):
    write_history(data_env, small_world.history)
    assert materialize(FRAUD_TRAINING_ASSETS, resources=build_resources(), instance=instance).success
    write_landing_file(data_env / "landing" / "fraud", "a.csv", small_world.batches[0])
    first, _ = tick(instance)
    request = first.run_requests[0]
    instance.add_dynamic_partitions(fraud_batches.name, ["a.csv"])
    assert materialize(
        FRAUD_SCORING_ASSETS,
        partition_key="a.csv",
        resources=build_resources(),
        instance=instance,
        tags=request.tags,
    ).success

    after_reset, cursor = tick(instance, cursor=None)
    assert after_reset.run_requests == []
    assert "already ingested" in after_reset.skip_reason.skip_message
    assert "a.csv" in cursor
