"""Support triage benchmark: the local path's throughput and the LLM path's use of its rate limit.

1. Local path (classification, routing, templated reply with retrieval) on ``--tickets`` generated
   tickets in one thread, against the target of 5,000 tickets/s on one core. Ticket generation and
   classifier training are outside the timing.
2. LLM path against the local test server (``tests/llm_server.py``) answering after ``--latency-ms``:
   two "runs" (threads with their own gateway, as two runs in one process) send intent requests at
   once. With a rate limit below what the latency allows, their combined throughput is the limit
   (the code is not the bottleneck); with a high limit, two runs do about twice one run's throughput
   (concurrency is used). The limiter is shared within a process only: across processes it is not
   (yet), which this benchmark does not claim.

Usage: ``python -m benchmarks.support [--quick] [--tickets N] [--latency-ms M] [--seed S]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.router import _load_test_server
from orchestration_pipelines.governance import load_data_policy
from orchestration_pipelines.ledger import CallContext, CostLedger
from orchestration_pipelines.llm import Backoff, LLMGateway, Tier
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.router import load_router_policy
from orchestration_pipelines.support.classifier import train_classifier
from orchestration_pipelines.support.generator import generate_tickets, make_customers, make_orders
from orchestration_pipelines.support.knowledge import KnowledgeBase
from orchestration_pipelines.support.outbox import draft_replies
from orchestration_pipelines.support.policy import load_support_policy
from orchestration_pipelines.support.triage import Triage, classify_tickets, intent_prompt, route_tickets

LOCAL_TARGET_PER_S = 5000


def local_path(n: int, seed: int) -> tuple[float, float]:
    """Tickets per second of the local path: (wall clock, CPU time of this thread)."""
    customers = make_customers(max(100, n // 50), seed)
    orders = make_orders(customers, 3, seed)
    history = generate_tickets(3000, seed, customers, orders, id_prefix="H")
    classifier, _ = train_classifier(
        history, text_columns=("subject", "body"), intent="intent", urgency="urgency"
    )
    names = customers.set_index("customer_id")["name"]
    batch = generate_tickets(n, seed + 1, customers, orders)
    batch = batch.assign(customer_name=batch["customer_id"].map(names))
    knowledge_base = KnowledgeBase.load()
    triage = Triage("benchmark", load_support_policy(), load_router_policy())
    wall, cpu = time.perf_counter(), time.thread_time()
    classification = classify_tickets(batch, classifier)
    routed = route_tickets(batch, classification, triage)
    draft_replies(batch, routed, knowledge_base)
    return n / (time.perf_counter() - wall), n / (time.thread_time() - cpu)


def llm_throughput(base_url: str, runs: int, requests: int, per_minute: int, store: OpStore) -> float:
    """Requests per second of ``runs`` concurrent runs sending ``requests`` intent calls each."""
    tier = Tier("small", "small-model", base_url, "sk-bench", 0.00015, 0.0006, 10.0, 2, per_minute, 10**9)
    prompt = intent_prompt(["billing", "refund", "shipping"])
    tickets = generate_tickets(requests * runs, seed=5)
    ledger = CostLedger(store, daily_budget_usd=1000.0)

    def run(index: int) -> None:
        gateway = LLMGateway([tier], ledger, load_data_policy(), backoff=Backoff(0.01, 0.1))
        ctx = CallContext(workflow="support", run_id=f"bench-{per_minute}-{index}")
        for ticket in tickets.iloc[index * requests : (index + 1) * requests].to_dict("records"):
            gateway.complete(prompt, ticket, ctx)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(runs)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return runs * requests / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="10,000 tickets and fewer LLM requests")
    args = parser.parse_args(argv)
    tickets = 10_000 if args.quick else args.tickets
    requests = 30 if args.quick else 100

    wall, cpu = local_path(tickets, args.seed)
    local_met = cpu >= LOCAL_TARGET_PER_S
    print(
        f"local path, {tickets} tickets, one thread: {wall:,.0f} tickets/s wall clock, "
        f"{cpu:,.0f} per CPU second"
    )
    print(f"  target >= {LOCAL_TARGET_PER_S} tickets/s on one core: {'PASS' if local_met else 'MISS'}")

    latency = args.latency_ms / 1000
    unbounded = 60_000_000
    limit_per_s = max(1.0, 0.4 / latency)  # 40% of what one sequential run could do at this latency
    server = _load_test_server().LLMTestServer(latency_s=latency)
    with server, tempfile.TemporaryDirectory() as tmp:
        store = OpStore(f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        one = llm_throughput(server.base_url, 1, requests, unbounded, store)
        two = llm_throughput(server.base_url, 2, requests, unbounded, store)
        limited = llm_throughput(server.base_url, 2, requests, round(limit_per_s * 60), store)
    used = two >= 1.6 * one
    bounded = limited <= limit_per_s * 1.15 and limited >= limit_per_s * 0.6
    print(f"LLM path, server latency {args.latency_ms:.0f} ms, {requests} requests per run:")
    print(
        f"  one run, no limit: {one:.1f} requests/s; two runs at once: {two:.1f} requests/s "
        f"({two / one:.2f}x): concurrency used {'PASS' if used else 'MISS'}"
    )
    print(
        f"  two runs at once, limit {limit_per_s:.1f}/s: {limited:.1f} requests/s: "
        f"bounded by the limit, not the code {'PASS' if bounded else 'MISS'}"
    )
    print("  (the limiter is shared by runs in one process; across processes it is not yet)")
    return 0 if local_met and used and bounded else 1


if __name__ == "__main__":
    sys.exit(main())
