"""Landing folders: files arrive, get fingerprinted, processed once per content, or quarantined.

Producers should write a file under a temporary name (a leading ``.`` or a ``.tmp``/``.part``
suffix) and rename it when complete; such names are never picked up, so a half-copied file is
never read.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

READABLE_SUFFIXES = (".csv", ".parquet")  # compared case-insensitively
_IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial")
MAX_NAME_BYTES = 255  # what common file systems allow for one name
# Room a quarantined file's name leaves for a collision time stamp and its temporary reason file.
_QUARANTINE_NAME_BYTES = MAX_NAME_BYTES - len(".20261231T235959999999") - len("..reason.json.tmp")


class UnsafeName(ValueError):
    """A name from outside (partition key, landed file) that could reach beyond its folder."""


def validate_file_name(name: str) -> str:
    """``name`` if it is one plain file name; raises ``UnsafeName`` before it can touch a path.

    Partition keys and landed names come from outside: a separator, ``..``, an absolute path, a NUL
    or a control character could read or move files elsewhere, and an over-long name cannot be stored.
    """
    problem = None
    if not isinstance(name, str) or name in ("", ".", ".."):
        problem = "is empty or a directory reference"
    elif "/" in name or "\\" in name:
        problem = "contains a path separator"
    elif any(ord(char) < 32 or ord(char) == 127 for char in name):
        problem = "contains a NUL or control character"
    elif len(name.encode()) > MAX_NAME_BYTES:
        problem = f"is longer than {MAX_NAME_BYTES} bytes"
    if problem:
        raise UnsafeName(f"unsafe file name {name!r}: it {problem}; expected one plain file name")
    return name


def path_inside(folder: Path, name: str) -> Path:
    """``folder / name`` after checking the name and that it resolves (symlinks too) inside ``folder``."""
    path = folder / validate_file_name(name)
    if not path.resolve().is_relative_to(folder.resolve()):
        raise UnsafeName(f"file name {name!r} resolves outside {folder}")
    return path


def is_table_file(path: Path) -> bool:
    """A complete CSV or Parquet file: not hidden, not still being written, any case of extension."""
    suffix = path.suffix.lower()
    return (
        not path.name.startswith(".")
        and suffix not in _IN_PROGRESS_SUFFIXES
        and suffix in READABLE_SUFFIXES
        and path.is_file()
    )


@dataclass(frozen=True)
class LandedFile:
    name: str
    path: Path
    size: int
    mtime_ns: int
    sha256: str

    @property
    def run_key(self) -> str:
        """Same name and content -> same key, so a re-delivered identical file is processed once."""
        return f"{self.name}:{self.sha256[:16]}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def scan_landing(folder: Path, known: dict[str, dict[str, Any]] | None = None) -> list[LandedFile]:
    """Complete, readable files in ``folder``, by name. ``known`` (a previous cursor) spares re-hashing
    files whose size and modification time have not changed. Unsafe names and links leading out of
    the folder are skipped: they never become partitions."""
    known = known or {}
    if not folder.exists():
        return []
    landed = []
    for path in sorted(folder.iterdir()):
        if not is_table_file(path) or not _safely_inside(folder, path.name):
            continue
        stat = path.stat()
        previous = known.get(path.name)
        if previous and previous["size"] == stat.st_size and previous["mtime_ns"] == stat.st_mtime_ns:
            sha = previous["sha256"]
        else:
            sha = file_sha256(path)
        landed.append(LandedFile(path.name, path, stat.st_size, stat.st_mtime_ns, sha))
    return landed


def _safely_inside(folder: Path, name: str) -> bool:
    try:
        path_inside(folder, name)
    except UnsafeName:
        return False
    return True


def plan_new_files(
    landed: list[LandedFile], cursor: dict[str, dict[str, Any]]
) -> tuple[list[LandedFile], dict[str, dict[str, Any]]]:
    """Files that are new or whose content changed since ``cursor``, and the cursor to store next.

    The next cursor describes exactly the files present now, so it stays as small as the folder.
    """
    new = [f for f in landed if cursor.get(f.name, {}).get("sha256") != f.sha256]
    next_cursor = {f.name: {"size": f.size, "mtime_ns": f.mtime_ns, "sha256": f.sha256} for f in landed}
    return new, next_cursor


def encode_cursor(cursor: dict[str, dict[str, Any]]) -> str:
    return json.dumps(cursor, sort_keys=True, separators=(",", ":"))


def decode_cursor(raw: str | None) -> dict[str, dict[str, Any]]:
    return json.loads(raw) if raw else {}


class UnreadableFile(ValueError):
    pass


def read_landed_bytes(path: Path) -> tuple[bytes, str]:
    """A landed file's content and its SHA-256, read once: parsing these bytes (``read_table_file(path,
    payload)``) means the recorded hash is of exactly what was ingested, even if the file is rewritten."""
    payload = path.read_bytes()
    return payload, hashlib.sha256(payload).hexdigest()


def read_table_file(path: Path, payload: bytes | None = None) -> pd.DataFrame:
    """A CSV (all columns as text, parsed later against the contract) or Parquet file; from ``payload``
    when given (``path`` then only names the format)."""
    source = path if payload is None else io.BytesIO(payload)
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(source)
        return pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""])
    except Exception as exc:  # any parser error means the same thing: the file cannot be read
        raise UnreadableFile(f"{path.name} cannot be read as {path.suffix[1:]}: {exc}") from exc


def quarantine_name(name: str) -> str:
    """A name that leaves room for ``.reason.json`` and a time stamp: long names keep their start and
    extension plus a hash of the whole name (the original stays in the reason's ``file``)."""
    if len(name.encode()) <= _QUARANTINE_NAME_BYTES:
        return name
    suffix = Path(name).suffix[:16]
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    room = _QUARANTINE_NAME_BYTES - len(suffix.encode()) - len(digest) - 1
    return f"{name.encode()[:room].decode(errors='ignore')}-{digest}{suffix}"


def quarantine_file(path: Path, quarantine_dir: Path, reason: dict[str, Any]) -> Path:
    """Move a rejected file aside with a machine-readable ``<safe name>.reason.json`` beside it.

    The reason is written first (atomically), then the file is moved, so a quarantined file never
    lacks its explanation. A name already in quarantine gets a timestamp suffix instead of overwriting.
    """
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    safe = Path(quarantine_name(path.name))
    target = path_inside(quarantine_dir, safe.name)
    if target.exists():
        target = path_inside(quarantine_dir, f"{safe.stem}.{datetime.now(UTC):%Y%m%dT%H%M%S%f}{safe.suffix}")
    record = {"file": path.name, "quarantined_at": datetime.now(UTC).isoformat(), **reason}
    reason_path = target.with_name(target.name + ".reason.json")
    tmp = reason_path.with_name("." + reason_path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    os.replace(tmp, reason_path)
    shutil.move(str(path), target)
    return target
