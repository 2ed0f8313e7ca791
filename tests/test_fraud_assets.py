"""Wiring: the fraud assets, checks and resources materialised for real on a Dagster instance."""

import json

import duckdb
import pytest
from dagster import AssetKey, DagsterInstance, instance_for_test, materialize
from fraud_helpers import write_history, write_landing_file
from instance_helpers import dagster_home

from assets.fraud import (
    FRAUD_SCORING_ASSETS,
    FRAUD_TRAINING_ASSETS,
    candidate_not_worse_than_current,
    fraud_batches,
    staged_decisions_checks,
)
from orchestration_pipelines.audit import read_audit_log
from orchestration_pipelines.definitions import build_resources
from orchestration_pipelines.model_registry import ModelRegistry
from orchestration_pipelines.opstore import OpStore
from resources.warehouse import WAREHOUSE_POOL


@pytest.fixture
def instance():
    with instance_for_test() as instance:
        yield instance


def train(instance: DagsterInstance):
    return materialize(
        [*FRAUD_TRAINING_ASSETS, candidate_not_worse_than_current],
        resources=build_resources(),
        instance=instance,
        raise_on_error=False,
    )


def score(instance: DagsterInstance, partition: str):
    instance.add_dynamic_partitions(fraud_batches.name, [partition])
    return materialize(
        [*FRAUD_SCORING_ASSETS, staged_decisions_checks],
        partition_key=partition,
        resources=build_resources(),
        instance=instance,
        raise_on_error=False,
    )


def query(data_env, sql, params=()):
    with duckdb.connect(str(data_env / "warehouse.duckdb")) as con:
        return con.execute(sql, list(params)).fetchall()


def materialization_metadata(instance, key: list[str], partition: str | None = None) -> dict:
    event = instance.get_latest_materialization_event(AssetKey(key))
    assert event is not None
    materialization = event.asset_materialization
    assert partition is None or materialization.partition == partition
    return {k: v.value for k, v in materialization.metadata.items()}


