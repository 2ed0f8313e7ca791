"""Review items: raised by workflows, decided by people (or by the policy on timeout), in the opstore.

Every change is one operational-store transaction holding the item update (guarded by its ``version``),
the review event, the actions the policy maps the decision to, the feedback row of a correction and
the audit entry; so a decision and its record, and its effects-to-be, exist together or not at all.
A refused attempt is recorded too (event and audit entry), then raised as ``DecisionRefused``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestration_pipelines.audit import CHAIN_LOCK, AuditRecord, append_audit_in
from orchestration_pipelines.opstore import Cursor, OpStore, utc_iso
from orchestration_pipelines.review.actions import enqueue_action
from orchestration_pipelines.review.policy import DECISIONS, KindPolicy, ReviewPolicy, load_review_policy

OPEN_STATUSES = ("open", "assigned", "escalated")
SYSTEM_ACTOR = "system:timeout"
SYSTEM_ROLE = "policy"
_CASE_ID = re.compile(r"^[\w.:@/+-]{1,200}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ITEM_COLUMNS = (
    "item_id, workflow, kind, case_id, status, required_role, assigned_to, deadline_at, reason, "
    "context_json, input_sha256, model_version, prompt_version, policy_version, decision, decided_value, "
    "approvals_json, version, created_at, updated_at"
)
_EVENT_COLUMNS = "event_id, item_id, at, actor, actor_role, action, value, comment, outcome, detail_json"


class DecisionRefused(Exception):
    """The attempt was refused (and recorded as such): ``reason`` says why, ``event_id`` where."""

    def __init__(self, reason: str, event_id: str):
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id


class _StaleItem(Exception):
    """Another transaction changed the item between our read and our guarded update."""


@dataclass(frozen=True)
class ReviewRequest:
    """What a workflow asks a person to look at; the policy adds the queue, deadline and version."""

    workflow: str
    kind: str
    case_id: str
    reason: str  # why it needs a person
    context: dict[str, Any]  # scores, reason codes, draft/evidence refs; ``batch_id`` links the batch
    input_sha256: str  # of the input data the automatic decision saw
    model_version: str
    prompt_version: str | None = None
    automatic_decision: str | None = None  # what the workflow decided before asking

    @property
    def item_id(self) -> str:
        """Stable and URL-safe: the same case and kind always name the same item."""
        key = json.dumps([self.workflow, self.kind, self.case_id])
        return "rv_" + hashlib.sha256(key.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class ReviewItem:
    item_id: str
    workflow: str
    kind: str
    case_id: str
    status: str
    required_role: str
    assigned_to: str | None
    deadline_at: str
    reason: str
    context: dict[str, Any]
    input_sha256: str
    model_version: str
    prompt_version: str | None
    policy_version: str
    decision: str | None
    decided_value: str | None
    approvals: list[dict[str, Any]]
    version: int
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: tuple) -> ReviewItem:
        values = list(row)
        values[9], values[16] = json.loads(values[9]), json.loads(values[16])
        return cls(*values)


@dataclass(frozen=True)
class ReviewEvent:
    event_id: str
    item_id: str
    at: str
    actor: str
    actor_role: str
    action: str
    value: str | None
    comment: str | None
    outcome: str
    detail: dict[str, Any]

    @classmethod
    def from_row(cls, row: tuple) -> ReviewEvent:
        return cls(*row[:9], json.loads(row[9]))


@dataclass(frozen=True)
class Actor:
    """Who acts: a reviewer's id and roles, or the policy itself on timeout."""

    actor_id: str
    roles: frozenset[str]


@dataclass(frozen=True)
class DecisionOutcome:
    item: ReviewItem
    event: ReviewEvent
    action_keys: list[str] = field(default_factory=list)  # idempotency keys of the enqueued actions
    feedback_id: str | None = None
    awaiting: str | None = None  # four eyes: who still has to approve


@dataclass(frozen=True)
class RaisedItems:
    created: list[str]
    existing: list[str]


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _validate(request: ReviewRequest, kind: KindPolicy) -> None:
    if request.workflow != kind.workflow:
        raise ValueError(f"{request.kind} items belong to workflow {kind.workflow}, not {request.workflow}")
    if not _CASE_ID.match(request.case_id):
        raise ValueError(f"case id {request.case_id!r}: 1-200 letters, digits or . _ : @ / + -")
    if not _SHA256.match(request.input_sha256):
        raise ValueError(f"{request.case_id}: input_sha256 must be 64 lowercase hex digits")
    if not request.reason.strip():
        raise ValueError(f"{request.case_id}: say why it needs a person")


