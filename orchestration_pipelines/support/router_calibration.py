"""The router calibrated on the support workflow's own labelled tickets, run in shadow, then promoted.

The classifier's hold-out tickets (true intent, the local answer and its calibrated confidence) are
the labelled items. Without LLM tiers asked on them, the levels below the local threshold are a
person, counted as right and as one unit of cost, so ``calibrate_thresholds`` finds the lowest local
threshold whose overall accuracy still reaches the target; that threshold is both ``local_min`` and
``budget_fallback_local_min`` (without tiers the router accepts a local answer at the latter). The
result is registered as the CANDIDATE policy (never active), the triage routes every ticket with it
in shadow, and ``promote_router_candidate`` makes it active only with shadow results as evidence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pandas as pd

from orchestration_pipelines.audit import append_audit_event
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.router import (
    LabelledItem,
    RouterPolicy,
    active_router_policy,
    calibrate_thresholds,
)
from orchestration_pipelines.shadow import (
    ActiveVersion,
    UnknownVersion,
    compare,
    promote,
)
from orchestration_pipelines.support.triage import ROUTER_KIND, ROUTER_NAME, router_shadow_experiment

WORKFLOW = "support"
CANDIDATE_KIND = "router_policy_candidate"  # one pending candidate per router, beside the active pointer
PERSON_COST = 1.0  # without LLM tiers a ticket below the threshold costs a person's unit of work


@dataclass(frozen=True)
class RouterCandidate:
    policy: RouterPolicy
    differs_from_active: bool
    reason: str
    evidence: dict


def holdout_items(holdout: pd.DataFrame) -> list[LabelledItem]:
    """Labelled items from the hold-out; below the local threshold a person answers, right, at one unit."""
    return [
        LabelledItem(
            local_confidence=float(confidence),
            local_correct=bool(local == truth),
            small_correct=True,
            strong_correct=True,
            small_cost_usd=PERSON_COST,
            strong_cost_usd=PERSON_COST,
            small_local_support=1.0,
        )
        for truth, local, confidence in holdout[["intent", "local_intent", "local_confidence"]].itertuples(
            index=False
        )
    ]


def calibrate_candidate(
    holdout: pd.DataFrame, active: RouterPolicy, version: str, target_accuracy: float
) -> RouterCandidate:
    """A candidate policy ``version`` whose local threshold is calibrated on the hold-out tickets."""
    if holdout.empty:
        raise ValueError("no hold-out tickets to calibrate the router on")
    calibration = calibrate_thresholds(holdout_items(holdout), target_accuracy)
    threshold = calibration.local_min
    policy = replace(active, version=version, local_min=threshold, budget_fallback_local_min=threshold)
    local_share = calibration.shares["local"]
    above = holdout["local_confidence"] >= threshold
    before_share = float((holdout["local_confidence"] >= active.budget_fallback_local_min).mean())
    differs = (threshold, threshold) != (active.local_min, active.budget_fallback_local_min)
    reason = (
        f"local answers accepted from confidence {threshold:.2f} instead of {active.local_min:.2f} "
        f"(local_min) / {active.budget_fallback_local_min:.2f} (without LLM tiers)"
        if differs
        else f"the hold-out supports the active thresholds ({threshold:.2f}): same routing, new version"
    )
    if not calibration.reached_target:
        reason += f"; target accuracy {target_accuracy} not reached, the most accurate thresholds were taken"
    evidence = {
        "calibrated": "local threshold only: no LLM tier was asked on the hold-out, people answer below it",
        "items": len(holdout),
        "target_accuracy": target_accuracy,
        "reached_target": calibration.reached_target,
        "thresholds_before": {
            "local_min": active.local_min,
            "budget_fallback_local_min": active.budget_fallback_local_min,
        },
        "thresholds_after": {"local_min": threshold, "budget_fallback_local_min": threshold},
        "expected": {
            "local": {
                "share": round(local_share, 4),
                "accuracy": round(float((holdout["local_intent"] == holdout["intent"])[above].mean()), 4)
                if above.any()
                else None,
            },
            "human": {"share": round(1 - local_share, 4), "accuracy": 1.0},
            "overall_accuracy": round(calibration.accuracy, 4),
        },
        "local_share_before_without_tiers": round(before_share, 4),
    }
    return RouterCandidate(policy, differs, reason, evidence)


def register_candidate(
    store: OpStore, candidate: RouterCandidate, actor: str, run_id: str | None = None
) -> None:
    """Store ``candidate`` as the router's pending candidate (never active) and audit it."""
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO llm_active_versions (kind, name, version, payload, promoted_at, actor)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kind, name) DO UPDATE SET version = excluded.version,"
            " payload = excluded.payload, promoted_at = excluded.promoted_at, actor = excluded.actor",
            (
                CANDIDATE_KIND,
                ROUTER_NAME,
                candidate.policy.version,
                json.dumps(candidate.policy.as_dict()),
                datetime.now(UTC).isoformat(),
                actor,
            ),
        )
    append_audit_event(
        store,
        workflow=WORKFLOW,
        event="router_candidate",
        subject=f"{ROUTER_KIND}:{ROUTER_NAME}",
        actor=actor,
        run_id=run_id,
        details={"version": candidate.policy.version, "reason": candidate.reason, **candidate.evidence},
    )


def candidate_policy(store: OpStore) -> RouterPolicy | None:
    """The registered candidate, or ``None``."""
    with store.transaction() as cur:
        row = cur.execute(
            "SELECT payload FROM llm_active_versions WHERE kind = ? AND name = ?",
            (CANDIDATE_KIND, ROUTER_NAME),
        ).fetchone()
    return RouterPolicy.from_dict(json.loads(row[0])) if row else None


def shadowed_candidate(store: OpStore, active: RouterPolicy) -> RouterPolicy | None:
    """The candidate to run in shadow beside ``active``: none when there is none or it is the active one."""
    candidate = candidate_policy(store)
    return candidate if candidate and candidate.version != active.version else None


class NoShadowEvidence(LookupError):
    """The candidate never ran in shadow beside the active policy: nothing shows what it would change."""


def promote_router_candidate(store: OpStore, version: str, actor: str, reason: str) -> ActiveVersion:
    """Make the candidate ``version`` the active router policy, with its shadow comparison as evidence."""
    candidate = candidate_policy(store)
    if candidate is None or candidate.version != version:
        raise UnknownVersion(
            f"router policy {version!r} is not the registered candidate; nothing was promoted"
        )
    experiment = router_shadow_experiment(active_router_policy(store), candidate)
    try:
        evidence = compare(store, experiment.key)
    except KeyError:
        raise NoShadowEvidence(
            f"router policy {version!r} has no shadow results beside the active policy "
            f"({experiment.key}); run the triage with it first. Nothing was promoted"
        ) from None
    return promote(
        store,
        kind=ROUTER_KIND,
        name=ROUTER_NAME,
        version=version,
        actor=actor,
        workflow=WORKFLOW,
        reason=reason,
        payload=candidate.as_dict(),
        evidence=evidence,
    )
