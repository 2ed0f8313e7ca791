"""The maintenance publish gate on a real instance: two runs of one plant day racing (the interleaving
forced with barriers, real ``materialize()``), with another day already published beside them, and the
staging tables kept bounded."""

import threading
from datetime import timedelta
from importlib import resources
from unittest import mock

import duckdb
import pandas as pd
import pytest
import yaml
from dagster import instance_for_test, materialize
from maintenance_helpers import train_on_history, wiring_resources, write_plant_files

import assets.maintenance
from assets.maintenance import (
    ALERT_STATE_STAGING,
    ALERTS_STAGING,
    MAINTENANCE_DAILY_ASSETS,
    staged_alerts_valid,
)
from orchestration_pipelines.audit import read_audit_log
from orchestration_pipelines.maintenance.alerts import WORK_ORDER
from orchestration_pipelines.maintenance.work_orders import MaintenanceSystem
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.publish import STAGING_RETENTION

DAYS = ["2026-11-07", "2026-11-08", "2026-11-09"]


@pytest.fixture
def trained(data_env, tmp_path):
    """The plant's files, a trained model and the first day published: several partitions present."""
    plant = write_plant_files(data_env, tmp_path)
    with instance_for_test() as instance:
        resources = wiring_resources(plant, None)
        assert train_on_history(instance, resources).success
        assert run_day(instance, resources, DAYS[0]).success
        yield instance, plant


def run_day(instance, resources, day, **kwargs):
    return materialize(
        [*MAINTENANCE_DAILY_ASSETS, staged_alerts_valid],
        partition_key=day,
        resources=resources,
        instance=instance,
        raise_on_error=False,
        **kwargs,
    )


def query(data_env, sql, params=()):
    with duckdb.connect(str(data_env / "warehouse.duckdb")) as con:
        return con.execute(sql, list(params)).df()


def race(instance, resources_a, resources_b, change_b_rows=None):
    """Run A stages its alerts and alert state for DAYS[1] and waits; run B (created later) goes all
    the way; then A finishes. ``change_b_rows`` alters the alerts B stages. Returns (A, B)."""
    staged, finished = threading.Barrier(2, timeout=300), threading.Barrier(2, timeout=300)
    real_stage_rows = assets.maintenance.stage_rows

    def stage_then_wait(con, table, rows, batch_id, run_id):
        is_a = threading.current_thread().name == "run-A"
        if not is_a and change_b_rows and table == ALERTS_STAGING:
            rows = change_b_rows(rows)
        count = real_stage_rows(con, table, rows, batch_id, run_id)
        if is_a and table == ALERT_STATE_STAGING:
            staged.wait()
            finished.wait()
        return count

    results = {}
    with mock.patch.object(assets.maintenance, "stage_rows", stage_then_wait):
        run_a = threading.Thread(
            target=lambda: results.update(a=run_day(instance, resources_a, DAYS[1])), name="run-A"
        )
        run_a.start()
        staged.wait()
        results["b"] = run_day(instance, resources_b, DAYS[1])
        finished.wait()
        run_a.join(timeout=300)
    return results["a"], results["b"]


def check_metadata(result) -> dict:
    [evaluation] = result.get_asset_check_evaluations()
    return {"passed": evaluation.passed, **{k: v.value for k, v in evaluation.metadata.items()}}


