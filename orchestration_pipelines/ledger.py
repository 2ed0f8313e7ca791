"""The LLM cost and usage ledger, and the daily budget per workflow.

One row per request sent to a provider (and per cache hit or budget refusal), so the ledger's token
sums match what the provider bills. The budget is enforced *before* a request: the gateway reserves
the request's worst-case cost in an exclusive transaction, which fails when the reservation would
take the workflow over its daily budget, so concurrent runs cannot overspend together. The
reservation is then settled with the real usage.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from orchestration_pipelines.opstore import OpStore

# What happened to one request: ``retried``/``fell_back``/``failed`` say what the gateway did next.
Outcome = Literal["reserved", "ok", "retried", "fell_back", "failed", "over_budget"]


@dataclass(frozen=True)
class CallContext:
    """Where a call comes from; recorded with every ledger row."""

    workflow: str
    asset: str | None = None
    run_id: str | None = None
    partition: str | None = None


@dataclass(frozen=True)
class CallSubject:
    """What is being called: the tier, its model and the prompt version."""

    tier: str
    model: str
    prompt_id: str
    prompt_version: str


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0


@dataclass(frozen=True)
class UsageSummary:
    workflow: str
    day: str
    calls: int
    cache_hits: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    failed_requests: int
    over_budget: int

    @property
    def cache_hit_rate(self) -> float:
        served = self.calls + self.cache_hits
        return self.cache_hits / served if served else 0.0


def today() -> str:
    return datetime.now(UTC).date().isoformat()


class CostLedger:
    """Ledger rows in the operational store plus the budgets that gate new requests."""

    def __init__(
        self, store: OpStore, daily_budget_usd: float, workflow_budgets_usd: Mapping[str, float] = ()
    ):
        self.store = store
        self.daily_budget_usd = daily_budget_usd
        self.workflow_budgets_usd = dict(workflow_budgets_usd)

    def budget_for(self, workflow: str) -> float:
        return self.workflow_budgets_usd.get(workflow, self.daily_budget_usd)

    def spent(self, workflow: str, day: str | None = None) -> float:
        """Cost recorded for the day, open reservations included (they may still be spent)."""
        with self.store.transaction() as cur:
            return self._spent(cur, workflow, day or today())

    def remaining_budget(self, workflow: str, day: str | None = None) -> float:
        return max(0.0, self.budget_for(workflow) - self.spent(workflow, day))

    def reserve(self, ctx: CallContext, subject: CallSubject, worst_case_usd: float) -> str | None:
        """Reserve a request's worst-case cost; ``None`` (and an ``over_budget`` row) when it does not fit."""
        day = today()
        with self.store.transaction(lock=f"llm_budget:{ctx.workflow}") as cur:
            fits = worst_case_usd == 0 or (
                self._spent(cur, ctx.workflow, day) + worst_case_usd <= self.budget_for(ctx.workflow)
            )
            outcome: Outcome = "reserved" if fits else "over_budget"
            call_id = self._insert(
                cur, ctx, subject, Usage(cost_usd=worst_case_usd if fits else 0.0), outcome
            )
        return call_id if fits else None

    def settle(self, call_id: str, usage: Usage, outcome: Outcome, error: str | None = None) -> None:
        with self.store.transaction() as cur:
            cur.execute(
                "UPDATE llm_ledger SET input_tokens = ?, output_tokens = ?, cost_usd = ?, latency_ms = ?,"
                " outcome = ?, error = ? WHERE call_id = ?",
                (
                    usage.input_tokens,
                    usage.output_tokens,
                    usage.cost_usd,
                    usage.latency_ms,
                    outcome,
                    error,
                    call_id,
                ),
            )

    def record_cache_hit(self, ctx: CallContext, subject: CallSubject) -> None:
        with self.store.transaction() as cur:
            self._insert(cur, ctx, subject, Usage(), "ok", cache_hit=True)

    def rows(self, workflow: str | None = None, run_id: str | None = None) -> list[dict]:
        clauses = [(name, value) for name, value in (("workflow", workflow), ("run_id", run_id)) if value]
        where = " AND ".join(f"{name} = ?" for name, _ in clauses)
        with self.store.transaction() as cur:
            rows = cur.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM llm_ledger {'WHERE ' + where if where else ''}"
                " ORDER BY recorded_at",
                [value for _, value in clauses],
            ).fetchall()
        return [dict(zip(_COLUMNS, row, strict=True)) for row in rows]

    def daily_summaries(self, since: date | None = None) -> list[UsageSummary]:
        """Usage per workflow per day, newest day first."""
        with self.store.transaction() as cur:
            rows = cur.execute(
                f"SELECT workflow, day, {_SUMMARY_COLUMNS} FROM llm_ledger WHERE day >= ?"
                " GROUP BY workflow, day ORDER BY day DESC, workflow",
                ((since or date.min).isoformat(),),
            ).fetchall()
        return [_summary(*row) for row in rows]

    def run_summary(self, run_id: str, asset: str | None = None) -> UsageSummary:
        """Usage of one run (optionally one asset in it): what an asset materialization reports."""
        where, params = "run_id = ?", [run_id]
        if asset:
            where, params = where + " AND asset = ?", [*params, asset]
        with self.store.transaction() as cur:
            row = cur.execute(f"SELECT {_SUMMARY_COLUMNS} FROM llm_ledger WHERE {where}", params).fetchone()
        return _summary(asset or "", "", *row)

    def _spent(self, cur, workflow: str, day: str) -> float:
        row = cur.execute(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM llm_ledger WHERE workflow = ? AND day = ?",
            (workflow, day),
        ).fetchone()
        return float(row[0])

    def _insert(
        self,
        cur,
        ctx: CallContext,
        subject: CallSubject,
        usage: Usage,
        outcome: Outcome,
        cache_hit: bool = False,
    ) -> str:
        call_id = uuid.uuid4().hex
        now = datetime.now(UTC)
        cur.execute(
            f"INSERT INTO llm_ledger ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            (
                call_id,
                now.isoformat(),
                now.date().isoformat(),
                ctx.workflow,
                ctx.asset,
                ctx.run_id,
                ctx.partition,
                subject.tier,
                subject.model,
                subject.prompt_id,
                subject.prompt_version,
                usage.input_tokens,
                usage.output_tokens,
                usage.cost_usd,
                usage.latency_ms,
                int(cache_hit),
                outcome,
                None,
            ),
        )
        return call_id


_COLUMNS = (
    "call_id",
    "recorded_at",
    "day",
    "workflow",
    "asset",
    "run_id",
    "partition_key",
    "tier",
    "model",
    "prompt_id",
    "prompt_version",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "cache_hit",
    "outcome",
    "error",
)
_SUMMARY_COLUMNS = (
    "SUM(CASE WHEN cache_hit = 0 AND outcome <> 'over_budget' THEN 1 ELSE 0 END),"
    " SUM(cache_hit), SUM(input_tokens), SUM(output_tokens), SUM(cost_usd),"
    " SUM(CASE WHEN outcome IN ('retried', 'fell_back', 'failed') THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN outcome = 'over_budget' THEN 1 ELSE 0 END)"
)


def _summary(workflow: str, day: str, calls, cache_hits, input_tokens, output_tokens, cost, failed, refused):
    return UsageSummary(
        workflow=workflow,
        day=day,
        calls=int(calls or 0),
        cache_hits=int(cache_hits or 0),
        input_tokens=int(input_tokens or 0),
        output_tokens=int(output_tokens or 0),
        cost_usd=float(cost or 0.0),
        failed_requests=int(failed or 0),
        over_budget=int(refused or 0),
    )
