"""The DuckDB warehouse: one file, one writer process at a time.

``warehouse_resource`` gives assets a connection for SQL work (publishing, queries);
``warehouse_io_manager`` stores DataFrame assets as tables named ``<key prefix>.<asset name>``,
partition by partition. Both point at the same file and wait while another process holds its lock,
but fail at once, without retries, when the file is damaged or unreadable: waiting cannot fix that.
Assets that touch it share the ``WAREHOUSE_POOL`` concurrency pool, limited to 1 in ``dagster.yaml``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import pandas as pd
from dagster import (
    Failure,
    InputContext,
    IOManager,
    MetadataValue,
    OutputContext,
    TableColumn,
    TableSchema,
)
from dagster._core.definitions.metadata import TableMetadataSet
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_duckdb import DuckDBResource
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_pandas import DuckDBPandasIOManager, DuckDBPandasTypeHandler

from orchestration_pipelines.settings import paths
from resources.env import env_or_default

WAREHOUSE_POOL = "duckdb_warehouse"
_LOCK_CONFLICT = ("Could not set lock on file", "Conflicting lock is held")
# What DuckDB says when a file it already opened turns out damaged on read.
_DAMAGE = ("Corrupt database file", "does not match stored checksum", "Could not read enough bytes")


class WarehouseLockTimeout(duckdb.IOException):
    """Another process held the warehouse lock for longer than we wait; a later retry may succeed."""


def is_lock_conflict(exc: BaseException) -> bool:
    """The one transient DuckDB error here: another process holds the single-writer lock."""
    return isinstance(exc, duckdb.IOException) and any(text in str(exc) for text in _LOCK_CONFLICT)


def _damaged(database: str, exc: BaseException) -> Failure:
    return Failure(
        description=(
            f"warehouse {database} is damaged or unreadable ({exc}); retrying cannot help: restore it "
            "from a backup or fix its permissions, then re-run"
        ),
        allow_retries=False,
    )


@contextmanager
def connect_warehouse(database: str, config: dict[str, Any]) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection that waits out another writer's lock (``OP_WAREHOUSE_LOCK_WAIT_SECONDS``, default
    120) and turns any other failure to open, or a damaged block met later, into a ``Failure`` without
    retries."""
    deadline = time.monotonic() + float(os.environ.get("OP_WAREHOUSE_LOCK_WAIT_SECONDS", "120"))
    delay = 0.1
    while True:
        try:
            con = duckdb.connect(database, read_only=False, config=config)
            break
        except duckdb.Error as exc:
            if not is_lock_conflict(exc):
                raise _damaged(database, exc) from exc
            if time.monotonic() + delay > deadline:
                raise WarehouseLockTimeout(str(exc)) from exc
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    try:
        yield con
    except duckdb.Error as exc:
        if any(text in str(exc) for text in _DAMAGE):
            raise _damaged(database, exc) from exc
        raise
    finally:
        con.close()


# (run id, asset key, partition) -> the DataFrame just written, waiting for its one downstream reader.
_HANDOFF: dict[tuple, Any] = {}


def _partition(context: InputContext | OutputContext) -> str | None:
    return context.asset_partition_key if context.has_asset_partitions else None


class _HandOffIOManager(IOManager):
    """Writes through to DuckDB, and hands the written frame to the later steps of the same run.

    Every table is still written (durable, inspectable, what other runs read), but a step that runs in
    the same process as its upstream (the in-process executor) skips reading the table back: at a
    million rows that read costs about as much as the step's own work. Each reader in the run gets the
    frame as it was written (steps never modify their inputs), so a retried step sees what the table
    held when its upstream wrote it, even if a racing run of the same partition has replaced it since.
    An input from another run (a re-execution) falls back to the table. Frames are held until a later
    run writes, i.e. for the life of the run's process.
    """

    def __init__(self, inner: IOManager):
        self._inner = inner

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        self._inner.handle_output(context, obj)
        for stale in [key for key in _HANDOFF if key[0] != context.run_id]:
            del _HANDOFF[stale]  # a run that ended early leaves nothing behind for long
        _HANDOFF[(context.run_id, context.asset_key, _partition(context))] = obj

    def load_input(self, context: InputContext) -> Any:
        upstream = context.upstream_output
        has_single_partition = not context.has_asset_partitions or len(context.asset_partition_keys) == 1
        if upstream is not None and has_single_partition:
            handed = _HANDOFF.get((upstream.run_id, context.asset_key, _partition(context)))
            if handed is not None:
                return handed
        return self._inner.load_input(context)


class WarehouseResource(DuckDBResource):
    """Dagster's DuckDB resource, connecting through ``connect_warehouse``."""

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect_warehouse(self.database, self.connection_config) as con:
            yield con


