"""Writing a plant day into the warehouse: the daily assets and the benchmark's plain script share it."""

from __future__ import annotations

import duckdb
import pandas as pd


def replace_day(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, day: str) -> None:
    """Replace ``day``'s rows of ``table`` (``schema.name``, created from the first frame) with
    ``frame`` in one transaction, so readers never see a mix of two runs of the day."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {table.split('.')[0]}")
    con.register("incoming", frame)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM incoming LIMIT 0")
        con.execute(f"DELETE FROM {table} WHERE day = ?", [day])
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("incoming")
