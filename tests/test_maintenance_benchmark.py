"""The performance benchmark's two sides do the same work, so their ratio measures Dagster alone."""

from __future__ import annotations

import duckdb

from benchmarks.maintenance import _dagster_days, _performance_plant, _plain_days

TABLES = ("readings", "features", "anomaly_scores")


def _rows(database) -> dict[str, int]:
    with duckdb.connect(str(database), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM maintenance.{t}").fetchone()[0] for t in TABLES}


def test_plain_script_and_dagster_runs_leave_the_same_tables(tmp_path, monkeypatch):
    for name in ("OP_DATA_DIR", "OP_WAREHOUSE_PATH", "OP_MODEL_DIR", "OP_OPSTORE_URL"):
        monkeypatch.setenv(name, "")  # restored after the test: _dagster_days points them at tmp_path
    sim, models, days, policy = _performance_plant(machines=3, days=2)

    plain = _plain_days(sim, models, days, policy, tmp_path / "plain")
    dagster = _dagster_days(sim, models, days, tmp_path / "dagster")

    assert len(plain) == len(dagster) == 2
    assert all(cpu > 0 for _, cpu in plain + dagster)
    plain_rows = _rows(tmp_path / "plain" / "warehouse.duckdb")
    assert plain_rows == _rows(tmp_path / "dagster" / "data" / "warehouse.duckdb")
    assert plain_rows["readings"] > 0 and plain_rows["features"] > 0
