"""Starts a maintenance day when readings for it land, including late files for past days.

The daily schedule runs each day once it is complete; this sensor covers files that arrive later
(a backfill, a late machine, a re-sent file). Every new or changed file in
``landing/maintenance/readings`` requests a run of each complete day it covers; the run key is the
day, the file name and its content hash, so the same content seen twice gives one run per day. The
daily run reads every file covering its day, so a run per file is idempotent: it recomputes the day.
"""

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from assets.maintenance import WORKFLOW, maintenance_days
from orchestration_pipelines.jobs import maintenance_daily_job
from orchestration_pipelines.landing import decode_cursor, encode_cursor, plan_new_files, scan_landing
from orchestration_pipelines.maintenance.contract import days_in_file
from resources.landing import LandingZoneResource

LANDING_SHA_TAG = "maintenance/landing_sha256"


@sensor(
    job=maintenance_daily_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Turns each new or changed readings file into runs of the days it covers.",
)
def maintenance_landing_sensor(context: SensorEvaluationContext, landing: LandingZoneResource):
    folder = landing.landing(WORKFLOW) / "readings"
    cursor = decode_cursor(context.cursor)
    landed = scan_landing(folder, known=cursor)
    new_files, next_cursor = plan_new_files(landed, cursor)
    if not new_files:
        return SensorResult(
            skip_reason=f"no new or changed files among {len(landed)} in {folder}",
            cursor=encode_cursor(next_cursor),
        )
    complete_days = set(maintenance_days.get_partition_keys())
    requests, notes = [], []
    for landed_file in new_files:
        try:
            days = days_in_file(landed_file.path)
        except ValueError as exc:
            notes.append(f"{exc}: the next daily run quarantines it")
            continue
        waiting = [d for d in days if d not in complete_days]
        if waiting:
            notes.append(
                f"{landed_file.name}: {', '.join(waiting)} not complete yet, the daily schedule runs it"
            )
        requests += [
            RunRequest(
                run_key=f"{day}:{landed_file.run_key}",
                partition_key=day,
                tags={LANDING_SHA_TAG: landed_file.sha256},
            )
            for day in days
            if day in complete_days
        ]
    for note in notes:
        context.log.info(note)
    if not requests:
        return SensorResult(
            skip_reason="; ".join(notes) or "nothing to run", cursor=encode_cursor(next_cursor)
        )
    return SensorResult(run_requests=requests, cursor=encode_cursor(next_cursor))
