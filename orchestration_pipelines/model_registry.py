"""A file-system model registry: immutable versions, one promoted ``CURRENT`` pointer per model.

Versions are written to a temporary folder and renamed into place, and the pointer is replaced
atomically, so a reader never sees a half-written model and promotion is a single, auditable step.
A model file is a pickle, so loading one runs code: names and versions must match the registry's
naming rule before they touch a path, and a file is loaded only if its SHA-256 matches its card.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

VERSION_PATTERN = re.compile(r"\d{8}T\d{6}-[0-9a-f]{8}")  # what ``save`` creates: UTC time - hash
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,63}")


class ModelUnavailable(LookupError):
    """No usable model: missing, outside the naming rule, or changed since it was saved."""


class ModelNotFound(ModelUnavailable):
    pass


class InvalidModelVersion(ModelUnavailable, ValueError):
    pass


class ModelIntegrityError(ModelUnavailable):
    pass


def _checked(pattern: re.Pattern, value: str | None, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidModelVersion(f"{value!r} is not a {what} (expected {pattern.pattern})")
    return value


class ModelRegistry:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _dir(self, name: str) -> Path:
        return self.root / _checked(NAME_PATTERN, name, "model name")

    def save(self, name: str, artifact: Any, card: dict[str, Any]) -> str:
        """Store an artifact with its model card; returns the new version id (time + hash of the saved
        artifact and card). The card, with its creation instant, is part of the hash: a deterministic
        retrain saved twice within one second is two versions, never a clash of folders."""
        buffer = io.BytesIO()
        joblib.dump(artifact, buffer, compress=3)
        payload = buffer.getvalue()
        created_at = datetime.now(UTC)
        card = {
            **card,
            "name": name,
            "created_at": created_at.isoformat(),
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
        identity = hashlib.sha256(
            payload + json.dumps(card, sort_keys=True, default=str).encode()
        ).hexdigest()
        version = f"{created_at:%Y%m%dT%H%M%S}-{identity[:8]}"
        card["version"] = version
        self._dir(name).mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self._dir(name)))
        (staging / "model.joblib").write_bytes(payload)
        (staging / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True, default=str))
        staging.rename(self._dir(name) / version)
        return version

    def promote(self, name: str, version: str) -> None:
        """Switch the pointer without an audit record: for set-ups and tests; workflows use
        ``promote_with_record``."""
        self._promotable(name, version)
        pointer = self._dir(name) / "CURRENT"
        tmp = pointer.with_suffix(".tmp")
        tmp.write_text(version)
        os.replace(tmp, pointer)

    def promote_with_record(self, name: str, version: str, record: dict[str, Any]) -> None:
        """Promote ``version`` with ``record`` (its audit record) in the same atomic pointer write.

        ``CURRENT`` holds the version on its first line and the record on its second; the record of
        the promotion it replaces is archived under ``promotions/`` first, so none is lost before delivery.
        """
        self._promotable(name, version)
        pointer = self._dir(name) / "CURRENT"
        if previous := self._pointer_record(pointer):
            archive = self._dir(name) / "promotions" / f"{previous['event_id'].replace(':', '-')}.json"
            archive.parent.mkdir(exist_ok=True)
            archive.write_text(json.dumps(previous, sort_keys=True, default=str))
        tmp = pointer.with_suffix(".tmp")
        tmp.write_text(f"{version}\n{json.dumps(record, sort_keys=True, default=str)}\n")
        os.replace(tmp, pointer)

    def _promotable(self, name: str, version: str) -> None:
        """Refuse a version that breaks the naming rule, leaves the registry or holds no model."""
        if not (self._version_dir(name, version) / "model.joblib").exists():
            raise ModelNotFound(f"{name} has no version {version}")

    @staticmethod
    def _pointer_record(pointer: Path) -> dict[str, Any] | None:
        lines = pointer.read_text().splitlines() if pointer.exists() else []
        return json.loads(lines[1]) if len(lines) > 1 else None

    def promotion_records(self) -> list[dict[str, Any]]:
        """Every promotion record the registry carries (archived, then current), for audit delivery."""
        records = []
        for model_dir in sorted(p for p in self.root.glob("*") if p.is_dir()):
            archived = sorted((model_dir / "promotions").glob("*.json"), key=lambda p: p.stat().st_mtime)
            records += [json.loads(p.read_text()) for p in archived]
            if current := self._pointer_record(model_dir / "CURRENT"):
                records.append(current)
        return records

    def current_version(self, name: str) -> str | None:
        pointer = self._dir(name) / "CURRENT"
        return pointer.read_text().splitlines()[0].strip() if pointer.exists() else None

    def versions(self, name: str) -> list[str]:
        if not self._dir(name).exists():
            return []
        return sorted(
            p.name
            for p in self._dir(name).iterdir()
            if VERSION_PATTERN.fullmatch(p.name) and (p / "card.json").exists()
        )

    def card(self, name: str, version: str | None = None) -> dict[str, Any]:
        return json.loads((self._version_dir(name, version) / "card.json").read_text())

    def load(self, name: str, version: str | None = None) -> tuple[Any, dict[str, Any]]:
        """The artifact and card of ``version``, or of the promoted version when none is given.

        The bytes are hashed and unpickled from memory, so what is checked is exactly what is loaded.
        """
        folder = self._version_dir(name, version)
        card = json.loads((folder / "card.json").read_text())
        payload = (folder / "model.joblib").read_bytes()
        if "sha256" not in card:
            raise ModelIntegrityError(
                f"{folder} has no SHA-256 in its card; refusing to load an unverified model (retrain it)"
            )
        if hashlib.sha256(payload).hexdigest() != card["sha256"]:
            raise ModelIntegrityError(
                f"{folder}/model.joblib does not match the SHA-256 recorded when it was saved; "
                "refusing to load it"
            )
        return joblib.load(io.BytesIO(payload)), card

    def _version_dir(self, name: str, version: str | None) -> Path:
        if version is None:
            version = self.current_version(name)
        if version is None:
            raise ModelNotFound(
                f"no promoted {name!r} model in {self.root}: train one first "
                f"(e.g. `dagster job execute -m orchestration_pipelines.definitions -j fraud_training_job`)"
            )
        folder = self._dir(name) / _checked(VERSION_PATTERN, version, "model version")
        if not folder.resolve().is_relative_to(self.root.resolve()) or not folder.is_dir():
            raise ModelNotFound(f"{name} has no version {version} in {self.root}")
        return folder
