import sqlite3
import threading

import pytest

from orchestration_pipelines.audit import append_audit_event, read_audit_log, verify_audit_chain
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
