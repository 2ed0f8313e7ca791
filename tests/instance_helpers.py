"""A Dagster home made from one of the instance files the project ships in ``deploy/``, and its daemon."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import DagsterInstance

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def dagster_home(parent: Path, template: str = "dagster.yaml") -> Path:
    """``parent/dagster_home`` holding ``deploy/<template>`` as its ``dagster.yaml``."""
    home = parent / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / template, home / "dagster.yaml")
    return home


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


@contextmanager
def running_daemon(
    home: Path, workspace: Path, cwd: Path, log: Path, env: dict[str, str] | None = None
) -> Iterator[None]:
    """``dagster-daemon run`` on ``home``'s instance (queued runs, monitoring, retries), stopped after;
    its runs see ``env`` (default: this process's environment)."""
    with DagsterInstance.from_config(str(home)) as instance:  # create the SQLite storages once, before
        instance.get_runs(limit=1)  # the daemon and the commands under test race to create them
        instance.event_log_storage.get_concurrency_keys()
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
        cwd=cwd,
        env={**(env or os.environ), "DAGSTER_HOME": str(home)},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its code server and run workers share its process group
    )
    try:
        yield
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
