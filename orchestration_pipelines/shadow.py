"""Shadow mode: run a candidate prompt, router policy or model beside the active one, act only on the active.

The candidate sees the same items; its outputs and routes are recorded in the operational store and
compared with the active version's (agreement, accuracy where labels exist, cost, route mix), so a
user sees whether a change improves outcomes before adopting it. Adoption is ``promote``: an explicit
step with a named actor that updates the active-version pointer and appends an audit event.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from orchestration_pipelines.audit import append_audit_event
from orchestration_pipelines.opstore import OpStore

ACTIVE, CANDIDATE = "active", "candidate"


@dataclass(frozen=True)
class ActiveVersion:
    version: str
    payload: dict[str, Any] | None
    promoted_at: str
    actor: str


def active_version(store: OpStore, kind: str, name: str) -> ActiveVersion | None:
    """The promoted version of a prompt, router policy or model; ``None`` means the shipped default."""
    with store.transaction() as cur:
        row = cur.execute(
            "SELECT version, payload, promoted_at, actor FROM llm_active_versions"
            " WHERE kind = ? AND name = ?",
            (kind, name),
        ).fetchone()
    return ActiveVersion(row[0], json.loads(row[1]) if row[1] else None, row[2], row[3]) if row else None


@dataclass(frozen=True)
class ShadowExperiment:
    """``kind``: ``prompt``, ``router_policy`` or ``model``; ``name``: what is versioned (prompt id, tier)."""

    kind: str
    name: str
    active_version: str
    candidate_version: str
    workflow: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}:{self.active_version}->{self.candidate_version}"


@dataclass(frozen=True)
class VariantOutcome:
    """One variant's answer for one item: ``output`` is ``None`` when it went to human review."""

    output: str | None
    route: str
    cost_usd: float = 0.0


def run_shadow(
    store: OpStore,
    experiment: ShadowExperiment,
    items: Iterable[tuple[str, Any]],
    active: Callable[[Any], VariantOutcome],
    candidate: Callable[[Any], VariantOutcome],
    label_of: Callable[[Any], str | None] = lambda item: None,
) -> dict[str, VariantOutcome]:
    """Run both variants on every item; return only the active outcomes, the ones the caller acts on.

    A failing candidate is recorded as ``error`` and never disturbs the active path.
    """
    acted_on: dict[str, VariantOutcome] = {}
    rows = []
    for item_id, item in items:
        acted_on[item_id] = active(item)
        try:
            shadow = candidate(item)
        except Exception as exc:  # the candidate is untrusted by design
            shadow = VariantOutcome(output=None, route=f"error:{type(exc).__name__}")
        label = label_of(item)
        for variant, version, outcome in (
            (ACTIVE, experiment.active_version, acted_on[item_id]),
            (CANDIDATE, experiment.candidate_version, shadow),
        ):
            rows.append(
                (
                    experiment.key,
                    variant,
                    item_id,
                    version,
                    outcome.output,
                    outcome.route,
                    outcome.cost_usd,
                    label,
                )
            )
    now = datetime.now(UTC).isoformat()
    with store.transaction() as cur:
        cur.executemany(
            "INSERT INTO shadow_results"
            " (experiment, variant, item_id, version, output, route, cost_usd, label, recorded_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (experiment, variant, item_id) DO UPDATE"
            " SET output = excluded.output, route = excluded.route, cost_usd = excluded.cost_usd,"
            " label = excluded.label, recorded_at = excluded.recorded_at",
            [(*row, now) for row in rows],
        )
    return acted_on


@dataclass(frozen=True)
class ShadowComparison:
    experiment: str
    items: int
    agreement: float
    labelled: int
    active_accuracy: float | None
    candidate_accuracy: float | None
    active_cost_usd: float
    candidate_cost_usd: float
    active_routes: dict[str, float]
    candidate_routes: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _route_shares(routes: list[str]) -> dict[str, float]:
    return {route: routes.count(route) / len(routes) for route in sorted(set(routes))}


