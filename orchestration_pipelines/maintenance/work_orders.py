"""Work orders in the maintenance system: a table in the operational store plus an HTTP webhook.

One work order per machine and alert episode: the episode id is the idempotency key of the table row
and of every webhook delivery (``Idempotency-Key`` header), so a re-run, a retry or a second run of the
same day never opens a second order or sends a different one. The row is written first (pending), then
delivered with retries; a delivery that keeps failing leaves the row pending with its error, and the
next attempt sends the same key again. Team notifications use the same outbox pattern.

Opening and closing an order write its audit entry in the same operational-store transaction as the
row (the audit log lives in that store), so the effect and its entry never diverge. An order closes
when the machine reports maintenance done after the order was raised (``orders_closed_by_events``);
suppression of the machine's alerts then ends and a new episode can alert again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from orchestration_pipelines.audit import AuditRecord, append_audit_in
from orchestration_pipelines.connectors import DeliveryFailed, DeliveryRefused, checked_action, post_json
from orchestration_pipelines.opstore import OpStore

WORKFLOW = "maintenance"
WORK_ORDERS_LOCK = "maintenance_work_orders"  # opening and closing orders run one at a time
MAINTENANCE_DONE = "maintenance_end"  # the event log's mark that a machine is back from maintenance


@dataclass(frozen=True)
class Delivery:
    key: str
    created: bool  # False when the key already existed (a re-run)
    delivered: bool
    attempts: int


def _now() -> str:
    return datetime.now(UTC).isoformat()


class _WebhookOutbox:
    """A table of messages keyed for idempotency, delivered to a webhook with retries."""

    table = key_column = ""

    def __init__(
        self,
        store: OpStore,
        webhook_url: str | None,
        attempts: int = 5,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 10.0,
    ):
        self.store = store
        self.webhook_url = webhook_url
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.timeout_seconds = timeout_seconds

    def _deliver(self, key: str, payload: dict) -> int:
        """Send and record the outcome; a failure is recorded and raised."""
        try:
            used = post_json(self.webhook_url, payload, key, self.attempts, self.backoff_seconds,
                             self.timeout_seconds)  # fmt: skip
        except DeliveryFailed as exc:
            self._record(key, "pending", self.attempts, str(exc))
            raise
        self._record(key, "delivered", used, None)
        return used

    def _record(self, key: str, delivery: str, attempts: int, error: str | None) -> None:
        with self.store.transaction() as cur:
            cur.execute(
                f"UPDATE {self.table} SET delivery = ?, delivery_attempts = delivery_attempts + ?, "
                f"delivered_at = ?, last_error = ? WHERE {self.key_column} = ?",
                (delivery, attempts, _now() if delivery == "delivered" else None, error, key),
            )


class MaintenanceSystem(_WebhookOutbox):
    """The connector: ``open_work_order`` is safe to call any number of times for one episode."""

    table, key_column = "maintenance_work_orders", "work_order_key"
    name, actions = "maintenance_system", frozenset({"open_work_order"})
    ORDER_FIELDS = ("machine_id", "team", "alerted_at")

    def deliver(self, action: str, idempotency_key: str, payload: dict[str, Any]) -> str:
        """Outbox connector: a reviewer's ``open_work_order`` becomes one order here per key. A decision's
        payload nests the reviewed alert under ``context``: the order carries it flat, like the orders
        the workflow opens itself, beside the decision (who, what, which item)."""
        checked_action(self.name, self.actions, action)
        fields = {**(payload.get("context") or {}), **{k: v for k, v in payload.items() if k != "context"}}
        missing = [name for name in self.ORDER_FIELDS if not fields.get(name)]
        if missing:
            raise DeliveryRefused(f"open_work_order {idempotency_key} lacks {', '.join(missing)}")
        machine_id, team, alerted_at = (str(fields[name]) for name in self.ORDER_FIELDS)
        order = self.open_work_order(idempotency_key, machine_id, team, alerted_at, fields, run_id=None)
        state = "opened" if order.created else "already open"
        where = "delivered to its webhook" if self.webhook_url else "recorded, no webhook configured"
        return f"{self.name}: work order {idempotency_key} {state} ({where})"

    def open_work_order(
        self, key: str, machine_id: str, team: str, alerted_at: str, payload: dict, run_id: str | None
    ) -> Delivery:
        """Record the order under ``key`` with its ``work_order_opened`` audit entry (once, together),
        then deliver it (until delivered once)."""
        payload_json = json.dumps(payload, sort_keys=True, default=str)
        with self.store.transaction(lock=WORK_ORDERS_LOCK) as cur:  # read-then-insert: one at a time
            existing = cur.execute(
                "SELECT delivery, payload FROM maintenance_work_orders WHERE work_order_key = ?", (key,)
            ).fetchone()
            if existing is None:
                cur.execute(
                    "INSERT INTO maintenance_work_orders (work_order_key, machine_id, team, alerted_at, "
                    "status, payload, created_at, run_id, delivery, delivery_attempts) "
                    "VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, 0)",
                    (key, machine_id, team, alerted_at, payload_json, _now(), run_id,
                     "pending" if self.webhook_url else "not_configured"),
                )  # fmt: skip
                append_audit_in(cur, _work_order_record("work_order_opened", key, payload, run_id))
        if existing is not None and existing[0] == "delivered":
            return Delivery(key, created=False, delivered=True, attempts=0)
        if not self.webhook_url:
            return Delivery(key, created=existing is None, delivered=False, attempts=0)
        stored = json.loads(existing[1]) if existing is not None else payload  # resend what was recorded
        used = self._deliver(key, {"work_order_key": key, **stored})
        return Delivery(key, created=existing is None, delivered=True, attempts=used)

    def open_orders(self) -> dict[str, str]:
        """Machine -> alert time (ISO 8601) of its earliest open work order, for suppression."""
        with self.store.transaction() as cur:
            cur.execute(
                "SELECT machine_id, min(alerted_at) FROM maintenance_work_orders WHERE status = 'open' "
                "GROUP BY machine_id"
            )
            return dict(cur.fetchall())

    def open_order_list(self) -> pd.DataFrame:
        """Every open order: work_order_key, machine_id, alerted_at (UTC)."""
        with self.store.transaction() as cur:
            cur.execute(
                "SELECT work_order_key, machine_id, alerted_at FROM maintenance_work_orders "
                "WHERE status = 'open' ORDER BY work_order_key"
            )
            orders = pd.DataFrame(cur.fetchall(), columns=["work_order_key", "machine_id", "alerted_at"])
        orders["alerted_at"] = pd.to_datetime(orders["alerted_at"], utc=True, format="ISO8601")
        return orders

    def close_work_order(self, key: str, details: dict, run_id: str | None = None) -> bool:
        """Close an open order with its ``work_order_closed`` entry, together; False if it was not open."""
        with self.store.transaction(lock=WORK_ORDERS_LOCK) as cur:
            closed = cur.execute(
                "UPDATE maintenance_work_orders SET status = 'closed' "
                "WHERE work_order_key = ? AND status = 'open' RETURNING work_order_key",
                (key,),
            ).fetchone()
            if closed:
                append_audit_in(cur, _work_order_record("work_order_closed", key, details, run_id))
        return closed is not None

    def work_orders(self) -> list[dict[str, Any]]:
        names = ["work_order_key", "machine_id", "team", "alerted_at", "status", "payload", "run_id",
                 "delivery", "delivery_attempts", "last_error"]  # fmt: skip
        with self.store.transaction() as cur:
            cur.execute(f"SELECT {', '.join(names)} FROM maintenance_work_orders ORDER BY work_order_key")
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _work_order_record(event: str, key: str, details: dict, run_id: str | None) -> AuditRecord:
    """One entry per order and event: the key makes a re-run's entry the same entry."""
    return AuditRecord(
        event_id=f"{event}:{key}", workflow=WORKFLOW, event=event, subject=key, details=details, run_id=run_id
    )


