"""Level 2 of the platform: which level handles a work item (local model, small LLM, strong LLM, human).

The rules are data (``policies/router.yaml``, versioned) so a new policy can be calibrated, run in
shadow and promoted without a code change. Every decision carries the reason and the policy version
and goes to the audit log. Items in the small tier's band run as a cascade (FrugalGPT): the small
tier's answer stands when the local model gives that answer enough probability, otherwise the item is
escalated to the strong tier and pays for both calls. ``calibrate_thresholds`` picks the cheapest
thresholds that reach a target accuracy on labelled data, where each item says whether each level got
it right.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestration_pipelines.audit import append_audit_event
from orchestration_pipelines.config_files import parse_yaml
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.shadow import active_version

if TYPE_CHECKING:
    from orchestration_pipelines.ledger import CallContext
    from orchestration_pipelines.llm import LLMGateway
    from orchestration_pipelines.prompt_registry import Prompt

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
    small_min_local_support: float
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
            # 0 = the small tier's answer is never checked: policies promoted before the cascade existed
            small_min_local_support=float(document.get("cascade", {}).get("small_min_local_support", 0.0)),
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
            "cascade": {"small_min_local_support": self.small_min_local_support},
            "risk": {"human_at_or_above": self.human_risk, "strong_at_or_above": self.strong_risk},
            "strong_for_required_accuracy_at_or_above": self.strong_required_accuracy,
            "local_languages": sorted(self.local_languages),
            "budget_fallback_local_min": self.budget_fallback_local_min,
        }


def load_router_policy(path: Path = ROUTER_POLICY_PATH) -> RouterPolicy:
    return RouterPolicy.from_dict(parse_yaml(path.read_text()))


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
    """``min_local_support`` > 0 makes a small-tier decision a cascade: the small tier's answer stands only
    if the local model gives it at least this probability, else the item goes on to the strong tier."""

    route: Route
    reason: str
    policy_version: str
    min_local_support: float = 0.0


def route(ctx: RoutingContext, policy: RouterPolicy) -> RouteDecision:
    def decide(chosen: Route, reason: str, note: str = "", min_local_support: float = 0.0) -> RouteDecision:
        return RouteDecision(chosen, reason + note, policy.version, min_local_support)

    if ctx.risk_score >= policy.human_risk:
        return decide(Route.HUMAN, f"risk {ctx.risk_score:.2f} >= {policy.human_risk}")
    local_language = ctx.language in policy.local_languages
    demands_strong = (
        ctx.risk_score >= policy.strong_risk or ctx.required_accuracy >= policy.strong_required_accuracy
    )
    if not demands_strong and local_language and ctx.local_confidence >= policy.local_min:
        return decide(Route.LOCAL, f"local confidence {ctx.local_confidence:.2f} >= {policy.local_min}")

    cascade = False  # the mid band: the small tier, checked against the local model
    if demands_strong:
        wanted, why = [Route.STRONG], "high risk or required accuracy"
    elif not local_language:
        wanted, why = [Route.SMALL, Route.STRONG], f"language {ctx.language!r} not covered by local models"
    elif ctx.local_confidence >= policy.small_min:
        wanted, why = [Route.SMALL, Route.STRONG], f"local confidence {ctx.local_confidence:.2f} in mid band"
        cascade = True
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
        elif cascade and tier == Route.SMALL:
            return decide(tier, why, *_escalation(ctx, policy))
        else:
            switched = f" ({', '.join(blocked)})" if position else ""
            return decide(tier, why + switched)

    note = f"{why}; {', '.join(blocked)}"
    if not demands_strong and local_language and ctx.local_confidence >= policy.budget_fallback_local_min:
        return decide(Route.LOCAL, f"{note}; local confidence {ctx.local_confidence:.2f} accepted")
    return decide(Route.HUMAN, note)


def _escalation(ctx: RoutingContext, policy: RouterPolicy) -> tuple[str, float]:
    """The reason's note and the support threshold of a cascade. An escalation pays for the small and the
    strong call, so it needs the strong tier configured and both calls within the remaining budget."""
    threshold = policy.small_min_local_support
    if threshold <= 0:
        return "", 0.0
    strong_cost = ctx.tier_cost_usd.get(Route.STRONG)
    if strong_cost is None:
        return "; no escalation (strong not configured)", 0.0
    if ctx.tier_cost_usd[Route.SMALL] + strong_cost > ctx.remaining_budget_usd:
        return "; no escalation (strong over budget)", 0.0
    return f"; escalated to strong if the local model gives the answer < {threshold}", threshold


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
            "min_local_support": decision.min_local_support,
        },
    )


@dataclass(frozen=True)
class TierAnswer:
    """An LLM tier's answer to a classification item. ``tier`` is the tier that answered (the gateway may
    have fallen back to a stronger one); ``label`` is ``None`` when none did (the gateway's human outcome)."""

    label: str | None
    cost_usd: float
    tier: str | None


Ask = Callable[[Route], TierAnswer]


@dataclass(frozen=True)
class RoutedAnswer:
    """The answer that stands, the level that gave it, and the cost of every call made for it."""

    label: str | None
    level: Route
    cost_usd: float
    calls: tuple[Route, ...]
    escalated: bool = False


def _top(probabilities: Mapping[str, float]) -> str:
    return max(probabilities, key=probabilities.__getitem__)


def carry_out(decision: RouteDecision, local_probabilities: Mapping[str, float], ask: Ask) -> RoutedAnswer:
    """Act on a decision: the local model's answer, or LLM calls through ``ask``. A small-tier cascade
    escalates when the local model gives the small tier's answer less than ``min_local_support``; the
    escalated item pays for both calls. ``local_probabilities`` is the local model's class distribution."""
    if decision.route == Route.LOCAL:
        label = _top(local_probabilities)
        return RoutedAnswer(label, Route.LOCAL, 0.0, ())
    if decision.route == Route.HUMAN:
        return RoutedAnswer(None, Route.HUMAN, 0.0, ())
    first = ask(decision.route)
    support = local_probabilities.get(first.label, 0.0)
    if first.tier != Route.SMALL or support >= decision.min_local_support:
        return _answered(first, first.cost_usd, (decision.route,))
    second = ask(Route.STRONG)
    return _answered(second, first.cost_usd + second.cost_usd, (Route.SMALL, Route.STRONG), escalated=True)


def _answered(answer: TierAnswer, cost_usd: float, calls: tuple[Route, ...], escalated=False) -> RoutedAnswer:
    level = Route.HUMAN if answer.label is None else Route(answer.tier)
    return RoutedAnswer(answer.label, level, cost_usd, calls, escalated)


def gateway_ask(
    gateway: LLMGateway, prompt: Prompt, record: Mapping[str, object], ctx: CallContext, label_field: str
) -> Ask:
    """``carry_out``'s ``ask`` in the product: one gateway call from the given tier; the answer is the
    output's ``label_field``. Every call is in the ledger, so an escalation's two calls are too."""

    def ask(tier: Route) -> TierAnswer:
        result = gateway.complete(prompt, record, ctx, start_tier=tier)
        label = None if result.needs_human else getattr(result.value, label_field)
        return TierAnswer(label, result.cost_usd, result.tier)

    return ask


@dataclass(frozen=True)
class LabelledItem:
    """One labelled item for calibration: each level's correctness, each LLM tier's cost for it, and the
    probability the local model gives the small tier's answer (what the cascade checks)."""

    local_confidence: float
    local_correct: bool
    small_correct: bool
    strong_correct: bool
    small_cost_usd: float
    strong_cost_usd: float
    small_local_support: float


def labelled_item(
    truth: str, local_probabilities: Mapping[str, float], small: TierAnswer, strong: TierAnswer
) -> LabelledItem:
    """A calibration item from a labelled example: the local model's distribution and both tiers' answers."""
    local_label = _top(local_probabilities)
    return LabelledItem(
        local_confidence=local_probabilities[local_label],
        local_correct=local_label == truth,
        small_correct=small.label == truth,
        strong_correct=strong.label == truth,
        small_cost_usd=small.cost_usd,
        strong_cost_usd=strong.cost_usd,
        small_local_support=local_probabilities.get(small.label, 0.0),
    )


@dataclass(frozen=True)
class Calibration:
    """``shares``: answered locally, by the small tier, and with a strong call (directly or escalated);
    ``escalated``: the share that paid for a small and a strong call."""

    local_min: float
    small_min: float
    small_min_local_support: float
    accuracy: float
    cost_usd: float
    shares: dict[str, float]
    escalated: float
    reached_target: bool

    def apply(self, policy: RouterPolicy, version: str) -> RouterPolicy:
        """A new policy version with these thresholds: a candidate to run in shadow, then promote."""
        return replace(
            policy,
            version=version,
            local_min=self.local_min,
            small_min=self.small_min,
            small_min_local_support=self.small_min_local_support,
        )


ONE_SIDED_95 = 1.645  # standard normal quantile: a 95% one-sided lower confidence bound


def calibrate_thresholds(
    items: Sequence[LabelledItem],
    target_accuracy: float,
    grid: Sequence[float] | None = None,
    *,
    relative_to_strong: bool = False,
    z: float = ONE_SIDED_95,
    new_items: int | None = None,
) -> Calibration:
    """The cheapest (local_min, small_min, small_min_local_support) reaching ``target_accuracy``, ties broken
    by accuracy. With ``relative_to_strong`` the target is a share of the strong tier's accuracy on the
    same items.

    Thresholds fit on a sample must hold on new items, so the target counts as reached when the mean
    per-item excess ``correct - target`` is still >= 0 at ``z`` standard errors below; relative to strong
    the excess is paired per item (``correct - target * strong_correct``), with a far smaller variance
    than two separate accuracies. Without ``new_items`` that is a confidence bound on the long-run
    accuracy; with it, a prediction bound on the accuracy measured over that many new items (both
    samples' noise adds up). The default grid is coarse (0.05) on purpose: the cheapest of many close
    candidates is the one whose accuracy was estimated most optimistically, and finer thresholds than a
    few hundred items can support only fit noise. When nothing reaches the target the most accurate
    policy is returned with ``reached_target=False``.

    The routing is ``route`` + ``carry_out``, vectorised: with items sorted by confidence, local, cascade
    and strong items are three consecutive runs, so every threshold triple's totals are differences of
    cumulative sums.
    """
    by_confidence = sorted(items, key=lambda item: -item.local_confidence)
    column = {
        name: np.array([getattr(item, name) for item in by_confidence], dtype=float)
        for name in LabelledItem.__annotations__
    }
    n = len(items)
    # 1.01 is "never": a threshold no confidence or support reaches.
    candidates = np.unique(
        np.append(np.linspace(0, 1, 21).round(2) if grid is None else np.asarray(grid), 1.01)
    )
    reference = (
        target_accuracy * column["strong_correct"] if relative_to_strong else np.full(n, target_accuracy)
    )
    accept = column["small_local_support"][None, :] >= candidates[:, None]  # (support threshold, item)
    zeros = np.zeros(n)

    def prefix_sums(correct, cost, strong_call, escalated):
        """Cumulative sums from 0 over the sorted items of: correct, cost, strong call, escalation and the
        squared excess over the target."""
        per_item = np.stack(
            np.broadcast_arrays(correct, cost, strong_call, escalated, (correct - reference) ** 2)
        )
        return np.concatenate([np.zeros((*per_item.shape[:-1], 1)), per_item.cumsum(axis=-1)], axis=-1)

    local = prefix_sums(column["local_correct"], zeros, zeros, zeros)
    strong = prefix_sums(column["strong_correct"], column["strong_cost_usd"], zeros + 1, zeros)
    cascade = prefix_sums(  # (metric, support threshold, item + 1)
        np.where(accept, column["small_correct"], column["strong_correct"]),
        column["small_cost_usd"] + np.where(accept, 0, column["strong_cost_usd"]),
        ~accept,
        ~accept,
    )

    # items at or above a threshold: a prefix of the sorted items
    at_or_above = np.searchsorted(-column["local_confidence"], -candidates, side="right")
    local_i, small_i, support_i = (index.ravel() for index in np.indices((len(candidates),) * 3))
    valid = candidates[small_i] <= candidates[local_i]  # small_min above local_min would never apply
    local_i, small_i, support_i = local_i[valid], small_i[valid], support_i[valid]
    k, m = at_or_above[local_i], at_or_above[small_i]
    totals = local[:, k] + cascade[:, support_i, m] - cascade[:, support_i, k] + strong[:, [n]] - strong[:, m]
    correct, cost, strong_calls, escalations, squared_excess = totals
    accuracy = correct / n
    excess = accuracy - reference.mean()
    variance = np.maximum(squared_excess / n - excess**2, 0) * n / max(n - 1, 1)
    standard_error = np.sqrt(variance * (1 / n + (1 / new_items if new_items else 0)))
    reached = excess - z * standard_error >= -1e-12
    if reached.any():
        pool = np.flatnonzero(reached)
        best = pool[np.lexsort((-accuracy[pool], cost[pool]))[0]]
    else:
        best = np.lexsort((cost, -accuracy))[0]
    local_share = k[best] / n
    return Calibration(
        local_min=float(candidates[local_i[best]]),
        small_min=float(candidates[small_i[best]]),
        small_min_local_support=float(candidates[support_i[best]]),
        accuracy=float(accuracy[best]),
        cost_usd=float(cost[best]),
        shares={
            str(Route.LOCAL): float(local_share),
            str(Route.SMALL): float(1 - local_share - strong_calls[best] / n),
            str(Route.STRONG): float(strong_calls[best] / n),
        },
        escalated=float(escalations[best] / n),
        reached_target=bool(reached.any()),
    )
