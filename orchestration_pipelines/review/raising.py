"""Raising one partition's review items, the same way for every workflow.

A workflow turns its partition's cases into ``ReviewRequest``s (each with ``context["batch_id"]`` naming
the partition); ``raise_partition`` raises them in bounded transactions (a huge batch never holds the
audit chain for long), counts them per kind, and finds the partition's open items whose case no longer
asks for a person (a re-run that routed it elsewhere), which stay open for a person to close.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.review.items import ReviewRequest, list_items, raise_items
from orchestration_pipelines.review.policy import ReviewPolicy, load_review_policy

RAISE_CHUNK = 1000  # items per store transaction


def json_ready(value: Any) -> Any:
    """A JSON-ready scalar from a frame cell: timestamps as ISO 8601, NaN and NA as None, numpy numbers
    as Python ones (an item's context is JSON)."""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value.item() if hasattr(value, "item") else value


def content_sha256(seen: Mapping[str, Any]) -> str:
    """The ``input_sha256`` of what an automatic decision saw: stable across re-reads of the same data."""
    return hashlib.sha256(json.dumps(dict(seen), sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class PartitionRaise:
    created: list[str]
    existing: list[str]
    superseded: list[str]  # open items of the partition whose case no longer needs a person
    per_kind: dict[str, int]  # requests per kind, every kind of the workflow listed (zero too)
    policy_version: str


def raise_partition(
    store: OpStore,
    requests: Sequence[ReviewRequest],
    *,
    workflow: str,
    batch_id: str,
    kinds: Collection[str],
    policy: ReviewPolicy | None = None,
    run_id: str | None = None,
    chunk: int = RAISE_CHUNK,
) -> PartitionRaise:
    """Raise ``requests`` (idempotent by workflow, case and kind) and report what changed.

    Every request must belong to ``workflow``, one of ``kinds``, and partition ``batch_id``: the
    superseded count compares against exactly that partition's open items.
    """
    policy = policy or load_review_policy()
    for request in requests:
        if request.workflow != workflow or request.kind not in kinds:
            raise ValueError(f"{request.case_id}: a {request.workflow}/{request.kind} request in {workflow}")
        if request.context.get("batch_id") != batch_id:
            raise ValueError(f"{request.case_id}: context batch_id is not the partition {batch_id!r}")
    created, existing = [], []
    for start in range(0, len(requests), chunk):
        raised = raise_items(store, requests[start : start + chunk], policy=policy, run_id=run_id)
        created += raised.created
        existing += raised.existing
    wanted = {(r.case_id, r.kind) for r in requests}
    superseded = [
        item.item_id
        for item in list_items(store, workflow=workflow)
        if item.context.get("batch_id") == batch_id and (item.case_id, item.kind) not in wanted
    ]
    per_kind = {kind: sum(r.kind == kind for r in requests) for kind in kinds}
    return PartitionRaise(created, existing, superseded, per_kind, policy.version)
