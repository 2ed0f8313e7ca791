"""Warehouse errors: a lock held by another process is waited out, a damaged file fails at once."""

import os
import subprocess
import sys
import time

import duckdb
import pandas as pd
import pytest
from dagster import Failure, asset, materialize

from resources.warehouse import WarehouseIOManager, WarehouseLockTimeout, WarehouseResource, is_lock_conflict


def damaged_copies(folder):
    """A file of random bytes, a real database cut short, and one with a scrambled block."""
    real = folder / "real.duckdb"
    with duckdb.connect(str(real)) as con:
        con.execute("CREATE TABLE t AS SELECT range AS i FROM range(200000)")
    data = real.read_bytes()
    (folder / "noise.duckdb").write_bytes(os.urandom(20_000))
    (folder / "truncated.duckdb").write_bytes(data[:5000])
    scrambled = bytearray(data)
    scrambled[4096:8192] = os.urandom(4096)
    (folder / "scrambled.duckdb").write_bytes(bytes(scrambled))
    return [folder / name for name in ("noise.duckdb", "truncated.duckdb", "scrambled.duckdb")]


def hold_lock(database, seconds: float) -> subprocess.Popen:
    """Another process that opens the warehouse (taking its lock), says so, and keeps it a while."""
    code = (
        f"import duckdb, time; c = duckdb.connect({str(database)!r}); "
        f"print('holding', flush=True); time.sleep({seconds})"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    holder.stdout.readline()
    return holder


def test_a_damaged_warehouse_fails_fast_without_retries(tmp_path):
    for damaged in damaged_copies(tmp_path):
        started = time.monotonic()
        with (
            pytest.raises(Failure) as failure,
            WarehouseResource(database=str(damaged)).get_connection() as con,
        ):
            con.execute("SELECT count(*) FROM t").fetchall()
        assert time.monotonic() - started < 5, damaged.name
        assert not failure.value.allow_retries
        assert (
            "damaged or unreadable" in failure.value.description and str(damaged) in failure.value.description
        )


def test_an_asset_writing_to_a_damaged_warehouse_fails_in_one_attempt(tmp_path):
    [noise, *_] = damaged_copies(tmp_path)

    @asset(key_prefix="fraud", io_manager_key="warehouse_io_manager")
    def example() -> pd.DataFrame:
        return pd.DataFrame({"a": [1]})

    started = time.monotonic()
    result = materialize(
        [example],
        resources={"warehouse_io_manager": WarehouseIOManager(database=str(noise))},
        raise_on_error=False,
    )
    assert not result.success and time.monotonic() - started < 20
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "damaged or unreadable" in failure.step_failure_data.error.to_string()


def test_a_lock_held_by_another_process_is_waited_out(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(database)).close()
    holder = hold_lock(database, seconds=2)
    try:
        with pytest.raises(duckdb.IOException) as held:
            duckdb.connect(str(database))
        assert is_lock_conflict(held.value)
        with WarehouseResource(database=str(database)).get_connection() as con:  # waits for the holder
            assert con.execute("SELECT 42").fetchall() == [(42,)]
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_that_is_never_released_ends_in_a_retryable_error(tmp_path, monkeypatch):
    database = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("OP_WAREHOUSE_LOCK_WAIT_SECONDS", "1")
    duckdb.connect(str(database)).close()
    holder = hold_lock(database, seconds=30)
    try:
        with pytest.raises(WarehouseLockTimeout), WarehouseResource(database=str(database)).get_connection():
            pass
    finally:
        holder.kill()
        holder.wait()
