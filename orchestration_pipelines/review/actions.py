"""The actions outbox: every outside effect of a decision, taking effect exactly once.

A decision enqueues its actions (``enqueue_action``) in the decision's own transaction, so an effect is
never lost nor made without its decision. Delivery is separate: ``deliver_pending_actions`` sends each
due action through the connector for its action name with its idempotency key, then records the outcome
and its audit entry in one transaction. A worker killed between the two leaves the action pending; the
next pass sends the same key again and the receiver, which keeps one effect per key, does not repeat it.
So the effect happens once and the log holds one delivery entry (its event id is the action's).

A transient failure is retried on later passes, each after a doubling back-off. After ``max_attempts``,
or at once when the receiver refuses, the action is ``failed`` with its last error and an audit entry,
and stays listed (the decisions sensor names it) until a person fixes the cause and retries it
(``retry_failed_action``): it then gets ``max_attempts`` more passes, with the same key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orchestration_pipelines.audit import CHAIN_LOCK, AuditRecord, append_audit_in
from orchestration_pipelines.connectors import Connector, DeliveryRefused, checked_name
from orchestration_pipelines.opstore import Cursor, OpStore, utc_iso

ACTOR = "actions_outbox"
ACTION_STATUSES = ("pending", "delivered", "failed")
DEFAULT_MAX_ATTEMPTS = 5
_COLUMNS = (
    "action_id, idempotency_key, workflow, case_id, item_id, action, payload_json, status, attempts, "
    "last_error, created_at, delivered_at"
)


@dataclass(frozen=True)
class OutboxAction:
    action_id: str
    idempotency_key: str
    workflow: str
    case_id: str
    item_id: str | None
    action: str
    payload: dict[str, Any]
    status: str
    attempts: int
    last_error: str | None
    created_at: str
    delivered_at: str | None

    @classmethod
    def from_row(cls, row: tuple) -> OutboxAction:
        return cls(*row[:6], json.loads(row[6]), *row[7:])


def default_idempotency_key(workflow: str, case_id: str, action: str, item_id: str | None) -> str:
    """One effect per decided item and action (per case and action without an item): deciding again,
    or retrying the decision, adds nothing."""
    return f"{item_id}:{action}" if item_id else f"{workflow}:{case_id}:{action}"


@dataclass(frozen=True)
class Enqueued:
    action_id: str
    idempotency_key: str
    created: bool  # False: the key was enqueued before, nothing changed


def enqueue_action(
    cursor: Cursor,
    *,
    workflow: str,
    case_id: str,
    action: str,
    payload: Mapping[str, Any],
    now: datetime,
    item_id: str | None = None,
    idempotency_key: str | None = None,
) -> Enqueued:
    """Add a pending action inside the caller's (the decision's) transaction. A key already enqueued
    changes nothing and names the existing action."""
    checked_name(action)
    key = idempotency_key or default_idempotency_key(workflow, case_id, action, item_id)
    inserted = cursor.execute(
        f"INSERT INTO actions_outbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, NULL, ?, NULL) "
        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING action_id",
        (
            f"act-{uuid.uuid4().hex}",
            key,
            workflow,
            case_id,
            item_id,
            action,
            json.dumps(dict(payload), sort_keys=True, default=str),
            utc_iso(now),
        ),
    ).fetchone()
    if inserted:
        return Enqueued(inserted[0], key, created=True)
    (existing,) = cursor.execute(
        "SELECT action_id FROM actions_outbox WHERE idempotency_key = ?", (key,)
    ).fetchone()
    return Enqueued(existing, key, created=False)


def list_actions(store: OpStore, status: str | None = None, case_id: str | None = None) -> list[OutboxAction]:
    """Outbox rows, oldest first, optionally of one status and one case."""
    where, params = [], []
    for column, value in (("status", status), ("case_id", case_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    with store.transaction() as cur:
        rows = cur.execute(
            f"SELECT {_COLUMNS} FROM actions_outbox {clause} ORDER BY created_at, action_id", params
        ).fetchall()
    return [OutboxAction.from_row(row) for row in rows]


def _failure_event_id(action_id: str, attempt: int) -> str:
    return f"action_attempt_failed:{action_id}:{attempt}"


def due_actions(store: OpStore, now: datetime) -> list[OutboxAction]:
    """Pending actions whose back-off has passed: never tried, or past the ``next_attempt_at`` their
    last failed attempt recorded (found by that entry's unique event id)."""
    pending = list_actions(store, status="pending")
    retried = {_failure_event_id(a.action_id, a.attempts): a for a in pending if a.attempts}
    next_attempt: dict[str, str] = {}
    if retried:
        marks = ", ".join("?" * len(retried))
        with store.transaction() as cur:
            for event_id, details in cur.execute(
                f"SELECT event_id, details FROM audit_log WHERE event_id IN ({marks})", list(retried)
            ).fetchall():
                next_attempt[retried[event_id].action_id] = json.loads(details)["next_attempt_at"]
    stamp = utc_iso(now)
    return [a for a in pending if next_attempt.get(a.action_id, stamp) <= stamp]


@dataclass(frozen=True)
class DeliveryOutcome:
    action_id: str
    action: str
    case_id: str
    outcome: str  # delivered | retrying | failed | recorded_elsewhere
    attempts: int
    detail: str


@dataclass
class DeliverySummary:
    outcomes: list[DeliveryOutcome] = field(default_factory=list)

    def ids(self, outcome: str) -> list[str]:
        return [o.action_id for o in self.outcomes if o.outcome == outcome]

    @property
    def counts(self) -> dict[str, int]:
        names = ("delivered", "retrying", "failed", "recorded_elsewhere")
        return {name: len(self.ids(name)) for name in names}

    def markdown(self) -> str:
        if not self.outcomes:
            return "No action was due."
        lines = ["| action id | action | case | outcome | attempts | detail |", "|---|---|---|---|---|---|"]
        for o in self.outcomes:
            detail = o.detail.replace("|", "\\|").replace("\n", " ")
            lines.append(
                f"| {o.action_id} | {o.action} | {o.case_id} | {o.outcome} | {o.attempts} | {detail} |"
            )
        return "\n".join(lines)


def deliver_pending_actions(
    store: OpStore,
    connectors: Mapping[str, Connector],
    now: datetime,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff: timedelta = timedelta(minutes=1),
    run_id: str | None = None,
) -> DeliverySummary:
    """Deliver every due action once; each outcome is recorded with its audit entry as it happens."""
    summary = DeliverySummary()
    for action in due_actions(store, now):
        connector = connectors.get(action.action)
        try:
            if connector is None:
                raise DeliveryRefused(f"no connector delivers {action.action!r}")
            receipt = connector.deliver(action.action, action.idempotency_key, action.payload)
        except DeliveryRefused as exc:
            outcome = _record_failure(store, action, str(exc), now, None, run_id)
        except Exception as exc:  # any other failure may pass: retried until the attempts run out
            error = f"{type(exc).__name__}: {exc}"
            retry_at = _next_attempt_at(action.attempts + 1, now, max_attempts, backoff)
            outcome = _record_failure(store, action, error, now, retry_at, run_id)
        else:
            outcome = _record_delivery(store, action, receipt, now, run_id)
        summary.outcomes.append(outcome)
    return summary


def _next_attempt_at(attempt: int, now: datetime, max_attempts: int, backoff: timedelta) -> datetime | None:
    """None when ``attempt`` was the last of its round of ``max_attempts`` (a person's retry starts the
    next round, so attempt numbers, and the audit entries named after them, never repeat)."""
    in_round = (attempt - 1) % max_attempts
    return None if in_round == max_attempts - 1 else now + backoff * 2**in_round


def _audit(
    cur: Cursor, event_id: str, event: str, action: OutboxAction, details: dict, run_id, actor: str = ACTOR
) -> None:
    record = AuditRecord(
        event_id=event_id,
        workflow=action.workflow,
        event=event,
        subject=action.case_id,
        details={
            "action_id": action.action_id,
            "action": action.action,
            "item_id": action.item_id,
            "idempotency_key": action.idempotency_key,
            **details,
        },
        actor=actor,
        run_id=run_id,
    )
    append_audit_in(cur, record)


def _record_delivery(
    store: OpStore, action: OutboxAction, receipt: str, now: datetime, run_id: str | None
) -> DeliveryOutcome:
    """Mark delivered with its audit entry; a delivery beats any other outcome (the effect happened)."""
    with store.transaction(lock=CHAIN_LOCK) as cur:  # the chain first: never hold a row while waiting for it
        row = cur.execute(
            "UPDATE actions_outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = ?, "
            "last_error = NULL WHERE action_id = ? AND status <> 'delivered' RETURNING attempts",
            (utc_iso(now), action.action_id),
        ).fetchone()
        if row is None:  # a racing worker delivered the same key and recorded it first
            return DeliveryOutcome(
                action.action_id,
                action.action,
                action.case_id,
                "recorded_elsewhere",
                action.attempts,
                receipt,
            )
        _audit(
            cur,
            f"action_delivered:{action.action_id}",
            "action_delivered",
            action,
            {"receipt": receipt, "attempts": row[0]},
            run_id,
        )
        if action.item_id:
            _mark_item_applied(cur, action.item_id, now)
    return DeliveryOutcome(action.action_id, action.action, action.case_id, "delivered", row[0], receipt)


def _mark_item_applied(cur: Cursor, item_id: str, now: datetime) -> None:
    """A decided item whose every action is delivered is applied."""
    cur.execute(
        "UPDATE review_items SET status = 'applied', version = version + 1, updated_at = ? "
        "WHERE item_id = ? AND status = 'decided' AND NOT EXISTS (SELECT 1 FROM actions_outbox "
        "WHERE item_id = ? AND status <> 'delivered')",
        (utc_iso(now), item_id, item_id),
    )


def _record_failure(
    store: OpStore,
    action: OutboxAction,
    error: str,
    now: datetime,
    retry_at: datetime | None,
    run_id: str | None,
) -> DeliveryOutcome:
    """Count the attempt; ``retry_at`` None means the action has failed for good."""
    attempt = action.attempts + 1
    status = "pending" if retry_at else "failed"
    with store.transaction(lock=CHAIN_LOCK) as cur:
        row = cur.execute(
            "UPDATE actions_outbox SET status = ?, attempts = ?, last_error = ? "
            "WHERE action_id = ? AND status = 'pending' AND attempts = ? RETURNING action_id",
            (status, attempt, error, action.action_id, action.attempts),
        ).fetchone()
        if row is None:  # a racing worker recorded this attempt (or a delivery) first
            return DeliveryOutcome(
                action.action_id, action.action, action.case_id, "recorded_elsewhere", action.attempts, error
            )
        if retry_at:
            _audit(
                cur,
                _failure_event_id(action.action_id, attempt),
                "action_attempt_failed",
                action,
                {"attempt": attempt, "error": error, "next_attempt_at": utc_iso(retry_at)},
                run_id,
            )
        else:
            _audit(
                cur,
                f"action_failed:{action.action_id}:{attempt}",
                "action_failed",
                action,
                {"attempts": attempt, "error": error},
                run_id,
            )
    outcome = "retrying" if retry_at else "failed"
    detail = f"{error}; next attempt at {utc_iso(retry_at)}" if retry_at else error
    return DeliveryOutcome(action.action_id, action.action, action.case_id, outcome, attempt, detail)


def retry_failed_action(
    store: OpStore, action_id: str, actor: str, now: datetime, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> bool:
    """Put a failed action back in the queue, audited, once its cause is fixed; it is sent with the same
    key and gets a fresh round of ``max_attempts``. False when the action is not failed."""
    with store.transaction(lock=CHAIN_LOCK) as cur:
        row = cur.execute(
            f"SELECT {_COLUMNS} FROM actions_outbox WHERE action_id = ? AND status = 'failed'", (action_id,)
        ).fetchone()
        if row is None:
            return False
        action = OutboxAction.from_row(row)
        round_start = -(-action.attempts // max_attempts) * max_attempts  # the next multiple
        cur.execute(
            "UPDATE actions_outbox SET status = 'pending', attempts = ? WHERE action_id = ?",
            (round_start, action_id),
        )
        _audit(cur, f"action_retry_requested:{action_id}:{round_start}", "action_retry_requested", action,
               {"previous_error": action.last_error, "attempts": action.attempts, "at": utc_iso(now)},
               run_id=None, actor=actor)  # fmt: skip
    return True
