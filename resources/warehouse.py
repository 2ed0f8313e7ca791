"""The DuckDB warehouse: one file, one writer process at a time.

``warehouse_resource`` gives assets a connection for SQL work (publishing, queries);
``warehouse_io_manager`` stores DataFrame assets as tables named ``<key prefix>.<asset name>``,
partition by partition. Both point at the same file and retry while another process holds its lock;
assets that touch it share the ``WAREHOUSE_POOL`` concurrency pool, limited to 1 in ``dagster.yaml``.
"""

from __future__ import annotations

from typing import Any

from dagster import InputContext, IOManager, OutputContext
from dagster_duckdb import DuckDBResource
from dagster_duckdb_pandas import DuckDBPandasIOManager

from orchestration_pipelines.settings import paths
from resources.env import env_or_default

WAREHOUSE_POOL = "duckdb_warehouse"

# (run id, asset key, partition) -> the DataFrame just written, waiting for its one downstream reader.
_HANDOFF: dict[tuple, Any] = {}


def _partition(context: InputContext | OutputContext) -> str | None:
    return context.asset_partition_key if context.has_asset_partitions else None


class _HandOffIOManager(IOManager):
    """Writes through to DuckDB, and hands the written frame to the next step of the same run.

    Every table is still written (durable, inspectable, what other runs read), but a step that runs in
    the same process right after its upstream (the in-process executor) skips reading the table back:
    at a million rows that read costs about as much as the step's own work. An input from another run,
    a retried step or a second reader falls back to the table.
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
            handed = _HANDOFF.pop((upstream.run_id, context.asset_key, _partition(context)), None)
            if handed is not None:
                return handed
        return self._inner.load_input(context)


class WarehouseIOManager(DuckDBPandasIOManager):
    """Dagster's DuckDB pandas IO manager, plus the in-run hand-off of ``_HandOffIOManager``."""

    def create_io_manager(self, context) -> IOManager:
        return _HandOffIOManager(super().create_io_manager(context))


def _database() -> str:
    return env_or_default("OP_WAREHOUSE_PATH", str(paths().warehouse))


def warehouse_resource() -> DuckDBResource:
    return DuckDBResource(database=_database())


def warehouse_io_manager() -> WarehouseIOManager:
    return WarehouseIOManager(database=_database())
