"""Level 2 of the platform: which level handles a work item (local model, small LLM, strong LLM, human).

The rules are data (``policies/router.yaml``, versioned) so a new policy can be calibrated, run in
shadow and promoted without a code change. Every decision carries the reason and the policy version
and goes to the audit log. ``calibrate_thresholds`` picks the cheapest confidence thresholds that
reach a target accuracy on labelled data, where each item says whether each level got it right.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from orchestration_pipelines.audit import append_audit_event
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.shadow import active_version

ROUTER_POLICY_PATH = Path(__file__).parent / "policies" / "router.yaml"


class Route(StrEnum):
    LOCAL = "local"
    SMALL = "small"
    STRONG = "strong"
    HUMAN = "human"


LLM_ROUTES = (Route.SMALL, Route.STRONG)


@dataclass(frozen=True)
class RouterPolicy:
    version: str
    local_min: float
    small_min: float
    human_risk: float
    strong_risk: float
    strong_required_accuracy: float
    local_languages: frozenset[str]
    budget_fallback_local_min: float

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> RouterPolicy:
        return cls(
            version=str(document["version"]),
            local_min=float(document["confidence"]["local_min"]),
            small_min=float(document["confidence"]["small_min"]),
            human_risk=float(document["risk"]["human_at_or_above"]),
            strong_risk=float(document["risk"]["strong_at_or_above"]),
            strong_required_accuracy=float(document["strong_for_required_accuracy_at_or_above"]),
            local_languages=frozenset(document["local_languages"]),
            budget_fallback_local_min=float(document["budget_fallback_local_min"]),
        )

    def as_dict(self) -> dict[str, Any]:
        """The policy file's shape: stored as the payload when a policy version is promoted."""
        return {
            "version": self.version,
            "confidence": {"local_min": self.local_min, "small_min": self.small_min},
            "risk": {"human_at_or_above": self.human_risk, "strong_at_or_above": self.strong_risk},
            "strong_for_required_accuracy_at_or_above": self.strong_required_accuracy,
            "local_languages": sorted(self.local_languages),
            "budget_fallback_local_min": self.budget_fallback_local_min,
        }


def load_router_policy(path: Path = ROUTER_POLICY_PATH) -> RouterPolicy:
    return RouterPolicy.from_dict(yaml.safe_load(path.read_text()))


def active_router_policy(store: OpStore, path: Path = ROUTER_POLICY_PATH) -> RouterPolicy:
    """The promoted policy if one was promoted, else the shipped file."""
    promoted = active_version(store, "router_policy", "router")
    return (
        RouterPolicy.from_dict(promoted.payload)
        if promoted and promoted.payload
        else load_router_policy(path)
    )


@dataclass(frozen=True)
class RoutingContext:
    """What the router knows about an item. ``tier_cost_usd`` holds the expected cost of one call for each
    LLM tier the gateway has configured; a tier missing from it is unavailable."""

    local_confidence: float
    risk_score: float = 0.0
    language: str = "en"
    remaining_budget_usd: float = math.inf
    required_accuracy: float = 0.0
    tier_cost_usd: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RouteDecision:
    route: Route
    reason: str
    policy_version: str


def route(ctx: RoutingContext, policy: RouterPolicy) -> RouteDecision:
    def decide(chosen: Route, reason: str) -> RouteDecision:
        return RouteDecision(chosen, reason, policy.version)

    if ctx.risk_score >= policy.human_risk:
        return decide(Route.HUMAN, f"risk {ctx.risk_score:.2f} >= {policy.human_risk}")
    local_language = ctx.language in policy.local_languages
    demands_strong = (
        ctx.risk_score >= policy.strong_risk or ctx.required_accuracy >= policy.strong_required_accuracy
    )
    if not demands_strong and local_language and ctx.local_confidence >= policy.local_min:
        return decide(Route.LOCAL, f"local confidence {ctx.local_confidence:.2f} >= {policy.local_min}")

    if demands_strong:
        wanted, why = [Route.STRONG], "high risk or required accuracy"
    elif not local_language:
        wanted, why = [Route.SMALL, Route.STRONG], f"language {ctx.language!r} not covered by local models"
    elif ctx.local_confidence >= policy.small_min:
        wanted, why = [Route.SMALL, Route.STRONG], f"local confidence {ctx.local_confidence:.2f} in mid band"
    else:
        wanted, why = (
            [Route.STRONG, Route.SMALL],
            f"local confidence {ctx.local_confidence:.2f} < {policy.small_min}",
        )
    blocked = []
    for position, tier in enumerate(wanted):
        cost = ctx.tier_cost_usd.get(tier)
        if cost is None:
            blocked.append(f"{tier} not configured")
        elif cost > ctx.remaining_budget_usd:
            blocked.append(f"{tier} over budget")
        else:
            switched = f" ({', '.join(blocked)})" if position else ""
            return decide(tier, why + switched)

    note = f"{why}; {', '.join(blocked)}"
    if not demands_strong and local_language and ctx.local_confidence >= policy.budget_fallback_local_min:
        return decide(Route.LOCAL, f"{note}; local confidence {ctx.local_confidence:.2f} accepted")
    return decide(Route.HUMAN, note)


