"""The warehouse IO manager writes every table and hands frames on within a run."""

import duckdb
import pandas as pd
from dagster import (
    AssetKey,
    PythonObjectDagsterType,
    StaticPartitionsDefinition,
    asset,
    build_input_context,
    build_output_context,
    materialize,
)

from resources.warehouse import WarehouseIOManager


def _contexts(database: str, run_id: str, upstream_run_id: str):
    config = {"database": database, "connection_config": {}, "schema": None}
    key = AssetKey(["fraud", "example"])
    output = build_output_context(asset_key=key, run_id=run_id, resource_config=config)
    upstream = build_output_context(asset_key=key, run_id=upstream_run_id, resource_config=config)
    return output, build_input_context(
        asset_key=key,
        upstream_output=upstream,
        resource_config=config,
        dagster_type=PythonObjectDagsterType(pd.DataFrame),
    )


def test_frames_are_written_and_handed_to_every_reader_of_the_run(tmp_path):
    database = str(tmp_path / "warehouse.duckdb")
    manager = WarehouseIOManager(database=database).create_io_manager(None)
    frame = pd.DataFrame({"id": ["a", "b"], "value": [1.0, 2.0]})
    output, same_run_input = _contexts(database, "run-1", "run-1")

    manager.handle_output(output, frame)
    with duckdb.connect(database) as con:
        assert con.execute("SELECT count(*) FROM fraud.example").fetchall() == [(2,)]  # written through
    assert manager.load_input(same_run_input) is frame  # handed on, not read back
    # A second reader (or a retry) gets the frame as written, even after the table changed under it
    # (a racing run of the same partition replacing it).
    with duckdb.connect(database) as con:
        con.execute("UPDATE fraud.example SET value = -1")
    assert manager.load_input(same_run_input) is frame


def test_inputs_from_another_run_come_from_the_table(tmp_path):
    database = str(tmp_path / "warehouse.duckdb")
    manager = WarehouseIOManager(database=database).create_io_manager(None)
    frame = pd.DataFrame({"id": ["a"], "value": [1.0]})
    output, _ = _contexts(database, "run-1", "run-1")
    manager.handle_output(output, frame)
    _, other_run_input = _contexts(database, "run-2", "run-0")
    loaded = manager.load_input(other_run_input)
    assert loaded is not frame
    pd.testing.assert_frame_equal(loaded, frame)

    later_output, _ = _contexts(database, "run-3", "run-3")
    manager.handle_output(later_output, frame)
    _, first_run_input = _contexts(database, "run-1", "run-1")
    assert manager.load_input(first_run_input) is not frame  # a new run clears what an old one left


def _partitioned_example(columns: dict[str, list]):
    @asset(
        key_prefix="fraud",
        name="example",
        partitions_def=StaticPartitionsDefinition(["day1", "day2"]),
        metadata={"partition_expr": "batch_id"},
    )
    def example(context) -> pd.DataFrame:
        return pd.DataFrame({"batch_id": context.partition_key, **columns})

    return example


def test_a_table_follows_its_asset_when_the_output_changes_shape(tmp_path):
    """A new version of an asset drops, re-types, adds and reorders columns: the write succeeds, by
    name, and the other partition keeps what it shares with the new output."""
    database = str(tmp_path / "warehouse.duckdb")
    resources = {"io_manager": WarehouseIOManager(database=database)}
    old = _partitioned_example(
        {
            "id": ["a", "b"],
            "amount": [1.0, 2.0],
            "note": ["x", "y"],
            "code": [1, 2],
            "kind": pd.Categorical(["p", "q"]),
        }
    )
    assert materialize([old], partition_key="day1", resources=resources).success

    new = _partitioned_example(
        {
            "code": ["7", "8"],
            "id": ["c", "d"],
            "risk": [0.5, 0.25],
            "amount": [3.0, 4.0],
            "kind": pd.Categorical(["q", "q"]),  # other categories: another ENUM, still the same column
        }
    )
    assert materialize([new], partition_key="day2", resources=resources).success

    with duckdb.connect(database) as con:
        columns = [row[0] for row in con.execute("DESCRIBE fraud.example").fetchall()]
        rows = con.execute(
            "SELECT batch_id, id, amount, code, risk, kind::VARCHAR FROM fraud.example ORDER BY id"
        ).fetchall()
    assert sorted(columns) == ["amount", "batch_id", "code", "id", "kind", "risk"]
    assert rows == [
        ("day1", "a", 1.0, None, None, "p"),  # re-typed and added columns are NULL until day1 runs again
        ("day1", "b", 2.0, None, None, "q"),
        ("day2", "c", 3.0, "7", 0.5, "q"),
        ("day2", "d", 4.0, "8", 0.25, "q"),
    ]
    assert materialize([new], partition_key="day1", resources=resources).success
    with duckdb.connect(database) as con:
        assert con.execute("SELECT count(*) FROM fraud.example WHERE risk IS NULL").fetchall() == [(0,)]
