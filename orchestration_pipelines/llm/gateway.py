"""The call loop: policy and redaction, cache, budget, rate limit, retries, fallback, human outcome.

``LLMGateway.complete`` never raises for a provider failure or a bad output: transient errors (408,
409, 429, 5xx, timeouts) are retried with backoff (the provider's ``Retry-After`` wins), an invalid
output is retried once, then the next tier is tried, and when no tier is left the result says
``human`` with the reasons, so the caller queues the item for review instead of losing it. Every
request is in the ledger; error descriptions hold the exception class and status code only, never a
message that could echo a credential.

Outputs are strict structured outputs (``json_schema``). An endpoint that rejects that format (some
local servers answer it with HTTP 500 and accept only ``json_object``) gets ``json_object`` with the
schema in the prompt instead, validated locally; the capability is remembered per endpoint and model.
The budget reservation is an upper bound: one token per UTF-8 byte of the whole request (messages,
schema, tools), since a byte-level tokenizer never makes more, plus ``max_completion_tokens``.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, Literal

import openai
from pydantic import BaseModel, ValidationError

from orchestration_pipelines.governance import DataPolicy, restore
from orchestration_pipelines.ledger import CallContext, CallSubject, CostLedger, Usage
from orchestration_pipelines.llm.cache import ResponseCache, cache_key
from orchestration_pipelines.llm.ratelimit import limiter_for
from orchestration_pipelines.llm.tiers import Tier
from orchestration_pipelines.prompt_registry import Prompt

ResultOutcome = Literal["ok", "retried", "fell_back", "human"]
OutputFormat = Literal["json_schema", "json_object"]
# Without a status: the request timed out or never connected.
_TRANSIENT_WITHOUT_STATUS = (openai.APITimeoutError, openai.APIConnectionError)
_TRANSIENT_STATUSES = frozenset({408, 409, 429})  # and every 5xx
# Statuses with which servers refuse a response format they do not implement.
_FORMAT_REFUSAL_STATUSES = frozenset({400, 422, 500, 501})
# JSON-schema keywords outside the subset strict structured outputs accept; validated locally instead.
_UNENFORCED_KEYWORDS = frozenset(
    {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength", "maxLength"}
)


def provider_wait_s(headers: Mapping[str, str]) -> float | None:
    """The wait a provider asks for: ``retry-after-ms``, or ``Retry-After`` in seconds or as an HTTP date."""
    if headers.get("retry-after-ms"):
        try:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    retry_after = headers.get("retry-after")
    if not retry_after:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(retry_after) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter; a provider's retry-after wins, up to ``retry_after_max_s``."""

    base_s: float = 0.5
    max_s: float = 20.0
    retry_after_max_s: float = 60.0

    def delay(self, retry: int, headers: Mapping[str, str] | None = None) -> float:
        asked = provider_wait_s(headers or {})
        if asked is not None:
            return min(asked, self.retry_after_max_s)
        return random.uniform(0, min(self.max_s, self.base_s * 2**retry))


@dataclass(frozen=True)
class LLMResult:
    """A typed output, or ``outcome == "human"`` with the reason the item needs review."""

    outcome: ResultOutcome
    value: BaseModel | None
    prompt_id: str
    prompt_version: int
    reason: str = ""
    tier: str | None = None
    model: str | None = None
    cache_hit: bool = False
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    placeholders: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def needs_human(self) -> bool:
        return self.outcome == "human"

    def restore(self, text: str) -> str:
        """Put redacted values back into an output text, locally (e.g. a drafted reply)."""
        return restore(text, self.placeholders)


@dataclass
class _TierAttempt:
    value: BaseModel | None = None
    failure: str = ""
    retried: bool = False
    usage: list[Usage] = field(default_factory=list)


@dataclass
class _Sent:
    """A request that got a response (its ledger row reserved, not yet settled), or why none came."""

    response: Any = None
    call_id: str | None = None
    usage: Usage = field(default_factory=Usage)
    failure: str = ""
    retried: bool = False


@dataclass(frozen=True)
class ToolStep:
    """One model turn of a tool-calling loop: the assistant message (``None`` on failure) and its cost."""

    message: Any
    cost_usd: float
    failure: str = ""


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__} {status}" if status else type(exc).__name__


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, _TRANSIENT_WITHOUT_STATUS):
        return True
    status = getattr(exc, "status_code", None)
    return status is not None and (status in _TRANSIENT_STATUSES or status >= 500)


