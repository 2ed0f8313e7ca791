import json
import os

import pandas as pd
import pytest

from orchestration_pipelines.landing import (
    UnreadableFile,
    UnsafeName,
    decode_cursor,
    encode_cursor,
    path_inside,
    plan_new_files,
    quarantine_file,
    read_table_file,
    scan_landing,
    validate_file_name,
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


@pytest.mark.parametrize(
    "name",
    [
        "../../../outside/victim.csv",
        "sub/dir.csv",
        "back\\slash.csv",
        "/etc/passwd",
        "..",
        ".",
        "",
        "nul\x00.csv",
        "line\nbreak.csv",
        "x" * 252 + ".csv",
    ],
)
def test_unsafe_file_names_are_refused(name):
    with pytest.raises(UnsafeName, match="file name"):
        validate_file_name(name)


def test_safe_file_names_pass_through():
    for name in ["transactions_2026-10-31.csv", "a..b.CSV", "x" * 251 + ".csv", "données é.parquet"]:
        assert validate_file_name(name) == name


def test_a_path_resolving_outside_its_folder_is_refused(tmp_path):
    folder, outside = tmp_path / "landing", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    (outside / "victim.csv").write_text("secret")
    (folder / "link.csv").symlink_to(outside / "victim.csv")
    assert path_inside(folder, "ok.csv") == folder / "ok.csv"
    with pytest.raises(UnsafeName, match="outside"):
        path_inside(folder, "link.csv")
    with pytest.raises(UnsafeName):
        path_inside(folder, "../outside/victim.csv")


def test_scan_accepts_upper_case_extensions_and_skips_unsafe_entries(tmp_path):
    folder, outside = tmp_path / "landing", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    for name in ["A.CSV", "b.Parquet", "c.csv", "d.TMP", "e.txt"]:
        (folder / name).write_text("x")
    (outside / "victim.csv").write_text("secret")
    (folder / "escape.csv").symlink_to(outside / "victim.csv")
    assert [f.name for f in scan_landing(folder)] == ["A.CSV", "b.Parquet", "c.csv"]


def test_upper_case_extensions_are_read(tmp_path):
    (tmp_path / "a.CSV").write_text("transaction_id\n1\n")
    pd.DataFrame({"transaction_id": ["1"]}).to_parquet(tmp_path / "b.PARQUET")
    assert read_table_file(tmp_path / "a.CSV")["transaction_id"].tolist() == ["1"]
    assert read_table_file(tmp_path / "b.PARQUET")["transaction_id"].tolist() == ["1"]


def test_a_file_with_a_very_long_name_is_quarantined_under_a_short_name(tmp_path):
    landing, quarantine = tmp_path / "landing", tmp_path / "quarantine"
    landing.mkdir()
    name = "b" * 243 + ".csv"  # 247 characters: the reason file's name would exceed the file system's 255
    for attempt in range(2):
        (landing / name).write_text(f"broken {attempt}")
        target = quarantine_file(landing / name, quarantine, {"errors": []})
        assert target.read_text() == f"broken {attempt}" and len(target.name) < len(name)
        reason = json.loads(target.with_name(target.name + ".reason.json").read_text())
        assert reason["file"] == name
    assert len(list(quarantine.glob("*.reason.json"))) == 2


def test_a_zero_byte_file_is_unreadable_not_a_crash(tmp_path):
    (tmp_path / "zero.csv").write_bytes(b"")
    with pytest.raises(UnreadableFile, match=r"zero\.csv cannot be read as csv"):
        read_table_file(tmp_path / "zero.csv")
