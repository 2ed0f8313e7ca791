"""Smoke test: the real Dagster webserver loads workspace.yaml without errors."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from instance_helpers import REPO, dagster_home

pytestmark = pytest.mark.slow

WORKSPACE_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation {
            repositories { name jobs { name } sensors { name } schedules { name } }
          }
        }
      }
    }
  }
  assetNodes { assetKey { path } }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_webserver_loads_the_code_location(tmp_path, data_env):
    home = dagster_home(tmp_path)
    port = _free_port()
    webserver = Path(sys.executable).with_name("dagster-webserver")
    server = subprocess.Popen(
        [str(webserver), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "webserver did not answer within 180 s"
                time.sleep(1)
        result = _graphql(port, WORKSPACE_QUERY)
        deadline = time.monotonic() + 120
        while result["data"]["workspaceOrError"]["locationEntries"][0]["loadStatus"] != "LOADED":
            assert time.monotonic() < deadline, result
            time.sleep(1)
            result = _graphql(port, WORKSPACE_QUERY)
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert "errors" not in result, result.get("errors")
    [entry] = result["data"]["workspaceOrError"]["locationEntries"]
    location = entry["locationOrLoadError"]
    assert entry["name"] == "orchestration_pipelines"
    assert location["__typename"] == "RepositoryLocation", location.get("message")
    [repository] = location["repositories"]
    assert {"fraud_scoring_job", "fraud_training_job"} <= {j["name"] for j in repository["jobs"]}
    assert {s["name"] for s in repository["sensors"]} >= {"fraud_landing_sensor"}
    assert {s["name"] for s in repository["schedules"]} >= {"fraud_nightly_training"}
    assets = {"/".join(node["assetKey"]["path"]) for node in result["data"]["assetNodes"]}
    assert {"fraud/transactions", "fraud/decisions", "fraud/model"} <= assets