def orders_closed_by_events(orders: pd.DataFrame, events: pd.DataFrame, until: pd.Timestamp) -> pd.DataFrame:
    """The open ``orders`` that a later maintenance-done event of their machine closes, before ``until``.

    ``orders``: work_order_key, machine_id, alerted_at; ``events``: the machine event log. Returns
    work_order_key, machine_id, closed_at (the first such event after the order's alert) and code
    (preventive or repair). An event before the alert belongs to an earlier episode and closes nothing.
    """
    done = events[(events["event"] == MAINTENANCE_DONE) & (events["timestamp"] < until)]
    pairs = orders.merge(done[["machine_id", "timestamp", "code"]], on="machine_id")
    pairs = pairs[pairs["timestamp"] > pairs["alerted_at"]].sort_values("timestamp", kind="stable")
    first = pairs.drop_duplicates("work_order_key").rename(columns={"timestamp": "closed_at"})
    return first[["work_order_key", "machine_id", "closed_at", "code"]].reset_index(drop=True)


class Notifier(_WebhookOutbox):
    """Tells the owning team, once per key: an outbox row, then the team webhook when one is configured."""

    table, key_column = "maintenance_notifications", "notification_key"

    def notify(self, key: str, team: str, subject: str, body: str) -> bool:
        """True when this call recorded (and delivered) the message, False when it had been sent before."""
        with self.store.transaction(exclusive=True) as cur:
            existing = cur.execute(
                "SELECT delivery FROM maintenance_notifications WHERE notification_key = ?", (key,)
            ).fetchone()
            created = (
                existing is None
                and cur.execute(
                    "INSERT INTO maintenance_notifications (notification_key, team, subject, body, "
                    "created_at, delivery, delivery_attempts) VALUES (?, ?, ?, ?, ?, ?, 0) "
                    "ON CONFLICT (notification_key) DO NOTHING RETURNING notification_key",
                    (key, team, subject, body, _now(), "pending" if self.webhook_url else "recorded"),
                ).fetchone()
                is not None
            )
        if (existing is not None and existing[0] != "pending") or not self.webhook_url:
            return created
        self._deliver(key, {"notification_key": key, "team": team, "subject": subject, "body": body})
        return created or existing is not None
