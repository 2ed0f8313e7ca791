"""Operational-store test helpers: raw SQL outside ``OpStore`` (so nothing migrates first), the schema the
ad-hoc code created before migrations, and workers for racing processes (importable for spawn)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence

# Verbatim from the modules before the schema moved to migrations (audit_log from before event ids).
LEGACY_DDL = (
    """CREATE TABLE IF NOT EXISTS audit_log (seq BIGINT PRIMARY KEY, recorded_at TEXT NOT NULL,
    workflow TEXT NOT NULL, event TEXT NOT NULL, subject TEXT NOT NULL, actor TEXT NOT NULL, run_id TEXT,
    details TEXT NOT NULL, prev_hash TEXT NOT NULL, entry_hash TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS llm_ledger (call_id TEXT PRIMARY KEY, recorded_at TEXT NOT NULL,
    day TEXT NOT NULL, workflow TEXT NOT NULL, asset TEXT, run_id TEXT, partition_key TEXT,
    tier TEXT NOT NULL, model TEXT NOT NULL, prompt_id TEXT NOT NULL, prompt_version TEXT NOT NULL,
    input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL, cost_usd DOUBLE PRECISION NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL, cache_hit BIGINT NOT NULL, outcome TEXT NOT NULL, error TEXT)""",
    """CREATE TABLE IF NOT EXISTS llm_response_cache (cache_key TEXT PRIMARY KEY, prompt_id TEXT NOT NULL,
    prompt_version TEXT NOT NULL, model TEXT NOT NULL, output TEXT NOT NULL, created_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS llm_active_versions (
        kind TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL, payload TEXT,
        promoted_at TEXT NOT NULL, actor TEXT NOT NULL, PRIMARY KEY (kind, name))""",
    """CREATE TABLE IF NOT EXISTS shadow_results (
        experiment TEXT NOT NULL, variant TEXT NOT NULL, item_id TEXT NOT NULL, version TEXT NOT NULL,
        output TEXT, route TEXT NOT NULL, cost_usd DOUBLE PRECISION NOT NULL, label TEXT,
        recorded_at TEXT NOT NULL, PRIMARY KEY (experiment, variant, item_id))""",
    """CREATE TABLE IF NOT EXISTS maintenance_work_orders (work_order_key TEXT PRIMARY KEY,
    machine_id TEXT NOT NULL, team TEXT NOT NULL, alerted_at TEXT NOT NULL, status TEXT NOT NULL,
    payload TEXT NOT NULL, created_at TEXT NOT NULL, run_id TEXT, delivery TEXT NOT NULL,
    delivery_attempts INTEGER NOT NULL, delivered_at TEXT, last_error TEXT)""",
    """CREATE TABLE IF NOT EXISTS maintenance_notifications (notification_key TEXT PRIMARY KEY,
    team TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL,
    delivery TEXT NOT NULL, delivery_attempts INTEGER NOT NULL, delivered_at TEXT, last_error TEXT)""",
)


def execute_raw(url: str, statements: Sequence[tuple[str, Sequence]]) -> list[list[tuple]]:
    """Run ``(sql, params)`` pairs (``?`` placeholders) in one transaction on a driver connection."""
    if url.startswith("sqlite"):
        con = sqlite3.connect(url.removeprefix("sqlite:///"))
    else:
        import psycopg2

        con = psycopg2.connect(url)
    results = []
    try:
        cur = con.cursor()
        for sql, params in statements:
            cur.execute(sql if url.startswith("sqlite") else sql.replace("?", "%s"), tuple(params))
            results.append(cur.fetchall() if cur.description else [])
        con.commit()
    finally:
        con.close()
    return results


def table_names(url: str) -> set[str]:
    query = (
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        if url.startswith("sqlite")
        else "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    )
    return {name for (name,) in execute_raw(url, [(query, ())])[0]}


def migrate_in_process(url: str) -> str:
    from orchestration_pipelines.opstore import OpStore

    return OpStore(url).migrate()


def append_from_threads(url: str, worker: int, threads: int, per_thread: int) -> None:
    """One process appending ``threads * per_thread`` audit events from several threads at once."""
    from orchestration_pipelines.audit import append_audit_event
    from orchestration_pipelines.opstore import OpStore

    store = OpStore(url)

    def write(thread: int) -> None:
        for i in range(per_thread):
            append_audit_event(
                store, workflow="race", event="e", subject=f"{worker}-{thread}-{i}", details={"i": i}
            )

    pool = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
    [t.start() for t in pool]
    [t.join() for t in pool]