def test_train_then_score_publishes_audited_decisions(data_env, small_world, instance):
    write_history(data_env, small_world.history)
    assert train(instance).success
    registry = ModelRegistry(data_env / "models")
    promoted = registry.current_version("fraud")
    assert promoted is not None
    candidate = materialization_metadata(instance, ["fraud", "model_candidate"])
    assert candidate["model_version"] == promoted and candidate["pr_auc"] > 0.5
    assert "data:image/png;base64" in candidate["precision_recall"]

    batch = small_world.batches[0]
    write_landing_file(data_env / "landing" / "fraud", "day1.csv", batch)
    result = score(instance, "day1.csv")
    assert result.success
    rows = query(
        data_env, "SELECT decision, count(*) FROM fraud.decisions WHERE batch_id = 'day1.csv' GROUP BY 1"
    )
    assert sum(n for _, n in rows) == len(batch)
    published = materialization_metadata(instance, ["fraud", "decisions"], "day1.csv")
    assert published["dagster/row_count"] == len(batch)
    assert published["model_version"] == promoted
    assert sum(
        published[f"queue_{q}"] for q in ("auto_clear", "analyst_review", "block_pending_approval")
    ) == len(batch)
    assert "| transaction_id |" in published["highest_risk_cases"]
    assert "%" in published["queue_shares"]  # shares read as percentages
    schema = {column.name: column.type for column in published["dagster/column_schema"].columns}
    assert {"transaction_id", "decision", "reason_codes", "risk_score", "run_id"} <= set(schema)
    checks = [e for e in result.get_asset_check_evaluations()]
    assert len(checks) == 5 and all(c.passed for c in checks)
    events = [e.event for e in read_audit_log(OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}"), "fraud")]
    assert events == ["model_promoted", "batch_published"]

    # Re-scoring the same partition replaces it instead of appending.
    assert score(instance, "day1.csv").success
    assert query(data_env, "SELECT count(*) FROM fraud.decisions")[0][0] == len(batch)


def test_a_warehouse_with_the_wide_feature_and_score_tables_of_earlier_versions_keeps_scoring(
    data_env, small_world, instance
):
    """Earlier versions stored the transaction's columns in fraud.features and fraud.scores too; on
    upgrade the tables drop what the assets no longer produce and day1's rows stay readable."""
    write_history(data_env, small_world.history)
    assert train(instance).success
    landing = data_env / "landing" / "fraud"
    write_landing_file(landing, "day1.csv", small_world.batches[0])
    assert score(instance, "day1.csv").success
    narrow = {table: query(data_env, f"DESCRIBE fraud.{table}") for table in ("features", "scores")}
    features_day1 = query(data_env, "SELECT * FROM fraud.features ORDER BY transaction_id")
    for table in narrow:  # the shape earlier versions left: transaction columns first
        query(
            data_env,
            f"CREATE OR REPLACE TABLE fraud.{table} AS SELECT t.*, d.* EXCLUDE (transaction_id, batch_id) "
            f"FROM fraud.transactions t JOIN fraud.{table} d USING (transaction_id)",
        )

    write_landing_file(landing, "day2.csv", small_world.batches[1])
    assert score(instance, "day2.csv").success
    day2 = len(small_world.batches[1])
    assert query(data_env, "SELECT count(*) FROM fraud.decisions WHERE batch_id = 'day2.csv'")[0][0] == day2
    for table, columns in narrow.items():
        assert sorted(query(data_env, f"DESCRIBE fraud.{table}")) == sorted(columns)
    in_narrow_order = ", ".join(f'"{row[0]}"' for row in narrow["features"])
    kept = f"SELECT {in_narrow_order} FROM fraud.features WHERE batch_id = 'day1.csv' ORDER BY transaction_id"
    assert query(data_env, kept) == features_day1


def test_bad_file_is_quarantined_and_other_files_still_process(data_env, small_world, instance):
    write_history(data_env, small_world.history)
    assert train(instance).success
    landing = data_env / "landing" / "fraud"
    bad = small_world.batches[1].copy()
    bad.loc[1, "transaction_id"] = bad.loc[0, "transaction_id"]
    write_landing_file(landing, "bad.csv", bad)
    write_landing_file(landing, "good.csv", small_world.batches[2])

    failed = score(instance, "bad.csv")
    assert not failed.success
    failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
    assert "bad.csv rejected and moved to" in failure.event_specific_data.error.message
    assert not (landing / "bad.csv").exists()
    reason = json.loads((data_env / "quarantine" / "fraud" / "bad.csv.reason.json").read_text())
    assert reason["errors"][0]["kind"] == "duplicate" and reason["sha256"]
    assert (data_env / "quarantine" / "fraud" / "bad.csv").exists()
    tables = {t for (t,) in query(data_env, "SELECT table_name FROM information_schema.tables")}
    assert "transactions" not in tables and "decisions" not in tables  # nothing half-written

    assert score(instance, "good.csv").success
    assert query(data_env, "SELECT DISTINCT batch_id FROM fraud.decisions") == [("good.csv",)]
    events = [e.event for e in read_audit_log(OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}"), "fraud")]
    assert "batch_quarantined" in events


def test_failing_check_publishes_nothing_and_says_why(data_env, small_world, instance, tmp_path, monkeypatch):
    write_history(data_env, small_world.history)
    assert train(instance).success
    strict = tmp_path / "strict.yaml"
    from importlib import resources

    text = resources.files("orchestration_pipelines").joinpath("policies/fraud.yaml").read_text()
    strict.write_text(text.replace("max_block_share: 0.02", "max_block_share: 0.0"))
    monkeypatch.setenv("OP_FRAUD_POLICY_PATH", str(strict))
    write_landing_file(data_env / "landing" / "fraud", "day.parquet", small_world.batches[0])

    result = score(instance, "day.parquet")
    assert not result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evaluations["decision_mix_within_policy"].passed
    assert "block share" in evaluations["decision_mix_within_policy"].description
    assert query(data_env, "SELECT count(*) FROM fraud.decisions_staging")[0][0] == len(
        small_world.batches[0]
    )
    tables = {t for (t,) in query(data_env, "SELECT table_name FROM information_schema.tables")}
    assert "decisions" not in tables
    assert instance.get_latest_materialization_event(AssetKey(["fraud", "decisions"])) is None


def test_worse_candidate_is_not_promoted(data_env, small_world, instance):
    write_history(data_env, small_world.history)
    assert train(instance).success
    registry = ModelRegistry(data_env / "models")
    good = registry.current_version("fraud")

    # Garbage labels in the training period only: the hold-out (the latest 20%) still tells the truth.
    scrambled = small_world.history.copy()
    training_period = scrambled["timestamp"] < scrambled["timestamp"].quantile(0.8)
    scrambled.loc[training_period, "is_fraud"] = (
        scrambled.loc[training_period, "is_fraud"].sample(frac=1.0, random_state=0).to_numpy()
    )
    write_history(data_env, scrambled)
    result = train(instance)
    assert not result.success
    check = next(iter(result.get_asset_check_evaluations()))
    assert not check.passed and "worse than the current model" in check.description
    assert registry.current_version("fraud") == good
    assert len(registry.versions("fraud")) == 2  # the candidate is kept for inspection, not promoted


def test_every_warehouse_step_queues_in_a_pool_of_one(tmp_path):
    """DuckDB admits one writer process: the shipped instance config and the assets must agree."""
    with DagsterInstance.from_config(str(dagster_home(tmp_path))) as configured:
        info = configured.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
        assert info.limit == 1
    warehouse_steps = [*FRAUD_TRAINING_ASSETS[:1], *FRAUD_SCORING_ASSETS, staged_decisions_checks]
    assert {step.op.pool for step in warehouse_steps} == {WAREHOUSE_POOL}


def test_the_preview_shows_the_cases_people_work_on_one_row_per_account():
    """A burst of one account's blocks must not hide the reviews and the other accounts' blocks."""
    from assets.fraud import PREVIEW_CASES_PER_QUEUE, _cases_for_people

    burst = [("block_pending_approval", f"T{i}", "BURST", 0.99 - i / 1000) for i in range(12)]
    others = [("block_pending_approval", "T100", "A1", 0.95), ("block_pending_approval", "T101", "A2", 0.93)]
    reviews = [("analyst_review", f"R{i}", f"B{i}", 0.6 + i / 100) for i in range(8)]
    cleared = [("auto_clear", "C1", "BURST", 0.01)]
    with duckdb.connect() as con:
        con.execute("CREATE SCHEMA fraud")
        con.execute(
            "CREATE TABLE fraud.decisions (batch_id VARCHAR, decision VARCHAR, transaction_id VARCHAR, "
            "account_id VARCHAR, risk_score DOUBLE, amount DOUBLE, currency VARCHAR, reason_codes VARCHAR)"
        )
        con.executemany(
            "INSERT INTO fraud.decisions VALUES ('b.csv', ?, ?, ?, ?, 10.0, 'EUR', '')",
            [*burst, *others, *reviews, *cleared],
        )
        con.execute(
            "INSERT INTO fraud.decisions VALUES ('other.csv', 'analyst_review', 'X', 'Z', 1.0, 1, 'EUR', '')"
        )
        preview = _cases_for_people(con, "b.csv")
    blocks = preview[preview["decision"] == "block_pending_approval"]
    assert list(blocks["account_id"]) == ["BURST", "A1", "A2"]
    assert blocks.iloc[0]["account_cases"] == 12 and blocks.iloc[0]["transaction_id"] == "T0"
    reviewed = preview[preview["decision"] == "analyst_review"]
    assert len(reviewed) == PREVIEW_CASES_PER_QUEUE and reviewed.iloc[0]["account_id"] == "B7"
    assert "auto_clear" not in set(preview["decision"]) and "X" not in set(preview["transaction_id"])
