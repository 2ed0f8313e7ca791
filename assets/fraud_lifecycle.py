"""Where each landed fraud batch stands, read from the Dagster instance, and the check that shows it.

The rules live in ``orchestration_pipelines.batch_lifecycle``; this module only asks the instance for
the facts (the latest publication per partition, the runs tagged with a file's content hash, their
errors). The landing sensor reports ``no_stranded_batches`` whenever the picture changes; it can also
be executed by hand from the UI.
"""

import os
import time
from collections import defaultdict
from pathlib import Path

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    MetadataValue,
    RunsFilter,
    asset_check,
)

from assets.fraud import LANDING_SHA_TAG, SOURCE_SHA_METADATA, WORKFLOW, decisions
from orchestration_pipelines.batch_lifecycle import (
    Attempt,
    BatchFacts,
    BatchPlan,
    BatchState,
    RetryBound,
    plan_batch,
    quarantined_contents,
    stranded_summary,
)
from orchestration_pipelines.landing import LandedFile, scan_landing
from resources.landing import LandingZoneResource

STRANDED_CHECK = "no_stranded_batches"
_PARTITION_TAG = "dagster/partition"
_WILL_RETRY_TAG = "dagster/will_retry"  # set on a failed run that the instance's run retries will re-launch


def retry_bound() -> RetryBound:
    """Three attempts per content; the back-off before the second is configurable for operators."""
    return RetryBound(backoff_seconds=float(os.environ.get("OP_BATCH_RETRY_BACKOFF_SECONDS", "60")))


def published_sha256(instance: DagsterInstance, name: str) -> str | None:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=decisions.key, asset_partitions=[name]), limit=1
    ).records
    if not records:
        return None
    value = records[0].asset_materialization.metadata.get(SOURCE_SHA_METADATA)
    return None if value is None else value.value


def attempts_by_content(
    instance: DagsterInstance, files: list[LandedFile]
) -> dict[tuple, tuple[Attempt, ...]]:
    """``(partition, sha256) -> runs`` that carried that content's hash tag, oldest first."""
    if not files:
        return {}
    records = instance.get_run_records(
        RunsFilter(tags={LANDING_SHA_TAG: sorted({f.sha256 for f in files})}), ascending=True
    )
    found: dict[tuple, list[Attempt]] = defaultdict(list)
    for record in records:
        run = record.dagster_run
        found[(run.tags.get(_PARTITION_TAG), run.tags[LANDING_SHA_TAG])].append(
            Attempt(
                run_id=run.run_id,
                finished=run.is_finished,
                ended_at=record.end_time or record.update_timestamp.timestamp(),
                will_be_retried=run.status == DagsterRunStatus.FAILURE
                and run.tags.get(_WILL_RETRY_TAG) == "true",
            )
        )
    return {key: tuple(runs) for key, runs in found.items()}


def plan_batches(
    instance: DagsterInstance, files: list[LandedFile], quarantine_dir: Path, now: float
) -> list[BatchPlan]:
    quarantined = quarantined_contents(quarantine_dir)
    attempts = attempts_by_content(instance, files)
    bound = retry_bound()
    return [
        plan_batch(
            BatchFacts(
                name=f.name,
                sha256=f.sha256,
                published_sha256=published_sha256(instance, f.name),
                quarantined=(f.name, f.sha256) in quarantined,
                attempts=attempts.get((f.name, f.sha256), ()),
            ),
            bound,
            now,
        )
        for f in files
    ]


def last_error(instance: DagsterInstance, run_id: str) -> str:
    """The failure that ended a run: its failed step's message, else the run failure (a crashed worker)."""
    failures = instance.all_logs(
        run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}
    )
    for entry in reversed(failures):
        event = entry.dagster_event
        if event.event_type == DagsterEventType.STEP_FAILURE:
            data = event.step_failure_data
            if data.user_failure_data and data.user_failure_data.description:
                return f"{event.step_key}: {data.user_failure_data.description}"
            return f"{event.step_key}: {data.error.message if data.error else entry.message}"
    if failures:
        return failures[-1].message or "run failed"
    run = instance.get_run_by_id(run_id)
    return f"run {run.status.value.lower()}" if run else "run deleted"


def stranded_evaluation(instance: DagsterInstance, plans: list[BatchPlan], now: float) -> dict:
    """The fields of a ``no_stranded_batches`` result, for the check and the sensor alike."""
    stranded = [p for p in plans if p.state is BatchState.STRANDED]
    errors = {
        p.facts.attempts[-1].run_id: last_error(instance, p.facts.attempts[-1].run_id) for p in stranded
    }
    passed, description, table = stranded_summary(plans, errors, now)
    return {
        "passed": passed,
        "severity": AssetCheckSeverity.ERROR
        if any(p.exhausted for p in stranded)
        else AssetCheckSeverity.WARN,
        "description": description,
        "metadata": {
            "stranded_batches": MetadataValue.int(len(stranded)),
            "retries_exhausted": MetadataValue.int(sum(p.exhausted for p in stranded)),
            "stranded": MetadataValue.md(table),
        },
    }


def stranded_check_event(
    instance: DagsterInstance, plans: list[BatchPlan], now: float
) -> AssetCheckEvaluation:
    return AssetCheckEvaluation(
        asset_key=decisions.key, check_name=STRANDED_CHECK, **stranded_evaluation(instance, plans, now)
    )


@asset_check(
    asset=decisions,
    name=STRANDED_CHECK,
    description=(
        "Every landed batch ends published or quarantined. Lists batches whose runs ended without either, "
        "their attempts, next retry and last error; reported by fraud_landing_sensor when this changes."
    ),
)
def no_stranded_batches(
    context: AssetCheckExecutionContext, landing: LandingZoneResource
) -> AssetCheckResult:
    now = time.time()
    files = scan_landing(landing.landing(WORKFLOW))
    plans = plan_batches(context.instance, files, landing.quarantine(WORKFLOW), now)
    return AssetCheckResult(**stranded_evaluation(context.instance, plans, now))
