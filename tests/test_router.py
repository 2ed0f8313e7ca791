"""Router rules, audit of decisions, policy versions and threshold calibration."""

from __future__ import annotations

import random

import pytest
from llm_fixtures import sqlite_store

from orchestration_pipelines.audit import read_audit_log
from orchestration_pipelines.router import (
    LabelledItem,
    Route,
    RoutingContext,
    active_router_policy,
    calibrate_thresholds,
    load_router_policy,
    record_decision,
    route,
)
from orchestration_pipelines.shadow import promote

POLICY = load_router_policy()
BOTH_TIERS = {"small": 0.001, "strong": 0.02}


def decide(**context):
    return route(RoutingContext(**({"tier_cost_usd": BOTH_TIERS} | context)), POLICY)


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"local_confidence": 0.99, "risk_score": 0.95}, Route.HUMAN),
        ({"local_confidence": 0.99, "risk_score": 0.7}, Route.STRONG),
        ({"local_confidence": 0.99, "required_accuracy": 0.99}, Route.STRONG),
        ({"local_confidence": 0.95}, Route.LOCAL),
        ({"local_confidence": 0.95, "language": "ja"}, Route.SMALL),
        ({"local_confidence": 0.6}, Route.SMALL),
        ({"local_confidence": 0.2}, Route.STRONG),
    ],
)
def test_rules_pick_the_level_and_say_why(context, expected):
    decision = decide(**context)
    assert decision.route == expected
    assert decision.reason and decision.policy_version == POLICY.version


def test_over_budget_the_router_stops_choosing_paid_tiers():
    assert decide(local_confidence=0.2, remaining_budget_usd=0.005).route == Route.SMALL  # strong too dear
    broke = [decide(local_confidence=c, remaining_budget_usd=0.0) for c in (0.7, 0.5, 0.2)]
    assert [d.route for d in broke] == [Route.LOCAL, Route.HUMAN, Route.HUMAN]
    assert all("over budget" in d.reason for d in broke)


def test_a_risky_item_is_never_downgraded_to_save_money():
    decision = decide(local_confidence=0.99, risk_score=0.7, remaining_budget_usd=0.005)
    assert decision.route == Route.HUMAN and "strong over budget" in decision.reason


def test_without_llm_tiers_the_product_runs_on_local_models_and_humans():
    assert decide(local_confidence=0.7, tier_cost_usd={}).route == Route.LOCAL
    assert decide(local_confidence=0.3, tier_cost_usd={}).route == Route.HUMAN
    assert decide(local_confidence=0.3, tier_cost_usd={"small": 0.001}).route == Route.SMALL


def test_decisions_go_to_the_audit_log_with_the_policy_version(tmp_path):
    store = sqlite_store(tmp_path)
    record_decision(
        store, workflow="support", item_id="T-7", decision=decide(local_confidence=0.2), run_id="r1"
    )
    [entry] = read_audit_log(store, workflow="support")
    assert (entry.event, entry.subject, entry.run_id) == ("route_decision", "T-7", "r1")
    assert entry.details["route"] == "strong" and entry.details["policy_version"] == POLICY.version


def test_a_promoted_policy_becomes_active_and_round_trips(tmp_path):
    store = sqlite_store(tmp_path)
    assert active_router_policy(store) == POLICY
    candidate = calibrate_thresholds(_labelled(200), 0.9).apply(POLICY, "2025-02.1")
    promote(
        store,
        kind="router_policy",
        name="router",
        version=candidate.version,
        actor="ana",
        workflow="support",
        reason="calibrated",
        payload=candidate.as_dict(),
    )
    assert active_router_policy(store) == candidate


def _labelled(n: int, seed: int = 3) -> list[LabelledItem]:
    """Local is right above 0.7 confidence, small above 0.4, strong always; strong costs 10x small."""
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        confidence = rng.random()
        items.append(LabelledItem(confidence, confidence > 0.7, confidence > 0.4, True, 1.0, 10.0))
    return items


def test_calibration_picks_the_cheapest_thresholds_that_reach_the_target():
    items = _labelled(500)
    calibration = calibrate_thresholds(items, target_accuracy=1.0)

    assert calibration.reached_target and calibration.accuracy == 1.0
    assert calibration.local_min in (0.7, 0.71) and calibration.small_min in (0.4, 0.41)
    # the calibrated policy, applied item by item through ``route``, gives the same figures
    policy = calibration.apply(POLICY, "calibrated")
    routes = [
        route(RoutingContext(local_confidence=i.local_confidence, tier_cost_usd=BOTH_TIERS), policy).route
        for i in items
    ]
    correct = {Route.LOCAL: "local_correct", Route.SMALL: "small_correct", Route.STRONG: "strong_correct"}
    accuracy = sum(getattr(i, correct[r]) for i, r in zip(items, routes, strict=True)) / len(items)
    cost = sum(
        {Route.SMALL: i.small_cost_usd, Route.STRONG: i.strong_cost_usd}.get(r, 0)
        for i, r in zip(items, routes, strict=True)
    )
    assert (accuracy, cost) == (calibration.accuracy, calibration.cost_usd)
    assert calibration.shares["strong"] == pytest.approx(routes.count(Route.STRONG) / len(items))


def test_a_lower_target_buys_a_cheaper_policy():
    items = _labelled(500)
    strict, relaxed = calibrate_thresholds(items, 1.0), calibrate_thresholds(items, 0.9)
    assert relaxed.reached_target and relaxed.accuracy >= 0.9 and relaxed.cost_usd < strict.cost_usd


def test_an_unreachable_target_returns_the_most_accurate_policy_and_says_so():
    items = [
        LabelledItem(0.5, False, False, False, 1.0, 2.0),
        LabelledItem(0.9, True, False, False, 1.0, 2.0),
    ]
    calibration = calibrate_thresholds(items, target_accuracy=1.0)
    assert not calibration.reached_target and calibration.accuracy == 0.5 and calibration.cost_usd == 0