def raise_items(
    store: OpStore,
    requests: Iterable[ReviewRequest],
    *,
    policy: ReviewPolicy | None = None,
    now: datetime | None = None,
    run_id: str | None = None,
) -> RaisedItems:
    """Open an item per request unless one exists for its (workflow, case, kind): re-raising is a no-op.

    Each new item and its ``review_item_raised`` audit entry commit together.
    """
    policy = policy or load_review_policy()
    requests = list(requests)
    kinds = {r.kind: policy.kind(r.kind) for r in requests}
    for request in requests:
        _validate(request, kinds[request.kind])
    at = now or datetime.now(UTC)
    created, existing = [], []
    with store.transaction(lock=CHAIN_LOCK) as cur:  # first: two raisers never wait on each other's rows
        for request in requests:
            kind = kinds[request.kind]
            deadline = utc_iso(at + kind.deadline)
            inserted = cur.execute(
                f"INSERT INTO review_items ({_ITEM_COLUMNS}) "
                "VALUES (?, ?, ?, ?, 'open', ?, NULL, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, '[]', 1, ?, ?) "
                "ON CONFLICT (workflow, case_id, kind) DO NOTHING RETURNING item_id",
                (request.item_id, request.workflow, request.kind, request.case_id, kind.queue, deadline,
                 request.reason, _json(request.context), request.input_sha256, request.model_version,
                 request.prompt_version, policy.version, utc_iso(at), utc_iso(at)),
            ).fetchone()  # fmt: skip
            if inserted is None:
                existing.append(request.item_id)
                continue
            created.append(request.item_id)
            append_audit_in(
                cur,
                AuditRecord(
                    event_id=f"review_item_raised:{request.item_id}",
                    workflow=request.workflow,
                    event="review_item_raised",
                    subject=request.case_id,
                    details={
                        "item_id": request.item_id,
                        "kind": request.kind,
                        "automatic_decision": request.automatic_decision,
                        "why": request.reason,
                        "required_role": kind.queue,
                        "deadline_at": deadline,
                        "model_version": request.model_version,
                        "prompt_version": request.prompt_version,
                        "policy_version": policy.version,
                        "input_sha256": request.input_sha256,
                        "context": request.context,
                    },
                    run_id=run_id,
                ),
            )
    return RaisedItems(created, existing)


def _fetch_item(cur: Cursor, item_id: str) -> ReviewItem:
    row = cur.execute(f"SELECT {_ITEM_COLUMNS} FROM review_items WHERE item_id = ?", (item_id,)).fetchone()
    if row is None:
        raise LookupError(f"no review item {item_id!r}")
    return ReviewItem.from_row(row)


def _resolve_actor(cur: Cursor, reviewer: Any) -> Actor | str:
    """The reviewer as the store knows them now (roles, enabled), or why they cannot act."""
    reviewer_id = reviewer if isinstance(reviewer, str) else reviewer.reviewer_id
    row = cur.execute(
        "SELECT roles_json, disabled_at FROM reviewers WHERE reviewer_id = ?", (reviewer_id,)
    ).fetchone()
    if row is None:
        return f"unknown reviewer {reviewer_id!r}"
    if row[1] is not None:
        return f"reviewer {reviewer_id!r} is disabled"
    return Actor(reviewer_id, frozenset(json.loads(row[0])))


@dataclass(frozen=True)
class _Plan:
    """What an accepted action changes: the item's new fields, effects, and the event's detail."""

    changes: dict[str, Any]
    role: str
    detail: dict[str, Any]
    effects: tuple[str, ...] = ()
    feedback: tuple[str, str] | None = None  # (label field, corrected value)
    awaiting: str | None = None


def _granting_role(kind: KindPolicy, actor: Actor, action: str, prefer: str | None = None) -> str:
    roles = sorted(r for r in actor.roles if action in kind.decisions.get(r, ()))
    return prefer if prefer in roles else roles[0]


