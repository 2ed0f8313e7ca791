"""The account context a batch is scored against: its accounts' labelled history before it."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pandas as pd

HISTORY_TABLE = "fraud.labelled_history"
HISTORY_LOOKBACK = timedelta(days=30)


def account_history(con: duckdb.DuckDBPyConnection, batch: pd.DataFrame) -> pd.DataFrame | None:
    """History rows of the batch's accounts over the look-back window, or None before any history exists.

    A fixed row order keeps features reproducible to the last digit (their running sums follow it), and
    fetching through Arrow is several seconds faster than ``.df()`` on millions of rows.
    """
    schema, table = HISTORY_TABLE.split(".")
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()[0][0]
    if not exists:
        return None
    con.register("batch_accounts", batch[["account_id"]].drop_duplicates())
    window = {"since": batch["timestamp"].min() - HISTORY_LOOKBACK, "until": batch["timestamp"].max()}
    return (
        con.sql(
            f"SELECT h.* FROM {HISTORY_TABLE} h JOIN batch_accounts b USING (account_id) "
            "WHERE h.timestamp >= $since AND h.timestamp < $until ORDER BY h.timestamp, h.transaction_id",
            params=window,
        )
        .to_arrow_table()
        .to_pandas()
    )
