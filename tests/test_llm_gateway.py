"""The gateway against a real OpenAI-compatible server: retries, fallback, human outcome, cache, secrets."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from email.utils import formatdate

import pytest
from llm_fixtures import (
    SMALL_KEY,
    STRONG_KEY,
    TICKET,
    TICKET_PII,
    build_gateway,
    llm_tiers,
    sqlite_store,
    triage_prompt,
)
from llm_server import LLMTestServer

from orchestration_pipelines.audit import read_audit_log
from orchestration_pipelines.governance import PolicyViolation
from orchestration_pipelines.ledger import CallContext
from orchestration_pipelines.llm import Backoff
from orchestration_pipelines.prompt_registry import PromptRegistry
from orchestration_pipelines.shadow import promote

CTX = CallContext(workflow="support", asset="ticket_triage", run_id="run-1", partition="2025-01-01")


@pytest.fixture
def server():
    with LLMTestServer(slow_seconds=1.0) as running:
        yield running


@pytest.fixture
def store(tmp_path):
    return sqlite_store(tmp_path)


def outcomes(gateway) -> list[tuple[str, str]]:
    return [(row["tier"], row["outcome"]) for row in gateway.ledger.rows()]


def test_structured_output_is_validated_and_recorded(server, store):
    gateway = build_gateway(store, llm_tiers(server.base_url))
    result = gateway.complete(triage_prompt(), TICKET, CTX, start_tier="small")

    assert result.outcome == "ok" and result.tier == "small" and not result.cache_hit
    assert result.value.category == "billing" and result.value.confidence == 0.9
    [request] = server.requests
    assert request.body["response_format"]["json_schema"]["schema"]["additionalProperties"] is False
    [row] = gateway.ledger.rows()
    assert (row["prompt_id"], row["prompt_version"], row["model"]) == ("support_triage", "1", "small-model")
    assert (row["input_tokens"], row["output_tokens"]) == (request.prompt_tokens, request.completion_tokens)
    assert (row["workflow"], row["asset"], row["run_id"], row["partition_key"]) == (
        "support",
        "ticket_triage",
        "run-1",
        "2025-01-01",
    )


@pytest.mark.parametrize("faults", [("429",), ("500",), ("slow",), ("429", "500")])
def test_transient_errors_are_retried_on_the_same_tier(server, store, faults):
    server.script(*faults, model="small-model")
    gateway = build_gateway(store, llm_tiers(server.base_url))

    result = gateway.complete(triage_prompt(), TICKET, CTX, start_tier="small")

    assert result.outcome == "retried" and result.tier == "small"
    assert [r.behaviour for r in server.requests] == [*faults, "ok"]
    assert outcomes(gateway) == [("small", "retried")] * len(faults) + [("small", "ok")]


def test_exhausted_retries_fall_back_to_the_next_tier(server, store):
    server.script("500", "429", "500", model="small-model")
    gateway = build_gateway(store, llm_tiers(server.base_url, max_retries=2))

    result = gateway.complete(triage_prompt(), TICKET, CTX, start_tier="small")

    assert result.outcome == "fell_back" and result.tier == "strong" and result.model == "strong-model"
    assert [r.model for r in server.requests] == ["small-model"] * 3 + ["strong-model"]
    assert outcomes(gateway) == [
        ("small", "retried"),
        ("small", "retried"),
        ("small", "fell_back"),
        ("strong", "ok"),
    ]


def test_invalid_output_is_retried_once_then_falls_back(server, store):
    server.script("malformed", "malformed", model="small-model")
    gateway = build_gateway(store, llm_tiers(server.base_url))

    result = gateway.complete(triage_prompt(), TICKET, CTX, start_tier="small")

    assert result.outcome == "fell_back" and result.value.category == "billing"
    assert [(r.model, r.behaviour) for r in server.requests] == [
        ("small-model", "malformed"),
        ("small-model", "malformed"),
        ("strong-model", "ok"),
    ]
    assert [row["error"] for row in gateway.ledger.rows()] == ["invalid_output", "invalid_output", None]


def test_output_that_breaks_the_schema_counts_as_invalid(store):
    wrong_category = LLMTestServer(
        responder=lambda body: json.dumps({"category": "lottery", "priority": "low", "confidence": 0.5})
    )
    with wrong_category as server:
        result = build_gateway(store, llm_tiers(server.base_url)).complete(triage_prompt(), TICKET, CTX)
    assert result.needs_human and len(server.requests) == 4  # two tiers, each retried once


def test_when_every_tier_fails_the_item_goes_to_a_human_with_the_reasons(server, store):
    server.script("500", "500", "500", model="small-model")
    server.script("malformed", "malformed", model="strong-model")
    gateway = build_gateway(store, llm_tiers(server.base_url))

    result = gateway.complete(triage_prompt(), TICKET, CTX, start_tier="small")

    assert result.needs_human and result.value is None
    assert "small: InternalServerError 500 after 3 attempts" in result.reason
    assert "strong: invalid output twice" in result.reason
    assert outcomes(gateway)[-1] == ("strong", "failed")


def test_no_item_of_a_faulty_batch_is_lost_and_the_ledger_matches_the_server(server, store):
    server.script("429", "500", "malformed", "500", "500", "500", "malformed", "malformed", "429")
    gateway = build_gateway(store, llm_tiers(server.base_url), cache=False)
    tickets = [TICKET | {"ticket_id": f"T-{n}", "subject": f"Problem {n}"} for n in range(12)]

    results = [gateway.complete(triage_prompt(), ticket, CTX, start_tier="small") for ticket in tickets]

    assert len(results) == len(tickets)
    assert all(r.value is not None or r.needs_human for r in results)
    rows = gateway.ledger.rows()
    assert len(rows) == len(server.requests)
    assert sum(r["input_tokens"] for r in rows) == sum(r.prompt_tokens for r in server.requests)
    assert sum(r["output_tokens"] for r in rows) == sum(r.completion_tokens for r in server.requests)
    tiers = {tier.model: tier for tier in gateway.tiers}
    server_cost = sum(tiers[r.model].cost(r.prompt_tokens, r.completion_tokens) for r in server.requests)
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(server_cost)
    assert sum(r.cost_usd for r in results) == pytest.approx(server_cost)


def test_no_pii_reaches_the_server_and_replies_are_restored_locally(store):
    def drafting(body):
        schema = body["response_format"]["json_schema"]["schema"]["properties"]
        if "reply" in schema:
            return json.dumps(
                {"reply": "Dear [CUSTOMER_NAME_1], we will refund you.", "needs_follow_up": True}
            )
        return json.dumps(
            {"category": "refund", "priority": "high", "confidence": 0.8, "rationale": "refund"}
        )

    registry = PromptRegistry()
    with LLMTestServer(responder=drafting) as server:
        gateway = build_gateway(store, llm_tiers(server.base_url))
        triage = gateway.complete(registry.get("support_triage", 2), TICKET, CTX)
        reply = gateway.complete(registry.get("support_reply", 1), TICKET, CTX)

    assert triage.value.category == "refund"
    assert reply.restore(reply.value.reply) == "Dear Jane Doe, we will refund you."
    sent = "\n".join(r.raw_body for r in server.requests)
    assert "[CUSTOMER_NAME_1]" in sent and "[IBAN_1]" in sent and "[CARD_1]" in sent and "[PHONE_1]" in sent
    for value in TICKET_PII:
        assert value not in sent
        assert json.dumps(value)[1:-1] not in sent
    assert "jane.doe@example.com" not in json.dumps(reply.value.model_dump())


def test_a_prompt_asking_for_a_forbidden_field_fails_before_any_request(server, store, tmp_path):
    prompt_dir = tmp_path / "prompts"
    prompt_dir.mkdir()
    (prompt_dir / "leaky.v1.yaml").write_text(
        "id: leaky\nversion: 1\nsystem: x\ntemplate: 'Customer $customer_id wrote $body'\n"
        "output_schema: {type: object, properties: {ok: {type: boolean}}}\n"
    )
    gateway = build_gateway(store, llm_tiers(server.base_url))
    with pytest.raises(PolicyViolation, match="customer_id"):
        gateway.complete(PromptRegistry(prompt_dir).get("leaky", 1), TICKET, CTX)
    assert server.requests == []


def test_a_repeated_request_is_a_free_cache_hit_without_a_request(server, store):
    gateway = build_gateway(store, llm_tiers(server.base_url))
    first = gateway.complete(triage_prompt(), TICKET, CTX)
    second = gateway.complete(triage_prompt(), TICKET, CTX)
    other = gateway.complete(triage_prompt(), TICKET | {"subject": "Another subject"}, CTX)

    assert (first.cache_hit, second.cache_hit, other.cache_hit) == (False, True, False)
    assert second.value.model_dump() == first.value.model_dump() and second.cost_usd == 0
    assert len(server.requests) == 2
    hit = [row for row in gateway.ledger.rows() if row["cache_hit"]]
    assert len(hit) == 1 and hit[0]["cost_usd"] == 0 and hit[0]["input_tokens"] == 0


def test_the_cache_is_keyed_by_prompt_version_and_model(server, store):
    gateway = build_gateway(store, llm_tiers(server.base_url))
    registry = PromptRegistry()
    gateway.complete(registry.get("support_triage", 1), TICKET, CTX, start_tier="small")
    gateway.complete(registry.get("support_triage", 1), TICKET, CTX, start_tier="strong")
    gateway.complete(registry.get("support_triage", 2), TICKET, CTX, start_tier="small")
    assert len(server.requests) == 3


def test_without_a_configured_tier_the_item_goes_to_a_human(store):
    gateway = build_gateway(store, tiers=[])
    result = gateway.complete(triage_prompt(), TICKET, CTX)
    assert result.needs_human and "no LLM tier available" in result.reason
    assert gateway.ledger.rows() == []


def test_api_keys_never_appear_in_reprs_logs_errors_or_the_ledger(server, store, caplog):
    caplog.set_level(logging.DEBUG)
    server.script("500", "500", "500", "500", "500", "500")
    gateway = build_gateway(store, llm_tiers(server.base_url))

    result = gateway.complete(triage_prompt(), TICKET, CTX)

    assert result.needs_human
    assert server.requests[0].headers["authorization"] == f"Bearer {SMALL_KEY}"  # the key was really used
    exposed = "\n".join(
        [
            repr(gateway),
            repr(gateway.tiers),
            repr(result),
            result.reason,
            caplog.text,
            json.dumps(gateway.ledger.rows()),
        ]
    )
    assert SMALL_KEY not in exposed and STRONG_KEY not in exposed


def test_the_token_limit_also_throttles(server, store):
    tiers = llm_tiers(server.base_url, tokens_per_minute=60_000)  # 1000 tokens a second
    gateway = build_gateway(store, tiers, cache=False)
    started = time.monotonic()
    for n in range(4):
        gateway.complete(triage_prompt(), TICKET | {"subject": f"s{n}"}, CTX)
    # each request reserves ~700 estimated tokens (prompt + max output): four need over a second of quota
    assert time.monotonic() - started >= 1.0


# --- what the support workflow needs from the gateway (issue 7, section 4) ---


def one_token_per_character(text: str) -> int:
    return len(text)


def test_the_budget_is_never_overspent_even_when_every_character_is_a_token(store):
    """A reservation of 3 characters a token without the schema let a 0.03 USD budget spend 0.0324."""
    with LLMTestServer(tokenizer=one_token_per_character) as server:
        tiers = [
            replace(tier, input_price_per_1k=0.02, output_price_per_1k=0.001)
            for tier in llm_tiers(server.base_url)
        ]
        gateway = build_gateway(store, tiers, daily_budget_usd=0.03, cache=False)
        results = [
            gateway.complete(triage_prompt(), TICKET | {"subject": f"Charge {n}"}, CTX, start_tier="small")
            for n in range(12)
        ]

    by_model = {tier.model: tier for tier in tiers}
    billed = sum(by_model[r.model].cost(r.prompt_tokens, r.completion_tokens) for r in server.requests)
    assert server.requests and billed <= 0.03
    assert gateway.ledger.spent("support") == pytest.approx(billed)  # reconciled with reported usage
    assert {row["outcome"] for row in gateway.ledger.rows()} <= {"ok", "over_budget"}
    assert results[-1].needs_human and "over daily budget" in results[-1].reason


def test_the_reservation_bounds_every_byte_of_the_request_and_the_output_limit(store):
    with LLMTestServer(tokenizer=lambda text: len(text.encode())) as server:
        gateway = build_gateway(store, llm_tiers(server.base_url), cache=False)
        accented = TICKET | {"body": "Ünïcödé " * 40 + TICKET["body"]}
        request = gateway.structured_request(
            "small", triage_prompt(), gateway.messages(triage_prompt(), accented, "support")[0]
        )
        bound = gateway.worst_case_cost("small", request)
        gateway.complete(triage_prompt(), accented, CTX, start_tier="small")

    [sent] = server.requests
    small = gateway.tiers[0]
    assert small.cost(sent.prompt_tokens, small.max_output_tokens) <= bound
    assert sent.body["max_completion_tokens"] == small.max_output_tokens


def test_names_are_redacted_whatever_their_case_and_by_their_parts(store):
    ticket = TICKET | {
        "body": "jane doe here. JANE needs help; Mrs Doe paid twice. Jane's order. Doesn't Janet matter?"
    }
    with LLMTestServer() as server:
        gateway = build_gateway(store, llm_tiers(server.base_url))
        gateway.complete(triage_prompt(), ticket, CTX)
    sent = server.requests[0].raw_body
    lowered = sent.lower().replace("janet", "").replace("doesn't", "")
    assert "jane" not in lowered and "doe" not in lowered
    assert "Janet" in sent and "Doesn't" in sent  # other words that merely start with a name part stay


def test_promoting_a_version_that_does_not_exist_is_refused(store):
    for kind, name, version, payload in (
        ("prompt", "support_triage", "7", None),
        ("prompt", "no_such_prompt", "1", None),
        ("router_policy", "router", "2025-09.1", None),
        ("router_policy", "router", "2025-09.1", {"version": "2025-01.2"}),
    ):
        with pytest.raises(LookupError):
            promote(
                store,
                kind=kind,
                name=name,
                version=version,
                actor="ana",
                workflow="support",
                reason="typo",
                payload=payload,
            )
    assert PromptRegistry().active("support_triage", store).version == 1
    assert [e for e in read_audit_log(store) if e.event == "promotion"] == []


def test_structured_output_is_strict_where_the_endpoint_supports_it(server, store):
    build_gateway(store, llm_tiers(server.base_url)).complete(triage_prompt(), TICKET, CTX)
    [request] = server.requests
    response_format = request.body["response_format"]
    assert response_format["type"] == "json_schema" and response_format["json_schema"]["strict"] is True
    schema = response_format["json_schema"]["schema"]
    assert sorted(schema["required"]) == sorted(schema["properties"])
    assert "minimum" not in json.dumps(schema)  # outside the strict subset: validated locally instead


def test_a_server_without_json_schema_support_gets_json_object_and_the_tier_remembers_it(store):
    with LLMTestServer(json_schema_supported=False) as server:
        gateway = build_gateway(store, llm_tiers(server.base_url), cache=False)
        first = gateway.complete(triage_prompt(), TICKET, CTX, start_tier="small")
        second = gateway.complete(triage_prompt(), TICKET | {"subject": "again"}, CTX, start_tier="small")
        server.script("malformed", model="small-model")
        third = gateway.complete(triage_prompt(), TICKET | {"subject": "third"}, CTX, start_tier="small")

    assert (first.tier, second.tier, third.tier) == ("small", "small", "small")
    assert first.value.category == "billing" and not third.needs_human
    formats = [(r.model, r.body["response_format"]["type"], r.behaviour) for r in server.requests]
    assert formats == [
        ("small-model", "json_schema", "unsupported_format"),
        ("small-model", "json_object", "ok"),
        ("small-model", "json_object", "ok"),
        ("small-model", "json_object", "malformed"),  # validated locally, retried once
        ("small-model", "json_object", "ok"),
    ]
    prompt_text = json.dumps(server.requests[1].body["messages"])
    assert '\\"confidence\\"' in prompt_text and "maximum" in prompt_text  # the schema is in the prompt
    rows = gateway.ledger.rows()
    assert [row["error"] for row in rows[:2]] == ["unsupported_response_format", None]
    assert rows[0]["cost_usd"] == 0


def test_a_plain_server_error_is_not_mistaken_for_an_unsupported_format(server, store):
    server.script("500", model="small-model")
    gateway = build_gateway(store, llm_tiers(server.base_url))
    gateway.complete(triage_prompt(), TICKET, CTX, start_tier="small")
    gateway.complete(triage_prompt(), TICKET | {"subject": "next"}, CTX, start_tier="small")
    assert [r.body["response_format"]["type"] for r in server.requests] == ["json_schema"] * 3


@pytest.mark.parametrize("status", ["408", "409", "503"])
def test_timeouts_conflicts_and_unavailability_are_retried(server, store, status):
    server.script(status, model="small-model")
    result = build_gateway(store, llm_tiers(server.base_url)).complete(triage_prompt(), TICKET, CTX)
    assert result.outcome == "retried" and [r.behaviour for r in server.requests] == [status, "ok"]


@pytest.mark.parametrize(
    ("headers", "at_least", "at_most"),
    [
        (lambda: {"retry-after-ms": "400"}, 0.38, 1.5),
        (lambda: {"retry-after": "1"}, 0.95, 2.0),
        (lambda: {"retry-after": formatdate(time.time() + 2, usegmt=True)}, 0.95, 3.0),
    ],
    ids=["retry-after-ms", "seconds", "http-date"],
)
def test_the_providers_retry_after_is_honoured(store, headers, at_least, at_most):
    with LLMTestServer(error_headers=headers) as server:
        server.script("429", model="small-model")
        build_gateway(store, llm_tiers(server.base_url)).complete(triage_prompt(), TICKET, CTX)
    first, second = server.requests
    assert at_least <= second.received_at - first.received_at <= at_most


def test_an_absurd_retry_after_is_capped():
    assert Backoff(retry_after_max_s=5).delay(0, {"retry-after": "86400"}) == 5
    assert Backoff().delay(0, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0  # in the past
    assert 0 <= Backoff(base_s=0.01, max_s=0.05).delay(3, {"retry-after": "soon"}) <= 0.05
