import hashlib
import json
import sqlite3
import threading

import pytest
from opstore_helpers import LEGACY_DDL, execute_raw

from orchestration_pipelines.audit import (
    AuditAnchor,
    AuditRecord,
    append_audit_event,
    append_audit_record,
    deliver_records,
    read_audit_log,
    verify_against_anchors,
    verify_audit_chain,
)
from orchestration_pipelines.opstore import OpStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return OpStore(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    database = request.getfixturevalue("postgres_database")
    return OpStore(database["url"])


def test_events_chain_and_read_back(store):
    for i in range(3):
        append_audit_event(
            store, workflow="fraud", event="batch_published", subject=f"b{i}", details={"rows": i}
        )
    append_audit_event(
        store, workflow="other", event="x", subject="y", details={}, actor="alice", run_id="r1"
    )
    entries = read_audit_log(store, "fraud")
    assert [e.seq for e in entries] == [1, 2, 3] and entries[2].details == {"rows": 2}
    assert entries[1].prev_hash == entries[0].entry_hash
    assert read_audit_log(store)[-1].actor == "alice"
    assert verify_audit_chain(store) == []


def test_concurrent_writers_never_fork_the_chain(store):
    def write(worker: int) -> None:
        for i in range(10):
            append_audit_event(store, workflow="fraud", event="e", subject=f"{worker}-{i}", details={})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert [e.seq for e in read_audit_log(store)] == list(range(1, 41))
    assert verify_audit_chain(store) == []


def test_tampering_is_detected(tmp_path):
    store = OpStore(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    for i in range(4):
        append_audit_event(
            store, workflow="fraud", event="model_promoted", subject=f"v{i}", details={"ok": True}
        )
    with sqlite3.connect(tmp_path / "ops.sqlite") as con:
        con.execute("UPDATE audit_log SET details = '{\"ok\": false}' WHERE seq = 2")
    assert verify_audit_chain(store) == [2]
    with sqlite3.connect(tmp_path / "ops.sqlite") as con:
        con.execute("DELETE FROM audit_log WHERE seq = 3")
    assert verify_audit_chain(store) == [2, 4]


def test_store_repr_hides_credentials():
    assert "s3cret" not in repr(OpStore("postgresql://app:s3cret@db.internal:5432/ops"))
    with pytest.raises(ValueError, match="unsupported"):
        OpStore("mysql://x")


def record(n: int, event: str = "batch_published") -> AuditRecord:
    return AuditRecord(f"{event}:{n}", "fraud", event, f"b{n}", {"rows": n})


def test_an_event_id_is_appended_once_even_by_racing_writers(store):
    first = append_audit_record(store, record(1))
    assert append_audit_record(store, record(1)) == first
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(append_audit_record(store, record(2))))
        for _ in range(4)
    ]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len({r.seq for r in results}) == 1
    assert [e.event_id for e in read_audit_log(store)] == ["batch_published:1", "batch_published:2"]
    assert deliver_records(store, [record(1), record(3), record(2)])[0].event_id == "batch_published:3"
    assert [e.seq for e in read_audit_log(store)] == [1, 2, 3] and verify_audit_chain(store) == []


def test_a_log_written_before_event_ids_gains_the_column_and_keeps_verifying(store):
    fields = (
        1,
        "2026-11-01T00:00:00+00:00",
        "fraud",
        "batch_published",
        "old.csv",
        "system",
        None,
        "{}",
        "0" * 64,
    )
    old_hash = hashlib.sha256(json.dumps(fields, separators=(",", ":")).encode()).hexdigest()
    execute_raw(  # as the code before migrations left it: the store must adopt it on first use
        store.url,
        [
            (LEGACY_DDL[0], ()),
            ("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [*fields, old_hash]),
        ],
    )
    assert append_audit_record(store, record(2)).prev_hash == old_hash
    assert append_audit_record(store, record(2)).seq == 2  # idempotent on the migrated log too
    assert [e.event_id for e in read_audit_log(store)] == [None, "batch_published:2"]
    assert verify_audit_chain(store) == []


def _tamper(store: OpStore, sql: str, params=()) -> None:
    with store.transaction(exclusive=True) as cur:
        cur.execute(sql, params)


def test_anchors_reveal_edits_truncation_and_rewrites(store):
    entries = [append_audit_record(store, record(n)) for n in range(1, 6)]
    anchors = [
        AuditAnchor(e.seq, e.entry_hash, f"fraud/decisions b{e.seq}") for e in (entries[1], entries[4])
    ]
    assert verify_against_anchors(store, anchors) == []

    _tamper(store, "UPDATE audit_log SET details = ? WHERE seq = 3", ['{"rows": 300}'])
    assert verify_against_anchors(store, anchors) == [
        "edited: entry 3 no longer matches its hash or its predecessor"
    ]
    _tamper(store, "UPDATE audit_log SET details = ? WHERE seq = 3", ['{"rows": 3}'])
    assert verify_against_anchors(store, anchors) == []

    # Dropping the tail leaves a chain that is intact on its own: only the anchor reveals it.
    _tamper(store, "DELETE FROM audit_log WHERE seq >= 4")
    assert verify_audit_chain(store) == []
    (truncated,) = verify_against_anchors(store, anchors)
    assert (
        truncated.startswith("truncated: fraud/decisions b5 anchored entry 5")
        and "ends at entry 3" in truncated
    )

    # A rewritten history is internally consistent too.
    for n in (40, 50):
        append_audit_record(store, record(n))
    assert verify_audit_chain(store) == []
    (rewritten,) = verify_against_anchors(store, anchors)
    assert rewritten.startswith("rewritten: entry 5")