def record_decision(
    store: OpStore, *, workflow: str, item_id: str, decision: RouteDecision, run_id: str | None = None
) -> None:
    append_audit_event(
        store,
        workflow=workflow,
        event="route_decision",
        subject=item_id,
        run_id=run_id,
        details={
            "route": str(decision.route),
            "reason": decision.reason,
            "policy_version": decision.policy_version,
        },
    )


@dataclass(frozen=True)
class LabelledItem:
    """One labelled item for calibration: each level's correctness and each LLM tier's cost for it."""

    local_confidence: float
    local_correct: bool
    small_correct: bool
    strong_correct: bool
    small_cost_usd: float
    strong_cost_usd: float


@dataclass(frozen=True)
class Calibration:
    local_min: float
    small_min: float
    accuracy: float
    cost_usd: float
    shares: dict[str, float]
    reached_target: bool

    def apply(self, policy: RouterPolicy, version: str) -> RouterPolicy:
        """A new policy version with these thresholds: a candidate to run in shadow, then promote."""
        return replace(policy, version=version, local_min=self.local_min, small_min=self.small_min)


def calibrate_thresholds(
    items: Sequence[LabelledItem], target_accuracy: float, grid: Sequence[float] | None = None
) -> Calibration:
    """The cheapest (local_min, small_min) pair reaching ``target_accuracy``, ties broken by accuracy.

    When no pair reaches the target the most accurate one is returned with ``reached_target=False``.
    The routing here is ``route``'s confidence rule, vectorised over the threshold grid.
    """
    column = {
        name: np.array([getattr(item, name) for item in items], dtype=float)
        for name in LabelledItem.__annotations__
    }
    confidence = column["local_confidence"]
    # 1.01 is "never": a threshold no confidence reaches.
    candidates = np.unique(
        np.append(np.linspace(0, 1, 101).round(2) if grid is None else np.asarray(grid), 1.01)
    )
    rows = []  # (local_min, small_min, accuracy, cost, local share, small share)
    for local_min in candidates:
        use_local = confidence >= local_min
        small_mins = candidates[candidates <= local_min]  # small_min above local_min would never apply
        use_small = ~use_local & (confidence[None, :] >= small_mins[:, None])
        use_strong = ~use_local & ~use_small
        correct = (
            use_local * column["local_correct"]
            + use_small * column["small_correct"]
            + use_strong * column["strong_correct"]
        )
        cost = use_small * column["small_cost_usd"] + use_strong * column["strong_cost_usd"]
        for index, small_min in enumerate(small_mins):
            rows.append(
                (
                    local_min,
                    small_min,
                    correct[index].mean(),
                    cost[index].sum(),
                    use_local.mean(),
                    use_small[index].mean(),
                )
            )
    table = np.array(rows)
    reached = table[:, 2] >= target_accuracy - 1e-12
    if reached.any():
        pool = table[reached]
        best = pool[np.lexsort((-pool[:, 2], pool[:, 3]))[0]]
    else:
        best = table[np.lexsort((table[:, 3], -table[:, 2]))[0]]
    local_min, small_min, accuracy, cost, local_share, small_share = best
    return Calibration(
        local_min=float(local_min),
        small_min=float(small_min),
        accuracy=float(accuracy),
        cost_usd=float(cost),
        shares={
            str(Route.LOCAL): float(local_share),
            str(Route.SMALL): float(small_share),
            str(Route.STRONG): float(1 - local_share - small_share),
        },
        reached_target=bool(reached.any()),
    )
