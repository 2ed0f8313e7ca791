"""Starts fraud scoring when a transaction file lands, and again until its batch is finished.

Each landed file becomes a partition of ``fraud_batches``. A batch is finished only when its exact
content is published (``fraud/decisions`` carries the file's ``source_sha256``) or quarantined; a
batch whose runs failed (a missing model, a blocked gate, a killed worker) is retried up to three
attempts with a growing back-off, and stays listed by the ``no_stranded_batches`` check until it
finishes. Attempts are counted from the runs tagged with the content hash, so the count survives a
lost cursor; the cursor only spares re-hashing unchanged files and re-asking about finished ones.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from assets.fraud import LANDING_SHA_TAG, WORKFLOW, fraud_batches
from assets.fraud_lifecycle import plan_batches, stranded_check_event
from orchestration_pipelines.batch_lifecycle import (
    FINISHED_STATES,
    BatchPlan,
    BatchState,
    state_counts,
    stranded_fingerprint,
)
from orchestration_pipelines.jobs import fraud_scoring_job
from orchestration_pipelines.landing import LandedFile, plan_new_files, scan_landing
from resources.landing import LandingZoneResource

ATTEMPT_TAG = "fraud/attempt"


@dataclass
class LandingCursor:
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> size, mtime, sha256
    finished: dict[str, str] = field(default_factory=dict)  # name -> sha256 published or quarantined
    reported: str | None = None  # fingerprint of the last no_stranded_batches report

    def encode(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str | None) -> LandingCursor:
        """An absent or older-format cursor starts empty: the instance knows what matters."""
        data = json.loads(raw) if raw else {}
        if set(data) != {"seen", "finished", "reported"}:
            return cls()
        return cls(**data)


def run_request(landed: LandedFile, plan: BatchPlan) -> RunRequest:
    attempt = plan.attempt_number
    run_key = landed.run_key if attempt == 1 else f"{landed.run_key}:attempt-{attempt}"
    return RunRequest(
        run_key=run_key,
        partition_key=landed.name,
        tags={LANDING_SHA_TAG: landed.sha256, ATTEMPT_TAG: str(attempt)},
    )


def _waiting_note(plans: list[BatchPlan], now: float) -> str:
    waits = [p.retry_at - now for p in plans if p.state is BatchState.STRANDED and p.retry_at is not None]
    exhausted = sum(p.exhausted for p in plans)
    notes = [f"next retry in {max(min(waits), 0):.0f} s"] if waits else []
    if exhausted:
        notes.append(f"{exhausted} out of retries (see check no_stranded_batches)")
    return f" ({'; '.join(notes)})" if notes else ""


@sensor(
    job=fraud_scoring_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Scores each file landed in the fraud landing folder, retries batches whose runs failed (up to "
        "three attempts, growing back-off) and reports stranded batches on fraud/decisions."
    ),
)
def fraud_landing_sensor(context: SensorEvaluationContext, landing: LandingZoneResource):
    now = time.time()
    cursor = LandingCursor.decode(context.cursor)
    landed = scan_landing(landing.landing(WORKFLOW), known=cursor.seen)
    _, seen = plan_new_files(landed, cursor.seen)
    open_files = {f.name: f for f in landed if cursor.finished.get(f.name) != f.sha256}
    plans = plan_batches(context.instance, list(open_files.values()), landing.quarantine(WORKFLOW), now)

    finished = {
        name: sha for name, sha in cursor.finished.items() if name in seen and seen[name]["sha256"] == sha
    }
    finished.update({p.facts.name: p.facts.sha256 for p in plans if p.state in FINISHED_STATES})
    fingerprint = stranded_fingerprint(plans)
    report = [] if fingerprint == cursor.reported else [stranded_check_event(context.instance, plans, now)]
    next_cursor = LandingCursor(seen=seen, finished=finished, reported=fingerprint).encode()

    due = [p for p in plans if p.launch]
    if not due:
        unfinished = [p for p in plans if p.state not in FINISHED_STATES]
        return SensorResult(
            skip_reason=(
                f"no run due among {len(landed)} landed file(s): {len(finished)} finished, "
                f"{state_counts(unfinished) if unfinished else 'nothing open'}{_waiting_note(plans, now)}"
            ),
            cursor=next_cursor,
            asset_events=report,
        )
    existing = set(context.instance.get_dynamic_partitions(fraud_batches.name))
    return SensorResult(
        run_requests=[run_request(open_files[p.facts.name], p) for p in due],
        dynamic_partitions_requests=[
            fraud_batches.build_add_request(sorted({p.facts.name for p in due} - existing))
        ],
        cursor=next_cursor,
        asset_events=report,
    )
