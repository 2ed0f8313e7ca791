"""The actions outbox against real receivers on 127.0.0.1, on SQLite and PostgreSQL."""

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest
from conftest import PG_ADMIN_DSN
from outbox_worker import DELIVERED
from webhook_server import FlakyReceiver

from orchestration_pipelines.audit import read_audit_log, verify_audit_chain
from orchestration_pipelines.connectors import FileSink, HttpConnector, connectors_by_action
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.review.actions import (
    deliver_pending_actions,
    due_actions,
    enqueue_action,
    list_actions,
    retry_failed_action,
)

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)
BLOCK = {"card_id": "C-17", "reason": "analyst approved the block"}


def _enqueue(store, case_id="T-1", action="block_card", payload=BLOCK, at=T0, **fields) -> str:
    with store.transaction() as cur:
        enqueued = enqueue_action(
            cur, workflow="fraud", case_id=case_id, action=action, payload=payload, now=at, **fields
        )
    return enqueued.action_id


def _cards(url: str, attempts: int = 2) -> dict:
    cards = HttpConnector(
        "card_service",
        url,
        ["block_card", "release_card"],
        attempts=attempts,
        backoff_seconds=0.01,
        timeout_seconds=5,
    )
    return connectors_by_action(cards)


def _events(store, event: str) -> list:
    return [e for e in read_audit_log(store, "fraud") if e.event == event]


def test_an_action_is_enqueued_once_per_key_and_only_with_its_transaction(opstore):
    first = _enqueue(opstore)
    with opstore.transaction() as cur:  # the same decision again adds nothing
        again = enqueue_action(cur, workflow="fraud", case_id="T-1", action="block_card", payload={}, now=T0)
    assert (again.action_id, again.idempotency_key, again.created) == (first, "fraud:T-1:block_card", False)
    with pytest.raises(RuntimeError), opstore.transaction() as cur:
        enqueue_action(cur, workflow="fraud", case_id="T-2", action="block_card", payload=BLOCK, now=T0)
        raise RuntimeError("the decision failed")
    (row,) = list_actions(opstore)
    assert (row.action_id, row.status, row.attempts, row.payload) == (first, "pending", 0, BLOCK)
    assert row.idempotency_key == "fraud:T-1:block_card"
    with pytest.raises(ValueError, match="not a valid name"), opstore.transaction() as cur:
        enqueue_action(cur, workflow="fraud", case_id="T-3", action="../block", payload={}, now=T0)
    with pytest.raises(ValueError, match="no time zone"), opstore.transaction() as cur:
        enqueue_action(
            cur, workflow="fraud", case_id="T-3", action="block_card", payload={}, now=T0.replace(tzinfo=None)
        )


def test_pending_actions_are_delivered_once_with_one_audit_entry_each(opstore, tmp_path):
    block = _enqueue(opstore, "T-1", at=T0 - timedelta(seconds=2))
    release = _enqueue(opstore, "T-2", "release_card", at=T0 - timedelta(seconds=1))
    sink = FileSink("card_service", tmp_path / "sink", ["block_card", "release_card"])
    summary = deliver_pending_actions(opstore, connectors_by_action(sink), T0)
    assert summary.ids("delivered") == [block, release]
    assert summary.counts == {"delivered": 2, "retrying": 0, "failed": 0, "recorded_elsewhere": 0}
    assert "| " + block + " | block_card | T-1 | delivered | 1 |" in summary.markdown()
    assert deliver_pending_actions(opstore, connectors_by_action(sink), T0).outcomes == []
    assert [(r["action"], r["idempotency_key"]) for r in sink.records()] == [
        ("block_card", "fraud:T-1:block_card"),
        ("release_card", "fraud:T-2:release_card"),
    ]
    assert {a.status for a in list_actions(opstore)} == {"delivered"}
    delivered = _events(opstore, "action_delivered")
    assert [(e.subject, e.actor, e.details["action_id"]) for e in delivered] == [
        ("T-1", "actions_outbox", block),
        ("T-2", "actions_outbox", release),
    ]
    assert verify_audit_chain(opstore) == []


