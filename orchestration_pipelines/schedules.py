"""Schedules: the time-driven half of automation (sensors in ``sensors/`` are the event-driven half)."""

from __future__ import annotations

from dagster import DefaultScheduleStatus, ScheduleDefinition

from orchestration_pipelines.jobs import fraud_training_job

fraud_nightly_training = ScheduleDefinition(
    name="fraud_nightly_training",
    job=fraud_training_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Retrain the fraud model every night at 02:00 UTC on the latest labelled history.",
)
