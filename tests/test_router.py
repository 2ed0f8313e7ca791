"""Router rules, the small-to-strong cascade, audit of decisions, policy versions and calibration."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest
from llm_fixtures import TICKET, build_gateway, llm_tiers, sqlite_store, triage_prompt
from llm_server import LLMTestServer

from orchestration_pipelines.audit import read_audit_log
from orchestration_pipelines.ledger import CallContext
from orchestration_pipelines.router import (
    LabelledItem,
    Route,
    RouteDecision,
    RouterPolicy,
    RoutingContext,
    TierAnswer,
    active_router_policy,
    calibrate_thresholds,
    carry_out,
    gateway_ask,
    labelled_item,
    load_router_policy,
    record_decision,
    route,
)
from orchestration_pipelines.shadow import promote

POLICY = load_router_policy()
# Rule tests use fixed thresholds, so recalibrating the shipped file does not change what they check.
RULES = replace(POLICY, local_min=0.8, small_min=0.45, small_min_local_support=0.3)
BOTH_TIERS = {"small": 0.001, "strong": 0.02}


def decide(**context):
    return route(RoutingContext(**({"tier_cost_usd": BOTH_TIERS} | context)), RULES)


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
    assert decision.reason and decision.policy_version == RULES.version


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


def test_only_the_mid_band_cascades_and_only_when_both_calls_are_possible():
    mid = decide(local_confidence=0.6)
    assert (mid.route, mid.min_local_support) == (Route.SMALL, 0.3) and "escalated to strong" in mid.reason
    # no local model for the language, or the small tier as a stand-in for strong: nothing to check against
    assert decide(local_confidence=0.95, language="ja").min_local_support == 0
    assert decide(local_confidence=0.2, tier_cost_usd={"small": 0.001}).min_local_support == 0
    no_strong = decide(local_confidence=0.6, tier_cost_usd={"small": 0.001})
    assert no_strong.min_local_support == 0 and "no escalation (strong not configured)" in no_strong.reason
    # each call fits the budget, the small and the strong call together do not
    tight = decide(local_confidence=0.6, remaining_budget_usd=0.0205)
    assert (tight.route, tight.min_local_support) == (Route.SMALL, 0)
    assert "no escalation (strong over budget)" in tight.reason


LOCAL_PROBABILITIES = {"billing": 0.55, "refund": 0.35, "login": 0.02}
CASCADE = RouteDecision(Route.SMALL, "mid band", "v", min_local_support=0.3)


def scripted(answers: dict[Route, TierAnswer]):
    """An ``ask`` that answers from a table and records which tiers were asked."""
    asked = []

    def ask(tier):
        asked.append(tier)
        return answers[tier]

    return ask, asked


def test_a_small_answer_the_local_model_supports_stands_and_costs_one_call():
    for label in ("billing", "refund"):  # the local model's top answer, and one it gives 0.35 >= 0.3
        ask, asked = scripted({Route.SMALL: TierAnswer(label, 0.001, "small")})
        answer = carry_out(CASCADE, LOCAL_PROBABILITIES, ask)
        assert (answer.label, answer.level, answer.cost_usd, answer.escalated) == (
            label,
            "small",
            0.001,
            False,
        )
        assert asked == [Route.SMALL] and answer.calls == (Route.SMALL,)


def test_an_unsupported_small_answer_is_escalated_and_pays_for_both_calls():
    ask, asked = scripted(
        {
            Route.SMALL: TierAnswer("login", 0.001, "small"),
            Route.STRONG: TierAnswer("billing", 0.02, "strong"),
        }
    )
    answer = carry_out(CASCADE, LOCAL_PROBABILITIES, ask)
    assert (answer.label, answer.level, answer.escalated) == ("billing", Route.STRONG, True)
    assert answer.cost_usd == pytest.approx(0.021) and tuple(asked) == answer.calls == (
        Route.SMALL,
        Route.STRONG,
    )


def test_without_a_check_or_after_a_fallback_there_is_no_escalation():
    unchecked = replace(CASCADE, min_local_support=0.0)
    ask, asked = scripted({Route.SMALL: TierAnswer("login", 0.001, "small")})
    assert carry_out(unchecked, LOCAL_PROBABILITIES, ask).label == "login" and asked == [Route.SMALL]
    # the gateway already fell back from small to strong: that answer stands
    ask, asked = scripted({Route.SMALL: TierAnswer("login", 0.03, "strong")})
    answer = carry_out(CASCADE, LOCAL_PROBABILITIES, ask)
    assert (answer.level, answer.cost_usd, answer.escalated) == (Route.STRONG, 0.03, False)
    assert asked == [Route.SMALL]


def test_local_and_human_decisions_make_no_calls_and_a_failed_call_goes_to_a_human():
    ask, asked = scripted({Route.STRONG: TierAnswer(None, 0.004, None)})
    local = carry_out(RouteDecision(Route.LOCAL, "", "v"), LOCAL_PROBABILITIES, ask)
    assert (local.label, local.level, local.cost_usd, local.calls) == ("billing", Route.LOCAL, 0.0, ())
    assert carry_out(RouteDecision(Route.HUMAN, "", "v"), LOCAL_PROBABILITIES, ask).label is None
    assert asked == []
    failed = carry_out(RouteDecision(Route.STRONG, "", "v"), LOCAL_PROBABILITIES, ask)
    assert (failed.label, failed.level, failed.cost_usd) == (None, Route.HUMAN, 0.004)


def test_the_cascade_through_the_gateway_pays_for_both_calls_in_the_ledger(tmp_path):
    store = sqlite_store(tmp_path)
    by_model = {"small-model": "login", "strong-model": "billing"}

    def responder(body):
        return json.dumps({"category": by_model[body["model"]], "priority": "normal", "confidence": 0.9})

    with LLMTestServer(responder) as server:
        gateway = build_gateway(store, llm_tiers(server.base_url), cache=False)
        ask = gateway_ask(
            gateway, triage_prompt(), TICKET, CallContext("support", "triage", "r1"), "category"
        )
        escalated = carry_out(decide(local_confidence=0.6), LOCAL_PROBABILITIES, ask)
        by_model["small-model"] = "billing"
        accepted = carry_out(decide(local_confidence=0.6), LOCAL_PROBABILITIES, ask)

    assert [r.model for r in server.requests] == ["small-model", "strong-model", "small-model"]
    assert (escalated.label, escalated.escalated, accepted.label, accepted.escalated) == (
        "billing",
        True,
        "billing",
        False,
    )
    rows = gateway.ledger.rows(run_id="r1")
    assert escalated.cost_usd + accepted.cost_usd == pytest.approx(sum(row["cost_usd"] for row in rows))
    assert escalated.cost_usd > accepted.cost_usd > 0


def test_decisions_go_to_the_audit_log_with_the_policy_version(tmp_path):
    store = sqlite_store(tmp_path)
    record_decision(
        store, workflow="support", item_id="T-7", decision=decide(local_confidence=0.6), run_id="r1"
    )
    [entry] = read_audit_log(store, workflow="support")
    assert (entry.event, entry.subject, entry.run_id) == ("route_decision", "T-7", "r1")
    assert entry.details["route"] == "small" and entry.details["policy_version"] == RULES.version
    assert entry.details["min_local_support"] == 0.3


def test_a_promoted_policy_becomes_active_and_round_trips(tmp_path):
    store = sqlite_store(tmp_path)
    assert active_router_policy(store) == POLICY
    candidate = calibrate_thresholds(_items(_cascade_world(200)), 0.9).apply(POLICY, "2025-02.1")
    assert candidate.small_min_local_support > 0
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


def test_a_policy_promoted_before_the_cascade_existed_never_escalates():
    document = POLICY.as_dict()
    del document["cascade"]
    assert RouterPolicy.from_dict(document).small_min_local_support == 0


SMALL_COST, STRONG_COST = 1.0, 10.0


def _world(n: int, small_right, seed: int = 3):
    """Truth ``a``; the local model answers ``a`` above 0.7 confidence, else ``b``, and gives ``a`` half
    its confidence; the small tier's wrong answer ``c`` gets no local support; strong is always right."""
    rng = random.Random(seed)
    world = []
    for _ in range(n):
        confidence = rng.uniform(0.2, 1.0)
        local = {"a": confidence} if confidence > 0.7 else {"b": confidence, "a": confidence / 2}
        small = "a" if small_right(confidence, rng) else "c"
        world.append(
            ("a", local, TierAnswer(small, SMALL_COST, "small"), TierAnswer("a", STRONG_COST, "strong"))
        )
    return world