def test_an_older_run_of_a_day_never_overwrites_a_newer_one_that_published(data_env, trained, tmp_path):
    instance, plant = trained
    packaged = resources.files("orchestration_pipelines").joinpath("policies/maintenance.yaml")
    eager = yaml.safe_load(packaged.read_text())
    eager["version"], eager["alerts"]["work_order_confidence"] = "eager", 0.0  # B: every alert a work order
    eager_path = tmp_path / "eager.yaml"
    eager_path.write_text(yaml.safe_dump(eager))
    run_a, run_b = race(instance, wiring_resources(plant, None), wiring_resources(plant, None, eager_path))

    assert run_b.success and not run_a.success
    failure = next(e for e in run_a.all_events if e.is_step_failure)
    assert "superseded" in failure.step_failure_data.error.message
    assert check_metadata(run_a)["passed"]  # A's own rows were fine: it lost the race, not the check
    published = query(data_env, "SELECT * FROM maintenance.alerts WHERE day = ?", [DAYS[1]])
    assert set(published["run_id"]) == {run_b.run_id} and set(published["policy_version"]) == {"eager"}
    assert (
        set(published["status"]) == {WORK_ORDER} and len(published) == check_metadata(run_b)["alerts_checked"]
    )
    ledger = query(
        data_env, "SELECT run_id FROM maintenance.alerts_publications WHERE batch_id = ?", [DAYS[1]]
    )
    assert ledger["run_id"].tolist() == [run_b.run_id]
    state = query(data_env, "SELECT episode_status FROM maintenance.alert_state WHERE day = ?", [DAYS[1]])
    assert len(state) and "human_review" not in set(state["episode_status"])  # B's state, not A's
    first_day = query(data_env, "SELECT DISTINCT run_id FROM maintenance.alerts WHERE day = ?", [DAYS[0]])
    assert len(first_day) == 1 and first_day["run_id"].item() not in {run_a.run_id, run_b.run_id}

    audit = read_audit_log(OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}"), "maintenance")
    assert [
        (e.subject, e.run_id) for e in audit if e.event == "alerts_published" and e.subject == DAYS[1]
    ] == [(DAYS[1], run_b.run_id)]
    orders = MaintenanceSystem(OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}"), None).work_orders()
    assert run_a.run_id not in {o["run_id"] for o in orders}  # the superseded run opened nothing
    # Finished runs leave nothing in staging: B's rows were published, A's discarded as superseded.
    for table in (ALERTS_STAGING, ALERT_STATE_STAGING):
        assert query(data_env, f"SELECT count(*) AS n FROM {table}")["n"].item() == 0


def test_unchecked_rows_of_a_racing_run_never_publish_and_staging_stays_bounded(data_env, trained):
    instance, plant = trained
    resources = wiring_resources(plant, None)

    def with_bogus_row(rows: pd.DataFrame) -> pd.DataFrame:
        return pd.concat([rows, rows.head(1).assign(status="bogus")], ignore_index=True)

    run_a, run_b = race(instance, resources, resources, change_b_rows=with_bogus_row)

    assert run_a.success and not run_b.success
    b_check, a_check = check_metadata(run_b), check_metadata(run_a)
    assert not b_check["passed"]
    a_rows = query(data_env, "SELECT * FROM maintenance.alerts WHERE day = ?", [DAYS[1]])
    assert a_check["alerts_checked"] == len(a_rows) > 0  # exactly A's rows were judged and published
    assert b_check["alerts_checked"] == len(a_rows) + 1  # B's own rows, its bogus one included
    assert set(a_rows["run_id"]) == {run_a.run_id} and "bogus" not in set(a_rows["status"])
    staged = query(data_env, f"SELECT DISTINCT run_id FROM {ALERTS_STAGING}")
    assert staged["run_id"].tolist() == [run_b.run_id]  # the refused run's rows stay to be inspected

    # ... until the retention period has passed: the next staging of any day sweeps them.
    with duckdb.connect(str(data_env / "warehouse.duckdb")) as con:
        for table in (ALERTS_STAGING, ALERT_STATE_STAGING):
            con.execute(
                f"UPDATE {table} SET staged_at = staged_at - ?", [STAGING_RETENTION + timedelta(hours=1)]
            )
    assert run_day(instance, resources, DAYS[2]).success
    for table in (ALERTS_STAGING, ALERT_STATE_STAGING):
        assert query(data_env, f"SELECT count(*) AS n FROM {table}")["n"].item() == 0
