"""Builders shared by the LLM test modules: a gateway wired to the local test server and a fresh store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestration_pipelines.governance import load_data_policy
from orchestration_pipelines.ledger import CostLedger
from orchestration_pipelines.llm import Backoff, LLMGateway, ResponseCache, Tier
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.prompt_registry import PromptRegistry

SMALL_KEY = "sk-test-small-7c1f9e0d2b"
STRONG_KEY = "sk-test-strong-a83b55e014"
FAST_BACKOFF = Backoff(base_s=0.01, max_s=0.05)

TICKET = {
    "ticket_id": "T-1",
    "customer_id": "C-991",
    "customer_name": "Jane Doe",
    "customer_email": "jane.doe@example.com",
    "language": "en",
    "product": "router X2",
    "subject": "Double charge",
    "body": (
        "Hi, this is Jane Doe. I was charged twice on card 4111 1111 1111 1111. Refund to IBAN "
        "DE89 3704 0044 0532 0130 00 please, or call me on +49 30 1234 5678 or mail jane.doe@example.com."
    ),
}
TICKET_PII = (
    "Jane Doe",
    "jane.doe@example.com",
    "4111 1111 1111 1111",
    "DE89 3704 0044 0532 0130 00",
    "+49 30 1234 5678",
    "C-991",
)


def sqlite_store(tmp_path: Path) -> OpStore:
    return OpStore(f"sqlite:///{tmp_path / 'opstore.sqlite'}")


def llm_tiers(base_url: str, **overrides) -> list[Tier]:
    """A cheap ``small`` and a 16x dearer ``strong`` tier, both on the test server."""
    common = {
        "base_url": base_url,
        "timeout_s": 0.5,
        "max_retries": 2,
        "requests_per_minute": 60_000,
        "tokens_per_minute": 10_000_000,
    } | overrides
    return [
        Tier(
            name="small",
            model="small-model",
            api_key=SMALL_KEY,
            input_price_per_1k=0.00015,
            output_price_per_1k=0.0006,
            **common,
        ),
        Tier(
            name="strong",
            model="strong-model",
            api_key=STRONG_KEY,
            input_price_per_1k=0.0025,
            output_price_per_1k=0.01,
            **common,
        ),
    ]


def build_gateway(
    store: OpStore, tiers: list[Tier], daily_budget_usd: float = 10.0, cache: bool = True
) -> LLMGateway:
    return LLMGateway(
        tiers=tiers,
        ledger=CostLedger(store, daily_budget_usd=daily_budget_usd),
        data_policy=load_data_policy(),
        cache=ResponseCache(store) if cache else None,
        backoff=FAST_BACKOFF,
    )


def triage_prompt():
    return PromptRegistry().get("support_triage", 1)


@contextmanager
def postgres_store() -> Iterator[OpStore]:
    """A uniquely named database on the local PostgreSQL server, dropped afterwards."""
    import psycopg2

    name = f"op_llm_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    admin.autocommit = True
    try:
        admin.cursor().execute(f"CREATE DATABASE {name}")
        yield OpStore(f"postgresql://postgres@127.0.0.1:5432/{name}")
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
