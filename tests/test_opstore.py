"""The operational store: pooled engines, versioned migrations, adoption of old databases, racing writers."""

import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from opstore_helpers import LEGACY_DDL, append_from_threads, execute_raw, migrate_in_process, table_names

from orchestration_pipelines.audit import append_audit_event, read_audit_log, verify_audit_chain
from orchestration_pipelines.llm.cache import ResponseCache
from orchestration_pipelines.migrations import head_revision
from orchestration_pipelines.opstore import OpStore

CLI = str(Path(sys.executable).with_name("orchestration-pipelines"))
REVIEW_TABLES = {
    "review_items",
    "review_events",
    "feedback",
    "actions_outbox",
    "reviewers",
    "rate_limit_buckets",
}
BASELINE_TABLES = {
    "audit_log",
    "llm_ledger",
    "llm_response_cache",
    "llm_active_versions",
    "shadow_results",
    "maintenance_work_orders",
    "maintenance_notifications",
}


def _spawned(target, argument_lists) -> None:
    context = multiprocessing.get_context("spawn")  # a fresh interpreter, as separate runs are
    processes = [context.Process(target=target, args=args) for args in argument_lists]
    [p.start() for p in processes]
    [p.join(timeout=300) for p in processes]
    assert [p.exitcode for p in processes] == [0] * len(processes)


def test_unsupported_urls_are_refused_clearly_and_credentials_never_printed():
    for url in ("mysql://x/y", "sqlite://", "sqlite:///:memory:", "postgresql+asyncpg://h/db", "not a url"):
        with pytest.raises(ValueError, match="unsupported operational store URL"):
            OpStore(url)
    store = OpStore("postgres://app:s3cret@db.internal:5433/ops")
    assert store.dialect == "postgresql" and repr(store) == "OpStore(postgresql://db.internal:5433/ops)"


def test_one_engine_per_process_and_url_reused_by_every_transaction(opstore):
    assert OpStore(opstore.url).engine is opstore.engine
    for _ in range(30):
        with opstore.transaction() as cur:
            assert cur.execute("SELECT 1").fetchone() == (1,)
    assert opstore.engine.pool.checkedin() == 1  # sequential transactions share one pooled connection


def test_a_fresh_database_is_migrated_on_first_use(opstore):
    assert opstore.current_revision() is None
    with opstore.transaction() as cur:
        assert cur.execute("SELECT count(*) FROM review_items").fetchone() == (0,)
    assert opstore.current_revision() == head_revision()
    assert table_names(opstore.url) >= BASELINE_TABLES | REVIEW_TABLES


def test_a_database_created_by_the_ad_hoc_code_is_adopted_with_its_rows(opstore):
    old_entry = (1, "2026-11-01T00:00:00+00:00", "fraud", "batch_published", "old.csv", "system", None, "{}")
    prev = "0" * 64
    old_hash = hashlib.sha256(json.dumps((*old_entry, prev), separators=(",", ":")).encode()).hexdigest()
    execute_raw(
        opstore.url,
        [(ddl, ()) for ddl in LEGACY_DDL]
        + [
            ("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*old_entry, prev, old_hash)),
            (
                "INSERT INTO llm_response_cache VALUES (?, ?, ?, ?, ?, ?)",
                ("k", "p", "1", "m", "{}", "2026-11-01"),
            ),
        ],
    )
    assert opstore.migrate() == head_revision()

    assert ResponseCache(opstore).get("k") == "{}"
    append_audit_event(opstore, workflow="fraud", event="after", subject="new", details={})
    assert [e.event_id is None for e in read_audit_log(opstore)] == [True, False]
    assert verify_audit_chain(opstore) == []
    assert table_names(opstore.url) >= REVIEW_TABLES
    assert opstore.migrate() == head_revision()  # nothing left to do


def test_a_table_of_another_shape_is_refused_and_nothing_is_stamped(opstore):
    execute_raw(opstore.url, [("CREATE TABLE llm_ledger (call_id TEXT PRIMARY KEY, note TEXT)", ())])
    with pytest.raises(RuntimeError, match=r"llm_ledger predates migrations but lacks columns \['asset'"):
        opstore.migrate()
    assert opstore.current_revision() is None
    assert table_names(opstore.url) == {"llm_ledger"}  # the failed upgrade left nothing half done


def test_racing_processes_migrate_a_fresh_database_once(opstore):
    _spawned(migrate_in_process, [(opstore.url,)] * 4)
    assert opstore.current_revision() == head_revision()


def test_writers_in_several_processes_and_threads_keep_the_audit_chain_intact(opstore):
    opstore.migrate()
    _spawned(append_from_threads, [(opstore.url, worker, 3, 8) for worker in range(3)])
    entries = read_audit_log(opstore)
    assert [e.seq for e in entries] == list(range(1, 73))
    assert len({e.subject for e in entries}) == 72
    assert verify_audit_chain(opstore) == []


@pytest.mark.postgres
def test_locks_serialise_their_own_purpose_only(postgres_database):
    store = OpStore(postgres_database["url"])
    store.migrate()
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.transaction(lock="audit_chain"):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(30)
    started = time.monotonic()
    with store.transaction(lock="llm_budget:support"), store.transaction():
        other_purpose = time.monotonic() - started
    waited: list[float] = []

    def same_purpose() -> None:
        begun = time.monotonic()
        with store.transaction(lock="audit_chain"):
            waited.append(time.monotonic() - begun)

    contender = threading.Thread(target=same_purpose)
    contender.start()
    time.sleep(0.5)
    assert not waited  # still blocked behind the holder
    release.set()
    holder.join()
    contender.join()
    assert other_purpose < 0.5 and waited[0] >= 0.5


def test_literal_percent_signs_survive_placeholder_translation(opstore):
    with opstore.transaction() as cur:
        cur.execute(
            "INSERT INTO llm_active_versions VALUES (?, ?, ?, ?, ?, ?)", ("k", "n%", "1", None, "t", "a")
        )
        assert cur.execute("SELECT name FROM llm_active_versions WHERE name LIKE 'n%'").fetchall() == [
            ("n%",)
        ]


def test_the_cli_upgrades_and_reports_the_revision(opstore):
    env = {**os.environ, "OP_OPSTORE_URL": opstore.url}
    before = subprocess.run([CLI, "opstore", "current"], env=env, capture_output=True, text=True, check=True)
    assert "revision none (never migrated)" in before.stdout
    upgraded = subprocess.run(
        [CLI, "opstore", "upgrade"], env=env, capture_output=True, text=True, check=True
    )
    assert f"upgraded to revision {head_revision()}" in upgraded.stdout
    after = subprocess.run([CLI, "opstore", "current"], env=env, capture_output=True, text=True, check=True)
    assert f"revision {head_revision()} (up to date)" in after.stdout
