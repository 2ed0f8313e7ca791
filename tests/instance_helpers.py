"""A Dagster home made from one of the instance files the project ships in ``deploy/``."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def dagster_home(parent: Path, template: str = "dagster.yaml") -> Path:
    """``parent/dagster_home`` holding ``deploy/<template>`` as its ``dagster.yaml``."""
    home = parent / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / template, home / "dagster.yaml")
    return home
