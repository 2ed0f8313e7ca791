"""The apply job and the review sensors on a real Dagster instance and real receivers."""

from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    SkipReason,
    build_sensor_context,
    instance_for_test,
)
from review_helpers import request
from webhook_server import FlakyReceiver

from orchestration_pipelines.definitions import build_definitions, build_resources
from orchestration_pipelines.jobs import review_apply_actions_job
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.review import get_item, list_items, raise_items
from orchestration_pipelines.review.actions import enqueue_action, list_actions
from sensors.review import DUE_SET_TAG, MAX_LAUNCHES_PER_SET, review_decisions_sensor, review_timeouts_sensor

NOW = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)


@pytest.fixture
def store(data_env):
    return OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}")


@pytest.fixture
def instance():
    with instance_for_test() as instance:
        yield instance


def _enqueue(store, case_id, action="block_card", payload=None):
    with store.transaction() as cur:
        payload = payload or {"card_id": f"C-{case_id}"}
        enqueued = enqueue_action(
            cur, workflow="fraud", case_id=case_id, action=action, payload=payload, now=NOW
        )
    return enqueued.action_id


def _tick(instance):
    with build_sensor_context(instance=instance, resources=build_resources()) as context:
        return review_decisions_sensor(context)


def _apply(instance, tags):
    return review_apply_actions_job.execute_in_process(
        instance=instance, resources=build_resources(), tags=tags, raise_on_error=False
    )


def _dead_run(instance, tags):
    """A run of the job that ended without doing anything, as a killed worker leaves it."""
    run = instance.create_run_for_job(review_apply_actions_job, tags=tags)
    instance.report_run_failed(run)
    return run


def test_the_sensor_launches_due_actions_once_and_the_job_delivers_them(store, instance, monkeypatch):
    assert isinstance(_tick(instance), SkipReason)
    reply = {"ticket_id": "S-9", "body": "hi"}
    ids = sorted([_enqueue(store, "T-1"), _enqueue(store, "T-2", "send_reply", reply)])
    request = _tick(instance)
    assert isinstance(request, RunRequest) and request.run_key.endswith(":1")
    assert _tick(instance).run_key == request.run_key  # the same set: the same key, launched once
    with FlakyReceiver(failures=1) as receiver:
        monkeypatch.setenv("OP_CARD_SERVICE_URL", receiver.base_url)
        result = _apply(instance, request.tags)
    assert result.success
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert (metadata["delivered"].value, metadata["failed"].value, metadata["retrying"].value) == (2, 0, 0)
    assert "| send_reply | T-2 | delivered |" in metadata["actions"].value
    assert list(receiver.accepted) == ["fraud:T-1:block_card"]  # replies: the local sink
    assert sorted(a.action_id for a in list_actions(store, status="delivered")) == ids
    assert isinstance(_tick(instance), SkipReason)


def test_a_failed_action_is_reported_by_every_tick_until_a_person_deals_with_it(store, instance):
    action_id = _enqueue(store, "PU-1", "open_work_order", {"machine_id": "PU-1"})  # no team, no time
    result = _apply(instance, _tick(instance).tags)
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert output.event_specific_data.metadata["failed"].value == 1
    skipped = _tick(instance)
    assert isinstance(skipped, SkipReason)
    assert f"1 failed action(s) need a person (latest {action_id}: " in skipped.skip_message
    assert "lacks team, alerted_at" in skipped.skip_message


def test_a_set_whose_run_died_is_launched_again_a_bounded_number_of_times(store, instance):
    _enqueue(store, "T-1")
    first = _tick(instance)
    for launch in range(1, MAX_LAUNCHES_PER_SET + 1):
        request = _tick(instance)
        assert request.run_key == f"{first.tags[DUE_SET_TAG]}:{launch}"
        _dead_run(instance, request.tags)
    gave_up = _tick(instance)
    assert (
        isinstance(gave_up, SkipReason) and "launch review_apply_actions_job by hand" in gave_up.skip_message
    )
    _enqueue(store, "T-2")  # a new action is a new set
    assert _tick(instance).run_key.endswith(":1")


def test_no_second_run_while_one_is_applying_actions(store, instance):
    _enqueue(store, "T-1")
    run = instance.create_run_for_job(review_apply_actions_job, tags=_tick(instance).tags)
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.NOT_STARTED
    skipped = _tick(instance)
    assert isinstance(skipped, SkipReason) and run.run_id in skipped.skip_message


def test_the_job_and_both_sensors_are_in_the_code_location():
    defs = build_definitions()
    assert defs.get_job_def("review_apply_actions_job").description
    sensors = {s.name: s for s in defs.sensors if s.name.startswith("review_")}
    assert {name: s.minimum_interval_seconds for name, s in sensors.items()} == {
        "review_decisions_sensor": 30,
        "review_timeouts_sensor": 60,
    }
    assert {s.default_status for s in sensors.values()} == {DefaultSensorStatus.RUNNING}
    assert all(s.description and s.job_name == "review_apply_actions_job" for s in sensors.values())


def _timeouts_tick(instance):
    with build_sensor_context(instance=instance, resources=build_resources()) as context:
        return review_timeouts_sensor(context)


def test_timeouts_escalate_or_decide_by_default_and_launch_the_job_for_the_default_actions(
    store, instance, monkeypatch
):
    assert _timeouts_tick(instance).skip_message == "no item is overdue"
    now = datetime.now(UTC)
    order = {"machine_id": "PU-001", "team": "fluids", "alerted_at": "2026-11-26T05:00:00+00:00"}
    fraud = raise_items(store, [request("T-1", "fraud_analyst_review")], now=now - timedelta(hours=5))
    raise_items(
        store,
        [request("PU-001:1", "maintenance_low_confidence_alert", **order)],
        now=now - timedelta(hours=13),
    )
    (alert,) = list_items(store, status="open", workflow="maintenance")
    launched = _timeouts_tick(instance)
    assert isinstance(launched, RunRequest) and DUE_SET_TAG in launched.tags
    assert get_item(store, fraud.created[0]).status == "escalated"  # fraud escalates: no action
    assert get_item(store, alert.item_id).decision == "approve"  # a doubtful alert still gets a visit
    with FlakyReceiver() as cmms:
        monkeypatch.setenv("OP_MAINTENANCE_WEBHOOK_URL", cmms.url)
        assert _apply(instance, launched.tags).success
    assert list(cmms.accepted) == [f"{alert.item_id}:open_work_order"]
    assert cmms.accepted[f"{alert.item_id}:open_work_order"]["machine_id"] == "PU-001"
    assert get_item(store, alert.item_id).status == "applied"
    assert _timeouts_tick(instance).skip_message == "no item is overdue"


def test_timeouts_that_only_escalate_launch_nothing(store, instance):
    raise_items(
        store, [request("T-2", "fraud_block_pending_approval")], now=datetime.now(UTC) - timedelta(hours=2)
    )
    skipped = _timeouts_tick(instance)
    assert (
        isinstance(skipped, SkipReason)
        and skipped.skip_message == "overdue items: 1 escalated, 0 decided by default"
    )
