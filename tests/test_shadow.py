"""Shadow mode: candidates run beside the active version, are compared, and are promoted explicitly."""

from __future__ import annotations

import pytest
from llm_fixtures import TICKET, build_gateway, llm_tiers, sqlite_store
from llm_server import LLMTestServer

from orchestration_pipelines.audit import read_audit_log, verify_audit_chain
from orchestration_pipelines.ledger import CallContext
from orchestration_pipelines.prompt_registry import PromptRegistry
from orchestration_pipelines.router import Route, RoutingContext, load_router_policy, route
from orchestration_pipelines.shadow import (
    ShadowExperiment,
    VariantOutcome,
    active_version,
    compare,
    promote,
    run_shadow,
)

EXPERIMENT = ShadowExperiment("router_policy", "router", "2025-01.1", "2025-02.1", workflow="support")


@pytest.fixture
def store(tmp_path):
    return sqlite_store(tmp_path)


def test_only_active_outcomes_are_returned_and_both_are_compared(store):
    items = [(f"T-{n}", {"label": "billing" if n % 2 else "refund", "n": n}) for n in range(10)]

    def active(item):
        return VariantOutcome("billing", "small", 0.01)

    def candidate(item):
        return VariantOutcome(item["label"] if item["n"] < 8 else "login", "strong", 0.05)

    acted_on = run_shadow(store, EXPERIMENT, items, active, candidate, label_of=lambda item: item["label"])

    assert set(acted_on) == {item_id for item_id, _ in items}
    assert all(outcome.output == "billing" for outcome in acted_on.values())
    comparison = compare(store, EXPERIMENT.key)
    assert comparison.items == comparison.labelled == 10
    assert comparison.agreement == pytest.approx(0.4)  # candidate says billing on T-1, 3, 5, 7
    assert (comparison.active_accuracy, comparison.candidate_accuracy) == (0.5, 0.8)
    assert comparison.active_cost_usd == pytest.approx(
        0.1
    ) and comparison.candidate_cost_usd == pytest.approx(0.5)
    assert comparison.active_routes == {"small": 1.0} and comparison.candidate_routes == {"strong": 1.0}


def test_a_failing_candidate_never_disturbs_the_active_path(store):
    def broken(item):
        raise RuntimeError("candidate bug")

    acted_on = run_shadow(store, EXPERIMENT, [("T-1", {})], lambda item: VariantOutcome("x", "local"), broken)
    assert acted_on["T-1"].output == "x"
    comparison = compare(store, EXPERIMENT.key)
    assert comparison.candidate_routes == {"error:RuntimeError": 1.0} and comparison.agreement == 0.0


def test_promotion_is_explicit_audited_and_switches_the_active_prompt(store):
    registry = PromptRegistry()
    assert registry.active("support_triage", store).version == 1  # v2 is a candidate until promoted
    with pytest.raises(ValueError, match="named actor"):
        promote(
            store,
            kind="prompt",
            name="support_triage",
            version="2",
            actor=" ",
            workflow="support",
            reason="x",
        )

    run_shadow(
        store,
        EXPERIMENT,
        [("T-1", {})],
        lambda i: VariantOutcome("a", "small"),
        lambda i: VariantOutcome("a", "small"),
    )
    promote(
        store,
        kind="prompt",
        name="support_triage",
        version="2",
        actor="ana@ops",
        workflow="support",
        reason="better on labelled tickets",
        evidence=compare(store, EXPERIMENT.key),
    )

    assert registry.active("support_triage", store).version == 2
    assert active_version(store, "prompt", "support_triage").actor == "ana@ops"
    [event] = [e for e in read_audit_log(store, workflow="support") if e.event == "promotion"]
    assert event.actor == "ana@ops" and event.subject == "prompt:support_triage"
    assert event.details["from_version"] == "default" and event.details["to_version"] == "2"
    assert event.details["evidence"]["agreement"] == 1.0
    assert verify_audit_chain(store) == []


def test_a_candidate_prompt_runs_in_shadow_against_the_real_server(store):
    registry = PromptRegistry()
    active_prompt, candidate_prompt = registry.get("support_triage", 1), registry.get("support_triage", 2)
    experiment = ShadowExperiment("prompt", "support_triage", "1", "2", workflow="support")
    ctx = CallContext(workflow="support", asset="ticket_triage", run_id="r-shadow")
    tickets = [(f"T-{n}", TICKET | {"subject": f"Charge {n}"}) for n in range(3)]
    policy = load_router_policy()

    with LLMTestServer() as server:
        gateway = build_gateway(store, llm_tiers(server.base_url))

        def variant(prompt):
            def run(ticket):
                decision = route(RoutingContext(local_confidence=0.5, tier_cost_usd={"small": 0.01}), policy)
                result = gateway.complete(prompt, ticket, ctx, start_tier=decision.route)
                return VariantOutcome(
                    result.value.category if result.value else None, decision.route, result.cost_usd
                )

            return run

        run_shadow(store, experiment, tickets, variant(active_prompt), variant(candidate_prompt))

    assert len(server.requests) == 6
    comparison = compare(store, experiment.key)
    assert comparison.agreement == 1.0 and comparison.active_routes == {Route.SMALL: 1.0}
    versions = [row["prompt_version"] for row in gateway.ledger.rows(run_id="r-shadow")]
    assert sorted(versions) == ["1"] * 3 + ["2"] * 3
    assert comparison.candidate_cost_usd == pytest.approx(
        sum(row["cost_usd"] for row in gateway.ledger.rows() if row["prompt_version"] == "2")
    )
