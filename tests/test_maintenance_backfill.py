"""A backfill of several plant days from the command line, exactly as README documents it: the real
CLI, the real daemon dequeuing the runs, the instance file the project ships."""

import os
import subprocess
from itertools import pairwise

import duckdb
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus
from instance_helpers import BIN, REPO, dagster_home, running_daemon, wait_for
from maintenance_helpers import write_plant_files

from orchestration_pipelines.jobs import PLANT_DAYS_IN_ORDER_TAG

pytestmark = pytest.mark.slow

DAYS = ["2026-11-07", "2026-11-08", "2026-11-09"]


def dagster_cli(*args: str, env: dict) -> str:
    completed = subprocess.run(
        [str(BIN / "dagster"), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def test_a_cli_backfill_runs_each_day_in_order(data_env, tmp_path):
    home = dagster_home(tmp_path)
    plant = write_plant_files(data_env, tmp_path)
    env = {**os.environ, "DAGSTER_HOME": str(home), "OP_MAINTENANCE_PLANT_PATH": str(plant)}
    # Only the backfill's runs here: the landing sensor would also run the days the files cover.
    dagster_cli("sensor", "stop", "-w", "workspace.yaml", "maintenance_landing_sensor", env=env)
    with running_daemon(home, REPO / "workspace.yaml", REPO, tmp_path / "daemon.log", env):
        dagster_cli(
            "job",
            "execute",
            "-m",
            "orchestration_pipelines.definitions",
            "-j",
            "maintenance_training_job",
            env=env,
        )
        out = dagster_cli(
            "job", "backfill", "-w", "workspace.yaml", "-j", "maintenance_daily_job",
            "--from", DAYS[0], "--to", DAYS[-1], "--noprompt",
            env=env,
        )  # fmt: skip
        assert "Launched backfill" in out
        with DagsterInstance.from_config(str(home)) as instance:
            days = wait_for(
                lambda: _finished_days(instance),
                timeout=480,
                what=f"three finished maintenance_daily_job runs (daemon log: {tmp_path / 'daemon.log'})",
            )
            materialized = instance.get_materialized_partitions(AssetKey(["maintenance", "work_orders"]))

    assert [r.dagster_run.tags["dagster/partition"] for r in days] == DAYS  # started in day order
    assert all(r.dagster_run.status == DagsterRunStatus.SUCCESS for r in days)
    assert all(
        r.dagster_run.tags[PLANT_DAYS_IN_ORDER_TAG] and r.dagster_run.tags["dagster/backfill"] for r in days
    )
    for earlier, later in pairwise(days):  # one day at a time
        assert earlier.end_time <= later.start_time
    assert materialized == set(DAYS)
    with duckdb.connect(str(data_env / "warehouse.duckdb"), read_only=True) as con:
        state_days = {
            d for (d,) in con.execute("SELECT DISTINCT day FROM maintenance.alert_state").fetchall()
        }
        published = {d for (d,) in con.execute("SELECT DISTINCT day FROM maintenance.alerts").fetchall()}
    assert state_days == set(DAYS) and published <= set(DAYS) and published


def _finished_days(instance: DagsterInstance):
    """The daily runs' records in the order they started, once there are three and all finished."""
    runs = [r for r in instance.get_run_records() if r.dagster_run.job_name == "maintenance_daily_job"]
    if len(runs) < len(DAYS) or any(not r.dagster_run.is_finished for r in runs):
        return None
    return sorted(runs, key=lambda r: r.start_time)
