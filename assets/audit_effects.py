"""Dagster side of the audit outbox, shared by the workflows: sweep pending records, anchor the chain."""

from __future__ import annotations

from dagster import Failure, MetadataValue

from orchestration_pipelines.audit import AuditEntry, deliver_pending_audit
from orchestration_pipelines.opstore import OpStore


def reconcile_audit(store: OpStore, log, **sources) -> None:
    """Deliver audit records that earlier effects could not; never a reason to stop this step."""
    try:
        if delivered := deliver_pending_audit(store, **sources):
            log.info(f"delivered {len(delivered)} pending audit record(s)")
    except Exception as exc:  # the store may still be down; the step's own delivery says so
        log.warning(f"pending audit records not delivered yet: {exc}")


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
