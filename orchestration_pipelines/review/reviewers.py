"""Reviewers and their sign-in tokens.

A token is shown once, when the reviewer is created; the store keeps only its SHA-256, so a copy of
the database signs nobody in. Creating and disabling a reviewer are audited.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from orchestration_pipelines.audit import AuditRecord, append_audit_in
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.review.items import utc_iso
from orchestration_pipelines.review.policy import ReviewPolicy, load_review_policy

_REVIEWER_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Reviewer:
    reviewer_id: str
    display_name: str
    roles: frozenset[str]
    created_at: str
    disabled_at: str | None = None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _audit(cur, event: str, reviewer_id: str, actor: str, details: dict) -> None:
    append_audit_in(
        cur,
        AuditRecord.new(event, workflow="review", subject=reviewer_id, details=details, actor=actor),
    )


def create_reviewer(
    store: OpStore,
    reviewer_id: str,
    name: str,
    roles: list[str] | tuple[str, ...] | set[str],
    *,
    actor: str = "admin",
    policy: ReviewPolicy | None = None,
) -> str:
    """Add a reviewer with ``roles`` from the policy; returns their token (the only time it is visible)."""
    policy = policy or load_review_policy()
    if not _REVIEWER_ID.match(reviewer_id):
        raise ValueError(f"reviewer id {reviewer_id!r}: 1-64 lowercase letters, digits, '.', '_' or '-'")
    unknown = set(roles) - set(policy.roles)
    if not roles or unknown:
        raise ValueError(f"roles {sorted(unknown) or '(none)'} not in the policy ({', '.join(policy.roles)})")
    if not name.strip():
        raise ValueError("a reviewer needs a display name")
    token = secrets.token_urlsafe(32)
    with store.transaction(exclusive=True) as cur:
        if cur.execute("SELECT 1 FROM reviewers WHERE reviewer_id = ?", (reviewer_id,)).fetchone():
            raise ValueError(f"reviewer {reviewer_id!r} exists already")
        cur.execute(
            "INSERT INTO reviewers (reviewer_id, display_name, roles_json, token_sha256, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (reviewer_id, name.strip(), json.dumps(sorted(roles)), token_digest(token), utc_iso()),
        )
        _audit(cur, "reviewer_created", reviewer_id, actor, {"name": name.strip(), "roles": sorted(roles)})
    return token


def authenticate(store: OpStore, token: str | None) -> Reviewer | None:
    """The enabled reviewer holding ``token``, else ``None``."""
    if not token:
        return None
    digest = token_digest(token)
    with store.transaction() as cur:
        row = cur.execute(
            "SELECT reviewer_id, display_name, roles_json, created_at, disabled_at, token_sha256 "
            "FROM reviewers WHERE token_sha256 = ?",
            (digest,),
        ).fetchone()
    if row is None or not hmac.compare_digest(row[5], digest) or row[4] is not None:
        return None
    return Reviewer(row[0], row[1], frozenset(json.loads(row[2])), row[3], row[4])


def get_reviewer(store: OpStore, reviewer_id: str) -> Reviewer | None:
    with store.transaction() as cur:
        row = cur.execute(
            "SELECT reviewer_id, display_name, roles_json, created_at, disabled_at FROM reviewers "
            "WHERE reviewer_id = ?",
            (reviewer_id,),
        ).fetchone()
    return Reviewer(row[0], row[1], frozenset(json.loads(row[2])), row[3], row[4]) if row else None


def disable_reviewer(store: OpStore, reviewer_id: str, *, actor: str = "admin") -> None:
    """Their token stops working at once; their past decisions stay attributed to them."""
    with store.transaction(exclusive=True) as cur:
        updated = cur.execute(
            "UPDATE reviewers SET disabled_at = ? WHERE reviewer_id = ? AND disabled_at IS NULL",
            (utc_iso(datetime.now(UTC)), reviewer_id),
        )
        if updated.rowcount != 1:
            raise LookupError(f"no enabled reviewer {reviewer_id!r}")
        _audit(cur, "reviewer_disabled", reviewer_id, actor, {})
