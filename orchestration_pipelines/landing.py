"""Landing folders: files arrive, get fingerprinted, processed once per content, or quarantined.

Producers should write a file under a temporary name (a leading ``.`` or a ``.tmp``/``.part``
suffix) and rename it when complete; such names are never picked up, so a half-copied file is
never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

READABLE_SUFFIXES = (".csv", ".parquet")
_IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial")


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
    files whose size and modification time have not changed."""
    known = known or {}
    if not folder.exists():
        return []
    landed = []
    for path in sorted(folder.iterdir()):
        if (
            not path.is_file()
            or path.name.startswith(".")
            or path.suffix in _IN_PROGRESS_SUFFIXES
            or path.suffix not in READABLE_SUFFIXES
        ):
            continue
        stat = path.stat()
        previous = known.get(path.name)
        if previous and previous["size"] == stat.st_size and previous["mtime_ns"] == stat.st_mtime_ns:
            sha = previous["sha256"]
        else:
            sha = file_sha256(path)
        landed.append(LandedFile(path.name, path, stat.st_size, stat.st_mtime_ns, sha))
    return landed


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


def read_table_file(path: Path) -> pd.DataFrame:
    """A CSV (all columns as text, parsed later against the contract) or Parquet file."""
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except Exception as exc:  # any parser error means the same thing: the file cannot be read
        raise UnreadableFile(f"{path.name} cannot be read as {path.suffix[1:]}: {exc}") from exc


def quarantine_file(path: Path, quarantine_dir: Path, reason: dict[str, Any]) -> Path:
    """Move a rejected file aside with a machine-readable ``<name>.reason.json`` beside it.

    The reason is written first (atomically), then the file is moved, so a quarantined file never
    lacks its explanation. A name already in quarantine gets a timestamp suffix instead of overwriting.
    """
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    target = quarantine_dir / path.name
    if target.exists():
        target = quarantine_dir / f"{path.stem}.{datetime.now(UTC):%Y%m%dT%H%M%S%f}{path.suffix}"
    record = {"file": path.name, "quarantined_at": datetime.now(UTC).isoformat(), **reason}
    reason_path = target.with_name(target.name + ".reason.json")
    tmp = reason_path.with_name("." + reason_path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    os.replace(tmp, reason_path)
    shutil.move(str(path), target)
    return target
