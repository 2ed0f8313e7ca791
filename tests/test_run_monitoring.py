"""A killed run worker does not hold the warehouse pool slot: the real daemon, a real ``kill -9``.

The instance comes from deploy/dagster.yaml with only its intervals shortened, so the test proves the
shipped settings (run monitoring with slot freeing, run retries for crashed workers only) work.
"""

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from instance_helpers import BIN, REPO, dagster_home, running_daemon, wait_for

from resources.warehouse import WAREHOUSE_POOL

pytestmark = pytest.mark.slow

JOB = "hold_slot_job"


@pytest.fixture
def daemon_home(tmp_path) -> Iterator[tuple[Path, Path]]:
    home = dagster_home(tmp_path)
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    assert (
        config["run_monitoring"]["enabled"] and config["run_monitoring"]["free_slots_after_run_end_seconds"]
    )
    assert config["run_retries"] == {"enabled": True, "max_retries": 1, "retry_on_asset_or_op_failure": False}
    config["run_monitoring"].update(poll_interval_seconds=1, free_slots_after_run_end_seconds=1)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    workspace = tmp_path / "workspace.yaml"
    location = REPO / "tests" / "code_locations" / "pool_slot_holder.py"
    workspace.write_text(
        yaml.safe_dump(
            {"load_from": [{"python_file": {"relative_path": str(location), "working_directory": str(REPO)}}]}
        )
    )
    with running_daemon(home, workspace, tmp_path, tmp_path / "daemon.log"):
        yield home, workspace


def launch(home: Path, workspace: Path, release_file: Path) -> None:
    config = {"ops": {"hold_warehouse_slot": {"config": {"release_file": str(release_file)}}}}
    launched = subprocess.run(
        [
            str(BIN / "dagster"),
            "job",
            "launch",
            "-w",
            str(workspace),
            "-j",
            JOB,
            "--config-json",
            json.dumps(config),
        ],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]


def slot_holders(instance: DagsterInstance) -> set[str]:
    return {
        slot.run_id for slot in instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots
    }


def worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """The run worker's pid, from the engine event Dagster writes when it starts the worker."""
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        metadata = entry.dagster_event.engine_event_data.metadata or {}
        if "pid" in metadata:
            return int(metadata["pid"].value)
    return None


def test_a_killed_run_worker_frees_its_pool_slot_and_is_retried(daemon_home, tmp_path):
    home, workspace = daemon_home
    release = tmp_path / "release"
    launch(home, workspace, release)
    with DagsterInstance.from_config(str(home)) as instance:
        [killed] = wait_for(lambda: instance.get_runs(RunsFilter(job_name=JOB)), 30, "the run is created")
        # Launching is slow on a busy machine (a code server, then a worker process); the bound that
        # matters is from the kill on.
        wait_for(lambda: killed.run_id in slot_holders(instance), 120, "the run holds the warehouse slot")
        pid = wait_for(lambda: worker_pid(instance, killed.run_id), 10, "the worker's pid is logged")
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        release.touch()  # whatever runs next may finish at once, if it gets the slot

        failed = wait_for(
            lambda: instance.get_run_by_id(killed.run_id).status == DagsterRunStatus.FAILURE,
            30,
            "run marked failed",
        )
        assert failed
        retry = wait_for(
            lambda: next(
                iter(instance.get_runs(RunsFilter(tags={"dagster/parent_run_id": killed.run_id}))), None
            ),
            30,
            "the crashed run is retried",
        )
        wait_for(
            lambda: instance.get_run_by_id(retry.run_id).status == DagsterRunStatus.SUCCESS,
            45,
            "the retry gets the freed slot and finishes",
        )
        assert slot_holders(instance) == set()
        assert time.monotonic() - killed_at < 90  # from the kill: failed, slot freed, retried, finished