def test_a_receiver_down_for_a_while_is_retried_after_the_back_off_then_gets_one_effect(opstore):
    action_id = _enqueue(opstore)
    backoff = timedelta(minutes=1)
    with FlakyReceiver(failures=2) as receiver:  # both HTTP attempts of the first pass fail
        first = deliver_pending_actions(opstore, _cards(receiver.base_url), T0, backoff=backoff)
        assert first.ids("retrying") == [action_id]
        assert "HTTP 503" in list_actions(opstore)[0].last_error
        assert due_actions(opstore, T0 + timedelta(seconds=59)) == []  # still backing off
        assert (
            deliver_pending_actions(
                opstore, _cards(receiver.base_url), T0 + timedelta(seconds=30), backoff=backoff
            ).outcomes
            == []
        )
        second = deliver_pending_actions(opstore, _cards(receiver.base_url), T0 + backoff, backoff=backoff)
    assert second.ids("delivered") == [action_id]
    assert [r["key"] for r in receiver.requests] == ["fraud:T-1:block_card"] * 3
    assert receiver.accepted == {"fraud:T-1:block_card": BLOCK}
    (row,) = list_actions(opstore)
    assert (row.status, row.attempts, row.last_error, row.delivered_at) == (
        "delivered",
        2,
        None,
        (T0 + backoff).isoformat(timespec="microseconds"),
    )
    (failed_attempt,) = _events(opstore, "action_attempt_failed")
    assert failed_attempt.details["next_attempt_at"] == (T0 + backoff).isoformat(timespec="microseconds")
    assert len(_events(opstore, "action_delivered")) == 1


def test_a_receiver_that_never_recovers_fails_the_action_after_the_last_attempt(opstore):
    action_id = _enqueue(opstore)
    with FlakyReceiver(failures=100) as receiver:
        outcomes = [
            deliver_pending_actions(
                opstore,
                _cards(receiver.base_url),
                T0 + timedelta(minutes=m),
                max_attempts=3,
                backoff=timedelta(minutes=1),
            ).counts
            for m in (0, 1, 3, 7)
        ]
    assert [o["retrying"] for o in outcomes] == [1, 1, 0, 0]
    assert [o["failed"] for o in outcomes] == [0, 0, 1, 0]  # third attempt fails it; nothing after
    (row,) = list_actions(opstore)
    assert (row.status, row.attempts) == ("failed", 3) and "HTTP 503" in row.last_error
    (failure,) = _events(opstore, "action_failed")
    assert failure.details["action_id"] == action_id and failure.details["attempts"] == 3
    assert receiver.accepted == {}

    # A person fixes the cause and retries it: a fresh round of attempts, the same key.
    assert retry_failed_action(opstore, action_id, "ops:ana", T0 + timedelta(minutes=8), max_attempts=3)
    assert not retry_failed_action(opstore, action_id, "ops:ana", T0 + timedelta(minutes=8), max_attempts=3)
    with FlakyReceiver(failures=2) as receiver:  # down for one more pass, then up
        later = [
            deliver_pending_actions(opstore, _cards(receiver.base_url), T0 + timedelta(minutes=m),
                                    max_attempts=3, backoff=timedelta(minutes=1)).counts
            for m in (9, 10)
        ]  # fmt: skip
    assert [(o["retrying"], o["delivered"]) for o in later] == [(1, 0), (0, 1)]
    assert list(receiver.accepted) == ["fraud:T-1:block_card"]
    (row,) = list_actions(opstore)
    assert (row.status, row.attempts) == ("delivered", 5)
    (retry,) = _events(opstore, "action_retry_requested")
    assert (retry.actor, retry.details["previous_error"]) == ("ops:ana", failure.details["error"])


def test_a_retried_refusal_gets_a_whole_round_of_attempts(opstore):
    action_id = _enqueue(opstore)
    with FlakyReceiver(failures=1, fail_status=409) as receiver:
        assert deliver_pending_actions(opstore, _cards(receiver.base_url), T0).ids("failed") == [action_id]
    assert retry_failed_action(opstore, action_id, "ops:ana", T0)
    with FlakyReceiver(failures=100) as receiver:
        passes = [
            deliver_pending_actions(opstore, _cards(receiver.base_url), T0 + timedelta(minutes=m)).counts
            for m in (1, 2, 4, 8, 16)
        ]
    assert [o["failed"] for o in passes] == [0, 0, 0, 0, 1]  # five attempts after the retry
    assert list_actions(opstore)[0].attempts == 10


