"""Append-only, hash-chained audit log in the operational store.

Every decision the platform takes (a published batch, a promoted model, a quarantined file, a
routing choice) is appended here. The API offers no update or delete, and each entry carries the
hash of its predecessor, so a later edit or deletion of any row breaks the chain and
``verify_audit_chain`` names where.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestration_pipelines.opstore import OpStore

GENESIS_HASH = "0" * 64

_DDL = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq BIGINT PRIMARY KEY,
    recorded_at TEXT NOT NULL,
    workflow TEXT NOT NULL,
    event TEXT NOT NULL,
    subject TEXT NOT NULL,
    actor TEXT NOT NULL,
    run_id TEXT,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    entry_hash TEXT NOT NULL
)
"""
_COLUMNS = "seq, recorded_at, workflow, event, subject, actor, run_id, details, prev_hash, entry_hash"


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


def _entry_hash(*fields: Any) -> str:
    return hashlib.sha256(json.dumps(fields, separators=(",", ":")).encode()).hexdigest()


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
    """Append one event; the exclusive transaction keeps concurrent writers from forking the chain."""
    details_json = json.dumps(details, sort_keys=True, default=str)
    with store.transaction(exclusive=True) as cur:
        cur.execute(_DDL)
        last = cur.execute("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        recorded_at = datetime.now(UTC).isoformat()
        fields = (seq, recorded_at, workflow, event, subject, actor, run_id, details_json, prev_hash)
        entry_hash = _entry_hash(*fields)
        cur.execute(
            f"INSERT INTO audit_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [*fields, entry_hash]
        )
    return AuditEntry(
        seq, recorded_at, workflow, event, subject, actor, run_id, details, prev_hash, entry_hash
    )


def _rows(store: OpStore, where: str = "", params: tuple = ()) -> list[tuple]:
    with store.transaction() as cur:
        cur.execute(_DDL)
        return cur.execute(f"SELECT {_COLUMNS} FROM audit_log {where} ORDER BY seq", params).fetchall()


def read_audit_log(store: OpStore, workflow: str | None = None) -> list[AuditEntry]:
    rows = _rows(store, "WHERE workflow = ?", (workflow,)) if workflow else _rows(store)
    return [AuditEntry(*row[:7], json.loads(row[7]), row[8], row[9]) for row in rows]


def verify_audit_chain(store: OpStore) -> list[int]:
    """Sequence numbers whose row no longer matches its hash or its predecessor: empty when intact."""
    broken: list[int] = []
    expected_prev, expected_seq = GENESIS_HASH, 1
    for row in _rows(store):
        seq, prev_hash, entry_hash = row[0], row[8], row[9]
        if seq != expected_seq or prev_hash != expected_prev or _entry_hash(*row[:9]) != entry_hash:
            broken.append(seq)
        expected_prev, expected_seq = entry_hash, seq + 1
    return broken
