import json
import socket
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
from webhook_server import FlakyReceiver

from orchestration_pipelines.audit import read_audit_log, verify_audit_chain
from orchestration_pipelines.maintenance.work_orders import (
    DeliveryFailed,
    MaintenanceSystem,
    Notifier,
    orders_closed_by_events,
)
from orchestration_pipelines.opstore import OpStore

AT = "2026-11-23T10:00:00+00:00"
PAYLOAD = {"machine_id": "PU-001", "confidence": 0.9, "downtime_start": "2026-11-24T06:00:00+00:00"}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return OpStore(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    return OpStore(request.getfixturevalue("postgres_database")["url"])


def _system(store, url, attempts=5):
    return MaintenanceSystem(store, url, attempts=attempts, backoff_seconds=0.01)


def test_a_receiver_that_fails_for_a_while_gets_exactly_one_work_order(store):
    with FlakyReceiver(failures=3) as receiver:
        first = _system(store, receiver.url).open_work_order(
            "PU-001:20261123T1000", "PU-001", "fluids", AT, PAYLOAD, "r1"
        )
        again = _system(store, receiver.url).open_work_order(
            "PU-001:20261123T1000", "PU-001", "fluids", AT, PAYLOAD, "r2"
        )
    assert (first.created, first.delivered, first.attempts) == (True, True, 4)
    assert (again.created, again.delivered, again.attempts) == (False, True, 0)  # a re-run sends nothing
    assert len(receiver.requests) == 4
    assert {r["key"] for r in receiver.requests} == {"PU-001:20261123T1000"}
    assert receiver.accepted["PU-001:20261123T1000"]["machine_id"] == "PU-001"
    (row,) = _system(store, None).work_orders()
    assert (row["delivery"], row["delivery_attempts"], row["status"], row["run_id"]) == (
        "delivered",
        4,
        "open",
        "r1",
    )


def test_a_receiver_down_longer_than_the_retries_leaves_the_order_pending_then_it_is_resent(store):
    key = "CO-001:20261123T0800"
    with FlakyReceiver(failures=10) as receiver:
        with pytest.raises(DeliveryFailed, match="after 3 attempts: HTTP 503"):
            _system(store, receiver.url, attempts=3).open_work_order(
                key, "CO-001", "fluids", AT, PAYLOAD, "r1"
            )
        (row,) = _system(store, None).work_orders()
        assert (row["delivery"], row["delivery_attempts"]) == ("pending", 3)
        assert "503" in row["last_error"]
        receiver.failures = 0  # recovers
        retry = _system(store, receiver.url).open_work_order(
            key, "CO-001", "fluids", AT, {"changed": True}, "r2"
        )
    assert (retry.created, retry.delivered) == (False, True)
    assert list(receiver.accepted) == [key]
    assert receiver.accepted[key]["confidence"] == 0.9  # the recorded order, not the second caller's
    (row,) = _system(store, None).work_orders()
    assert row["delivery"] == "delivered" and row["last_error"] is None and row["run_id"] == "r1"


def test_an_unreachable_webhook_and_a_refusing_one_fail_clearly(store, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(DeliveryFailed, match="URLError"):
        _system(store, f"http://127.0.0.1:{closed_port}/x", attempts=2).open_work_order(
            "A:1", "A", "t", AT, PAYLOAD, None
        )
    with (
        FlakyReceiver(failures=1, fail_status=400) as receiver,
        pytest.raises(DeliveryFailed, match="refused"),
    ):
        _system(store, receiver.url).open_work_order("B:1", "B", "t", AT, PAYLOAD, None)
    assert len(receiver.requests) == 1  # a 400 is not retried


def test_racing_runs_for_one_episode_create_one_row(store):
    with FlakyReceiver(failures=2) as receiver:
        system = _system(store, receiver.url)
        with ThreadPoolExecutor(4) as pool:
            results = list(
                pool.map(
                    lambda _: system.open_work_order("SP-002:1", "SP-002", "machining", AT, PAYLOAD, None),
                    range(4),
                )
            )
    assert sum(r.created for r in results) == 1
    assert len(_system(store, None).work_orders()) == 1
    assert list(receiver.accepted) == ["SP-002:1"]


def test_open_orders_drive_suppression_until_closed(store):
    system = _system(store, None)
    system.open_work_order("PU-001:1", "PU-001", "fluids", AT, PAYLOAD, None)
    system.open_work_order("PU-002:1", "PU-002", "fluids", AT, PAYLOAD, None)
    system.open_work_order("PU-002:2", "PU-002", "fluids", "2026-11-22T08:00:00+00:00", PAYLOAD, None)
    assert system.open_orders() == {"PU-001": AT, "PU-002": "2026-11-22T08:00:00+00:00"}
    assert system.close_work_order("PU-001:1", {"closed_at": "2026-11-23T18:00:00+00:00"}, "r9") is True
    assert system.close_work_order("PU-001:1", {"closed_at": "later"}, "r10") is False  # already closed
    assert system.open_orders() == {"PU-002": "2026-11-22T08:00:00+00:00"}
    assert json.loads(system.work_orders()[0]["payload"]) == PAYLOAD
    closed = [e for e in read_audit_log(store, "maintenance") if e.event == "work_order_closed"]
    assert [(e.subject, e.run_id, e.details) for e in closed] == [
        ("PU-001:1", "r9", {"closed_at": "2026-11-23T18:00:00+00:00"})
    ]


def _refuse_audit_entries(store: OpStore, refuse: bool) -> None:
    """A trigger that makes every audit insert fail: the store is up, only the audit write breaks."""
    read_audit_log(store)  # the log exists
    with store.transaction() as cur:
        if store.dialect == "sqlite":
            cur.execute(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'no'); END"
                if refuse
                else "DROP TRIGGER refuse_audit"
            )
        elif refuse:
            cur.execute(
                "CREATE OR REPLACE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'no'; "
                "END $$ "
                "LANGUAGE plpgsql"
            )
            cur.execute(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        else:
            cur.execute("DROP TRIGGER refuse_audit ON audit_log")


def test_a_work_order_and_its_audit_entry_are_written_together_or_not_at_all(store):
    system = _system(store, None)
    _refuse_audit_entries(store, refuse=True)
    with pytest.raises(Exception, match="no"):
        system.open_work_order("PU-001:1", "PU-001", "fluids", AT, PAYLOAD, "r1")
    assert system.work_orders() == [] and system.open_orders() == {}  # no order without its entry
    _refuse_audit_entries(store, refuse=False)
    assert system.open_work_order("PU-001:1", "PU-001", "fluids", AT, PAYLOAD, "r2").created
    assert not system.open_work_order("PU-001:1", "PU-001", "fluids", AT, PAYLOAD, "r3").created
    _refuse_audit_entries(store, refuse=True)
    with pytest.raises(Exception, match="no"):
        system.close_work_order("PU-001:1", {"closed_at": "x"}, "r4")
    assert system.open_orders() == {"PU-001": AT}  # still open: the close rolled back with its entry
    _refuse_audit_entries(store, refuse=False)
    entries = read_audit_log(store, "maintenance")
    assert [(e.event, e.subject, e.run_id) for e in entries] == [("work_order_opened", "PU-001:1", "r2")]
    assert entries[0].details == PAYLOAD and verify_audit_chain(store) == []


def test_maintenance_done_after_the_alert_closes_the_order_and_earlier_events_do_not():
    orders = pd.DataFrame(
        {
            "work_order_key": ["PU-001:a", "PU-002:a", "SP-001:a"],
            "machine_id": ["PU-001", "PU-002", "SP-001"],
            "alerted_at": pd.to_datetime(["2026-11-23T10:00Z", "2026-11-23T10:00Z", "2026-11-23T10:00Z"]),
        }
    )
    events = pd.DataFrame(
        [
            ("PU-001", "2026-11-22T09:00Z", "maintenance_end", "preventive"),  # before the alert
            ("PU-001", "2026-11-23T12:00Z", "maintenance_start", "repair"),
            ("PU-001", "2026-11-23T16:00Z", "maintenance_end", "repair"),  # closes PU-001:a
            ("PU-001", "2026-11-24T16:00Z", "maintenance_end", "preventive"),  # later: not the first
            ("PU-002", "2026-11-23T11:00Z", "restart", ""),  # a restart is not maintenance
            ("SP-001", "2026-11-25T02:00Z", "maintenance_end", "repair"),  # after ``until``
        ],
        columns=["machine_id", "timestamp", "event", "code"],
    )
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
    closed = orders_closed_by_events(orders, events, until=pd.Timestamp("2026-11-25T00:00Z"))
    assert closed.to_dict("records") == [
        {
            "work_order_key": "PU-001:a",
            "machine_id": "PU-001",
            "closed_at": pd.Timestamp("2026-11-23T16:00Z"),
            "code": "repair",
        }
    ]


def test_the_team_is_notified_once_per_key(store):
    with FlakyReceiver(failures=1) as receiver:
        notifier = Notifier(store, receiver.url, backoff_seconds=0.01)
        assert notifier.notify("PU-001:1", "fluids", "Work order PU-001", "vibration rising") is True
        assert notifier.notify("PU-001:1", "fluids", "Work order PU-001", "vibration rising") is False
    assert [r["key"] for r in receiver.requests] == ["PU-001:1", "PU-001:1"]  # one failure, one delivery
    assert receiver.accepted["PU-001:1"]["team"] == "fluids"
    silent = Notifier(store, None)
    assert (
        silent.notify("X:1", "fluids", "s", "b") is True and silent.notify("X:1", "fluids", "s", "b") is False
    )