def compare(store: OpStore, experiment_key: str) -> ShadowComparison:
    with store.transaction() as cur:
        rows = cur.execute(
            "SELECT item_id, variant, output, route, cost_usd, label FROM shadow_results"
            " WHERE experiment = ?",
            (experiment_key,),
        ).fetchall()
    by_item: dict[str, dict[str, tuple]] = {}
    for item_id, variant, output, route, cost, label in rows:
        by_item.setdefault(item_id, {})[variant] = (output, route, cost, label)
    pairs = [(v[ACTIVE], v[CANDIDATE]) for v in by_item.values() if ACTIVE in v and CANDIDATE in v]
    if not pairs:
        raise KeyError(f"no shadow results for experiment {experiment_key!r}")
    labelled = [(a, c) for a, c in pairs if a[3] is not None]

    def accuracy(index: int) -> float | None:
        return (
            sum(pair[index][0] == pair[index][3] for pair in labelled) / len(labelled) if labelled else None
        )

    return ShadowComparison(
        experiment=experiment_key,
        items=len(pairs),
        agreement=sum(a[0] == c[0] for a, c in pairs) / len(pairs),
        labelled=len(labelled),
        active_accuracy=accuracy(0),
        candidate_accuracy=accuracy(1),
        active_cost_usd=sum(a[2] for a, _ in pairs),
        candidate_cost_usd=sum(c[2] for _, c in pairs),
        active_routes=_route_shares([a[1] for a, _ in pairs]),
        candidate_routes=_route_shares([c[1] for _, c in pairs]),
    )


def list_experiments(store: OpStore) -> list[str]:
    with store.transaction() as cur:
        return [
            row[0]
            for row in cur.execute("SELECT DISTINCT experiment FROM shadow_results ORDER BY 1").fetchall()
        ]


class UnknownVersion(LookupError):
    """A promotion names a version that does not exist: activating it would break every later call."""


def _check_version_exists(
    kind: str, name: str, version: str, payload: dict[str, Any] | None, known_versions: Collection[str] | None
) -> None:
    if known_versions is not None:
        exists = version in known_versions
    elif kind == "prompt":
        from orchestration_pipelines.prompt_registry import PromptRegistry  # it imports this module

        exists = version in {str(v) for v in PromptRegistry().versions(name)}
    elif kind == "router_policy":
        from orchestration_pipelines.router import RouterPolicy  # it imports this module

        try:
            exists = payload is not None and RouterPolicy.from_dict(payload).version == version
        except (KeyError, TypeError, ValueError):
            exists = False
    else:
        raise ValueError(f"cannot tell whether {kind} {name!r} has version {version!r}: pass known_versions")
    if not exists:
        raise UnknownVersion(f"{kind} {name!r} has no version {version!r}; nothing was promoted")


def promote(
    store: OpStore,
    *,
    kind: str,
    name: str,
    version: str,
    actor: str,
    workflow: str,
    reason: str,
    payload: dict[str, Any] | None = None,
    evidence: ShadowComparison | None = None,
    known_versions: Collection[str] | None = None,
) -> ActiveVersion:
    """Make ``version`` active; needs a named actor and a reason, both audited with the evidence.

    The version must exist: a prompt file of that version, a router policy payload carrying it, or
    one of ``known_versions`` (required for other kinds, e.g. a model registry's versions).
    """
    if not actor.strip() or not reason.strip():
        raise ValueError("a promotion needs a named actor and a reason")
    _check_version_exists(kind, name, version, payload, known_versions)
    previous = active_version(store, kind, name)
    promoted_at = datetime.now(UTC).isoformat()
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO llm_active_versions (kind, name, version, payload, promoted_at, actor)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kind, name) DO UPDATE SET version = excluded.version,"
            " payload = excluded.payload, promoted_at = excluded.promoted_at, actor = excluded.actor",
            (kind, name, version, json.dumps(payload) if payload is not None else None, promoted_at, actor),
        )
    append_audit_event(
        store,
        workflow=workflow,
        event="promotion",
        subject=f"{kind}:{name}",
        actor=actor,
        details={
            "from_version": previous.version if previous else "default",
            "to_version": version,
            "reason": reason,
            "evidence": evidence.as_dict() if evidence else None,
        },
    )
    return ActiveVersion(version, payload, promoted_at, actor)
