"""The landing sensor against a real instance: a run per content, retries until published, a bound."""

import shutil

import pytest
from dagster import (
    AssetCheckSeverity,
    AssetSelection,
    DagsterRunStatus,
    RunsFilter,
    build_sensor_context,
    instance_for_test,
    materialize,
)
from fraud_helpers import write_history, write_landing_file

from assets.fraud import FRAUD_ASSETS, FRAUD_SCORING_ASSETS, FRAUD_TRAINING_ASSETS, fraud_batches
from assets.fraud_lifecycle import no_stranded_batches
from orchestration_pipelines.definitions import build_definitions, build_resources
from sensors.fraud import fraud_landing_sensor


@pytest.fixture
def instance():
    with instance_for_test() as instance:
        yield instance


def tick(instance, cursor=None):
    with build_sensor_context(instance=instance, cursor=cursor, resources=build_resources()) as context:
        result = fraud_landing_sensor(context)
    return result, result.cursor


def add_partitions(instance, result):
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(fraud_batches.name, request.partition_keys)


def queue(instance, request):
    """What the daemon does first with a run request: a run that exists but has not started."""
    job = build_definitions().resolve_job_def("fraud_scoring_job")
    return instance.create_run_for_job(
        job, tags={**request.tags, "dagster/partition": request.partition_key}, asset_selection=None
    )


def run(instance, request):
    """The requested run, executed in this process."""
    return materialize(
        FRAUD_SCORING_ASSETS,
        partition_key=request.partition_key,
        resources=build_resources(),
        instance=instance,
        tags=request.tags,
        raise_on_error=False,
    )


def train(instance):
    assert materialize(FRAUD_TRAINING_ASSETS, resources=build_resources(), instance=instance).success


def stranded_report(result):
    [event] = result.asset_events
    assert event.check_name == "no_stranded_batches" and event.asset_key.to_user_string() == "fraud/decisions"
    return event


def test_each_file_content_gets_one_run_while_in_flight(data_env, small_world, instance):
    landing = data_env / "landing" / "fraud"
    write_landing_file(landing, "a.csv", small_world.batches[0])
    write_landing_file(landing, "b.parquet", small_world.batches[1])
    (landing / ".c.csv.tmp").write_text("still copying")

    result, cursor = tick(instance)
    assert sorted(r.partition_key for r in result.run_requests) == ["a.csv", "b.parquet"]
    assert all(r.run_key.startswith(r.partition_key + ":") for r in result.run_requests)
    assert all(r.tags["fraud/attempt"] == "1" for r in result.run_requests)
    assert result.dynamic_partitions_requests[0].partition_keys == ["a.csv", "b.parquet"]
    add_partitions(instance, result)
    for request in result.run_requests:
        queue(instance, request)

    again, cursor = tick(instance, cursor)  # the cursor is what the daemon stores between ticks
    assert again.run_requests == [] and "2 in flight" in again.skip_reason.skip_message

    write_landing_file(landing, "a.csv", small_world.batches[2])  # same name, new content
    changed, cursor = tick(instance, cursor)
    assert [r.partition_key for r in changed.run_requests] == ["a.csv"]
    assert changed.run_requests[0].run_key != result.run_requests[0].run_key
    assert changed.dynamic_partitions_requests[0].partition_keys == []  # partition already known


