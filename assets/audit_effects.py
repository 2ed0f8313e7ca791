"""Dagster side of effects shared by the workflows: audit anchors in materialization metadata, and the
result of the blocking check that gates a model promotion."""

from __future__ import annotations

from dagster import AssetCheckResult, Failure, MetadataValue

from orchestration_pipelines.audit import AuditEntry


def audit_anchor(entry: AuditEntry | None, retries_left: bool) -> dict[str, MetadataValue]:
    """The chain head after this effect's entry, for ``audit verify``; or say that delivery is pending.

    While step retries remain, an undelivered record fails the step (the retry only delivers); after
    the last one the effect is reported with ``audit_pending`` and a reconciler delivers it later.
    """
    if entry is not None:
        return {"audit_seq": MetadataValue.int(entry.seq), "audit_hash": entry.entry_hash}
    if retries_left:
        raise Failure("audit delivery failed; the record waits in the outbox and a retry delivers it")
    return {"audit_pending": True}


def promotion_check_result(candidate: dict, verdict: tuple[bool, str]) -> AssetCheckResult:
    """The not-worse check's result for a candidate card (its ``version`` and ``baseline``, the current
    model's card or None): passed or not, why, and which two versions were compared."""
    passed, why = verdict
    baseline = candidate["baseline"]
    return AssetCheckResult(
        passed=passed,
        description=why,
        metadata={"candidate": candidate["version"], "current": baseline["version"] if baseline else "none"},
    )
