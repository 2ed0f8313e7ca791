"""The LLM gateway as a Dagster resource: model tiers, budgets and cache as configuration.

Tiers come from ``OP_LLM_<TIER>_*`` environment variables (``small`` and ``strong``); a tier whose
``OP_LLM_<TIER>_BASE_URL`` is unset is simply not configured, and with no tier at all the product runs
on local models and human review (the embedded default). API keys are ``EnvVar``s, so the UI shows the
variable's name, never its value. Assets that call a model use ``pool=LLM_POOL``: the instance's pool
limit caps concurrent callers across runs, and the per-tier rate limiter, whose buckets live in the
operational store, paces the requests of all runs together.
"""

from __future__ import annotations

import json
import os

from dagster import AssetExecutionContext, Config, ConfigurableResource, EnvVar, MetadataValue
from pydantic import Field

from orchestration_pipelines.governance import load_data_policy
from orchestration_pipelines.ledger import CallContext, CostLedger
from orchestration_pipelines.llm import Backoff, LLMGateway, ResponseCache, Tier
from resources.env import env_or_default
from resources.opstore import OperationalStoreResource, opstore_resource

LLM_POOL = "llm_provider"
TIER_NAMES = ("small", "strong")
# Defaults for prices are those of typical small and strong hosted models (USD per 1k tokens).
_DEFAULT_PRICES = {"small": (0.00015, 0.0006), "strong": (0.0025, 0.01)}
# OP_LLM_<TIER>_<suffix> -> (LLMTierConfig field, type)
_TIER_LIMIT_VARIABLES = {
    "TIMEOUT_S": ("timeout_s", float),
    "REQUESTS_PER_MINUTE": ("requests_per_minute", int),
    "TOKENS_PER_MINUTE": ("tokens_per_minute", int),
}


class LLMTierConfig(Config):
    name: str
    model: str
    base_url: str
    api_key: str = Field(default="unused", repr=False, description="Set with an EnvVar, never a literal.")
    input_price_per_1k: float = 0.0
    output_price_per_1k: float = 0.0
    timeout_s: float = 30.0
    max_retries: int = 2
    requests_per_minute: int = 60
    tokens_per_minute: int = 100_000
    max_output_tokens: int = 512

    def tier(self) -> Tier:
        return Tier(**self.model_dump())


class LLMGatewayResource(ConfigurableResource):
    """Tiers in order of cost (fallback runs down the list); budgets in USD per workflow per UTC day."""

    opstore: OperationalStoreResource
    tiers: list[LLMTierConfig] = []
    daily_budget_usd: float = 5.0
    workflow_budgets_usd: dict[str, float] = {}
    cache_enabled: bool = True
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0

    def ledger(self) -> CostLedger:
        return CostLedger(self.opstore.store(), self.daily_budget_usd, self.workflow_budgets_usd)

    def gateway(self) -> LLMGateway:
        store = self.opstore.store()
        return LLMGateway(
            tiers=[config.tier() for config in self.tiers],
            ledger=self.ledger(),
            data_policy=load_data_policy(),
            cache=ResponseCache(store) if self.cache_enabled else None,
            backoff=Backoff(self.backoff_base_s, self.backoff_max_s),
        )

    @staticmethod
    def call_context(context: AssetExecutionContext, workflow: str) -> CallContext:
        """Ledger attribution for a call made inside an asset: its key, run and partition."""
        return CallContext(
            workflow=workflow,
            asset=context.asset_key.to_user_string(),
            run_id=context.run.run_id,
            partition=context.partition_key if context.has_partition_key else None,
        )

    def run_usage_metadata(self, context: AssetExecutionContext) -> dict[str, MetadataValue]:
        """LLM cost and tokens of this asset in this run, to return as materialization metadata."""
        usage = self.ledger().run_summary(context.run.run_id, asset=context.asset_key.to_user_string())
        return {
            "llm_cost_usd": MetadataValue.float(round(usage.cost_usd, 6)),
            "llm_input_tokens": MetadataValue.int(usage.input_tokens),
            "llm_output_tokens": MetadataValue.int(usage.output_tokens),
            "llm_calls": MetadataValue.int(usage.calls),
            "llm_cache_hits": MetadataValue.int(usage.cache_hits),
        }


def tiers_from_env() -> list[LLMTierConfig]:
    """The ``small`` and ``strong`` tiers whose ``OP_LLM_<TIER>_BASE_URL`` is set, cheapest first."""
    tiers = []
    for name in TIER_NAMES:
        prefix = f"OP_LLM_{name.upper()}_"
        if not os.environ.get(prefix + "BASE_URL"):
            continue
        input_price, output_price = _DEFAULT_PRICES[name]
        # Limits not set in the environment keep LLMTierConfig's own defaults.
        limits = {
            field: cast(os.environ[prefix + suffix])
            for suffix, (field, cast) in _TIER_LIMIT_VARIABLES.items()
            if os.environ.get(prefix + suffix)
        }
        tiers.append(
            LLMTierConfig(
                name=name,
                model=env_or_default(prefix + "MODEL", name),
                base_url=EnvVar(prefix + "BASE_URL"),
                api_key=env_or_default(prefix + "API_KEY", "unused"),
                input_price_per_1k=float(os.environ.get(prefix + "PRICE_IN_PER_1K", input_price)),
                output_price_per_1k=float(os.environ.get(prefix + "PRICE_OUT_PER_1K", output_price)),
                **limits,
            )
        )
    return tiers


def llm_gateway_resource() -> LLMGatewayResource:
    return LLMGatewayResource(
        opstore=opstore_resource(),
        tiers=tiers_from_env(),
        daily_budget_usd=float(os.environ.get("OP_LLM_DAILY_BUDGET_USD", 5.0)),
        workflow_budgets_usd=json.loads(os.environ.get("OP_LLM_WORKFLOW_BUDGETS_USD", "{}")),
    )
