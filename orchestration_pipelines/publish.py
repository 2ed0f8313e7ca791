"""The publish step of write-audit-publish: copy a checked staging partition into its published table."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import duckdb


def publish_partition(
    con: duckdb.DuckDBPyConnection,
    staging: str,
    published: str,
    partition_column: str,
    partition: str,
    run_id: str = "",
    in_transaction: Sequence[Callable[[duckdb.DuckDBPyConnection, str, str], None]] = (),
) -> int:
    """Replace ``partition`` of ``published`` with the staged rows in one transaction; returns the row count.

    Readers see either the previous version of the partition or the new one, never a mix, and a
    failure leaves the published table as it was. Each ``in_transaction(con, partition, run_id)``
    runs inside the same transaction, after the rows are replaced.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {published} AS SELECT * FROM {staging} LIMIT 0")
        con.execute(f"DELETE FROM {published} WHERE {partition_column} = ?", [partition])
        con.execute(
            f"INSERT INTO {published} SELECT * FROM {staging} WHERE {partition_column} = ?", [partition]
        )
        rows = con.execute(
            f"SELECT count(*) FROM {published} WHERE {partition_column} = ?", [partition]
        ).fetchall()[0]
        for effect in in_transaction:
            effect(con, partition, run_id)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return int(rows[0])
