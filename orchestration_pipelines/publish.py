"""Write-audit-publish with per-run staging: stage a run's rows, check exactly those, publish exactly those.

Staged rows carry their ``batch_id`` and the ``run_id`` that produced them, and every reader and writer
names both, so a second run of a batch (a changed file re-landed while the first still runs), a failed
run or a re-sent file never dilutes, blocks or leaks into another run's batch. Publishing is one DuckDB
transaction that also writes the audit record into the outbox, so a published batch always carries its
audit entry; a newer content of the batch that published first is never overwritten by an older one.

Retention: a published run's staged rows are removed by its publish transaction (they now live in the
published table); a failed or superseded run's rows stay inspectable and are swept by the next staging
of any batch once older than ``STAGING_RETENTION``, which keeps the table bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import pandas as pd
import pyarrow as pa

from orchestration_pipelines.audit import AuditRecord, write_outbox_record

STAGING_RETENTION = timedelta(days=7)


class NothingStaged(LookupError):
    """The run has no staged rows for the batch (never staged, or swept after the retention period)."""


@dataclass(frozen=True)
class Publication:
    status: str  # "published", "already_published" (a retry of this run) or "superseded"
    rows: int
    event_id: str | None  # the audit record's id, in the outbox
    published_run_id: str  # the run whose rows the published table holds


def _add_missing_columns(con: duckdb.DuckDBPyConnection, target: str, source_query: str) -> None:
    """Give ``target`` (created by an earlier version) any column ``source_query`` has and it lacks."""
    have = {row[0] for row in con.execute(f"DESCRIBE {target}").fetchall()}
    for name, column_type, *_ in con.execute(f"DESCRIBE {source_query}").fetchall():
        if name not in have:
            con.execute(f'ALTER TABLE {target} ADD COLUMN "{name}" {column_type}')


def stage_rows(
    con: duckdb.DuckDBPyConnection, staging: str, rows: pd.DataFrame, batch_id: str, run_id: str
) -> int:
    """Replace this run's staged rows of ``batch_id`` (a step retry restages), leaving every other run's
    rows alone, and sweep rows older than the retention period. Returns the staged row count."""
    # A shallow copy with the stamps set column by column: ``assign`` would copy (consolidate) every
    # column first, about a second at a million rows; setting a column never writes into ``rows``.
    frame = rows.copy(deep=False)
    for column, value in (
        ("batch_id", batch_id),
        ("run_id", run_id),
        ("staged_at", pd.Timestamp.now(tz="UTC")),
    ):
        frame[column] = value
    con.register("incoming_rows", frame)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {staging.split('.')[0]}")
        con.execute(f"CREATE TABLE IF NOT EXISTS {staging} AS SELECT * FROM incoming_rows LIMIT 0")
        _add_missing_columns(con, staging, "SELECT * FROM incoming_rows")
        con.execute(f"DELETE FROM {staging} WHERE batch_id = ? AND run_id = ?", [batch_id, run_id])
        con.execute(f"INSERT INTO {staging} BY NAME SELECT * FROM incoming_rows")
        con.execute(
            f"DELETE FROM {staging} WHERE staged_at < ?", [pd.Timestamp.now(tz="UTC") - STAGING_RETENTION]
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("incoming_rows")
    return len(frame)


def read_staged(con: duckdb.DuckDBPyConnection, staging: str, batch_id: str, run_id: str) -> pd.DataFrame:
    """Exactly the rows that ``publish_batch`` would copy for this batch and run.

    Fetched as Arrow, and text columns kept Arrow-backed (``string[pyarrow]``): at a million rows this
    costs a quarter of ``.df()`` with its Python string objects, and the checks' null tests read Arrow's
    validity bits instead of testing each object.
    """
    return (
        con.sql(
            f"SELECT * EXCLUDE (staged_at) FROM {staging} WHERE batch_id = $batch_id AND run_id = $run_id",
            params={"batch_id": batch_id, "run_id": run_id},
        )
        .to_arrow_table()
        .to_pandas(types_mapper=_arrow_backed_text)
    )


def discard_staged(con: duckdb.DuckDBPyConnection, staging: str, batch_id: str, run_id: str) -> None:
    """Remove a run's staged rows of ``batch_id`` that can never publish (its run was superseded)."""
    con.execute(f"DELETE FROM {staging} WHERE batch_id = ? AND run_id = ?", [batch_id, run_id])


