"""Applies what people (and the policy's deadlines) decided: the sensors around the actions outbox.

``review_timeouts_sensor`` applies the review policy's timeout rule to every overdue item (escalate to
another role with a new deadline, or take the default decision) and, when a default decision enqueued
actions, launches the same job at once rather than waiting for the next decisions tick.

``review_decisions_sensor`` launches ``review_apply_actions_job`` when actions are due. Its run key is
a digest of the due actions and their attempt counts, so the same set is launched once; a set whose
run ended without recording anything (a killed worker) is launched again, up to ``MAX_LAUNCHES_PER_SET``
times, counted from the runs tagged with the digest so a lost cursor changes nothing. While a run of
the job is in progress no other is launched; the next tick takes what is left.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from orchestration_pipelines.jobs import review_apply_actions_job
from orchestration_pipelines.review import apply_timeouts
from orchestration_pipelines.review.actions import OutboxAction, due_actions, list_actions
from resources.opstore import OperationalStoreResource

DUE_SET_TAG = "review/due_actions"
MAX_LAUNCHES_PER_SET = 3
_IN_PROGRESS = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


def due_set_digest(actions: list[OutboxAction]) -> str:
    """Changes when an action joins, leaves or is attempted once more."""
    members = sorted(f"{a.action_id}:{a.attempts}" for a in actions)
    return hashlib.sha256("\n".join(members).encode()).hexdigest()[:20]


def apply_request(
    context: SensorEvaluationContext, due: list[OutboxAction], why: str
) -> RunRequest | SkipReason:
    """One run for ``due`` unless a run is already applying actions or this set has had its launches."""
    job_name = review_apply_actions_job.name
    instance = context.instance
    running = instance.get_runs(RunsFilter(job_name=job_name, statuses=_IN_PROGRESS), limit=1)
    if running:
        return SkipReason(f"{len(due)} action(s) due; run {running[0].run_id} is applying actions")
    digest = due_set_digest(due)
    earlier = instance.get_runs(RunsFilter(job_name=job_name, tags={DUE_SET_TAG: digest}))
    if len(earlier) >= MAX_LAUNCHES_PER_SET:
        return SkipReason(
            f"{len(due)} action(s) due, but {len(earlier)} runs for exactly these ended without recording "
            f"any of them (last: {earlier[0].run_id}); fix the cause and launch {job_name} by hand"
        )
    context.log.info(f"{why}: {len(due)} action(s) due, launch {len(earlier) + 1} for this set")
    return RunRequest(run_key=f"{digest}:{len(earlier) + 1}", tags={DUE_SET_TAG: digest})


def _failed_note(store) -> str:
    """Failed actions stay visible on every tick until a person deals with them."""
    failed = list_actions(store, status="failed")
    if not failed:
        return ""
    latest = failed[-1]
    return f"; {len(failed)} failed action(s) need a person (latest {latest.action_id}: {latest.last_error})"


@sensor(
    job=review_apply_actions_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Launches review_apply_actions_job when decided actions are due (new, or past their "
    "retry back-off). On by default: it only carries out what a reviewer or the policy decided, and "
    "without configured URLs the connectors record effects locally.",
)
def review_decisions_sensor(context: SensorEvaluationContext, opstore: OperationalStoreResource):
    store = opstore.store()
    due = due_actions(store, datetime.now(UTC))
    if not due:
        return SkipReason(f"no action is due{_failed_note(store)}")
    return apply_request(context, due, "decisions")


@sensor(
    job=review_apply_actions_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Applies the review policy to overdue items (escalate, or the default decision) and "
    "launches review_apply_actions_job when a default decision enqueued actions. On by default: a "
    "deadline nobody enforces is no deadline.",
)
def review_timeouts_sensor(context: SensorEvaluationContext, opstore: OperationalStoreResource):
    store, now = opstore.store(), datetime.now(UTC)
    handled = apply_timeouts(store, now)
    for item_id, what in handled:
        context.log.info(f"{item_id}: {what} on timeout")
    defaulted = sum(what != "escalate" for _, what in handled)
    note = f"{len(handled) - defaulted} escalated, {defaulted} decided by default"
    if not defaulted:
        return SkipReason(f"overdue items: {note}" if handled else "no item is overdue")
    due = due_actions(store, now)
    if not due:
        return SkipReason(f"overdue items: {note}; no action is due")
    return apply_request(context, due, f"timeouts ({note})")
