"""Append-only, hash-chained audit log in the operational store.

Every decision the platform takes (a published batch, a promoted model, a quarantined file, a
routing choice) is appended here. The API offers no update or delete, and each entry carries the
hash of its predecessor, so a later edit or deletion of any row breaks the chain and
``verify_audit_chain`` names where.

An effect and its audit entry must never diverge, yet the effect (a warehouse transaction, a model
pointer, a quarantined file) and the store are different systems. So each effect carries its own
``AuditRecord`` (written atomically with it: the warehouse outbox, the registry pointer, the reason
file), delivery is idempotent by ``event_id``, and ``deliver_pending_audit`` sweeps what a failed
delivery left behind.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestration_pipelines.opstore import Cursor, OpStore

if TYPE_CHECKING:
    import duckdb

    from orchestration_pipelines.model_registry import ModelRegistry

GENESIS_HASH = "0" * 64

_COLUMNS = (
    "seq, recorded_at, workflow, event, subject, actor, run_id, details, prev_hash, entry_hash, event_id"
)
OUTBOX = "audit.outbox"  # in the warehouse, beside the effects it records
CHAIN_LOCK = "audit_chain"  # appends to the hash chain run one at a time


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    recorded_at: str
    workflow: str
    event: str
    subject: str
    actor: str
    run_id: str | None
    details: dict[str, Any]
    prev_hash: str
    entry_hash: str
    event_id: str | None = None


@dataclass(frozen=True)
class AuditRecord:
    """An audit entry not yet in the log: it travels with its effect until delivered."""

    event_id: str
    workflow: str
    event: str
    subject: str
    details: dict[str, Any]
    actor: str = "system"
    run_id: str | None = None

    @classmethod
    def new(cls, event: str, **fields: Any) -> AuditRecord:
        return cls(event_id=f"{event}:{uuid.uuid4().hex}", event=event, **fields)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _entry_hash(*fields: Any) -> str:
    return hashlib.sha256(json.dumps(fields, separators=(",", ":")).encode()).hexdigest()


def _hashed_fields(row: tuple) -> tuple:
    """What an entry's hash covers: its fields and predecessor, plus its event id when it has one
    (entries written before event ids existed keep their original hash)."""
    return (*row[:9], row[10]) if row[10] is not None else tuple(row[:9])


def _entry(row: tuple) -> AuditEntry:
    return AuditEntry(*row[:7], json.loads(row[7]), *row[8:11])


def append_audit_record(store: OpStore, record: AuditRecord) -> AuditEntry:
    """Append ``record`` once: a record whose ``event_id`` is already logged returns that entry.

    The chain lock keeps concurrent writers from forking the chain or adding one event twice.
    """
    with store.transaction(lock=CHAIN_LOCK) as cur:
        return append_audit_in(cur, record)


def append_audit_in(cur: Cursor, record: AuditRecord) -> AuditEntry:
    """Append ``record`` inside the caller's transaction, so the entry commits or rolls back with the
    effect it records (``cur`` must come from an exclusive transaction: SQLite has one writer)."""
    details_json = json.dumps(record.details, sort_keys=True, default=str)
    cur.lock(CHAIN_LOCK)
    existing = cur.execute(
        f"SELECT {_COLUMNS} FROM audit_log WHERE event_id = ?", [record.event_id]
    ).fetchone()
    if existing:
        return _entry(existing)
    last = cur.execute("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    recorded_at = datetime.now(UTC).isoformat()
    row = (
        seq,
        recorded_at,
        record.workflow,
        record.event,
        record.subject,
        record.actor,
        record.run_id,
        details_json,
        prev_hash,
        None,
        record.event_id,
    )
    entry_hash = _entry_hash(*_hashed_fields(row))
    row = (*row[:9], entry_hash, record.event_id)
    cur.execute(f"INSERT INTO audit_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    return _entry(row)


def append_audit_event(
    store: OpStore,
    *,
    workflow: str,
    event: str,
    subject: str,
    details: dict[str, Any],
    actor: str = "system",
    run_id: str | None = None,
) -> AuditEntry:
    """Append one event that has no effect of its own to travel with (e.g. a routing choice)."""
    record = AuditRecord.new(
        event, workflow=workflow, subject=subject, details=details, actor=actor, run_id=run_id
    )
    return append_audit_record(store, record)


def _rows(store: OpStore, where: str = "", params: tuple = ()) -> list[tuple]:
    with store.transaction() as cur:
        return cur.execute(f"SELECT {_COLUMNS} FROM audit_log {where} ORDER BY seq", params).fetchall()


def read_audit_log(
    store: OpStore, workflow: str | None = None, subjects: Collection[str] | None = None
) -> list[AuditEntry]:
    """Entries in chain order, optionally of one workflow and/or about some subjects (e.g. one case)."""
    clauses, params = [], []
    if workflow:
        clauses.append("workflow = ?")
        params.append(workflow)
    if subjects is not None:
        subjects = list(subjects) or [None]  # no subjects: nothing matches
        clauses.append(f"subject IN ({', '.join('?' * len(subjects))})")
        params.extend(subjects)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return [_entry(row) for row in _rows(store, where, tuple(params))]


def verify_audit_chain(store: OpStore) -> list[int]:
    """Sequence numbers whose row no longer matches its hash or its predecessor: empty when intact."""
    broken: list[int] = []
    expected_prev, expected_seq = GENESIS_HASH, 1
    for row in _rows(store):
        seq, prev_hash, entry_hash = row[0], row[8], row[9]
        if (
            seq != expected_seq
            or prev_hash != expected_prev
            or _entry_hash(*_hashed_fields(row)) != entry_hash
        ):
            broken.append(seq)
        expected_prev, expected_seq = entry_hash, seq + 1
    return broken


def _logged_event_ids(store: OpStore, event_ids: list[str]) -> set[str]:
    if not event_ids:
        return set()
    marks = ", ".join("?" * len(event_ids))
    with store.transaction() as cur:
        rows = cur.execute(f"SELECT event_id FROM audit_log WHERE event_id IN ({marks})", event_ids)
        return {event_id for (event_id,) in rows.fetchall()}


def deliver_records(store: OpStore, records: Iterable[AuditRecord]) -> list[AuditEntry]:
    """Deliver the records the log does not hold yet, in the given order; returns the new entries."""
    records = list(records)
    logged = _logged_event_ids(store, [r.event_id for r in records])
    return [append_audit_record(store, r) for r in records if r.event_id not in logged]


# --- The warehouse outbox: published batches -----------------------------------------------------

_OUTBOX_DDL = f"""
CREATE TABLE IF NOT EXISTS {OUTBOX} (
    event_id VARCHAR PRIMARY KEY,
    record JSON NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_seq BIGINT,
    delivered_hash VARCHAR
)
"""


def write_outbox_record(con: duckdb.DuckDBPyConnection, record: AuditRecord) -> None:
    """Put ``record`` in the warehouse outbox; call inside the transaction of the effect it records."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {OUTBOX.split('.')[0]}")
    con.execute(_OUTBOX_DDL)
    con.execute(
        f"INSERT INTO {OUTBOX} (event_id, record) VALUES (?, ?) ON CONFLICT DO NOTHING",
        [record.event_id, json.dumps(record.as_dict(), default=str)],
    )