def _arrow_backed_text(arrow_type: pa.DataType) -> pd.StringDtype | None:
    return pd.StringDtype("pyarrow") if pa.types.is_string(arrow_type) else None


def _publications(published: str) -> str:
    return f"{published}_publications"


def publish_batch(
    con: duckdb.DuckDBPyConnection,
    *,
    staging: str,
    published: str,
    batch_id: str,
    run_id: str,
    run_created_at: datetime,
    source_sha256: str | None,
    audit_record: Callable[[duckdb.DuckDBPyConnection, int], AuditRecord],
    in_transaction: Sequence[Callable[[duckdb.DuckDBPyConnection, str, str], None]] = (),
    may_be_empty: bool = False,
) -> Publication:
    """Replace ``batch_id`` in ``published`` with the rows run ``run_id`` staged, in one transaction.

    The same transaction writes ``audit_record(con, rows)`` to the outbox, records which run's content
    the batch now holds, runs each ``in_transaction(con, batch_id, run_id)`` and removes the published
    staged rows. A run created before the run that already published this batch is ``superseded`` and
    changes nothing; a retry of the run that published returns ``already_published`` with its event id.
    Readers see the previous version of the batch or the new one, never a mix. A run with no staged
    rows raises ``NothingStaged`` unless ``may_be_empty`` (a plant day without alerts is a result).
    """
    ledger = _publications(published)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {ledger} (batch_id VARCHAR PRIMARY KEY, run_id VARCHAR NOT NULL, "
            "run_created_at TIMESTAMPTZ NOT NULL, source_sha256 VARCHAR, rows BIGINT NOT NULL, "
            "event_id VARCHAR NOT NULL, published_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        current = con.execute(
            f"SELECT run_id, run_created_at, rows, event_id FROM {ledger} WHERE batch_id = ?", [batch_id]
        ).fetchall()
        current = current[0] if current else None
        if current and (current[0] == run_id or current[1] > run_created_at):
            con.execute("COMMIT")
            status = "already_published" if current[0] == run_id else "superseded"
            return Publication(status, current[2], current[3], current[0])
        staged = con.execute(
            f"SELECT count(*) FROM {staging} WHERE batch_id = ? AND run_id = ?", [batch_id, run_id]
        ).fetchall()[0][0]
        if not staged and not may_be_empty:
            raise NothingStaged(f"no staged rows for batch {batch_id!r} of run {run_id}")
        columns = f"SELECT * EXCLUDE (staged_at) FROM {staging}"
        con.execute(f"CREATE TABLE IF NOT EXISTS {published} AS {columns} LIMIT 0")
        _add_missing_columns(con, published, columns)
        select = f"{columns} WHERE batch_id = ? AND run_id = ?"
        con.execute(f"DELETE FROM {published} WHERE batch_id = ?", [batch_id])
        con.execute(f"INSERT INTO {published} BY NAME {select}", [batch_id, run_id])
        record = audit_record(con, staged)
        write_outbox_record(con, record)
        con.execute(
            f"INSERT OR REPLACE INTO {ledger} "
            "(batch_id, run_id, run_created_at, source_sha256, rows, event_id) VALUES (?, ?, ?, ?, ?, ?)",
            [batch_id, run_id, run_created_at, source_sha256, staged, record.event_id],
        )
        for effect in in_transaction:
            effect(con, batch_id, run_id)
        con.execute(f"DELETE FROM {staging} WHERE batch_id = ? AND run_id = ?", [batch_id, run_id])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return Publication("published", int(staged), record.event_id, run_id)
