"""The llm_ops assets and the LLM resource inside real Dagster runs.

No ``from __future__ import annotations`` here: Dagster inspects the ``context`` annotation at runtime.
"""

from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    DagsterInstance,
    EnvVar,
    MaterializeResult,
    asset,
    evaluate_automation_conditions,
    materialize,
)
from llm_fixtures import TICKET
from llm_server import LLMTestServer

from assets.llm_ops import LLM_OPS_ASSETS, LLM_OPS_CHECKS, llm_resources
from orchestration_pipelines.definitions import build_definitions
from orchestration_pipelines.prompt_registry import PromptRegistry
from orchestration_pipelines.shadow import ShadowExperiment, VariantOutcome, run_shadow
from resources.llm import LLM_POOL, LLMGatewayResource, LLMTierConfig
from resources.opstore import OperationalStoreResource

USAGE = AssetKey(["llm_ops", "usage_daily"])
SHADOW = AssetKey(["llm_ops", "shadow_comparisons"])
SECRET = "sk-live-do-not-leak-5d2c9a"


@asset(pool=LLM_POOL)
def ticket_triage(context: AssetExecutionContext, llm: LLMGatewayResource) -> MaterializeResult:
    gateway = llm.gateway()
    prompt = PromptRegistry().get("support_triage", 1)
    for _ in range(2):  # the second call is a cache hit
        gateway.complete(prompt, TICKET, llm.call_context(context, workflow="support"), start_tier="small")
    return MaterializeResult(metadata=llm.run_usage_metadata(context))


@pytest.fixture
def server():
    with LLMTestServer() as running:
        yield running


def llm_resource(server, tmp_path, **overrides) -> LLMGatewayResource:
    tier = LLMTierConfig(
        name="small",
        model="small-model",
        base_url=server.base_url,
        api_key=EnvVar("OP_TEST_LLM_KEY"),
        input_price_per_1k=0.5,
        output_price_per_1k=1.0,
        timeout_s=2,
    )
    return LLMGatewayResource(
        opstore=OperationalStoreResource(url=f"sqlite:///{tmp_path / 'ops.sqlite'}"),
        tiers=[tier],
        backoff_base_s=0.01,
        **overrides,
    )


