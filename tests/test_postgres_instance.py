"""The production instance: dagster-postgres storage from deploy/dagster-postgres.yaml, for real."""

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter, build_sensor_context
from fraud_helpers import write_history, write_landing_file
from instance_helpers import dagster_home

from assets.fraud import fraud_batches
from orchestration_pipelines.audit import read_audit_log, verify_audit_chain
from orchestration_pipelines.definitions import build_definitions, build_resources
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.review import list_items
from sensors.fraud import fraud_landing_sensor

pytestmark = pytest.mark.postgres


@pytest.fixture
def postgres_instance(postgres_database, tmp_path, monkeypatch):
    home = dagster_home(tmp_path, "dagster-postgres.yaml")
    for key, value in {
        "HOST": "127.0.0.1",
        "PORT": "5432",
        "USER": "postgres",
        "PASSWORD": "",
        "DB": postgres_database["name"],
    }.items():
        monkeypatch.setenv(f"DAGSTER_PG_{key}", value)
    monkeypatch.setenv("OP_OPSTORE_URL", postgres_database["url"])
    with DagsterInstance.from_config(str(home)) as instance:
        yield instance


def test_full_fraud_workflow_on_a_postgres_backed_instance(
    data_env, small_world, postgres_instance, postgres_database
):
    instance = postgres_instance
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    write_history(data_env, small_world.history)
    write_landing_file(data_env / "landing" / "fraud", "day1.csv", small_world.batches[0])
    defs = build_definitions()

    training = defs.resolve_job_def("fraud_training_job").execute_in_process(instance=instance)
    assert training.success

    with build_sensor_context(instance=instance, resources=build_resources()) as context:
        tick = fraud_landing_sensor(context)
    [request] = tick.run_requests
    instance.add_dynamic_partitions(fraud_batches.name, tick.dynamic_partitions_requests[0].partition_keys)
    scoring = defs.resolve_job_def("fraud_scoring_job").execute_in_process(
        instance=instance, partition_key=request.partition_key, tags=request.tags
    )
    assert scoring.success

    runs = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.SUCCESS]))
    assert {r.job_name for r in runs} == {"fraud_training_job", "fraud_scoring_job"}
    assert instance.get_dynamic_partitions(fraud_batches.name) == ["day1.csv"]
    decisions = instance.get_latest_materialization_event(
        AssetKey(["fraud", "decisions"])
    ).asset_materialization
    assert decisions.partition == "day1.csv"
    assert decisions.metadata["dagster/row_count"].value == len(small_world.batches[0])
    checks = scoring.get_asset_check_evaluations()
    assert len(checks) == 5 and all(c.passed for c in checks)

    # The same instance remembers what was ingested: a sensor with a lost cursor requests nothing.
    with build_sensor_context(instance=instance, resources=build_resources()) as context:
        assert fraud_landing_sensor(context).run_requests == []

    store = OpStore(postgres_database["url"])  # the audit log shares the production database
    events = [e.event for e in read_audit_log(store, "fraud")]
    assert events[:2] == ["model_promoted", "batch_published"]
    # then the scoring job's review items, in the same database as Dagster's own tables
    assert set(events[2:]) == {"review_item_raised"}
    assert len(events) - 2 == len(list_items(store, workflow="fraud")) > 0
    assert verify_audit_chain(store) == []
