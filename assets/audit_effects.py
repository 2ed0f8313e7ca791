"""Dagster side of effects shared by the workflows: delivering a published batch's audit record, audit
anchors in materialization metadata, and the result of the blocking check that gates a model
promotion."""

from __future__ import annotations

import logging

import duckdb
from dagster import AssetCheckResult, Failure, MetadataValue

from orchestration_pipelines.audit import AuditEntry, deliver_outbox
from orchestration_pipelines.opstore import OpStore


def deliver_published_record(
    con: duckdb.DuckDBPyConnection,
    store: OpStore,
    event_id: str,
    log: logging.Logger,  # a step's context.log is one
) -> AuditEntry | None:
    """The audit entry of the record a publish transaction left in the warehouse outbox, delivered now;
    None when the operational store fails (logged), and the record waits there for a retry or a
    reconciler."""
    try:
        return deliver_outbox(con, store, event_id)[0]
    except Exception as exc:  # any store failure: the record stays in the outbox
        log.warning(f"audit delivery of {event_id} failed, the record waits in the outbox: {exc}")
        return None


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
