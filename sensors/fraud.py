"""Starts fraud scoring when a transaction file lands.

Each new file becomes a partition of ``fraud_batches``; the run key is the file name plus its
content hash, so the same file seen twice gives one run and a changed file gives a new one. The
cursor (name -> size, mtime, hash) lives in the Dagster instance and survives restarts; should it
be reset, files whose content was already ingested are recognised from the asset's own history.
"""

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from assets.fraud import LANDING_SHA_TAG, WORKFLOW, already_ingested, fraud_batches
from orchestration_pipelines.jobs import fraud_scoring_job
from orchestration_pipelines.landing import decode_cursor, encode_cursor, plan_new_files, scan_landing
from resources.landing import LandingZoneResource


@sensor(job=fraud_scoring_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING)
def fraud_landing_sensor(context: SensorEvaluationContext, landing: LandingZoneResource):
    cursor = decode_cursor(context.cursor)
    landed = scan_landing(landing.landing(WORKFLOW), known=cursor)
    new_files, next_cursor = plan_new_files(landed, cursor)
    if not new_files:
        return SensorResult(
            skip_reason=f"no new or changed files among {len(landed)} in {landing.landing(WORKFLOW)}",
            cursor=encode_cursor(next_cursor),
        )
    # A lost or reset cursor must not rescore files whose exact content was already ingested.
    to_run = [f for f in new_files if not already_ingested(context.instance, f.name, f.sha256)]
    if not to_run:
        return SensorResult(
            skip_reason=f"{len(new_files)} file(s) new to this cursor were already ingested as they are",
            cursor=encode_cursor(next_cursor),
        )
    existing = set(context.instance.get_dynamic_partitions(fraud_batches.name))
    return SensorResult(
        run_requests=[
            RunRequest(run_key=f.run_key, partition_key=f.name, tags={LANDING_SHA_TAG: f.sha256})
            for f in to_run
        ],
        dynamic_partitions_requests=[
            fraud_batches.build_add_request(sorted({f.name for f in new_files} - existing))
        ],
        cursor=encode_cursor(next_cursor),
    )