def _plan_approval(kind: KindPolicy, item: ReviewItem, actor: Actor) -> _Plan | str:
    """Approve, or record one approval of several when a four-eyes rule applies."""
    rule = next((r for r in kind.four_eyes if r.decision == "approve" and r.applies(item.context)), None)
    role = _granting_role(kind, actor, "approve", rule.including_role if rule else None)
    if rule is None:
        return _Plan({"status": "decided", "decision": "approve"}, role, {}, kind.actions.get("approve", ()))
    if any(a["reviewer"] == actor.actor_id for a in item.approvals):
        return f"{actor.actor_id} already approved; four eyes needs a second, distinct approver"
    approvals = [*item.approvals, {"reviewer": actor.actor_id, "roles": sorted(actor.roles), "at": None}]
    has_role = rule.including_role is None or any(rule.including_role in a["roles"] for a in approvals)
    remaining = rule.approvers - len(approvals)
    detail = {"four_eyes": f"{rule.field} above {rule.above:g}", "approvals": len(approvals)}
    if remaining == 0 and not has_role:
        return f"the last of {rule.approvers} approvals must come from a {rule.including_role}"
    if remaining > 0:
        awaiting = f"{remaining} more distinct approver(s)" + (
            "" if has_role else f", one of them a {rule.including_role}"
        )
        return _Plan({"approvals": approvals}, role, {**detail, "awaiting": awaiting}, awaiting=awaiting)
    changes = {"status": "decided", "decision": "approve", "approvals": approvals}
    return _Plan(changes, role, detail, kind.actions.get("approve", ()))


def _plan(
    cur: Cursor,
    kind: KindPolicy,
    item: ReviewItem,
    actor: Actor,
    action: str,
    value: str | None,
    expected_version: int | None = None,
) -> _Plan | str:
    """The accepted change, or the reason to refuse it."""
    if action not in (*DECISIONS, "assign", "comment"):
        return f"unknown action {action!r}"
    if not kind.allowed(actor.roles, action):
        held = ", ".join(sorted(actor.roles)) or "no role"
        return f"{actor.actor_id} ({held}) may not {action} {item.kind} items"
    if action == "comment":
        return _Plan({}, _granting_role(kind, actor, action), {})
    if item.status not in OPEN_STATUSES:
        return f"already decided: {item.decision} ({item.status})"
    if expected_version is not None and expected_version != item.version:
        return f"the item changed since version {expected_version} (now {item.version}): reload it"
    role = _granting_role(kind, actor, action)
    if action == "assign":
        assignee = value or actor.actor_id
        resolved = _resolve_actor(cur, assignee)
        if isinstance(resolved, str):
            return resolved
        if not resolved.roles & {r for r, allowed in kind.decisions.items() if allowed & set(DECISIONS)}:
            return f"{assignee} holds no role that may decide {item.kind} items"
        return _Plan({"status": "assigned", "assigned_to": assignee}, role, {"assigned_to": assignee})
    if action == "approve":
        return _plan_approval(kind, item, actor)
    changes = {"status": "decided", "decision": action}
    if action == "reject":
        return _Plan(changes, role, {}, kind.actions.get("reject", ()))
    if not value or not value.strip():
        return "a correction needs the corrected value"
    if kind.label_values is not None and value not in kind.label_values:
        return f"{value!r} is not a {kind.label_field} value ({', '.join(kind.label_values)})"
    changes["decided_value"] = value
    return _Plan(changes, role, {"label_field": kind.label_field}, kind.actions.get("correct", ()),
                 feedback=(kind.label_field, value))  # fmt: skip


def _record_event(
    cur: Cursor,
    item: ReviewItem,
    *,
    actor: str,
    role: str,
    action: str,
    value: str | None,
    comment: str | None,
    outcome: str,
    detail: dict[str, Any],
    at: str,
    policy: ReviewPolicy,
) -> ReviewEvent:
    """The review event and its audit entry, in the caller's transaction."""
    event_id = f"ev_{time.time_ns():x}_{uuid.uuid4().hex[:8]}"  # ties on ``at`` keep creation order
    event = ReviewEvent(event_id, item.item_id, at, actor, role, action, value, comment, outcome, detail)
    cur.execute(
        f"INSERT INTO review_events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (*[getattr(event, c) for c in _EVENT_COLUMNS.split(", ")[:9]], _json(detail)),
    )
    append_audit_in(
        cur,
        AuditRecord(
            event_id=f"review_event:{event.event_id}",
            workflow=item.workflow,
            event="review_refused" if outcome == "refused" else f"review_{action}",
            subject=item.case_id,
            actor=actor,
            details={
                "item_id": item.item_id,
                "kind": item.kind,
                "action": action,
                "value": value,
                "comment": comment,
                "outcome": outcome,
                "role": role,
                "policy_version": policy.version,
                "model_version": item.model_version,
                "prompt_version": item.prompt_version,
                "input_sha256": item.input_sha256,
                **detail,
            },
        ),
    )
    return event


