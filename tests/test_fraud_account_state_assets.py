"""Wiring: the account state is built by training and by its rebuild job, read by features, and
updated by each publish, materialised for real on a Dagster instance."""

import duckdb
import pandas as pd
import pytest
from dagster import AssetKey, instance_for_test, materialize
from fraud_helpers import write_history, write_landing_file

from assets.fraud import (
    FRAUD_SCORING_ASSETS,
    FRAUD_TRAINING_ASSETS,
    account_state,
    features,
    fraud_batches,
    staged_decisions_checks,
    transactions,
)
from orchestration_pipelines.definitions import build_definitions, build_resources
from resources.warehouse import WAREHOUSE_POOL


@pytest.fixture
def instance():
    with instance_for_test() as instance:
        yield instance


def state(data_env) -> pd.DataFrame:
    with duckdb.connect(str(data_env / "warehouse.duckdb")) as con:
        return con.execute(
            "SELECT account_id, tx_count, amount_eur_sum, list_sort(devices) AS devices, last_timestamp, "
            "len(recent_transactions) AS recent FROM fraud.account_state ORDER BY account_id"
        ).df()


def metadata(instance, key: list[str]) -> dict:
    event = instance.get_latest_materialization_event(AssetKey(key))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def run(instance, selection, partition: str | None = None):
    if partition:
        instance.add_dynamic_partitions(fraud_batches.name, [partition])
    return materialize(
        selection,
        partition_key=partition,
        resources=build_resources(),
        instance=instance,
        raise_on_error=False,
    )


def test_training_builds_state_features_read_it_and_publishing_updates_it(data_env, small_world, instance):
    history, batch = small_world.history, small_world.batches[0]
    write_history(data_env, history)
    assert run(instance, FRAUD_TRAINING_ASSETS).success
    built = state(data_env)
    assert built["tx_count"].sum() == len(history)
    assert metadata(instance, ["fraud", "account_state"])["transactions_summarised"] == len(history)

    write_landing_file(data_env / "landing" / "fraud", "day1.csv", batch)
    assert run(instance, [transactions, features], "day1.csv").success
    pd.testing.assert_frame_equal(state(data_env), built)  # features read the state, never write it
    used = metadata(instance, ["fraud", "features"])
    assert used["history_transactions_summarised"] == history["account_id"].isin(batch["account_id"]).sum()

    assert run(instance, [*FRAUD_SCORING_ASSETS, staged_decisions_checks], "day1.csv").success
    published = state(data_env)
    assert published["tx_count"].sum() == len(history) + len(batch)

    # Another run of the same content re-publishes the batch: recomputed, not counted twice.
    assert run(instance, [*FRAUD_SCORING_ASSETS, staged_decisions_checks], "day1.csv").success
    pd.testing.assert_frame_equal(state(data_env), published)

    # The rebuild job recomputes the same state from labelled history plus published decisions.
    job = build_definitions().resolve_job_def("fraud_account_state_rebuild_job")
    assert job.execute_in_process(instance=instance).success
    pd.testing.assert_frame_equal(state(data_env), published, check_exact=False, rtol=1e-12)


def test_state_rebuild_waits_for_the_warehouse_pool():
    assert account_state.op.pool == features.op.pool == WAREHOUSE_POOL
