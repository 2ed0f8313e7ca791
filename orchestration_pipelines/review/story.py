"""The story of one case, from arrival to effect: what or who decided, why, on which versions and data.

Assembled from the three records that already exist, so it cannot drift from them: the audit log
(the batch's arrival and publication, the automatic decision that raised an item, anything else filed
under the case), the review events (accepted and refused), and the actions outbox with each action's
delivery status.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from orchestration_pipelines.audit import read_audit_log
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.review.items import ReviewItem, item_history, list_items

_VERSION_FIELDS = ("model_version", "prompt_version", "policy_version", "input_sha256")
_TOLD_BY_THE_OUTBOX = ("action_delivered", "action_failed")
_ORDER = {"arrival": 0, "automatic": 1, "audit": 2, "review": 3, "action": 4}


@dataclass(frozen=True)
class StoryEntry:
    at: str
    source: str  # arrival | automatic | audit | review | action
    actor: str
    what: str
    why: str | None = None
    versions: dict[str, str | None] = field(default_factory=dict)  # model, prompt, policy, input hash
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _automatic(entry, item: ReviewItem | None) -> StoryEntry:
    d = entry.details
    decided = d.get("automatic_decision") or "needs a person"
    return StoryEntry(
        at=item.created_at if item else entry.recorded_at,
        source="automatic",
        actor=entry.actor if entry.actor != "system" else f"{entry.workflow} workflow",
        what=f"decided {decided}; raised {d['kind']} for {d['required_role']} (due {d['deadline_at']})",
        why=d.get("why"),
        versions={name: d.get(name) for name in _VERSION_FIELDS},
        details={"item_id": d["item_id"], "context": d.get("context", {}), "audit_seq": entry.seq},
    )


def _audit_entries(store: OpStore, case_id: str, items: list[ReviewItem]) -> list[StoryEntry]:
    batches = {str(item.context["batch_id"]) for item in items if item.context.get("batch_id")}
    by_id = {item.item_id: item for item in items}
    story = []
    for entry in read_audit_log(store, subjects={case_id, *batches}):
        if (entry.event_id or "").startswith("review_event:"):
            continue  # told by the review event itself, with its comment
        if entry.event in _TOLD_BY_THE_OUTBOX:
            continue  # told by the action's outbox row (failed attempts and retries stay: only here)
        if entry.event == "review_item_raised":
            story.append(_automatic(entry, by_id.get(entry.details.get("item_id"))))
            continue
        story.append(
            StoryEntry(
                at=entry.recorded_at,
                source="arrival" if entry.subject in batches else "audit",
                actor=entry.actor,
                what=f"{entry.event} {entry.subject}" + (f" (run {entry.run_id})" if entry.run_id else ""),
                why=entry.details.get("reason") or entry.details.get("why"),
                versions={n: entry.details[n] for n in _VERSION_FIELDS if n in entry.details},
                details={"audit_seq": entry.seq, **entry.details},
            )
        )
    return story


def _review_entries(store: OpStore, item: ReviewItem) -> list[StoryEntry]:
    entries = []
    for event in item_history(store, item.item_id):
        value = f" {event.value}" if event.value else ""
        outcome = "" if event.outcome == "accepted" else f" REFUSED: {event.detail.get('reason')}"
        entries.append(
            StoryEntry(
                at=event.at,
                source="review",
                actor=f"{event.actor} ({event.actor_role})",
                what=f"{event.action}{value} on {item.kind}{outcome}",
                why=event.comment,
                versions={"policy_version": item.policy_version},
                details={"item_id": item.item_id, "event_id": event.event_id, **event.detail},
            )
        )
    return entries


def _action_entries(store: OpStore, case_id: str) -> list[StoryEntry]:
    with store.transaction() as cur:
        rows = cur.execute(
            "SELECT action, idempotency_key, status, attempts, last_error, created_at, delivered_at, "
            "payload_json FROM actions_outbox WHERE case_id = ? ORDER BY created_at",
            (case_id,),
        ).fetchall()
    entries = []
    for action, key, status, attempts, error, created_at, delivered_at, payload in rows:
        decided_by = json.loads(payload).get("decided_by", "policy")
        details = {"idempotency_key": key, "status": status, "attempts": attempts, "last_error": error}
        entries.append(StoryEntry(created_at, "action", decided_by, f"{action} enqueued", details=details))
        if delivered_at:
            entries.append(StoryEntry(delivered_at, "action", "outbox", f"{action} delivered"))
        elif status == "failed":
            entries.append(StoryEntry(created_at, "action", "outbox", f"{action} FAILED", why=error))
    return entries


def case_story(store: OpStore, case_id: str) -> list[StoryEntry]:
    """Everything recorded about ``case_id``, oldest first; empty when nothing is."""
    items = list_items(store, status=None, case_id=case_id)
    story = _audit_entries(store, case_id, items) + _action_entries(store, case_id)
    for item in items:
        story += _review_entries(store, item)
    return sorted(story, key=lambda e: (datetime.fromisoformat(e.at), _ORDER[e.source]))
