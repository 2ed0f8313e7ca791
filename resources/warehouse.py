"""The DuckDB warehouse: one file, one writer process at a time.

``warehouse_resource`` gives assets a connection for SQL work (publishing, checks, the audit log);
``warehouse_io_manager`` stores DataFrame assets as tables named ``<key prefix>.<asset name>``,
partition by partition. Both point at the same file and retry while another process holds its lock;
assets that touch it share the ``WAREHOUSE_POOL`` concurrency pool, limited to 1 in ``dagster.yaml``.
"""

from __future__ import annotations

from dagster_duckdb import DuckDBResource
from dagster_duckdb_pandas import DuckDBPandasIOManager

from orchestration_pipelines.settings import env_or_default, paths

WAREHOUSE_POOL = "duckdb_warehouse"


def warehouse_resource() -> DuckDBResource:
    return DuckDBResource(database=env_or_default("OP_WAREHOUSE_PATH", str(paths().warehouse)))


def warehouse_io_manager() -> DuckDBPandasIOManager:
    return DuckDBPandasIOManager(database=env_or_default("OP_WAREHOUSE_PATH", str(paths().warehouse)))