def test_a_failed_batch_is_retried_after_its_cause_is_fixed(data_env, small_world, instance, monkeypatch):
    monkeypatch.setenv("OP_BATCH_RETRY_BACKOFF_SECONDS", "3600")
    landing = data_env / "landing" / "fraud"
    write_history(data_env, small_world.history)
    write_landing_file(landing, "a.csv", small_world.batches[0])
    write_landing_file(landing, "b.csv", small_world.batches[1])
    first, cursor = tick(instance)
    add_partitions(instance, first)
    outcomes = [run(instance, request) for request in first.run_requests]  # no model yet: both fail
    assert not any(o.success for o in outcomes)

    waiting, cursor = tick(instance, cursor)
    assert waiting.run_requests == []  # the back-off holds
    message = waiting.skip_reason.skip_message
    assert "2 stranded" in message and "next retry in" in message
    report = stranded_report(waiting)
    assert not report.passed and report.severity == AssetCheckSeverity.WARN
    table = report.metadata["stranded"].value
    assert "| a.csv |" in table and "| b.csv |" in table and "scores: no promoted 'fraud' model" in table
    assert tick(instance, cursor)[0].asset_events == []  # nothing changed: no repeated report
    by_hand = materialize(  # the same check, executed from the UI
        [*FRAUD_ASSETS, no_stranded_batches],
        selection=AssetSelection.checks(no_stranded_batches),
        resources=build_resources(),
        instance=instance,
        raise_on_error=False,
    )
    [evaluation] = by_hand.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.metadata["stranded_batches"].value == 2
    assert "| a.csv |" in evaluation.metadata["stranded"].value

    train(instance)  # the cause is fixed
    monkeypatch.setenv("OP_BATCH_RETRY_BACKOFF_SECONDS", "0")
    retry, cursor = tick(instance, cursor)
    assert sorted(r.partition_key for r in retry.run_requests) == ["a.csv", "b.csv"]
    for request in retry.run_requests:
        assert request.tags["fraud/attempt"] == "2" and request.run_key.endswith(":attempt-2")
    assert all(run(instance, request).success for request in retry.run_requests)

    done, cursor = tick(instance, cursor)
    assert done.run_requests == [] and "2 finished" in done.skip_reason.skip_message
    assert stranded_report(done).passed


def test_retries_stop_at_the_bound_and_the_batch_stays_reported(data_env, small_world, instance, monkeypatch):
    monkeypatch.setenv("OP_BATCH_RETRY_BACKOFF_SECONDS", "0")
    write_landing_file(data_env / "landing" / "fraud", "a.csv", small_world.batches[0])
    cursor, keys = None, []
    for attempt in (1, 2, 3):
        result, cursor = tick(instance, cursor)
        [request] = result.run_requests
        assert request.tags["fraud/attempt"] == str(attempt)
        keys.append(request.run_key)
        add_partitions(instance, result)
        assert not run(instance, request).success  # no model: fails every time

    assert len(set(keys)) == 3  # a fresh run key per attempt, or Dagster would drop the retry
    spent, cursor = tick(instance, cursor)
    assert spent.run_requests == [] and "out of retries" in spent.skip_reason.skip_message
    report = stranded_report(spent)
    assert report.severity == AssetCheckSeverity.ERROR and "none left" in report.metadata["stranded"].value
    lost, _ = tick(instance, cursor=None)  # a lost cursor does not reset the attempt count
    assert lost.run_requests == [] and stranded_report(lost).metadata["retries_exhausted"].value == 1


def test_a_quarantined_file_is_not_retried(data_env, small_world, instance, monkeypatch):
    monkeypatch.setenv("OP_BATCH_RETRY_BACKOFF_SECONDS", "0")
    landing = data_env / "landing" / "fraud"
    landing.mkdir(parents=True)
    (landing / "bad.csv").write_text("transaction_id,account_id,amount\nX1,A1,not-a-number\n")
    kept = data_env / "bad.copy"
    shutil.copy(landing / "bad.csv", kept)
    first, cursor = tick(instance)
    add_partitions(instance, first)
    assert not run(instance, first.run_requests[0]).success
    assert not (landing / "bad.csv").exists()  # moved to quarantine

    shutil.copy(kept, landing / "bad.csv")  # the same bytes dropped again
    for after in (cursor, None):
        result, _ = tick(instance, after)
        assert result.run_requests == [] and "1 finished" in result.skip_reason.skip_message


def test_a_lost_cursor_keeps_published_and_stranded_apart(data_env, small_world, instance, monkeypatch):
    monkeypatch.setenv("OP_BATCH_RETRY_BACKOFF_SECONDS", "3600")  # however slow this machine is
    write_history(data_env, small_world.history)
    landing = data_env / "landing" / "fraud"
    write_landing_file(landing, "a.csv", small_world.batches[0])
    write_landing_file(landing, "b.csv", small_world.batches[1])
    first, _ = tick(instance)
    add_partitions(instance, first)
    by_name = {r.partition_key: r for r in first.run_requests}
    assert not run(instance, by_name["b.csv"]).success  # before the model exists
    train(instance)
    assert run(instance, by_name["a.csv"]).success

    after_reset, cursor = tick(instance, cursor=None)
    assert after_reset.run_requests == []  # a.csv published, b.csv waits for its back-off
    assert "1 finished, 1 stranded" in after_reset.skip_reason.skip_message
    assert "a.csv" in cursor and "b.csv" in cursor
    runs = instance.get_runs(RunsFilter(tags={"dagster/partition": "a.csv"}))
    assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS]
