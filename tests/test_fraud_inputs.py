"""Hostile and awkward inputs through the real `transactions` step: unsafe partition keys, empty files,
long names, upper-case extensions, naive timestamps, transactions re-sent under a new file name."""

import json
from importlib import resources

import duckdb
import pandas as pd
import pytest
from dagster import AssetKey, instance_for_test, materialize
from fraud_helpers import write_landing_file

from assets.fraud import FRAUD_SCORING_ASSETS, fraud_batches, staged_decisions_checks, transactions
from orchestration_pipelines.audit import read_audit_log
from orchestration_pipelines.definitions import build_resources
from orchestration_pipelines.fraud.generator import unlabelled
from orchestration_pipelines.model_registry import ModelRegistry
from orchestration_pipelines.opstore import OpStore


@pytest.fixture
def instance():
    with instance_for_test() as instance:
        yield instance


@pytest.fixture
def landing(data_env):
    folder = data_env / "landing" / "fraud"
    folder.mkdir(parents=True)
    return folder


def ingest(instance, partition: str, assets=(transactions,)):
    instance.add_dynamic_partitions(fraud_batches.name, [partition])
    return materialize(
        list(assets),
        partition_key=partition,
        resources=build_resources(),
        instance=instance,
        raise_on_error=False,
    )


def score(instance, partition: str):
    return ingest(instance, partition, [*FRAUD_SCORING_ASSETS, staged_decisions_checks])


def step_failure(result):
    return next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data


def audit_events(data_env):
    return read_audit_log(OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}"), "fraud")


def use_policy(monkeypatch, tmp_path, **intake):
    text = resources.files("orchestration_pipelines").joinpath("policies/fraud.yaml").read_text()
    for key, value in intake.items():
        text = text.replace(
            next(line for line in text.splitlines() if line.strip().startswith(f"{key}:")),
            f"  {key}: {value}",
        )
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    monkeypatch.setenv("OP_FRAUD_POLICY_PATH", str(path))


def promote_model(data_env, trained_builtin):
    registry = ModelRegistry(data_env / "models")
    registry.promote("fraud", registry.save("fraud", trained_builtin.model, {"feature_set": "builtin"}))


def test_a_partition_key_leaving_the_landing_folder_is_refused_untouched(
    data_env, landing, small_world, instance
):
    victim = write_landing_file(data_env.parent / "outside", "victim.csv", small_world.batches[0].head(5))
    result = ingest(instance, "../../../outside/victim.csv")
    assert not result.success
    failure = step_failure(result)
    assert "unsafe file name" in failure.error.message
    assert victim.exists()
    assert not (data_env / "quarantine").exists()
    assert audit_events(data_env) == []


def test_a_symlink_out_of_the_landing_folder_is_refused(data_env, landing, small_world, instance):
    victim = write_landing_file(data_env.parent / "outside", "victim.csv", small_world.batches[0].head(5))
    (landing / "innocent.csv").symlink_to(victim)
    result = ingest(instance, "innocent.csv")
    assert not result.success and "outside" in step_failure(result).error.message
    assert victim.exists() and not (data_env / "quarantine").exists()


def test_a_header_only_file_is_quarantined_with_a_reason(data_env, landing, small_world, instance):
    unlabelled(small_world.batches[0]).head(0).to_csv(landing / "empty.csv", index=False)
    result = ingest(instance, "empty.csv")
    assert not result.success
    reason = json.loads((data_env / "quarantine" / "fraud" / "empty.csv.reason.json").read_text())
    assert reason["file"] == "empty.csv" and reason["errors"][0]["kind"] == "empty" and reason["sha256"]
    assert [e.event for e in audit_events(data_env)] == ["batch_quarantined"]


def test_a_bad_file_with_a_247_character_name_is_quarantined(data_env, landing, small_world, instance):
    name = "n" * 243 + ".csv"
    bad = unlabelled(small_world.batches[0]).head(5).astype(str)
    bad.loc[0, "amount"] = "inf"
    bad.to_csv(landing / name, index=False)
    assert not ingest(instance, name).success
    (reason_file,) = (data_env / "quarantine" / "fraud").glob("*.reason.json")
    reason = json.loads(reason_file.read_text())
    assert reason["file"] == name and reason["errors"][0]["kind"] == "range"
    assert not (landing / name).exists()


def test_quarantine_shows_a_table_of_problems_not_a_chained_traceback(
    data_env, landing, small_world, instance
):
    bad = unlabelled(small_world.batches[0]).head(20).astype(str)
    bad.loc[0, "amount"] = "-1"
    bad.loc[1, "country"] = "XX"
    bad.loc[2, "merchant_category"] = "0000"
    bad.to_csv(landing / "bad.csv", index=False)
    result = ingest(instance, "bad.csv")
    failure = step_failure(result)
    assert failure.error.cause is None  # no "The above exception was the direct cause of ..."
    problems = failure.user_failure_data.metadata["problems"].value
    assert problems.startswith("| kind | column | message | examples |")
    for text in ("non-positive amounts", "unknown country", "ISO 18245", "XX", "0000"):
        assert text in problems
    observation = instance.fetch_observations(AssetKey(["fraud", "transactions"]), limit=1).records[0]
    assert observation.asset_observation.partition == "bad.csv"
    assert "| range | amount |" in observation.asset_observation.metadata["problems"].value


def test_upper_case_extensions_are_ingested(data_env, landing, small_world, instance):
    write_landing_file(landing, "DAY.CSV", small_world.batches[0])
    assert ingest(instance, "DAY.CSV").success