def _apply_plan(
    cur: Cursor,
    item: ReviewItem,
    plan: _Plan,
    *,
    actor: str,
    action: str,
    value: str | None,
    comment: str | None,
    at: str,
    policy: ReviewPolicy,
) -> DecisionOutcome:
    """Write an accepted plan: guarded item update, outbox rows, feedback row, event and audit entry."""
    changes = dict(plan.changes)
    if "approvals" in changes:
        changes["approvals"] = [{**a, "at": a["at"] or at} for a in changes["approvals"]]
    if changes:
        columns = {"approvals_json" if k == "approvals" else k: v for k, v in changes.items()}
        if "approvals_json" in columns:
            columns["approvals_json"] = _json(columns["approvals_json"])
        assignments = ", ".join(f"{name} = ?" for name in columns)
        updated = cur.execute(
            f"UPDATE review_items SET {assignments}, version = version + 1, updated_at = ? "
            "WHERE item_id = ? AND version = ?",
            (*columns.values(), at, item.item_id, item.version),
        )
        if updated.rowcount != 1:
            raise _StaleItem(item.item_id)
    keys = []
    for effect in plan.effects:
        payload = {"item_id": item.item_id, "case_id": item.case_id, "kind": item.kind, "decision": action,
                   "value": value, "decided_by": actor, "context": item.context}  # fmt: skip
        enqueued = enqueue_action(cur, workflow=item.workflow, case_id=item.case_id, item_id=item.item_id,
                                  action=effect, payload=payload, now=datetime.fromisoformat(at))  # fmt: skip
        keys.append(enqueued.idempotency_key)
    feedback_id = None
    if plan.feedback:
        feedback_id = uuid.uuid4().hex
        cur.execute(
            "INSERT INTO feedback (feedback_id, workflow, case_id, item_id, label_field, corrected_value, "
            "reviewer, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (feedback_id, item.workflow, item.case_id, item.item_id, *plan.feedback, actor, at),
        )
    detail = {**plan.detail, **({"actions": keys} if keys else {})}
    event = _record_event(cur, item, actor=actor, role=plan.role, action=action, value=value, comment=comment,
                          outcome="accepted", detail=detail, at=at, policy=policy)  # fmt: skip
    return DecisionOutcome(_fetch_item(cur, item.item_id), event, keys, feedback_id, plan.awaiting)


def decide(
    store: OpStore,
    item_id: str,
    reviewer: Any,
    action: str,
    value: str | None = None,
    comment: str | None = None,
    now: datetime | None = None,
    *,
    policy: ReviewPolicy | None = None,
    expected_version: int | None = None,
) -> DecisionOutcome:
    """Approve, reject, correct (``value``: the corrected label), assign (``value``: the assignee, default
    the reviewer) or comment on an item, as ``reviewer`` (a ``Reviewer`` or reviewer id).

    Recorded once: of concurrent decisions on one item exactly one is accepted, the others are refused
    ("already decided"). ``expected_version``, the version the reviewer saw, refuses a decision on an
    item that changed since (say a first approval of two), in the same transaction that would apply
    it; comments are always taken. A refusal is committed (event and audit entry) and then raised.
    """
    policy = policy or load_review_policy()
    at = utc_iso(now)
    for _ in range(5):  # a stale read is retried: the next read sees the winner and refuses
        try:
            with store.transaction(exclusive=True) as cur:
                item = _fetch_item(cur, item_id)
                kind = policy.kind(item.kind)
                actor = _resolve_actor(cur, reviewer)
                plan = (
                    actor
                    if isinstance(actor, str)
                    else _plan(cur, kind, item, actor, action, value, expected_version)
                )
                if not isinstance(plan, str):
                    return _apply_plan(cur, item, plan, actor=actor.actor_id, action=action, value=value,
                                       comment=comment, at=at, policy=policy)  # fmt: skip
                actor_id = reviewer if isinstance(reviewer, str) else reviewer.reviewer_id
                roles = ",".join(sorted(actor.roles)) if isinstance(actor, Actor) else "none"
                refused = _record_event(cur, item, actor=actor_id, role=roles, action=action, value=value,
                                        comment=comment, outcome="refused", detail={"reason": plan}, at=at,
                                        policy=policy)  # fmt: skip
            raise DecisionRefused(plan, refused.event_id)
        except _StaleItem:
            continue
    raise RuntimeError(f"{item_id}: kept changing under five attempts to decide it")


