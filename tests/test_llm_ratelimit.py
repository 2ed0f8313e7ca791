"""The LLM rate limiter's quota is shared through the operational store: by threads, by processes, by runs.

Bucket semantics are tested with a controlled clock on the real stores; the cross-process test runs two
real processes, each with its own gateway, against one test server and counts what arrives there.
"""

import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from llm_fixtures import TICKET, build_gateway, llm_tiers, postgres_store, sqlite_store, triage_prompt
from llm_server import LLMTestServer

from orchestration_pipelines.ledger import CallContext
from orchestration_pipelines.llm.ratelimit import RateLimiter
from orchestration_pipelines.opstore import OpStore


@contextmanager
def _store(dialect, tmp_path):
    if dialect == "sqlite":
        yield sqlite_store(tmp_path)
    else:
        with postgres_store() as store:
            yield store


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    with _store(request.param, tmp_path) as store:
        yield store


class ManualClock:
    def __init__(self):
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def limiter(store, clock, rpm=120, tpm=6000, key="llm:test"):
    return RateLimiter(store, key, rpm, tpm, clock=clock, sleep=clock.sleep)


def test_a_full_bucket_lets_one_second_of_quota_through_then_paces_at_the_rate(store):
    clock = ManualClock()
    bucket = limiter(store, clock)  # 2 requests a second, 100 tokens a second
    assert [bucket.try_acquire(10) for _ in range(2)] == [0.0, 0.0]
    assert bucket.try_acquire(10) == pytest.approx(0.5)  # nothing taken: the caller waits half a second
    clock.now += 0.5
    assert bucket.try_acquire(10) == 0.0
    waited = bucket.acquire(10)
    assert waited == pytest.approx(0.5)


def test_tokens_limit_too_and_a_request_above_capacity_borrows_after_a_full_bucket(store):
    clock = ManualClock()
    bucket = limiter(store, clock)  # token bucket: 100 a second, capacity 100
    assert bucket.try_acquire(60) == 0.0
    assert bucket.try_acquire(60) == pytest.approx(0.2)
    clock.now += 0.4  # back to 80... still short of a full bucket for the big one
    assert bucket.try_acquire(250) == pytest.approx(0.2)
    clock.now += 0.2
    assert bucket.try_acquire(250) == 0.0  # borrows: the level goes negative
    assert bucket.try_acquire(1) == pytest.approx(1.51)  # and the debt is paid back first


def test_limiters_with_the_same_key_share_one_quota_and_other_keys_do_not(store):
    clock = ManualClock()
    first, second = limiter(store, clock), limiter(store, clock)
    assert first.try_acquire(1) == 0.0 and second.try_acquire(1) == 0.0
    assert first.try_acquire(1) > 0 and second.try_acquire(1) > 0
    assert limiter(store, clock, key="llm:other").try_acquire(1) == 0.0


def test_a_clock_behind_the_stored_time_refills_nothing(store):
    clock = ManualClock()
    bucket = limiter(store, clock)
    bucket.try_acquire(1), bucket.try_acquire(1)
    clock.now -= 30  # another host's clock, half a minute behind
    assert bucket.try_acquire(1) == pytest.approx(0.5)


def _calls_through_own_gateway(store_url, base_url, rpm, calls, start, ticket_prefix):
    """One worker process: its own gateway, limiter and store connection, as a separate run has."""
    store = OpStore(store_url)
    gateway = build_gateway(store, llm_tiers(base_url, requests_per_minute=rpm)[:1], cache=False)
    ctx = CallContext(workflow="support", asset="support/routes", run_id=ticket_prefix)
    start.wait()
    for n in range(calls):
        ticket = TICKET | {"ticket_id": f"{ticket_prefix}-{n}"}
        assert gateway.complete(triage_prompt(), ticket, ctx).outcome == "ok"


def _largest_excess(arrivals: list[float], rate: float, capacity: float) -> float:
    """How far any window of arrivals exceeds what a token bucket allows: ``capacity + rate * span``."""
    arrivals = sorted(arrivals)
    return max(
        (j - i + 1) - (capacity + rate * (arrivals[j] - arrivals[i]))
        for i in range(len(arrivals))
        for j in range(i, len(arrivals))
    )


@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_two_processes_together_stay_within_one_limit(dialect, tmp_path: Path):
    rpm, calls = 300, 15  # 5 requests a second, a bucket of 5; each process alone could send 15 in 2 s
    spawn = multiprocessing.get_context("spawn")
    with LLMTestServer() as server, _store(dialect, tmp_path) as store:
        start = spawn.Barrier(2)
        workers = [
            spawn.Process(
                target=_calls_through_own_gateway,
                args=(store.url, server.base_url, rpm, calls, start, f"run{n}"),
            )
            for n in range(2)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        assert [w.exitcode for w in workers] == [0, 0]
        arrivals = [r.received_at for r in server.requests]
    assert len(arrivals) == 2 * calls
    # Shared: 30 requests need at least (30 - 5) / 5 = 5 s. Per process, they took about 2 s.
    assert max(arrivals) - min(arrivals) >= (2 * calls - 5) / 5 - 0.3
    assert _largest_excess(arrivals, rate=rpm / 60, capacity=5) <= 1.0  # one request of timing slack


def test_threads_of_one_process_queue_for_the_same_refills(tmp_path):
    store = sqlite_store(tmp_path)
    shared = RateLimiter(store, "llm:threads", 600, 10**9)  # 10 a second, a bucket of 10
    taken = []
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: (shared.acquire(1), taken.append(time.time())), range(20)))
    assert max(taken) - min(taken) >= (20 - 10) / 10 - 0.1
