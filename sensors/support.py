"""Starts support triage when a ticket file lands, with the fraud sensor's rules.

Each new file becomes a partition of ``support_batches``; the run key is the file name plus its content
hash, so the same file seen twice gives one run and a changed file gives a new one. Half-copied files
(temporary names) are never picked up, names go through the landing name checks, and files whose exact
content was already ingested are recognised from the asset's history should the cursor be reset.
"""

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, sensor

from assets.support import LANDING_SHA_TAG, WORKFLOW, already_ingested, support_batches
from orchestration_pipelines.jobs import support_triage_job
from orchestration_pipelines.landing import decode_cursor, encode_cursor, plan_new_files, scan_landing
from resources.landing import LandingZoneResource


@sensor(
    job=support_triage_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Turns each new or changed ticket file into a support batch and runs triage on it.",
)
def support_landing_sensor(context: SensorEvaluationContext, landing: LandingZoneResource):
    cursor = decode_cursor(context.cursor)
    landed = scan_landing(landing.landing(WORKFLOW), known=cursor)
    new_files, next_cursor = plan_new_files(landed, cursor)
    to_run = [f for f in new_files if not already_ingested(context.instance, f.name, f.sha256)]
    if not to_run:
        reason = (
            f"{len(new_files)} file(s) new to this cursor were already ingested as they are"
            if new_files
            else f"no new or changed files among {len(landed)} in {landing.landing(WORKFLOW)}"
        )
        return SensorResult(skip_reason=reason, cursor=encode_cursor(next_cursor))
    existing = set(context.instance.get_dynamic_partitions(support_batches.name))
    return SensorResult(
        run_requests=[
            RunRequest(run_key=f.run_key, partition_key=f.name, tags={LANDING_SHA_TAG: f.sha256})
            for f in to_run
        ],
        dynamic_partitions_requests=[
            support_batches.build_add_request(sorted({f.name for f in new_files} - existing))
        ],
        cursor=encode_cursor(next_cursor),
    )
