"""Connectors to the systems that take the effects of decisions: the card service and the reply sender.

Each posts to ``{base_url}/{action}`` with the action's idempotency key when its URL is configured
(``OP_CARD_SERVICE_URL``, ``OP_REPLY_SENDER_URL``), and otherwise records each delivery as one file per
key under ``<data dir>/connector_sink/<service>/``, so the product runs without a network. Work orders
go to the maintenance system (``resources/maintenance.py``, ``OP_MAINTENANCE_WEBHOOK_URL``).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from dagster import ConfigurableResource
from pydantic import Field

from orchestration_pipelines.connectors import FileSink, HttpConnector
from orchestration_pipelines.settings import paths
from resources.env import env_or_default


class HttpServiceResource(ConfigurableResource):
    """An HTTP service taking some of the outbox's actions, or its local file sink when no URL is set."""

    service: ClassVar[str]
    actions: ClassVar[tuple[str, ...]]

    base_url: str = Field(default="", description="Empty: record deliveries in the local file sink.")
    timeout_seconds: float = Field(default=10.0, description="Per HTTP request.")
    attempts: int = Field(default=4, description="HTTP attempts per delivery pass (transient errors).")
    backoff_seconds: float = Field(default=0.5, description="First wait between attempts; doubles.")
    sink_dir: str = Field(default="", description="Local sink folder; empty: <data dir>/connector_sink.")

    def connector(self) -> HttpConnector | FileSink:
        if self.base_url:
            return HttpConnector(
                self.service,
                self.base_url,
                self.actions,
                attempts=self.attempts,
                backoff_seconds=self.backoff_seconds,
                timeout_seconds=self.timeout_seconds,
            )
        root = Path(self.sink_dir) if self.sink_dir else paths().data_dir / "connector_sink"
        return FileSink(self.service, root / self.service, self.actions)


class CardServiceResource(HttpServiceResource):
    """Blocks and releases cards (``OP_CARD_SERVICE_URL``): a fraud analyst's decision takes effect here."""

    service: ClassVar[str] = "card_service"
    actions: ClassVar[tuple[str, ...]] = ("block_card", "release_card")


class ReplySenderResource(HttpServiceResource):
    """Sends approved customer replies (``OP_REPLY_SENDER_URL``)."""

    service: ClassVar[str] = "reply_sender"
    actions: ClassVar[tuple[str, ...]] = ("send_reply",)


def connector_resources() -> dict:
    return {
        "card_service": CardServiceResource(base_url=env_or_default("OP_CARD_SERVICE_URL", "")),
        "reply_sender": ReplySenderResource(base_url=env_or_default("OP_REPLY_SENDER_URL", "")),
    }