def _has_outbox(con: duckdb.DuckDBPyConnection) -> bool:
    schema, table = OUTBOX.split(".")
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchall()[0][0]
    )


def deliver_outbox(
    con: duckdb.DuckDBPyConnection, store: OpStore, event_id: str | None = None
) -> list[AuditEntry]:
    """Deliver the pending outbox records, or only ``event_id`` (delivered or not), and mark them.

    A crash between the append and the mark is harmless: the next delivery finds the event logged
    and returns its existing entry.
    """
    if not _has_outbox(con):
        return []
    where = "event_id = ?" if event_id else "delivered_seq IS NULL"
    pending = con.execute(
        f"SELECT record FROM {OUTBOX} WHERE {where} ORDER BY created_at", [event_id] if event_id else []
    ).fetchall()
    entries = []
    for (raw,) in pending:
        entry = append_audit_record(store, AuditRecord(**json.loads(raw)))
        con.execute(
            f"UPDATE {OUTBOX} SET delivered_seq = ?, delivered_hash = ? WHERE event_id = ?",
            [entry.seq, entry.entry_hash, entry.event_id],
        )
        entries.append(entry)
    return entries


# --- Quarantine: the reason file carries the record ----------------------------------------------


def audit_record_for_quarantine(
    workflow: str, subject: str, reason: dict[str, Any], run_id: str | None
) -> dict[str, Any]:
    """``reason`` plus the ``audit`` record of its quarantine, to be written into the reason file."""
    record = AuditRecord.new(
        "batch_quarantined", workflow=workflow, subject=subject, details=reason, run_id=run_id
    )
    return {**reason, "audit": record.as_dict()}


