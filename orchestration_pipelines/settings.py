"""Where the platform keeps its files, resolved from the environment with local defaults.

Every path can be overridden by an environment variable so that the same code runs against the
embedded default (files under ``./data``) and a production layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    data_dir: Path

    @property
    def warehouse(self) -> Path:
        return Path(os.environ.get("OP_WAREHOUSE_PATH", self.data_dir / "warehouse.duckdb"))

    @property
    def models(self) -> Path:
        return Path(os.environ.get("OP_MODEL_DIR", self.data_dir / "models"))

    @property
    def evidence(self) -> Path:
        """Evidence images for review items (maintenance plots); the inbox serves files from here only."""
        return Path(os.environ.get("OP_EVIDENCE_DIR", self.data_dir / "evidence"))

    def landing(self, workflow: str) -> Path:
        return self.data_dir / "landing" / workflow

    def quarantine(self, workflow: str) -> Path:
        return self.data_dir / "quarantine" / workflow

    def history(self, workflow: str) -> Path:
        return self.data_dir / "history" / workflow


def paths() -> Paths:
    """The current layout; read on each call so tests and CLIs can redirect ``OP_DATA_DIR``."""
    return Paths(data_dir=Path(os.environ.get("OP_DATA_DIR", "data")).absolute())


def default_opstore_url() -> str:
    return os.environ.get("OP_OPSTORE_URL", f"sqlite:///{paths().data_dir / 'opstore.sqlite'}")
