"""The cost ledger and the daily budget, enforced before a request is sent, on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from llm_fixtures import TICKET, build_gateway, llm_tiers, postgres_store, sqlite_store, triage_prompt
from llm_server import LLMTestServer

from orchestration_pipelines.ledger import CallContext, CallSubject, CostLedger, Usage

CTX = CallContext(workflow="support", asset="ticket_triage", run_id="run-9")
SUBJECT = CallSubject("strong", "strong-model", "support_triage", "1")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        yield sqlite_store(tmp_path)
    else:
        with postgres_store() as store:
            yield store


@pytest.fixture
def server():
    with LLMTestServer() as running:
        yield running


def test_a_reservation_counts_until_settled_with_real_usage(store):
    ledger = CostLedger(store, daily_budget_usd=1.0)
    call_id = ledger.reserve(CTX, SUBJECT, worst_case_usd=0.4)
    assert ledger.spent("support") == pytest.approx(0.4)
    ledger.settle(call_id, Usage(1000, 200, 0.1, 35.0), "ok")
    assert ledger.spent("support") == pytest.approx(0.1) and ledger.remaining_budget(
        "support"
    ) == pytest.approx(0.9)
    [row] = ledger.rows(run_id="run-9")
    assert (row["input_tokens"], row["output_tokens"], row["outcome"], row["cache_hit"]) == (
        1000,
        200,
        "ok",
        0,
    )


def test_a_request_that_would_exceed_the_budget_is_refused_and_recorded(store):
    ledger = CostLedger(store, daily_budget_usd=1.0, workflow_budgets_usd={"maintenance": 5.0})
    assert ledger.reserve(CTX, SUBJECT, 0.7) is not None
    assert ledger.reserve(CTX, SUBJECT, 0.4) is None
    assert ledger.reserve(CallContext(workflow="maintenance"), SUBJECT, 0.4) is not None  # its own budget
    assert (
        ledger.reserve(CTX, CallSubject("local-llm", "m", "p", "1"), 0.0) is not None
    )  # free tiers always run
    assert [row["outcome"] for row in ledger.rows(workflow="support")].count("over_budget") == 1
    assert ledger.spent("support") == pytest.approx(0.7)


def test_concurrent_reservations_never_overspend(store):
    ledger = CostLedger(store, daily_budget_usd=1.0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        granted = [r for r in pool.map(lambda _: ledger.reserve(CTX, SUBJECT, 0.15), range(24)) if r]
    assert len(granted) == 6 and ledger.spent("support") == pytest.approx(0.9)


def test_summaries_per_day_and_per_run(store):
    ledger = CostLedger(store, daily_budget_usd=10.0)
    for usage, outcome in ((Usage(100, 10, 0.5), "retried"), (Usage(120, 20, 0.25), "ok")):
        ledger.settle(
            ledger.reserve(CTX, SUBJECT, 1.0),
            usage,
            outcome,
            None if outcome == "ok" else "RateLimitError 429",
        )
    ledger.record_cache_hit(CTX, SUBJECT)
    ledger.settle(
        ledger.reserve(CallContext("maintenance", run_id="other"), SUBJECT, 1.0), Usage(5, 5, 2.0), "ok"
    )

    run = ledger.run_summary("run-9")
    assert (run.calls, run.cache_hits, run.input_tokens, run.output_tokens) == (2, 1, 220, 30)
    assert run.cost_usd == pytest.approx(0.75) and run.failed_requests == 1
    assert run.cache_hit_rate == pytest.approx(1 / 3)
    by_workflow = {summary.workflow: summary for summary in ledger.daily_summaries()}
    assert by_workflow["maintenance"].cost_usd == pytest.approx(2.0) and by_workflow["support"].calls == 2


def test_the_budget_stops_paid_calls_before_they_are_made(server, tmp_path):
    store = sqlite_store(tmp_path)
    gateway = build_gateway(store, llm_tiers(server.base_url), daily_budget_usd=0.02, cache=False)
    messages = gateway.messages(triage_prompt(), TICKET, "support")[0]
    worst_case = gateway.worst_case_cost(
        "strong", gateway.structured_request("strong", triage_prompt(), messages)
    )

    results = [
        gateway.complete(triage_prompt(), TICKET | {"subject": f"s{n:02}"}, CTX, start_tier="strong")
        for n in range(60)
    ]

    sent = len(server.requests)
    assert 0.02 // worst_case <= sent < 60  # real usage is below the worst case, so more than that fit
    assert [r.needs_human for r in results] == [False] * sent + [True] * (60 - sent)
    assert "over daily budget, request not sent" in results[-1].reason
    assert gateway.ledger.spent("support") <= 0.02
    assert gateway.ledger.remaining_budget("support") < worst_case  # refused only when it might not fit
    assert sum(row["outcome"] == "over_budget" for row in gateway.ledger.rows()) == 60 - sent


def test_with_no_budget_left_not_a_single_request_is_sent(server, tmp_path):
    gateway = build_gateway(sqlite_store(tmp_path), llm_tiers(server.base_url), daily_budget_usd=0.0)
    result = gateway.complete(triage_prompt(), TICKET, CTX)
    assert result.needs_human and server.requests == []
