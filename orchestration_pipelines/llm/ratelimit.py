"""Request and token rate limits per tier, shared by every process and run using one operational store.

Token buckets refilled continuously and holding one second of quota: providers often enforce their
per-minute limits over shorter windows, so a full minute's burst would be throttled anyway. The buckets'
state (``level`` and when it was ``refreshed_at``) lives in the store's ``rate_limit_buckets`` table, so
N parallel Dagster runs share one quota instead of sending N times the limit. Taking from a bucket is
one transaction that locks its rows (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on
SQLite): two callers never both spend the same refill.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestration_pipelines.llm.tiers import Tier
from orchestration_pipelines.opstore import OpStore

_MAX_SLEEP_S = 1.0  # re-check at least this often: other callers' waits end at times we cannot know


@dataclass(frozen=True)
class BucketSpec:
    """A bucket refilled at ``per_minute / 60`` a second and holding one second of quota (at least 1)."""

    name: str
    per_minute: float

    @property
    def rate(self) -> float:
        return self.per_minute / 60.0

    @property
    def capacity(self) -> float:
        return max(1.0, self.rate)


class RateLimiter:
    """One request bucket and one token bucket, stored in ``store``; ``acquire`` blocks until both fit."""

    def __init__(
        self,
        store: OpStore,
        key: str,
        requests_per_minute: float,
        tokens_per_minute: float,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.store = store
        self.requests = BucketSpec(f"{key}:requests", requests_per_minute)
        self.tokens = BucketSpec(f"{key}:tokens", tokens_per_minute)
        self._clock = clock
        self._sleep = sleep

    def acquire(self, tokens: int) -> float:
        """Block until one request of ``tokens`` estimated tokens may go; returns the seconds waited.
        A request above the token bucket's capacity waits for a full bucket, then borrows."""
        waited = 0.0
        while True:
            delay = self.try_acquire(tokens)
            if delay <= 0:
                return waited
            pause = min(delay, _MAX_SLEEP_S)
            self._sleep(pause)
            waited += pause

    def try_acquire(self, tokens: int) -> float:
        """Take one request and ``tokens`` if both fit now (returns 0), else the seconds until they
        would; nothing is taken then."""
        needs = ((self.requests, 1.0), (self.tokens, float(tokens)))
        with self.store.transaction(exclusive=True) as cur:
            now = self._clock()
            levels = {spec.name: self._locked_level(cur, spec, now) for spec, _ in needs}
            delay = max((min(need, spec.capacity) - levels[spec.name]) / spec.rate for spec, need in needs)
            if delay > 0:
                return delay
            for spec, need in needs:
                cur.execute(
                    "UPDATE rate_limit_buckets SET level = ?, refreshed_at = ? WHERE bucket = ?",
                    [levels[spec.name] - need, now, spec.name],
                )
            return 0.0

    def _locked_level(self, cur, spec: BucketSpec, now: float) -> float:
        """The bucket's level refilled up to ``now``, its row locked until the transaction ends."""
        cur.execute(
            "INSERT INTO rate_limit_buckets (bucket, level, refreshed_at) VALUES (?, ?, ?) "
            "ON CONFLICT (bucket) DO NOTHING",
            [spec.name, spec.capacity, now],
        )
        lock = " FOR UPDATE" if cur.dialect == "postgresql" else ""
        level, refreshed_at = cur.execute(
            f"SELECT level, refreshed_at FROM rate_limit_buckets WHERE bucket = ?{lock}", [spec.name]
        ).fetchone()
        # A clock behind the stored time (another host) refills nothing rather than draining.
        return min(spec.capacity, level + max(0.0, now - refreshed_at) * spec.rate)


def limiter_for(tier: Tier, store: OpStore) -> RateLimiter:
    """The limiter of one endpoint and model: every process using ``store`` shares its quota."""
    return RateLimiter(
        store, f"llm:{tier.base_url}:{tier.model}", tier.requests_per_minute, tier.tokens_per_minute
    )
