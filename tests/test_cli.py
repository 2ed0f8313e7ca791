"""The command line as a user runs it: real subprocesses, real files."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from dagster import DagsterInstance
from fraud_helpers import write_landing_file
from instance_helpers import REPO, dagster_home

from orchestration_pipelines.fraud import train_builtin
from orchestration_pipelines.maintenance.work_orders import MaintenanceSystem
from orchestration_pipelines.model_registry import ModelRegistry
from orchestration_pipelines.opstore import OpStore

CLI = str(Path(sys.executable).with_name("orchestration-pipelines"))


def run_cli(*args: str, env_extra: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, *args],
        cwd=REPO,
        env={**os.environ, **(env_extra or {})},
        capture_output=True,
        text=True,
        check=check,
        timeout=600,
    )


def test_score_a_csv_with_the_promoted_model(data_env, small_world, tmp_path):
    registry = ModelRegistry(data_env / "models")
    result = train_builtin(small_world.history)
    registry.promote("fraud", registry.save("fraud", result.model, {"feature_set": "builtin"}))
    source = write_landing_file(tmp_path, "batch.csv", small_world.batches[0])
    out = tmp_path / "decisions.parquet"

    completed = run_cli("fraud", "score", str(source), "--output", str(out))
    decisions = pd.read_parquet(out)
    assert len(decisions) == len(small_world.batches[0])
    assert set(json.loads(completed.stderr.strip().splitlines()[-1])) <= {
        "auto_clear",
        "analyst_review",
        "block_pending_approval",
    }
    assert {"transaction_id", "risk_score", "decision", "reason_codes", "model_version"} <= set(
        decisions.columns
    )


def test_bad_input_is_a_clear_error_not_a_traceback(data_env, tmp_path):
    source = tmp_path / "broken.csv"
    source.write_text("transaction_id,amount\n1,abc\n")
    completed = run_cli("fraud", "score", str(source), check=False)
    assert completed.returncode != 0
    assert "error:" in completed.stderr and "Traceback" not in completed.stderr


def test_train_on_own_features_and_promote(data_env, tmp_path):
    rng = np.random.default_rng(5)
    n = 30_000
    label = (rng.random(n) < 0.005).astype(int)
    table = pd.DataFrame(
        {
            "ts": pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC"),
            "signal": rng.normal(0, 1, n) + 3 * label,
            "noise": rng.normal(0, 1, n),
            "is_chargeback": label,
        }
    )
    source = tmp_path / "features.parquet"
    table.to_parquet(source)

    completed = run_cli(
        "fraud", "train", str(source), "--label", "is_chargeback", "--time-column", "ts", "--promote"
    )
    report = json.loads(completed.stdout[: completed.stdout.rindex("}") + 1])
    assert report["split"] == "time" and report["metrics"]["pr_auc"] > 0.5
    assert ModelRegistry(data_env / "models").current_version("fraud") == report["version"]


def test_demo_runs_the_workflow_through_dagster(data_env, tmp_path):
    home = dagster_home(tmp_path)
    completed = run_cli(
        "demo", "--accounts", "1500", "--with-bad-file", env_extra={"DAGSTER_HOME": str(home)}
    )
    out = completed.stdout
    assert "fraud_training_job" in out and "Decisions per queue" in out
    runs = [line for line in out.splitlines() if line.strip().startswith("run ") or ": run " in line]
    # fraud: training + three good batches + the bad one; support: training + two batches;
    # maintenance: training + a day
    assert len(runs) == 10
    assert sum("FAILED" in line for line in runs) == 1
    assert "transactions_broken.csv" in out and "hash chain intact" in out
    waiting = re.search(r"Review inbox: (\d+) fraud item\(s\) waiting", out)
    assert waiting and int(waiting.group(1)) > 0  # the scoring runs raised the cases for people
    inbox = re.search(r"Review inbox, all workflows: (\d+) item\(s\) waiting (\{.*\})", out)
    per_workflow = ast.literal_eval(inbox.group(2))
    assert set(per_workflow) == {"fraud", "support", "maintenance"}  # every workflow raised its cases
    assert sum(per_workflow.values()) == int(inbox.group(1))
    assert per_workflow["fraud"] == int(waiting.group(1))
    assert (data_env / "quarantine" / "fraud" / "transactions_broken.csv.reason.json").exists()
    day, opened, reviewed = _maintenance_counts(out)
    assert opened >= 1 and reviewed >= 1  # a confident alert and an uncertain one
    published = _query(data_env, "SELECT status, count(*) FROM maintenance.alerts GROUP BY 1")
    assert dict(published) == {"work_order_proposed": opened, "human_review": reviewed}
    orders = MaintenanceSystem(OpStore(os.environ["OP_OPSTORE_URL"]), None).work_orders()
    assert len(orders) == opened
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        # Launched through the instance from the code location (what the Overview timeline shows),
        # not executed in the demo's own process.
        assert len(runs) == 10
        assert {r.remote_job_origin.location_name for r in runs} == {"orchestration_pipelines"}
        assert all(r.tags.get("fraud/landing_sha256") for r in runs if r.job_name == "fraud_scoring_job")
        support_runs = [r for r in runs if r.job_name == "support_triage_job"]
        assert len(support_runs) == 2 and all(r.tags.get("support/landing_sha256") for r in support_runs)
        [daily] = [r for r in runs if r.job_name == "maintenance_daily_job"]
        assert daily.tags["dagster/partition"] == day
    # Support without an API key: local answers with templates, the rest to people; every ticket counted.
    assert "support_triage_job" in out and "Tickets per route" in out and "Outbox per final state" in out
    with duckdb.connect(str(data_env / "warehouse.duckdb")) as con:
        routes = dict(con.execute("SELECT route, count(*) FROM support.routes GROUP BY route").fetchall())
        states = dict(con.execute("SELECT status, count(*) FROM support.outbox GROUP BY status").fetchall())
    assert set(routes) <= {"local", "human"} and routes.get("local", 0) > 0
    assert sum(states.values()) == 2 * 200 and states.get("ready", 0) > 0
    for route, count in routes.items():
        assert f"{route} {count}" in " ".join(out.split())

    again = run_cli("demo", "--accounts", "1500", env_extra={"DAGSTER_HOME": str(home)}).stdout
    assert "0 new landing file(s)" in again  # same content is never scored twice
    assert "0 new ticket file(s)" in again
    assert _maintenance_counts(again) == (day, opened, reviewed)  # the day again: the same alerts
    assert "0 newly opened" in again  # and no second work order
    assert len(MaintenanceSystem(OpStore(os.environ["OP_OPSTORE_URL"]), None).work_orders()) == opened


def _maintenance_counts(out: str) -> tuple[str, int, int]:
    found = re.search(
        r"(\d{4}-\d\d-\d\d): (\d+) work orders? \(\d+ newly opened\), (\d+) sent to human review", out
    )
    assert found, out
    return found[1], int(found[2]), int(found[3])


def _query(data_env, sql: str) -> list[tuple]:
    with duckdb.connect(str(data_env / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()
