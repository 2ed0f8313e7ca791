"""Request and token rate limits per tier, within one process.

Token buckets refilled continuously and holding one second of quota: providers often enforce their
per-minute limits over shorter windows, so a full minute's burst would be throttled anyway. Across
processes (parallel Dagster runs) the LLM concurrency pool caps how many callers exist at all.
"""

from __future__ import annotations

import threading
import time

from orchestration_pipelines.llm.tiers import Tier


class _Bucket:
    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.updated = time.monotonic()

    def wait_time(self, need: float, now: float) -> float:
        """Seconds until ``need`` fits; a request above capacity waits for a full bucket, then borrows."""
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now
        return max(0.0, (min(need, self.capacity) - self.level) / self.rate)


class RateLimiter:
    def __init__(self, requests_per_minute: float, tokens_per_minute: float):
        self._requests = _Bucket(requests_per_minute)
        self._tokens = _Bucket(tokens_per_minute)
        self._lock = threading.Lock()

    def acquire(self, tokens: int) -> float:
        """Block until one request of ``tokens`` estimated tokens may go; returns the seconds waited."""
        waited = 0.0
        with self._lock:  # callers queue in order instead of racing for refills
            while True:
                now = time.monotonic()
                delay = max(self._requests.wait_time(1, now), self._tokens.wait_time(tokens, now))
                if delay <= 0:
                    self._requests.level -= 1
                    self._tokens.level -= tokens
                    return waited
                time.sleep(delay)
                waited += delay


_LIMITERS: dict[tuple, RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(tier: Tier) -> RateLimiter:
    """One limiter per endpoint, model and limits in this process, shared by every gateway built here."""
    key = (tier.base_url, tier.model, tier.requests_per_minute, tier.tokens_per_minute)
    with _LIMITERS_LOCK:
        if key not in _LIMITERS:
            _LIMITERS[key] = RateLimiter(tier.requests_per_minute, tier.tokens_per_minute)
        return _LIMITERS[key]
