"""The call loop: policy and redaction, cache, budget, rate limit, retries, fallback, human outcome.

``LLMGateway.complete`` never raises for a provider failure or a bad output: transient errors (429,
5xx, timeouts) are retried with backoff, an invalid output is retried once, then the next tier is
tried, and when no tier is left the result says ``human`` with the reasons, so the caller queues the
item for review instead of losing it. Every request is in the ledger; error descriptions hold the
exception class and status code only, never a message that could echo a credential.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import openai
from pydantic import BaseModel, ValidationError

from orchestration_pipelines.governance import DataPolicy, restore
from orchestration_pipelines.ledger import CallContext, CallSubject, CostLedger, Usage
from orchestration_pipelines.llm.cache import ResponseCache, cache_key
from orchestration_pipelines.llm.ratelimit import limiter_for
from orchestration_pipelines.llm.tiers import Tier
from orchestration_pipelines.prompt_registry import Prompt

ResultOutcome = Literal["ok", "retried", "fell_back", "human"]
_TRANSIENT = (
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APITimeoutError,
    openai.APIConnectionError,
)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter; a provider's ``Retry-After`` wins, up to the cap."""

    base_s: float = 0.5
    max_s: float = 20.0

    def delay(self, retry: int, retry_after: str | None = None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.max_s)
            except ValueError:
                pass
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


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__} {status}" if status else type(exc).__name__


def estimate_tokens(messages: Sequence[Mapping[str, str]]) -> int:
    """A deliberately high estimate (3 characters a token) so budget reservations are worst-case."""
    return sum(math.ceil(len(m["content"]) / 3) + 8 for m in messages)


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

    def worst_case_cost(self, tier_name: str, messages: Sequence[Mapping[str, str]]) -> float:
        tier = next(t for t in self.tiers if t.name == tier_name)
        return tier.cost(estimate_tokens(messages), tier.max_output_tokens)

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

    def _call_tier(
        self, tier: Tier, subject: CallSubject, messages: list, prompt: Prompt, ctx: CallContext, last: bool
    ) -> _TierAttempt:
        attempt = _TierAttempt()
        give_up = "failed" if last else "fell_back"
        transient_retries, invalid_retries = 0, 0
        limiter = limiter_for(tier)
        estimated_tokens = estimate_tokens(messages) + tier.max_output_tokens
        while True:
            call_id = self.ledger.reserve(
                ctx, subject, tier.cost(estimate_tokens(messages), tier.max_output_tokens)
            )
            if call_id is None:
                attempt.failure = "over daily budget, request not sent"
                return attempt
            limiter.acquire(estimated_tokens)
            started = time.perf_counter()
            try:
                response = self._clients[tier.name].chat.completions.create(
                    model=tier.model,
                    messages=messages,
                    response_format={
                        "type": "json_schema",
                        "json_schema": {"name": prompt.id, "schema": prompt.output_model.model_json_schema()},
                    },
                    max_completion_tokens=tier.max_output_tokens,
                )
            except _TRANSIENT as exc:
                retry = transient_retries < tier.max_retries
                usage = Usage(latency_ms=(time.perf_counter() - started) * 1000)
                self.ledger.settle(call_id, usage, "retried" if retry else give_up, _describe(exc))
                if not retry:
                    attempt.failure = f"{_describe(exc)} after {transient_retries + 1} attempts"
                    return attempt
                response_headers = getattr(getattr(exc, "response", None), "headers", {})
                time.sleep(self.backoff.delay(transient_retries, response_headers.get("retry-after")))
                transient_retries += 1
                attempt.retried = True
                continue
            except openai.APIError as exc:  # 4xx other than 429, unreadable response: a retry cannot help
                usage = Usage(latency_ms=(time.perf_counter() - started) * 1000)
                self.ledger.settle(call_id, usage, give_up, _describe(exc))
                attempt.failure = _describe(exc)
                return attempt
            latency_ms = (time.perf_counter() - started) * 1000
            tokens_in = response.usage.prompt_tokens if response.usage else 0
            tokens_out = response.usage.completion_tokens if response.usage else 0
            usage = Usage(tokens_in, tokens_out, tier.cost(tokens_in, tokens_out), latency_ms)
            attempt.usage.append(usage)
            try:
                attempt.value = prompt.output_model.model_validate_json(
                    response.choices[0].message.content or ""
                )
            except ValidationError:
                retry = invalid_retries < 1
                self.ledger.settle(call_id, usage, "retried" if retry else give_up, "invalid_output")
                if not retry:
                    attempt.failure = "invalid output twice"
                    return attempt
                invalid_retries += 1
                attempt.retried = True
                continue
            self.ledger.settle(call_id, usage, "ok")
            return attempt

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