def _refuses_format(exc: Exception, output_format: OutputFormat) -> bool:
    """Whether an error says the endpoint does not implement the ``json_schema`` response format."""
    if output_format != "json_schema" or getattr(exc, "status_code", None) not in _FORMAT_REFUSAL_STATUSES:
        return False
    message = str(getattr(exc, "message", "")).lower()
    return "response_format" in message or "json_schema" in message


def strict_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema in the subset strict structured outputs accept: every property required, no extras,
    no numeric or length bounds (the local validation still enforces them)."""
    strict = {key: value for key, value in schema.items() if key not in _UNENFORCED_KEYWORDS}
    if "properties" in strict:
        strict["properties"] = {name: strict_schema(spec) for name, spec in strict["properties"].items()}
        strict["required"] = list(strict["properties"])
        strict["additionalProperties"] = False
    if isinstance(strict.get("items"), Mapping):
        strict["items"] = strict_schema(strict["items"])
    return strict


def request_token_bound(request: Mapping[str, Any]) -> int:
    """At most one token per UTF-8 byte of everything sent (messages, schema, tools): byte-level
    tokenizers never make more, and the JSON framing covers the chat template's per-message tokens."""
    return len(json.dumps(request, ensure_ascii=False).encode())


def estimate_tokens(request: Mapping[str, Any]) -> int:
    """A typical count (4 bytes a token) for pacing against a provider's tokens-per-minute limit,
    which providers also estimate; the budget uses ``request_token_bound`` instead."""
    return math.ceil(request_token_bound(request) / 4)


# Endpoints and models seen refusing ``json_schema`` in this process: they get ``json_object``.
_JSON_OBJECT_ONLY: set[tuple[str, str]] = set()
_JSON_OBJECT_ONLY_LOCK = threading.Lock()


def output_format_for(tier: Tier) -> OutputFormat:
    return "json_object" if (tier.base_url, tier.model) in _JSON_OBJECT_ONLY else "json_schema"


def _remember_json_object_only(tier: Tier) -> None:
    with _JSON_OBJECT_ONLY_LOCK:
        _JSON_OBJECT_ONLY.add((tier.base_url, tier.model))


