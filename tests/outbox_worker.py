"""Test-only delivery worker: delivers the outbox like the job does, but stops for good right after the
first delivery reaches the receiver and before its bookkeeping, so a test can kill it at exactly that
point. Run as ``python tests/outbox_worker.py OPSTORE_URL CARD_SERVICE_URL``."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from orchestration_pipelines.connectors import HttpConnector
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.review.actions import deliver_pending_actions

DELIVERED = "delivered, not yet recorded:"


class StopAfterDelivery:
    """The real card-service connector, then a pause that never ends."""

    def __init__(self, inner: HttpConnector):
        self.inner, self.actions = inner, inner.actions

    def deliver(self, action: str, idempotency_key: str, payload: dict) -> str:
        receipt = self.inner.deliver(action, idempotency_key, payload)
        print(DELIVERED, idempotency_key, flush=True)
        time.sleep(3600)
        return receipt


def main(opstore_url: str, card_service_url: str) -> None:
    cards = StopAfterDelivery(HttpConnector("card_service", card_service_url, ["block_card", "release_card"]))
    deliver_pending_actions(OpStore(opstore_url), dict.fromkeys(cards.actions, cards), datetime.now(UTC))


if __name__ == "__main__":
    main(*sys.argv[1:3])
