"""Resource for the folders where workflows receive files and set rejected ones aside."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource

from orchestration_pipelines.settings import paths
from resources.env import env_or_default


class LandingZoneResource(ConfigurableResource):
    """``root``/landing/<workflow> receives files; ``root``/quarantine/<workflow> keeps rejected ones."""

    root: str

    def landing(self, workflow: str) -> Path:
        return Path(self.root) / "landing" / workflow

    def quarantine(self, workflow: str) -> Path:
        return Path(self.root) / "quarantine" / workflow

    def history(self, workflow: str) -> Path:
        return Path(self.root) / "history" / workflow


def landing_zone_resource() -> LandingZoneResource:
    return LandingZoneResource(root=env_or_default("OP_DATA_DIR", str(paths().data_dir)))