class LLMGateway:
    """Tiers in order of cost; a call starts at ``start_tier`` and falls back along the rest of the list."""

    def __init__(
        self,
        tiers: Sequence[Tier],
        ledger: CostLedger,
        data_policy: DataPolicy,
        cache: ResponseCache | None = None,
        backoff: Backoff = Backoff(),
    ):
        self.tiers = list(tiers)
        self.ledger = ledger
        self.data_policy = data_policy
        self.cache = cache
        self.backoff = backoff
        self._clients = {
            tier.name: openai.OpenAI(
                base_url=tier.base_url, api_key=tier.api_key, timeout=tier.timeout_s, max_retries=0
            )
            for tier in self.tiers
        }

    def __repr__(self) -> str:
        return f"LLMGateway(tiers={[tier.name for tier in self.tiers]})"

    @property
    def tier_names(self) -> list[str]:
        return [tier.name for tier in self.tiers]

    def messages(
        self, prompt: Prompt, record: Mapping[str, object], workflow: str
    ) -> tuple[list, dict[str, str]]:
        """The exact messages a model would see: only policy-allowed fields, PII replaced by placeholders."""
        policy = self.data_policy.for_workflow(workflow)
        policy.check_fields(prompt.fields)
        redaction = policy.prepare(record)
        values = {name: redaction.values.get(name, "") for name in prompt.fields}
        return prompt.messages(values), redaction.placeholders

    def _tier(self, tier_name: str) -> Tier:
        return next(t for t in self.tiers if t.name == tier_name)

    def structured_request(self, tier_name: str, prompt: Prompt, messages: list) -> dict[str, Any]:
        """The request body (without model and limits) for a typed output in the tier's output format."""
        schema = prompt.output_model.model_json_schema()
        if output_format_for(self._tier(tier_name)) == "json_schema":
            response_format = {"name": prompt.id, "schema": strict_schema(schema), "strict": True}
            return {
                "messages": messages,
                "response_format": {"type": "json_schema", "json_schema": response_format},
            }
        instruction = (
            "Answer with one JSON object, and nothing else, that validates against this JSON schema:\n"
            + json.dumps(schema)
        )
        if messages and messages[0]["role"] == "system":
            messages = [
                {"role": "system", "content": f"{messages[0]['content']}\n\n{instruction}"},
                *messages[1:],
            ]
        else:
            messages = [{"role": "system", "content": instruction}, *messages]
        # ``schema`` inside json_object lets servers that know it constrain decoding; others ignore it.
        return {"messages": messages, "response_format": {"type": "json_object", "schema": schema}}

    def worst_case_cost(self, tier_name: str, request: Mapping[str, Any]) -> float:
        """An upper bound of what ``request`` can cost on the tier: the budget reservation."""
        tier = self._tier(tier_name)
        return tier.cost(request_token_bound(request), tier.max_output_tokens)

    def complete(
        self, prompt: Prompt, record: Mapping[str, object], ctx: CallContext, start_tier: str | None = None
    ) -> LLMResult:
        messages, placeholders = self.messages(prompt, record, ctx.workflow)
        names = self.tier_names
        if start_tier is None:
            chain = self.tiers
        else:
            chain = self.tiers[names.index(start_tier) :] if start_tier in names else []
        failures: list[str] = []
        spent: list[Usage] = []
        for position, tier in enumerate(chain):
            subject = CallSubject(tier.name, tier.model, prompt.id, str(prompt.version))
            key = cache_key(prompt.id, str(prompt.version), tier.model, messages)
            cached = self._cached(key, prompt)
            if cached is not None:
                self.ledger.record_cache_hit(ctx, subject)
                outcome: ResultOutcome = "ok" if position == 0 else "fell_back"
                return self._result(prompt, outcome, cached, tier, spent, placeholders, cache_hit=True)
            attempt = self._call_tier(tier, subject, messages, prompt, ctx, last=position == len(chain) - 1)
            spent.extend(attempt.usage)
            if attempt.value is not None:
                if self.cache:
                    self.cache.put(
                        key, prompt.id, str(prompt.version), tier.model, attempt.value.model_dump_json()
                    )
                outcome = "fell_back" if position else ("retried" if attempt.retried else "ok")
                return self._result(prompt, outcome, attempt.value, tier, spent, placeholders)
            failures.append(f"{tier.name}: {attempt.failure}")
        reason = "; ".join(failures) if chain else f"no LLM tier available (start tier {start_tier!r})"
        return self._result(prompt, "human", None, None, spent, placeholders, reason=reason)

    def _cached(self, key: str, prompt: Prompt) -> BaseModel | None:
        if self.cache is None:
            return None
        output = self.cache.get(key)
        if output is None:
            return None
        try:
            return prompt.output_model.model_validate_json(output)
        except ValidationError:  # an entry the schema no longer accepts is a miss, not a lost item
            return None

    def tool_request(
        self, tier_name: str, prompt: Prompt, messages: list, tools: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """A tool-calling turn's request body: ``structured_request`` plus the tools, callable in parallel."""
        return self.structured_request(tier_name, prompt, messages) | {
            "tools": tools,
            "parallel_tool_calls": True,
        }

    def tool_step(
        self,
        tier_name: str,
        prompt: Prompt,
        messages: list,
        tools: list[dict[str, Any]],
        ctx: CallContext,
    ) -> ToolStep:
        """One turn of a tool-calling loop on one tier: budget, rate limit, retries and ledger as for
        ``complete``, no fallback (the caller decides). The final answer is the prompt's typed output,
        in the tier's output format; tool calls may come in parallel."""
        tier = self._tier(tier_name)
        subject = CallSubject(tier.name, tier.model, prompt.id, str(prompt.version))
        request = partial(self.tool_request, tier_name, prompt, messages, tools)
        sent = self._send(tier, subject, ctx, request, give_up="failed")
        if sent.response is None:
            return ToolStep(None, 0.0, sent.failure)
        self.ledger.settle(sent.call_id, sent.usage, "ok")
        return ToolStep(sent.response.choices[0].message, sent.usage.cost_usd)

    def _send(self, tier: Tier, subject: CallSubject, ctx: CallContext, request_for, give_up: str) -> _Sent:
        """Send ``request_for()`` within the budget and rate limit, retrying transient errors and
        switching to ``json_object`` when the endpoint refuses ``json_schema``."""
        sent = _Sent()
        transient_retries = 0
        limiter = limiter_for(tier, self.ledger.store)
        while True:
            output_format = output_format_for(tier)
            request = request_for()
            reserved_usd = self.worst_case_cost(tier.name, request)
            call_id = self.ledger.reserve(ctx, subject, reserved_usd)
            if call_id is None:
                sent.failure = "over daily budget, request not sent"
                return sent
            limiter.acquire(estimate_tokens(request) + tier.max_output_tokens)
            started = time.perf_counter()
            try:
                response = self._clients[tier.name].chat.completions.create(
                    model=tier.model, max_completion_tokens=tier.max_output_tokens, **request
                )
            except openai.APIError as exc:
                usage = Usage(latency_ms=(time.perf_counter() - started) * 1000)
                if _refuses_format(exc, output_format):
                    self.ledger.settle(call_id, usage, "retried", "unsupported_response_format")
                    _remember_json_object_only(tier)
                    continue
                if not _is_transient(exc):  # other 4xx, an unreadable response: a retry cannot help
                    self.ledger.settle(call_id, usage, give_up, _describe(exc))
                    sent.failure = _describe(exc)
                    return sent
                retry = transient_retries < tier.max_retries
                self.ledger.settle(call_id, usage, "retried" if retry else give_up, _describe(exc))
                if not retry:
                    sent.failure = f"{_describe(exc)} after {transient_retries + 1} attempts"
                    return sent
                response_headers = getattr(getattr(exc, "response", None), "headers", None)
                time.sleep(self.backoff.delay(transient_retries, response_headers))
                transient_retries += 1
                sent.retried = True
                continue
            sent.response, sent.call_id = response, call_id
            sent.usage = self._reported_usage(tier, response, reserved_usd, time.perf_counter() - started)
            return sent

    def _call_tier(
        self, tier: Tier, subject: CallSubject, messages: list, prompt: Prompt, ctx: CallContext, last: bool
    ) -> _TierAttempt:
        attempt = _TierAttempt()
        give_up = "failed" if last else "fell_back"
        invalid_retries = 0
        while True:
            sent = self._send(
                tier, subject, ctx, lambda: self.structured_request(tier.name, prompt, messages), give_up
            )
            attempt.retried |= sent.retried
            if sent.response is None:
                attempt.failure = sent.failure
                return attempt
            attempt.usage.append(sent.usage)
            try:
                attempt.value = prompt.output_model.model_validate_json(
                    sent.response.choices[0].message.content or ""
                )
            except ValidationError:
                retry = invalid_retries < 1
                self.ledger.settle(
                    sent.call_id, sent.usage, "retried" if retry else give_up, "invalid_output"
                )
                if not retry:
                    attempt.failure = "invalid output twice"
                    return attempt
                invalid_retries += 1
                attempt.retried = True
                continue
            self.ledger.settle(sent.call_id, sent.usage, "ok")
            return attempt

    @staticmethod
    def _reported_usage(tier: Tier, response, reserved_usd: float, elapsed_s: float) -> Usage:
        """The provider's usage; without one the reservation stands, so the budget never under-counts."""
        if response.usage is None:
            return Usage(0, 0, reserved_usd, elapsed_s * 1000)
        tokens_in, tokens_out = response.usage.prompt_tokens, response.usage.completion_tokens
        return Usage(tokens_in, tokens_out, tier.cost(tokens_in, tokens_out), elapsed_s * 1000)

    @staticmethod
    def _result(prompt, outcome, value, tier, spent, placeholders, reason="", cache_hit=False) -> LLMResult:
        return LLMResult(
            outcome=outcome,
            value=value,
            prompt_id=prompt.id,
            prompt_version=prompt.version,
            reason=reason,
            tier=tier.name if tier else None,
            model=tier.model if tier else None,
            cache_hit=cache_hit,
            cost_usd=sum(u.cost_usd for u in spent),
            input_tokens=sum(u.input_tokens for u in spent),
            output_tokens=sum(u.output_tokens for u in spent),
            placeholders=placeholders,
        )