def test_naive_timestamps_assumed_utc_are_said_in_metadata_and_audit(
    data_env, landing, small_world, instance, tmp_path, monkeypatch
):
    batch = unlabelled(small_world.batches[0]).head(30)
    batch["timestamp"] = batch["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S")  # no zone
    batch.to_csv(landing / "naive.csv", index=False)
    assert not ingest(instance, "naive.csv").success  # the packaged policy rejects them
    reason = json.loads((data_env / "quarantine" / "fraud" / "naive.csv.reason.json").read_text())
    assert reason["errors"][0]["kind"] == "timezone"

    use_policy(monkeypatch, tmp_path, naive_timestamps="assume_utc")
    batch.to_csv(landing / "naive2.csv", index=False)
    assert ingest(instance, "naive2.csv").success
    metadata = instance.get_latest_materialization_event(
        AssetKey(["fraud", "transactions"])
    ).asset_materialization.metadata
    assert metadata["naive_timestamps_assumed_utc"].value == 30
    assert "taken as UTC" in metadata["intake_notes"].value
    notes = [e for e in audit_events(data_env) if e.event == "batch_accepted_with_notes"]
    assert notes[0].subject == "naive2.csv"
    assert notes[0].details["notes"][0]["kind"] == "naive_timestamps_assumed_utc"


def published(data_env, sql="SELECT batch_id, count(*) FROM fraud.decisions GROUP BY 1 ORDER BY 1"):
    with duckdb.connect(str(data_env / "warehouse.duckdb")) as con:
        return con.execute(sql).fetchall()


def test_a_file_resent_under_a_new_name_is_quarantined_and_others_go_on(
    data_env, landing, small_world, instance, trained_builtin
):
    promote_model(data_env, trained_builtin)
    day1, day2 = small_world.batches[0], small_world.batches[1]
    write_landing_file(landing, "day1.csv", day1)
    assert score(instance, "day1.csv").success
    write_landing_file(landing, "day1-again.csv", day1)  # same content, new name
    write_landing_file(landing, "day2.csv", day2)

    resent = score(instance, "day1-again.csv")
    assert not resent.success
    reason = json.loads((data_env / "quarantine" / "fraud" / "day1-again.csv.reason.json").read_text())
    assert reason["errors"][0]["kind"] == "resent" and "day1.csv" in reason["errors"][0]["message"]
    assert score(instance, "day2.csv").success
    assert score(instance, "day1.csv").success  # re-scoring a batch is not a re-send of itself
    assert published(data_env) == [("day1.csv", len(day1)), ("day2.csv", len(day2))]


def test_resent_rows_are_skipped_and_reported_when_the_policy_says_so(
    data_env, landing, small_world, instance, trained_builtin, tmp_path, monkeypatch
):
    promote_model(data_env, trained_builtin)
    use_policy(monkeypatch, tmp_path, resent_transactions="skip")
    day1, day2 = small_world.batches[0], small_world.batches[1]
    write_landing_file(landing, "day1.csv", day1)
    assert score(instance, "day1.csv").success
    mixed = pd.concat([day1.head(7), day2], ignore_index=True)
    write_landing_file(landing, "mixed.csv", mixed)
    write_landing_file(landing, "only-old.csv", day1.tail(5))

    assert score(instance, "mixed.csv").success
    assert published(data_env) == [("day1.csv", len(day1)), ("mixed.csv", len(day2))]
    event = instance.fetch_materializations(AssetKey(["fraud", "transactions"]), limit=1).records[0]
    metadata = event.asset_materialization.metadata
    assert metadata["resent_rows_skipped"].value == 7
    assert metadata["resent_examples"].value == day1["transaction_id"].head(5).tolist()
    notes = [e for e in audit_events(data_env) if e.event == "batch_accepted_with_notes"]
    assert notes[0].subject == "mixed.csv" and notes[0].details["notes"][0]["rows"] == 7

    assert not score(instance, "only-old.csv").success  # nothing new: quarantined, not published empty
    assert (data_env / "quarantine" / "fraud" / "only-old.csv.reason.json").exists()


def test_the_sensor_starts_upper_case_files_and_never_links_out(data_env, landing, small_world, instance):
    from dagster import build_sensor_context

    from sensors.fraud import fraud_landing_sensor

    write_landing_file(landing, "DAY1.CSV", small_world.batches[0])
    write_landing_file(landing, "day2.Parquet", small_world.batches[1])
    victim = write_landing_file(data_env.parent / "outside", "victim.csv", small_world.batches[2].head(5))
    (landing / "link.csv").symlink_to(victim)
    with build_sensor_context(instance=instance, resources=build_resources()) as context:
        result = fraud_landing_sensor(context)
    assert sorted(r.partition_key for r in result.run_requests) == ["DAY1.CSV", "day2.Parquet"]


def test_the_recorded_hash_is_of_the_bytes_that_were_parsed(
    data_env, landing, small_world, instance, monkeypatch
):
    """A producer rewriting the file between hashing and parsing must not split the two."""
    import hashlib

    original = write_landing_file(landing, "day.csv", small_world.batches[0]).read_bytes()
    real_read_csv = pd.read_csv

    def rewritten_meanwhile(source, *args, **kwargs):
        write_landing_file(landing, "day.csv", small_world.batches[1])
        return real_read_csv(source, *args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", rewritten_meanwhile)
    assert ingest(instance, "day.csv").success
    metadata = instance.get_latest_materialization_event(
        AssetKey(["fraud", "transactions"])
    ).asset_materialization
    assert metadata.metadata["source_sha256"].value == hashlib.sha256(original).hexdigest()
    ingested = published(data_env, "SELECT transaction_id FROM fraud.transactions ORDER BY 1")
    assert [i for (i,) in ingested] == sorted(small_world.batches[0]["transaction_id"])