def _band_world(n: int):
    """The small tier is right above 0.4 confidence: confidence bands alone separate the levels."""
    return _world(n, lambda confidence, rng: confidence > 0.4)


def _cascade_world(n: int):
    """The small tier is right 80% of the time whatever the confidence: only the cascade's check helps."""
    return _world(n, lambda confidence, rng: rng.random() < 0.8)


def _items(world) -> list[LabelledItem]:
    return [labelled_item(*example) for example in world]


def test_calibration_picks_the_cheapest_bands_when_they_suffice():
    calibration = calibrate_thresholds(_items(_band_world(500)), target_accuracy=1.0)
    assert calibration.reached_target and calibration.accuracy == 1.0
    assert (calibration.local_min, calibration.small_min) == (0.7, 0.4) and calibration.escalated == 0


def test_calibration_picks_the_cascade_when_it_is_cheaper_and_route_reproduces_its_figures():
    world = _cascade_world(500)
    calibration = calibrate_thresholds(_items(world), target_accuracy=1.0)

    # all non-local items go to the small tier, and its unsupported (wrong) answers are escalated
    assert calibration.reached_target and calibration.accuracy == 1.0
    assert (calibration.local_min, calibration.small_min, calibration.small_min_local_support) == (
        0.7,
        0,
        0.05,
    )
    non_local = [small for _, local, small, _ in world if max(local.values()) < 0.7]
    wrong = sum(small.label != "a" for small in non_local)
    assert calibration.cost_usd == len(non_local) * SMALL_COST + wrong * STRONG_COST
    assert calibration.escalated == calibration.shares["strong"] == wrong / len(world)

    # the product path (``route`` + ``carry_out``) on the calibrated policy gives the same figures
    policy = calibration.apply(POLICY, "calibrated")
    answers = [
        carry_out(
            route(RoutingContext(max(local.values()), tier_cost_usd=BOTH_TIERS), policy),
            local,
            lambda tier, small=small, strong=strong: small if tier == Route.SMALL else strong,
        )
        for _, local, small, strong in world
    ]
    assert sum(a.label == "a" for a in answers) / len(world) == calibration.accuracy
    assert sum(a.cost_usd for a in answers) == calibration.cost_usd
    assert sum(a.escalated for a in answers) / len(world) == calibration.escalated
    assert sum(a.level == Route.LOCAL for a in answers) / len(world) == calibration.shares["local"]