def apply_timeouts(
    store: OpStore, now: datetime | None = None, *, policy: ReviewPolicy | None = None
) -> list[tuple[str, str]]:
    """Escalate or decide every overdue open item as its policy says; returns (item id, what happened).

    Idempotent: an escalated item is not escalated again, a decided one is no longer open, and two
    sweeps racing on one item change it once (the version guard).
    """
    policy = policy or load_review_policy()
    at = utc_iso(now)
    with store.transaction() as cur:
        overdue = [
            row[0]
            for row in cur.execute(
                "SELECT item_id FROM review_items WHERE status IN ('open', 'assigned') AND deadline_at < ? "
                "ORDER BY deadline_at",
                (at,),
            ).fetchall()
        ]
    done = []
    for item_id in overdue:
        try:
            with store.transaction(exclusive=True) as cur:
                item = _fetch_item(cur, item_id)
                if item.status not in ("open", "assigned") or item.deadline_at >= at:
                    continue
                timeout = policy.kind(item.kind).on_timeout
                if timeout.escalate_to:
                    deadline = utc_iso(datetime.fromisoformat(at) + timeout.deadline)
                    changes = {"status": "escalated", "required_role": timeout.escalate_to,
                               "deadline_at": deadline, "assigned_to": None}  # fmt: skip
                    plan = _Plan(changes, SYSTEM_ROLE, {"escalated_to": timeout.escalate_to, "overdue_since":
                                 item.deadline_at, "new_deadline": deadline})  # fmt: skip
                    action = "escalate"
                else:
                    kind = policy.kind(item.kind)
                    action = timeout.apply
                    plan = _Plan({"status": "decided", "decision": action}, SYSTEM_ROLE,
                                 {"default_on_timeout": True, "overdue_since": item.deadline_at},
                                 kind.actions.get(action, ()))  # fmt: skip
                _apply_plan(cur, item, plan, actor=SYSTEM_ACTOR, action=action, value=None, comment=None,
                            at=at, policy=policy)  # fmt: skip
                done.append((item_id, action))
        except _StaleItem:
            continue  # someone decided it meanwhile
    return done


def _status_filter(status: str | Collection[str] | None) -> tuple[str, ...]:
    if status is None:
        return ()
    return (status,) if isinstance(status, str) else tuple(status)


def list_items(
    store: OpStore,
    role: str | None = None,
    workflow: str | None = None,
    status: str | Collection[str] | None = OPEN_STATUSES,
    due_before: datetime | None = None,
    kind: str | None = None,
    case_id: str | None = None,
) -> list[ReviewItem]:
    """The queue: items waiting for ``role`` (their required role), soonest deadline first."""
    clauses, params = [], []
    filters = (("required_role", role), ("workflow", workflow), ("kind", kind), ("case_id", case_id))
    for column, value in filters:
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if statuses := _status_filter(status):
        clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
        params.extend(statuses)
    if due_before:
        clauses.append("deadline_at < ?")
        params.append(utc_iso(due_before))
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    with store.transaction() as cur:
        rows = cur.execute(
            f"SELECT {_ITEM_COLUMNS} FROM review_items {where} ORDER BY deadline_at, item_id", params
        ).fetchall()
    return [ReviewItem.from_row(row) for row in rows]


def get_item(store: OpStore, item_id: str) -> ReviewItem | None:
    with store.transaction() as cur:
        try:
            return _fetch_item(cur, item_id)
        except LookupError:
            return None


def item_history(store: OpStore, item_id: str) -> list[ReviewEvent]:
    """Every event of the item, accepted and refused, in order."""
    with store.transaction() as cur:
        rows = cur.execute(
            f"SELECT {_EVENT_COLUMNS} FROM review_events WHERE item_id = ? ORDER BY at, event_id", (item_id,)
        ).fetchall()
    return [ReviewEvent.from_row(row) for row in rows]