def test_an_asset_reports_its_llm_cost_without_leaking_the_key(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OP_TEST_LLM_KEY", SECRET)
    resource = llm_resource(server, tmp_path)
    instance = DagsterInstance.ephemeral()

    triage = materialize([ticket_triage], resources={"llm": resource}, instance=instance)
    usage = materialize([*LLM_OPS_ASSETS, *LLM_OPS_CHECKS], resources={"llm": resource}, instance=instance)

    [request] = server.requests
    assert request.headers["authorization"] == f"Bearer {SECRET}"  # the EnvVar was resolved at run time
    expected_cost = (request.prompt_tokens * 0.5 + request.completion_tokens * 1.0) / 1000
    metadata = triage.asset_materializations_for_node("ticket_triage")[0].metadata
    assert metadata["llm_calls"].value == 1 and metadata["llm_cache_hits"].value == 1
    assert metadata["llm_input_tokens"].value == request.prompt_tokens
    assert metadata["llm_cost_usd"].value == pytest.approx(expected_cost, abs=1e-6)
    daily = usage.asset_materializations_for_node("llm_ops__usage_daily")[0].metadata
    assert daily["calls_today"].value == 1 and daily["cache_hit_rate_today"].value == 0.5
    assert "| support |" in daily["usage"].value
    [check] = usage.get_asset_check_evaluations()
    assert check.passed

    logs = "\n".join(str(record) for run in (triage, usage) for record in instance.all_logs(run.run_id))
    assert SECRET not in logs and SECRET not in repr(resource) and SECRET not in repr(resource.tiers)


def test_the_budget_check_warns_once_paid_calls_are_refused(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OP_TEST_LLM_KEY", SECRET)
    resource = llm_resource(server, tmp_path, workflow_budgets_usd={"support": 0.05})  # below one worst case

    triage = materialize([ticket_triage], resources={"llm": resource})
    usage = materialize([*LLM_OPS_ASSETS, *LLM_OPS_CHECKS], resources={"llm": resource})

    assert server.requests == []
    assert triage.asset_materializations_for_node("ticket_triage")[0].metadata["llm_calls"].value == 0
    [check] = usage.get_asset_check_evaluations()
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert check.metadata["workflows_at_budget"].value["support"]["refused_calls"] == 2


def test_shadow_comparisons_show_in_metadata(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OP_TEST_LLM_KEY", SECRET)
    resource = llm_resource(server, tmp_path)
    experiment = ShadowExperiment("prompt", "support_triage", "1", "2", workflow="support")
    run_shadow(
        resource.opstore.store(),
        experiment,
        [("T-1", {"y": "a"})],
        lambda item: VariantOutcome("a", "small", 0.01),
        lambda item: VariantOutcome("b", "strong", 0.2),
        label_of=lambda item: item["y"],
    )

    result = materialize(LLM_OPS_ASSETS, resources={"llm": resource}, selection=[SHADOW])

    metadata = result.asset_materializations_for_node("llm_ops__shadow_comparisons")[0].metadata
    assert metadata["experiments"].value == 1
    assert "| prompt:support_triage:1->2 | 1 | 0.0% | 1 | 100.0% | 0.0% |" in metadata["comparisons"].value
    assert metadata["details"].value[experiment.key]["candidate_cost_usd"] == 0.2


def test_llm_resources_come_from_the_environment(monkeypatch):
    for name in ("SMALL", "STRONG"):
        monkeypatch.delenv(f"OP_LLM_{name}_BASE_URL", raising=False)
    assert llm_resources()["llm"].tiers == []  # embedded default: no LLM tier
    monkeypatch.setenv("OP_LLM_STRONG_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OP_LLM_STRONG_API_KEY", SECRET)
    [tier] = llm_resources()["llm"].tiers
    assert (tier.name, tier.input_price_per_1k) == ("strong", 0.0025)
    assert SECRET not in repr(tier) and tier.api_key == EnvVar("OP_LLM_STRONG_API_KEY")


def test_metadata_says_plainly_when_no_llm_tier_is_configured(tmp_path):
    opstore = OperationalStoreResource(url=f"sqlite:///{tmp_path / 'ops.sqlite'}")
    resource = LLMGatewayResource(opstore=opstore)  # no tier: the embedded default

    result = materialize(LLM_OPS_ASSETS, resources={"llm": resource})

    for node in ("llm_ops__usage_daily", "llm_ops__shadow_comparisons"):
        tiers = result.asset_materializations_for_node(node)[0].metadata["llm_tiers"].value
        assert tiers.startswith("none configured") and "OP_LLM_SMALL_BASE_URL" in tiers


def test_metadata_names_the_configured_tiers(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OP_TEST_LLM_KEY", SECRET)

    result = materialize(LLM_OPS_ASSETS, resources={"llm": llm_resource(server, tmp_path)})

    assert result.asset_materializations_for_node("llm_ops__usage_daily")[0].metadata["llm_tiers"].value == (
        "small (small-model)"
    )


def test_llm_ops_refresh_every_15_minutes_without_a_click(data_env):
    defs, instance = build_definitions(), DagsterInstance.ephemeral()
    start = datetime(2026, 11, 26, 9, 1, tzinfo=UTC)

    first = evaluate_automation_conditions(defs, instance, evaluation_time=start)
    later = evaluate_automation_conditions(
        defs, instance, evaluation_time=start + timedelta(minutes=5), cursor=first.cursor
    )
    due = evaluate_automation_conditions(
        defs, instance, evaluation_time=start + timedelta(minutes=15), cursor=later.cursor
    )

    assert later.total_requested == 0  # no cron tick since the last evaluation
    assert {key for key in (USAGE, SHADOW) if due.get_num_requested(key)} == {USAGE, SHADOW}
    assert due.total_requested == 2  # nothing else in the code location runs on a condition
