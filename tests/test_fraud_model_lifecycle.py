"""A bank's own model against the nightly built-in retrain, on a real instance and through the CLI."""

import json

import pytest
from dagster import AssetKey, instance_for_test, materialize
from fraud_helpers import write_history
from test_cli import run_cli
from test_fraud_training import bank_table

from assets.fraud import FRAUD_TRAINING_ASSETS, candidate_not_worse_than_current
from orchestration_pipelines import fraud
from orchestration_pipelines.audit import read_audit_log
from orchestration_pipelines.definitions import build_resources
from orchestration_pipelines.model_registry import ModelRegistry
from orchestration_pipelines.opstore import OpStore


@pytest.fixture
def instance():
    with instance_for_test() as instance:
        yield instance


def train_nightly(instance):
    return materialize(
        [*FRAUD_TRAINING_ASSETS, candidate_not_worse_than_current],
        resources=build_resources(),
        instance=instance,
        raise_on_error=False,
    )


def test_nightly_retrain_never_replaces_a_promoted_custom_model(data_env, small_world, instance):
    registry = ModelRegistry(data_env / "models")
    custom, _ = fraud.train_on_table(bank_table(), "chargeback", time_column="event_time", registry=registry)
    registry.promote("fraud", custom)
    write_history(data_env, small_world.history)

    result = train_nightly(instance)
    assert not result.success
    [check] = result.get_asset_check_evaluations()
    assert not check.passed
    assert "own features" in check.description and "fraud promote" in check.description
    assert registry.current_version("fraud") == custom
    metadata = instance.get_latest_materialization_event(AssetKey(["fraud", "model_candidate"]))
    candidate_metadata = metadata.asset_materialization.metadata
    assert candidate_metadata["current_model"].value.startswith(custom)
    assert "learning_rate" in candidate_metadata["selected_config"].value
    candidate = candidate_metadata["model_version"].value

    # The explicit, audited way back to the built-in model, validated through the registry.
    refused = run_cli("fraud", "promote", "../../outside", "--reason", "x", check=False)
    assert refused.returncode != 0 and "error:" in refused.stderr and "Traceback" not in refused.stderr
    refused = run_cli("fraud", "promote", "20990101T000000-deadbeef", "--reason", "x", check=False)
    assert refused.returncode != 0 and "no version" in refused.stderr
    assert registry.current_version("fraud") == custom

    switched = run_cli("fraud", "promote", candidate, "--reason", "back to the built-in model")
    assert f"promoted {candidate} (previous: {custom})" in switched.stdout
    assert registry.current_version("fraud") == candidate
    [entry] = [e for e in read_audit_log(OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}"), "fraud")]
    assert entry.event == "model_promoted" and entry.subject == candidate
    assert entry.details["previous"] == custom and entry.details["reason"] == "back to the built-in model"

    # With the built-in model current again, the nightly retrain compares like for like.
    again = train_nightly(instance)
    [check] = again.get_asset_check_evaluations()
    assert "own features" not in check.description and "current" in check.description


def test_train_a_csv_with_a_numeric_time_column_from_the_cli(data_env, tmp_path):
    table = bank_table()
    table["event_time"] = table["event_time"].astype("int64") // 10**6  # epoch milliseconds
    table["segment"] = "retail"  # text: not a feature
    source = tmp_path / "features.CSV"
    table.to_csv(source, index=False)

    completed = run_cli("fraud", "train", str(source), "--label", "chargeback", "--time-column", "event_time")
    report = json.loads(completed.stdout[: completed.stdout.rindex("}") + 1])
    assert report["split"] == "time"
    assert "epoch milliseconds" in report["time"]["interpretation"]
    assert report["feature_columns"] == ["velocity_score", "merchant_risk", "txn_count_7d"]
    assert "learning_rate" in report["selection"]["chosen"]
    assert report["metrics"]["pr_auc"] > 0.3

    all_fraud = tmp_path / "all_fraud.parquet"
    table.assign(chargeback=1).to_parquet(all_fraud)
    refused = run_cli("fraud", "train", str(all_fraud), "--label", "chargeback", check=False)
    assert (
        refused.returncode != 0 and "only one class" in refused.stderr and "Traceback" not in refused.stderr
    )
