"""Connectors against real HTTP receivers on 127.0.0.1 and the local file sink."""

import json
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
from dagster import build_resources
from webhook_server import FlakyReceiver

from orchestration_pipelines.connectors import (
    DeliveryFailed,
    DeliveryRefused,
    FileSink,
    HttpConnector,
    connectors_by_action,
)
from orchestration_pipelines.maintenance.work_orders import MaintenanceSystem
from orchestration_pipelines.opstore import OpStore
from resources.connectors import CardServiceResource, ReplySenderResource, connector_resources

BLOCK = {"card_id": "C-17", "case_id": "T-900", "reason": "analyst approved the block"}


def _cards(url: str, attempts: int = 4, timeout: float = 5.0) -> HttpConnector:
    return HttpConnector(
        "card_service",
        url,
        ["block_card", "release_card"],
        attempts=attempts,
        backoff_seconds=0.01,
        timeout_seconds=timeout,
    )


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_transient_failures_are_retried_until_the_receiver_recovers(status):
    with FlakyReceiver(failures=2, fail_status=status) as receiver:
        receipt = _cards(receiver.base_url).deliver("block_card", "fraud:T-900:block_card", BLOCK)
    assert "after 3 attempt(s)" in receipt
    sent = [(r["key"], r["path"]) for r in receiver.requests]
    assert sent == [("fraud:T-900:block_card", "/block_card")] * 3
    assert receiver.accepted == {"fraud:T-900:block_card": BLOCK}


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_client_errors_are_refused_without_a_retry(status):
    with (
        FlakyReceiver(failures=1, fail_status=status) as receiver,
        pytest.raises(DeliveryRefused, match=f"HTTP {status}"),
    ):
        _cards(receiver.base_url).deliver("block_card", "k1", BLOCK)
    assert len(receiver.requests) == 1 and receiver.accepted == {}


def test_a_receiver_down_longer_than_the_retries_is_a_transient_failure():
    with (
        FlakyReceiver(failures=10) as receiver,
        pytest.raises(DeliveryFailed, match="after 3 attempts: HTTP 503") as failure,
    ):
        _cards(receiver.base_url, attempts=3).deliver("block_card", "k1", BLOCK)
    assert not isinstance(failure.value, DeliveryRefused)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(DeliveryFailed, match="URLError") as failure:
        _cards(f"http://127.0.0.1:{closed_port}", attempts=2).deliver("block_card", "k1", BLOCK)
    assert not isinstance(failure.value, DeliveryRefused)


def test_a_reply_lost_to_a_timeout_is_resent_with_the_same_key_and_takes_effect_once():
    with FlakyReceiver(slow_replies=1, slow_seconds=1.5) as receiver:
        receipt = _cards(receiver.base_url, timeout=0.5).deliver("block_card", "k-slow", BLOCK)
    assert "after 2 attempt(s)" in receipt
    assert [r["key"] for r in receiver.requests] == ["k-slow", "k-slow"]
    assert receiver.accepted == {"k-slow": BLOCK}


def test_an_action_the_connector_does_not_deliver_is_refused_before_any_request():
    with (
        FlakyReceiver() as receiver,
        pytest.raises(DeliveryRefused, match="does not deliver 'send_reply'"),
    ):
        _cards(receiver.base_url).deliver("send_reply", "k1", {})
    assert receiver.requests == []


def test_the_file_sink_records_each_key_once_even_under_racing_deliveries(tmp_path):
    sink = FileSink("card_service", tmp_path / "sink", ["block_card"])
    with ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(lambda _: sink.deliver("block_card", "k/../../escape", BLOCK), range(8)))
    assert sum("already recorded" not in r for r in receipts) == 1
    assert [r["payload"] for r in sink.records()] == [BLOCK]
    (recorded,) = (tmp_path / "sink").iterdir()  # the key cannot name a path: no temporary file left
    assert recorded.parent == tmp_path / "sink" and recorded.suffix == ".json"
    sink.deliver("block_card", "k2", {**BLOCK, "card_id": "C-18"})
    assert [r["idempotency_key"] for r in sink.records()] == ["k/../../escape", "k2"]
    with pytest.raises(DeliveryRefused):
        sink.deliver("send_reply", "k3", {})


def test_the_maintenance_system_is_the_work_order_connector(tmp_path):
    system = MaintenanceSystem(OpStore(f"sqlite:///{tmp_path / 'ops.sqlite'}"), None)
    order = {"machine_id": "PU-001", "team": "fluids", "alerted_at": "2026-11-23T10:00:00+00:00"}
    assert "opened" in system.deliver("open_work_order", "review:PU-001:1", order)
    assert "already open" in system.deliver("open_work_order", "review:PU-001:1", order)
    (row,) = system.work_orders()
    assert (row["work_order_key"], row["machine_id"], row["status"]) == ("review:PU-001:1", "PU-001", "open")
    reviewed = {"decision": "approve", "context": {**order, "machine_id": "PU-003"}}
    assert "opened" in system.deliver("open_work_order", "item-9:open_work_order", reviewed)
    assert system.open_orders()["PU-003"] == order["alerted_at"]
    orders = {row["work_order_key"]: json.loads(row["payload"]) for row in system.work_orders()}
    flat = orders["item-9:open_work_order"]
    assert (flat["machine_id"], flat["decision"], "context" in flat) == ("PU-003", "approve", False)
    with pytest.raises(DeliveryRefused, match="lacks team, alerted_at"):
        system.deliver("open_work_order", "review:PU-002:1", {"machine_id": "PU-002"})
    with pytest.raises(DeliveryRefused):
        system.deliver("block_card", "k", BLOCK)


def test_every_action_has_exactly_one_connector(tmp_path):
    cards = FileSink("card_service", tmp_path, ["block_card", "release_card"])
    replies = FileSink("reply_sender", tmp_path, ["send_reply"])
    routes = connectors_by_action(cards, replies)
    assert routes == {"block_card": cards, "release_card": cards, "send_reply": replies}
    with pytest.raises(ValueError, match="two connectors deliver 'send_reply'"):
        connectors_by_action(cards, replies, FileSink("other", tmp_path, ["send_reply"]))


def test_resources_post_to_the_configured_url_or_record_under_the_data_dir(data_env, monkeypatch):
    assert isinstance(CardServiceResource().connector(), FileSink)
    assert ReplySenderResource().connector().folder == data_env / "connector_sink" / "reply_sender"
    with FlakyReceiver() as receiver:
        monkeypatch.setenv("OP_CARD_SERVICE_URL", receiver.base_url)
        with build_resources(connector_resources()) as resources:
            cards, replies = resources.card_service.connector(), resources.reply_sender.connector()
            assert isinstance(cards, HttpConnector) and isinstance(replies, FileSink)
            cards.deliver("release_card", "k-release", BLOCK)
    assert receiver.accepted == {"k-release": BLOCK}
    assert receiver.requests[0]["path"] == "/release_card"
