"""What the UI shows about the code location: owners, descriptions, lineage, freshness and automation.

Each test names every offender, so one run lists everything still missing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    AutomationConditionSensorDefinition,
    DagsterInstance,
    DefaultSensorStatus,
)
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.freshness import FreshnessDaemon
from instance_helpers import dagster_home

from orchestration_pipelines.definitions import build_definitions

MODEL = AssetKey(["fraud", "model"])
NIGHTLY_RETRAIN = [AssetKey(["fraud", "labelled_history"]), AssetKey(["fraud", "model_candidate"]), MODEL]


@pytest.fixture(scope="module")
def defs():
    return build_definitions()


def test_every_asset_has_an_owner_and_a_description(defs):
    offenders = [
        f"{node.key.to_user_string()}: {what}"
        for node in sorted(defs.resolve_asset_graph().asset_nodes, key=lambda node: node.key)
        for what, value in (("owners", node.owners), ("description", node.description))
        if not value
    ]
    assert offenders == [], "assets missing owners or a description:\n" + "\n".join(offenders)


def test_every_check_sensor_and_schedule_has_a_description(defs):
    graph = defs.resolve_asset_graph()
    offenders = [
        f"check {key.asset_key.to_user_string()}:{key.name}"
        for key in sorted(graph.asset_check_keys, key=str)
        if not graph.get(key).description
    ]
    offenders += [f"sensor {s.name}" for s in defs.sensors if not s.description]
    offenders += [f"schedule {s.name}" for s in defs.schedules if not s.description]
    assert offenders == [], "without a description:\n" + "\n".join(offenders)


def test_scores_show_the_model_they_use_in_the_lineage(defs):
    assert MODEL in defs.resolve_asset_graph().get(AssetKey(["fraud", "scores"])).parent_keys


def test_the_nightly_retrain_assets_fail_freshness_after_one_missed_night(defs):
    graph = defs.resolve_asset_graph()
    for key in NIGHTLY_RETRAIN:
        policy = graph.get(key).freshness_policy
        assert policy is not None, key
        fail_after = policy.fail_window.to_timedelta()
        warn_after = policy.warn_window.to_timedelta()
        # A nightly run lands about 24 h after the last one; two nights missed must never pass.
        assert timedelta(hours=24) < warn_after < fail_after < timedelta(hours=48), key


@pytest.fixture
def freshness_workspace(data_env, tmp_path):
    """The embedded instance (``deploy/dagster.yaml``) with this code location loaded in process.

    Only the freshness daemon evaluates freshness policies and Dagster has no public test helper for it,
    so the test runs the daemon's own iteration over this workspace.
    """
    instance = DagsterInstance.from_config(str(dagster_home(tmp_path)))
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="orchestration_pipelines.definitions", attribute="defs")
    )
    with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as workspace:
        yield instance, workspace


def _freshness_hours_after(instance, workspace, timestamp: float, hours: float) -> FreshnessState:
    """The model's freshness state as the daemon records it ``hours`` after ``timestamp``."""
    with freeze_time(datetime.fromtimestamp(timestamp, UTC) + timedelta(hours=hours)):
        list(FreshnessDaemon().run_iteration(workspace))
    return instance.get_freshness_state_records([MODEL])[MODEL].freshness_state


def test_a_model_not_retrained_for_a_day_shows_stale(freshness_workspace):
    instance, workspace = freshness_workspace
    assert instance.freshness_enabled  # the embedded instance evaluates freshness by default
    instance.report_runless_asset_event(AssetMaterialization(MODEL))
    promoted = instance.get_latest_materialization_event(MODEL).timestamp

    assert _freshness_hours_after(instance, workspace, promoted, 1) == FreshnessState.PASS
    assert _freshness_hours_after(instance, workspace, promoted, 25.5) == FreshnessState.WARN
    assert _freshness_hours_after(instance, workspace, promoted, 30) == FreshnessState.FAIL

    instance.report_runless_asset_event(AssetMaterialization(MODEL))  # the retrain came back
    retrained = instance.get_latest_materialization_event(MODEL).timestamp
    assert _freshness_hours_after(instance, workspace, retrained, 0) == FreshnessState.PASS


def test_assets_with_an_automation_condition_are_evaluated_by_a_running_sensor(defs):
    """Dagster's own default automation sensor starts stopped: nothing may be left to it."""
    graph = defs.resolve_asset_graph()
    automated = {node.key for node in graph.asset_nodes if node.automation_condition}
    assert automated, "no asset has an automation condition"
    sensors = [
        s for s in defs.get_repository_def().sensor_defs if isinstance(s, AutomationConditionSensorDefinition)
    ]
    assert [s.name for s in sensors if s.default_status != DefaultSensorStatus.RUNNING] == []
    covered = {key for s in sensors for key in s.asset_selection.resolve(graph)}
    assert automated <= covered, f"automated but evaluated by no sensor: {automated - covered}"