def test_a_refusal_or_an_action_without_connector_fails_at_once(opstore):
    refused = _enqueue(opstore, "T-1", at=T0 - timedelta(seconds=2))
    unknown = _enqueue(opstore, "T-2", "send_reply", at=T0 - timedelta(seconds=1))
    with FlakyReceiver(failures=1, fail_status=422) as receiver:
        summary = deliver_pending_actions(opstore, _cards(receiver.base_url), T0)
    assert summary.ids("failed") == [refused, unknown]
    assert len(receiver.requests) == 1
    errors = {a.action_id: a.last_error for a in list_actions(opstore, status="failed")}
    assert "HTTP 422" in errors[refused] and "no connector delivers 'send_reply'" in errors[unknown]
    assert len(_events(opstore, "action_failed")) == 2


def test_racing_workers_take_effect_once_and_record_one_delivery(opstore):
    ids = [_enqueue(opstore, f"T-{i}") for i in range(6)]
    with FlakyReceiver() as receiver:
        workers = [
            threading.Thread(target=deliver_pending_actions, args=(opstore, _cards(receiver.base_url), T0))
            for _ in range(3)
        ]
        [w.start() for w in workers]
        [w.join() for w in workers]
    assert sorted(receiver.accepted) == sorted(f"fraud:T-{i}:block_card" for i in range(6))
    assert {a.status for a in list_actions(opstore)} == {"delivered"}
    assert sorted(e.details["action_id"] for e in _events(opstore, "action_delivered")) == sorted(ids)
    assert verify_audit_chain(opstore) == []


def test_a_worker_killed_between_delivery_and_bookkeeping_does_not_duplicate_the_effect(opstore):
    action_id = _enqueue(opstore)
    key = "fraud:T-1:block_card"
    with FlakyReceiver() as receiver:
        worker = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "outbox_worker.py"), opstore.url, receiver.base_url],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            assert worker.stdout.readline().split() == [*DELIVERED.split(), key]
            assert receiver.accepted == {key: BLOCK}  # the effect happened ...
            os.kill(worker.pid, signal.SIGKILL)
        finally:
            worker.kill()
            worker.wait(timeout=30)
        assert worker.returncode == -signal.SIGKILL
        (row,) = list_actions(opstore)
        assert (row.status, row.attempts) == ("pending", 0)  # ... but was never recorded
        assert _events(opstore, "action_delivered") == []

        summary = deliver_pending_actions(opstore, _cards(receiver.base_url), T0)
    assert summary.ids("delivered") == [action_id]
    assert [r["key"] for r in receiver.requests] == [key, key]  # sent again, with the same key
    assert receiver.accepted == {key: BLOCK}  # one effect
    assert list_actions(opstore)[0].status == "delivered"
    assert [e.details["action_id"] for e in _events(opstore, "action_delivered")] == [action_id]
    assert verify_audit_chain(opstore) == []


def _allow_connections(database: str, allowed: bool) -> None:
    """Take the store's PostgreSQL database down (refuse and cut every connection) or bring it back."""
    admin = psycopg2.connect(PG_ADMIN_DSN)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [database]
            )
    admin.close()


@pytest.mark.postgres
def test_a_store_down_after_a_delivery_stops_the_pass_and_the_next_pass_records_it_once(postgres_database):
    store = OpStore(postgres_database["url"])
    first = _enqueue(store, "T-1", at=T0 - timedelta(seconds=2))
    second = _enqueue(store, "T-2", at=T0 - timedelta(seconds=1))
    with FlakyReceiver() as receiver:
        cards = _cards(receiver.base_url)["block_card"]

        class StoreGoesDownAfterDelivery:
            actions = cards.actions

            def deliver(self, action, key, payload):
                receipt = cards.deliver(action, key, payload)
                _allow_connections(postgres_database["name"], False)
                return receipt

        with pytest.raises(psycopg2.OperationalError):
            deliver_pending_actions(store, dict.fromkeys(cards.actions, StoreGoesDownAfterDelivery()), T0)
        assert list(receiver.accepted) == ["fraud:T-1:block_card"]  # T-2 waits for the store
        _allow_connections(postgres_database["name"], True)
        summary = deliver_pending_actions(store, _cards(receiver.base_url), T0)
    assert summary.ids("delivered") == [first, second]
    assert [r["key"] for r in receiver.requests].count("fraud:T-1:block_card") == 2
    assert sorted(receiver.accepted) == ["fraud:T-1:block_card", "fraud:T-2:block_card"]
    assert [e.details["action_id"] for e in _events(store, "action_delivered")] == [first, second]
