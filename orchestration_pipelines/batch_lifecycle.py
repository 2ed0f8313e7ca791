"""A landed batch is finished only when it is published or quarantined.

Everything else is work still owed: a batch whose run is queued or running is in flight; a batch that
was attempted (or ingested) and whose runs all ended without publishing its content is stranded, and
is retried a bounded number of times with a growing back-off, so a batch whose cause was fixed (a model
trained, a gate threshold corrected) finishes without anyone re-dropping the file. These are plain
functions over facts that the sensor gathers from the Dagster instance and the quarantine folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pandas as pd

from orchestration_pipelines.reporting import markdown_table


class BatchState(StrEnum):
    PUBLISHED = "published"
    QUARANTINED = "quarantined"
    IN_FLIGHT = "in flight"
    NEW = "new"
    STRANDED = "stranded"


FINISHED_STATES = (BatchState.PUBLISHED, BatchState.QUARANTINED)


@dataclass(frozen=True)
class Attempt:
    """One run that tried to process a batch's content, oldest first in ``BatchFacts.attempts``."""

    run_id: str
    finished: bool
    ended_at: float | None = None
    will_be_retried: bool = False  # failed, and the instance's run retries will launch a new run


@dataclass(frozen=True)
class BatchFacts:
    name: str
    sha256: str
    published_sha256: str | None  # the content behind the latest publication of this partition
    quarantined: bool  # this name with exactly this content was quarantined
    attempts: tuple[Attempt, ...]


@dataclass(frozen=True)
class RetryBound:
    max_attempts: int = 3
    backoff_seconds: float = 60.0  # before the second attempt; doubles before each later one

    def retry_at(self, attempts: tuple[Attempt, ...]) -> float | None:
        """When the next attempt may start, or None once the bound is spent."""
        if len(attempts) >= self.max_attempts:
            return None
        last_end = attempts[-1].ended_at or 0.0
        return last_end + self.backoff_seconds * 2 ** (len(attempts) - 1)


@dataclass(frozen=True)
class BatchPlan:
    facts: BatchFacts
    state: BatchState
    launch: bool  # request a run now
    retry_at: float | None = None  # stranded: when the next attempt is due; None when none is left

    @property
    def attempt_number(self) -> int:
        """The number of the attempt a launch would start (1 for a batch never tried)."""
        return len(self.facts.attempts) + 1

    @property
    def exhausted(self) -> bool:
        return self.state is BatchState.STRANDED and self.retry_at is None


def batch_state(facts: BatchFacts) -> BatchState:
    if facts.published_sha256 == facts.sha256:
        return BatchState.PUBLISHED
    if facts.quarantined:
        return BatchState.QUARANTINED
    if not facts.attempts:
        return BatchState.NEW
    latest = facts.attempts[-1]
    if any(not a.finished for a in facts.attempts) or latest.will_be_retried:
        return BatchState.IN_FLIGHT
    return BatchState.STRANDED


def plan_batch(facts: BatchFacts, bound: RetryBound, now: float) -> BatchPlan:
    state = batch_state(facts)
    if state is BatchState.NEW:
        return BatchPlan(facts, state, launch=True)
    if state is BatchState.STRANDED:
        retry_at = bound.retry_at(facts.attempts)
        return BatchPlan(facts, state, launch=retry_at is not None and retry_at <= now, retry_at=retry_at)
    return BatchPlan(facts, state, launch=False)


def quarantined_contents(quarantine_dir: Path) -> set[tuple[str, str]]:
    """``(original file name, sha256)`` of every quarantined file, from its ``.reason.json``."""
    found = set()
    for reason_file in quarantine_dir.glob("*.reason.json") if quarantine_dir.exists() else []:
        try:
            reason = json.loads(reason_file.read_text())
        except (OSError, ValueError):
            continue  # a reason being written right now; the next tick reads it
        if isinstance(reason, dict) and reason.get("file") and reason.get("sha256"):
            found.add((reason["file"], reason["sha256"]))
    return found


def stranded_fingerprint(plans: list[BatchPlan]) -> str:
    """What the stranded-batches report says, without times: a new report is due when this changes."""
    return json.dumps(
        sorted(
            [p.facts.name, p.facts.sha256, len(p.facts.attempts), p.exhausted]
            for p in plans
            if p.state is BatchState.STRANDED
        )
    )


def stranded_table(plans: list[BatchPlan], last_errors: dict[str, str], now: float) -> pd.DataFrame:
    """One row per stranded batch: what an operator needs to decide whether to step in."""
    rows = []
    for plan in sorted((p for p in plans if p.state is BatchState.STRANDED), key=lambda p: p.facts.name):
        last_run = plan.facts.attempts[-1].run_id
        if plan.retry_at is None:
            next_try = "none left: fix the cause, then re-drop the file or re-run the partition"
        else:
            next_try = "due now" if plan.retry_at <= now else f"in {plan.retry_at - now:.0f} s"
        rows.append(
            {
                "batch": plan.facts.name,
                "sha256": plan.facts.sha256[:12],
                "attempts": len(plan.facts.attempts),
                "next attempt": next_try,
                "last run": last_run[:8],
                "last error": _one_line(last_errors.get(last_run, "unknown")),
            }
        )
    return pd.DataFrame(
        rows, columns=["batch", "sha256", "attempts", "next attempt", "last run", "last error"]
    )


def stranded_summary(
    plans: list[BatchPlan], last_errors: dict[str, str], now: float
) -> tuple[bool, str, str]:
    """``(passed, description, markdown table)`` for the ``no_stranded_batches`` check."""
    stranded = [p for p in plans if p.state is BatchState.STRANDED]
    exhausted = [p for p in stranded if p.exhausted]
    if not stranded:
        return True, "every landed batch is published, quarantined or in flight", "_no stranded batches_"
    description = (
        f"{len(stranded)} batch(es) ended without being published or quarantined; "
        f"{len(exhausted)} used all retries and need a person"
    )
    return False, description, markdown_table(stranded_table(plans, last_errors, now))


def state_counts(plans: list[BatchPlan]) -> str:
    counts = pd.Series([p.state.value for p in plans], dtype=object).value_counts()
    return ", ".join(f"{n} {state}" for state, n in counts.items()) or "no files"


def _one_line(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
