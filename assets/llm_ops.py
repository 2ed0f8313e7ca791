"""The ``llm_ops`` asset group: LLM spend, budgets and shadow experiments, visible in the UI.

Thin Dagster layer over ``orchestration_pipelines.ledger`` and ``orchestration_pipelines.shadow``;
the budget check only warns, because the budget itself is enforced by the gateway before each call.
The assets refresh on a cron automation condition, so the budget check runs without anyone launching it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AutomationCondition,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from orchestration_pipelines.ledger import UsageSummary, today
from orchestration_pipelines.reporting import markdown_table
from orchestration_pipelines.shadow import compare, list_experiments
from resources.llm import LLMGatewayResource, llm_gateway_resource

USAGE_DAYS = 7
LLM_OPS = "llm_ops"
NO_TIER_CONFIGURED = (
    "none configured: no LLM is called, workflows run on local models and human review "
    "(set OP_LLM_SMALL_BASE_URL or OP_LLM_STRONG_BASE_URL to enable a tier)"
)
_llm_ops_asset = {
    "key_prefix": LLM_OPS,
    "group_name": LLM_OPS,
    "owners": ["team:ml-platform"],
    "automation_condition": AutomationCondition.on_cron("*/15 * * * *"),
}


def _markdown_table(header: list[str], rows: list[list[object]]) -> str:
    return markdown_table(pd.DataFrame(rows, columns=header))


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _tiers(llm: LLMGatewayResource) -> str:
    """The configured tiers in fallback order, or plainly that there is none (the embedded default)."""
    return ", ".join(f"{tier.name} ({tier.model})" for tier in llm.tiers) or NO_TIER_CONFIGURED


@asset(**_llm_ops_asset, kinds={"openai", "python"})
def usage_daily(llm: LLMGatewayResource) -> MaterializeResult:
    """LLM cost, tokens, calls and cache hits per workflow per day (last 7 days), against each budget."""
    ledger = llm.ledger()
    since = datetime.now(UTC).date() - timedelta(days=USAGE_DAYS - 1)
    summaries = ledger.daily_summaries(since=since)
    todays = [s for s in summaries if s.day == today()]
    rows = [
        [
            s.day,
            s.workflow,
            f"{s.cost_usd:.4f}",
            f"{ledger.budget_for(s.workflow):.2f}",
            s.calls,
            s.input_tokens + s.output_tokens,
            _percent(s.cache_hit_rate),
            s.failed_requests,
            s.over_budget,
        ]
        for s in summaries
    ]
    total = _total(todays)
    return MaterializeResult(
        metadata={
            "llm_tiers": _tiers(llm),
            "cost_usd_today": MetadataValue.float(round(float(total.cost_usd), 6)),
            "tokens_today": MetadataValue.int(total.input_tokens + total.output_tokens),
            "calls_today": MetadataValue.int(total.calls),
            "cache_hit_rate_today": MetadataValue.float(round(float(total.cache_hit_rate), 4)),
            "refused_over_budget_today": MetadataValue.int(total.over_budget),
            "usage": MetadataValue.md(
                _markdown_table(
                    [
                        "day",
                        "workflow",
                        "cost USD",
                        "budget USD",
                        "calls",
                        "tokens",
                        "cache hits",
                        "failed requests",
                        "refused (budget)",
                    ],
                    rows,
                )
                if rows
                else "No LLM calls in the last 7 days."
            ),
        }
    )


def _total(summaries: list[UsageSummary]) -> UsageSummary:
    return UsageSummary(
        workflow="all",
        day=today(),
        calls=sum(s.calls for s in summaries),
        cache_hits=sum(s.cache_hits for s in summaries),
        input_tokens=sum(s.input_tokens for s in summaries),
        output_tokens=sum(s.output_tokens for s in summaries),
        cost_usd=sum(s.cost_usd for s in summaries),
        failed_requests=sum(s.failed_requests for s in summaries),
        over_budget=sum(s.over_budget for s in summaries),
    )


@asset_check(asset=usage_daily, blocking=False)
def budget_within_limit(llm: LLMGatewayResource) -> AssetCheckResult:
    """Warns when a workflow has reached its daily LLM budget today (paid calls are then being refused)."""
    ledger = llm.ledger()
    exhausted = [
        s
        for s in ledger.daily_summaries(since=datetime.now(UTC).date())
        if s.over_budget or s.cost_usd >= ledger.budget_for(s.workflow)
    ]
    return AssetCheckResult(
        passed=not exhausted,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "workflows_at_budget": MetadataValue.json(
                {
                    s.workflow: {
                        "spent_usd": round(s.cost_usd, 6),
                        "budget_usd": ledger.budget_for(s.workflow),
                        "refused_calls": s.over_budget,
                    }
                    for s in exhausted
                }
            ),
        },
    )


@asset(**_llm_ops_asset, kinds={"python"})
def shadow_comparisons(llm: LLMGatewayResource) -> MaterializeResult:
    """Every shadow experiment, candidate against active: agreement, accuracy on labelled items, cost."""
    store = llm.opstore.store()
    comparisons = [compare(store, key) for key in list_experiments(store)]
    rows = [
        [
            c.experiment,
            c.items,
            _percent(c.agreement),
            c.labelled,
            _percent(c.active_accuracy),
            _percent(c.candidate_accuracy),
            f"{c.active_cost_usd:.4f}",
            f"{c.candidate_cost_usd:.4f}",
            _percent(c.active_routes.get("strong", 0.0)),
            _percent(c.candidate_routes.get("strong", 0.0)),
        ]
        for c in comparisons
    ]
    return MaterializeResult(
        metadata={
            "llm_tiers": _tiers(llm),
            "experiments": MetadataValue.int(len(comparisons)),
            "comparisons": MetadataValue.md(
                _markdown_table(
                    [
                        "experiment",
                        "items",
                        "agreement",
                        "labelled",
                        "active acc.",
                        "candidate acc.",
                        "active USD",
                        "candidate USD",
                        "active strong share",
                        "candidate strong share",
                    ],
                    rows,
                )
                if rows
                else "No shadow experiment has run yet."
            ),
            "details": MetadataValue.json({c.experiment: c.as_dict() for c in comparisons}),
        }
    )


LLM_OPS_ASSETS = [usage_daily, shadow_comparisons]
LLM_OPS_CHECKS = [budget_within_limit]


def llm_resources() -> dict[str, LLMGatewayResource]:
    return {"llm": llm_gateway_resource()}