def pending_quarantine_records(quarantine_root: Path) -> list[AuditRecord]:
    """The audit records carried by every reason file under ``quarantine_root``, oldest first."""
    records = []
    for path in sorted(quarantine_root.rglob("*.reason.json"), key=lambda p: p.stat().st_mtime):
        carried = json.loads(path.read_text()).get("audit")
        if carried:
            records.append(AuditRecord(**carried))
    return records


def deliver_quarantine_record(store: OpStore, reason: dict[str, Any], log) -> AuditEntry | None:
    """Deliver the record carried by ``reason``; if the store is down, the reconciler delivers it later."""
    try:
        return append_audit_record(store, AuditRecord(**reason["audit"]))
    except Exception as exc:  # any store failure leaves the record pending, not lost
        log.warning(f"audit delivery deferred ({exc}); the reason file keeps the record")
        return None


# --- Model promotion: the registry pointer carries the record ------------------------------------


def promote_with_audit(
    registry: ModelRegistry,
    store: OpStore,
    *,
    workflow: str,
    model_name: str,
    version: str,
    details: dict[str, Any],
    actor: str = "system",
    run_id: str | None = None,
) -> tuple[AuditRecord, AuditEntry | None]:
    """Promote ``version`` with its ``model_promoted`` record in the same pointer write, then deliver it.

    Returns the entry, or ``None`` when the store is unreachable (the record stays pending in the registry).
    """
    previous = registry.current_version(model_name)
    record = AuditRecord.new(
        "model_promoted",
        workflow=workflow,
        subject=version,
        details={"previous": previous, **details},
        actor=actor,
        run_id=run_id,
    )
    registry.promote_with_record(model_name, version, record.as_dict())
    try:
        return record, append_audit_record(store, record)
    except Exception:  # the promotion stands; its record waits in the registry
        return record, None


def deliver_pending_audit(
    store: OpStore,
    *,
    warehouse: duckdb.DuckDBPyConnection | None = None,
    registry: ModelRegistry | None = None,
    quarantine_root: Path | None = None,
) -> list[AuditEntry]:
    """The reconciler: deliver every record an effect carries but the log lacks; returns new entries."""
    entries = deliver_outbox(warehouse, store) if warehouse is not None else []
    if registry is not None:
        entries += deliver_records(store, [AuditRecord(**r) for r in registry.promotion_records()])
    if quarantine_root is not None and quarantine_root.exists():
        entries += deliver_records(store, pending_quarantine_records(quarantine_root))
    return entries


def deliver_pending_audit_or_warn(store: OpStore, log, **sources) -> None:
    """``deliver_pending_audit`` at the start of an effect's step: records earlier effects could not
    deliver go first, and a store still down is a warning, never a reason to stop the step."""
    try:
        if delivered := deliver_pending_audit(store, **sources):
            log.info(f"delivered {len(delivered)} pending audit record(s)")
    except Exception as exc:  # the step's own delivery reports the outage
        log.warning(f"pending audit records not delivered yet: {exc}")


# --- Anchors: the chain head as recorded in the orchestrator's own event log ---------------------


@dataclass(frozen=True)
class AuditAnchor:
    """An entry's sequence number and hash, recorded elsewhere when it was written."""

    seq: int
    entry_hash: str
    source: str  # where the anchor was recorded, for the message


def verify_against_anchors(store: OpStore, anchors: Iterable[AuditAnchor]) -> list[str]:
    """Every problem as a sentence; empty when the chain is intact and agrees with every anchor.

    The chain alone reveals edits in the middle; anchors also reveal a truncated tail (an anchored
    entry beyond the chain's end) and a rewritten history (an anchored entry whose hash changed).
    """
    rows = _rows(store)
    problems = [
        f"edited: entry {seq} no longer matches its hash or its predecessor"
        for seq in verify_audit_chain(store)
    ]
    hashes = {row[0]: row[9] for row in rows}
    head = rows[-1][0] if rows else 0
    for anchor in sorted(anchors, key=lambda a: a.seq):
        if anchor.seq > head:
            problems.append(
                f"truncated: {anchor.source} anchored entry {anchor.seq}, but the chain ends at entry {head}"
            )
        elif hashes.get(anchor.seq) != anchor.entry_hash:
            problems.append(
                f"rewritten: entry {anchor.seq} is missing or not the one anchored by {anchor.source}"
            )
    return problems