class _WarehouseDbClient(DuckDbClient):
    @staticmethod
    @contextmanager
    def connect(context, _) -> Iterator[duckdb.DuckDBPyConnection]:
        config = context.resource_config
        with connect_warehouse(config["database"], config["connection_config"]) as con:
            yield con


class _FollowingPandasTypeHandler(DuckDBPandasTypeHandler):
    """Writes a frame into its table by column name, first bringing the table's columns in line
    with the frame's.

    Every table here is derived from landed files and re-computable, so when an asset's output
    changes shape (a column dropped, added or re-typed by a new version of the code) the table
    follows it instead of failing the write (or, worse, inserting by position into the wrong
    columns): a column the asset no longer produces is dropped, a new one added. Rows of other
    partitions keep the columns they share with the new output; in an added column they hold NULL
    until those partitions are materialized again, which the warning says.
    """

    def handle_output(
        self, context: OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection
    ) -> None:
        if obj.empty:
            context.log.warning("Skipping DuckDB write for empty DataFrame.")
        else:
            table = f"{table_slice.schema}.{table_slice.table}"
            connection.register("output_frame", obj)
            try:
                if _follow_output(context, connection, table_slice):
                    connection.execute(f"INSERT INTO {table} BY NAME SELECT * FROM output_frame")
            finally:
                connection.unregister("output_frame")
        count = (
            TableMetadataSet(partition_row_count=obj.shape[0], storage_kind="duckdb")
            if context.has_partition_key
            else TableMetadataSet(row_count=obj.shape[0], storage_kind="duckdb")
        )
        columns = [TableColumn(name=name, type=str(dtype)) for name, dtype in obj.dtypes.items()]
        context.add_output_metadata(
            {**count, "dataframe_columns": MetadataValue.table_schema(TableSchema(columns=columns))}
        )


def _same_type(stored: str | None, produced: str) -> bool:
    """Equal types; any two ENUMs count as one, since a categorical's ENUM lists the categories of one
    partition's frame (the insert casts between them, and fails on a value the table's lacks)."""
    return stored == produced or ((stored or "").startswith("ENUM(") and produced.startswith("ENUM("))


def _follow_output(
    context: OutputContext, connection: duckdb.DuckDBPyConnection, table_slice: TableSlice
) -> bool:
    """Makes the table's columns those of ``output_frame``; False when it was created from it, rows
    included."""
    table = f"{table_slice.schema}.{table_slice.table}"
    stored = {
        name: kind
        for name, kind in connection.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [table_slice.schema, table_slice.table],
        ).fetchall()
    }
    if not stored:
        connection.execute(f"CREATE TABLE {table} AS SELECT * FROM output_frame")
        return False
    produced = {
        name: kind for name, kind, *_ in connection.execute("DESCRIBE SELECT * FROM output_frame").fetchall()
    }
    dropped = [name for name, kind in stored.items() if not _same_type(produced.get(name), kind)]
    added = [name for name, kind in produced.items() if not _same_type(stored.get(name), kind)]
    if not dropped and not added:
        return True
    if len(dropped) == len(stored):  # nothing in common, and DuckDB cannot drop a last column
        connection.execute(f"DROP TABLE {table}")
        connection.execute(f"CREATE TABLE {table} AS SELECT * FROM output_frame")
        return False
    for name in dropped:
        connection.execute(f'ALTER TABLE {table} DROP COLUMN "{name}"')
    for name in added:
        connection.execute(f'ALTER TABLE {table} ADD COLUMN "{name}" {produced[name]}')
    context.log.warning(
        f"{table} changed shape to follow the asset's output: dropped {dropped or 'no columns'}, "
        f"added {added or 'no columns'}; other partitions hold NULL in added columns until "
        "materialized again"
    )
    return True


class WarehouseIOManager(DuckDBPandasIOManager):
    """Dagster's DuckDB pandas IO manager connecting through ``connect_warehouse``, plus the in-run
    hand-off of ``_HandOffIOManager``; tables follow their asset's columns
    (``_FollowingPandasTypeHandler``)."""

    @staticmethod
    def type_handlers() -> list[DbTypeHandler]:
        return [_FollowingPandasTypeHandler()]

    def create_io_manager(self, context) -> IOManager:
        return _HandOffIOManager(
            DbIOManager(
                db_client=_WarehouseDbClient(),
                database=self.database,
                schema=self.schema_,
                type_handlers=self.type_handlers(),
                default_load_type=self.default_load_type(),
                io_manager_name="WarehouseIOManager",
            )
        )


def _database() -> str:
    return env_or_default("OP_WAREHOUSE_PATH", str(paths().warehouse))


def warehouse_resource() -> WarehouseResource:
    return WarehouseResource(database=_database())


def warehouse_io_manager() -> WarehouseIOManager:
    return WarehouseIOManager(database=_database())
