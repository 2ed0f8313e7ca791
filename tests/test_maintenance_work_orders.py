import json
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
from webhook_server import FlakyReceiver

from orchestration_pipelines.maintenance.work_orders import DeliveryFailed, MaintenanceSystem, Notifier
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
    system.close_work_order("PU-001:1")
    assert system.open_orders() == {"PU-002": "2026-11-22T08:00:00+00:00"}
    assert json.loads(system.work_orders()[0]["payload"]) == PAYLOAD


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
