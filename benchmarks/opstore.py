"""Operational store: what one pooled engine per process saves, and how many decisions per second it holds.

Usage: ``python -m benchmarks.run opstore [--transactions N] [--repeats R] [--postgres DSN]``

Per dialect: small transactions (one audit append each) on the pooled engine against the same with the
pool emptied before every transaction (a new connection each time, as the store did before), in CPU
seconds of this process (``time.process_time``) and wall seconds, median and spread over the repeats;
then review decisions per second. Target: pooled transactions cost less CPU than fresh connections.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from orchestration_pipelines.audit import append_audit_event
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.review import ReviewRequest, create_reviewer, decide, raise_items

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _appends(store: OpStore, n: int, fresh_connections: bool) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        if fresh_connections:
            store.engine.dispose()
        append_audit_event(store, workflow="bench", event="e", subject=f"s{i}", details={"i": i})
    return time.process_time() - cpu, time.perf_counter() - wall


def _decisions(store: OpStore, n: int) -> float:
    create_reviewer(store, "bench-ana", "Ana", ["analyst"])
    requests = [
        ReviewRequest("fraud", "fraud_analyst_review", f"tx-{i}", "bench", {"amount_eur": 1.0}, "0" * 64, "m")
        for i in range(n)
    ]
    ids = raise_items(store, requests).created
    wall = time.perf_counter()
    for item_id in ids:
        decide(store, item_id, "bench-ana", "approve")
    return n / (time.perf_counter() - wall)


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


def bench(label: str, url: str, n: int, repeats: int) -> bool:
    store = OpStore(url)
    store.migrate()
    pooled, fresh = [], []
    for _ in range(repeats):  # interleaved, so load on the machine hits both alike
        pooled.append(_appends(store, n, fresh_connections=False))
        fresh.append(_appends(store, n, fresh_connections=True))
    pooled_cpu, fresh_cpu = [c for c, _ in pooled], [c for c, _ in fresh]
    ratio = statistics.median(fresh_cpu) / statistics.median(pooled_cpu)
    print(f"{label}: {n} audit appends x {repeats}")
    print(f"  pooled engine      CPU s {_spread(pooled_cpu)}  wall s {_spread([w for _, w in pooled])}")
    print(f"  fresh connections  CPU s {_spread(fresh_cpu)}  wall s {_spread([w for _, w in fresh])}")
    print(f"  fresh / pooled CPU: {ratio:.2f}x")
    print(f"  review decisions: {_decisions(store, n):.0f}/s (one transaction each, audited)")
    return ratio > 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transactions", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres", default=PG_ADMIN, help="admin DSN; a scratch database is made")
    args = parser.parse_args(argv)
    met = []
    with tempfile.TemporaryDirectory() as tmp:
        met.append(
            bench("SQLite", f"sqlite:///{Path(tmp) / 'bench.sqlite'}", args.transactions, args.repeats)
        )
    import psycopg2

    name = f"op_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(args.postgres)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        met.append(bench("PostgreSQL", f"{args.postgres.rsplit('/', 1)[0]}/{name}", args.transactions,
                         args.repeats))  # fmt: skip
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    return 0 if all(met) else 1
