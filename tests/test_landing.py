import json
import os

import pytest

from orchestration_pipelines.landing import (
    UnreadableFile,
    decode_cursor,
    encode_cursor,
    plan_new_files,
    quarantine_file,
    read_table_file,
    scan_landing,
)


def test_scan_skips_files_still_being_written(tmp_path):
    for name in ["a.csv", "b.parquet", ".c.csv", "d.csv.tmp", "e.part", "notes.txt"]:
        (tmp_path / name).write_text("x")
    assert [f.name for f in scan_landing(tmp_path)] == ["a.csv", "b.parquet"]
    assert scan_landing(tmp_path / "missing") == []


def test_same_content_runs_once_and_changed_content_runs_again(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text("id\n1\n")
    first, cursor = plan_new_files(scan_landing(tmp_path), {})
    assert [f.name for f in first] == ["batch.csv"]
    cursor = decode_cursor(encode_cursor(cursor))  # survives a restart as text
    again, _ = plan_new_files(scan_landing(tmp_path, cursor), cursor)
    assert again == []
    path.write_text("id\n1\n2\n")
    changed, _ = plan_new_files(scan_landing(tmp_path, cursor), cursor)
    assert [f.name for f in changed] == ["batch.csv"] and changed[0].run_key != first[0].run_key


def test_unchanged_stat_reuses_the_known_hash(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text("id\n1\n")
    _, cursor = plan_new_files(scan_landing(tmp_path), {})
    cursor["batch.csv"]["sha256"] = "remembered"
    assert scan_landing(tmp_path, cursor)[0].sha256 == "remembered"
    os.utime(path, ns=(1, 1))
    assert scan_landing(tmp_path, cursor)[0].sha256 != "remembered"


def test_quarantine_moves_the_file_with_its_reason(tmp_path):
    landing, quarantine = tmp_path / "landing", tmp_path / "quarantine"
    landing.mkdir()
    for attempt in range(2):
        bad = landing / "bad.csv"
        bad.write_text(f"broken {attempt}")
        target = quarantine_file(bad, quarantine, {"errors": [{"kind": "schema", "message": "missing"}]})
        assert not bad.exists() and target.read_text() == f"broken {attempt}"
        reason = json.loads(target.with_name(target.name + ".reason.json").read_text())
        assert reason["file"] == "bad.csv" and reason["errors"][0]["kind"] == "schema"
    assert len(list(quarantine.glob("*.reason.json"))) == 2  # a second bad.csv does not overwrite the first


def test_unreadable_files_raise_a_clear_error(tmp_path):
    path = tmp_path / "x.parquet"
    path.write_text("this is not parquet")
    with pytest.raises(UnreadableFile, match=r"x\.parquet cannot be read as parquet"):
        read_table_file(path)