def _noisy_items(n: int = 500) -> list[LabelledItem]:
    """Local right with probability = its confidence, small 85%, strong 95%: every policy is uncertain."""
    rng = random.Random(5)
    items = []
    for _ in range(n):
        confidence = rng.random()
        correct = (rng.random() < confidence, rng.random() < 0.85, rng.random() < 0.95)
        items.append(LabelledItem(confidence, *correct, SMALL_COST, STRONG_COST, rng.random()))
    return items


def test_a_wider_margin_buys_a_dearer_more_accurate_policy():
    items = _noisy_items()
    exact = calibrate_thresholds(items, 0.9, z=0)
    confident = calibrate_thresholds(items, 0.9)
    predicted = calibrate_thresholds(items, 0.9, new_items=100)  # must also hold on 100 new items
    assert exact.reached_target and confident.reached_target and predicted.reached_target
    assert 0.9 <= exact.accuracy < confident.accuracy < predicted.accuracy
    assert exact.cost_usd < confident.cost_usd < predicted.cost_usd


def test_a_target_relative_to_strong_is_a_share_of_its_accuracy_on_the_same_items():
    items = _noisy_items()
    strong_accuracy = sum(item.strong_correct for item in items) / len(items)
    relative = calibrate_thresholds(items, 0.95, relative_to_strong=True, z=0)
    absolute = calibrate_thresholds(items, 0.95 * strong_accuracy, z=0)
    assert relative == absolute and relative.accuracy >= 0.95 * strong_accuracy


def test_a_lower_target_buys_a_cheaper_policy():
    items = _items(_band_world(500))
    strict, relaxed = calibrate_thresholds(items, 1.0), calibrate_thresholds(items, 0.9)
    assert relaxed.reached_target and relaxed.accuracy >= 0.9 and relaxed.cost_usd < strict.cost_usd


def test_an_unreachable_target_returns_the_most_accurate_policy_and_says_so():
    items = [
        LabelledItem(0.5, False, False, False, 1.0, 2.0, 0.5),
        LabelledItem(0.9, True, False, False, 1.0, 2.0, 0.1),
    ]
    calibration = calibrate_thresholds(items, target_accuracy=1.0)
    assert not calibration.reached_target and calibration.accuracy == 0.5 and calibration.cost_usd == 0
