"""Schedules: the time-driven half of automation (sensors in ``sensors/`` are the event-driven half)."""

from __future__ import annotations

from dagster import DefaultScheduleStatus, ScheduleDefinition, build_schedule_from_partitioned_job

from orchestration_pipelines.jobs import fraud_training_job, maintenance_daily_job

fraud_nightly_training = ScheduleDefinition(
    name="fraud_nightly_training",
    job=fraud_training_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Retrain the fraud model every night at 02:00 UTC on the latest labelled history.",
)

maintenance_daily = build_schedule_from_partitioned_job(
    maintenance_daily_job,
    name="maintenance_daily",
    hour_of_day=0,
    minute_of_hour=30,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Runs each plant day at 00:30 UTC, once the day is complete.",
)
