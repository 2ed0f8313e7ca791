"""Resource configuration from the environment, shown in the UI by variable name."""

from __future__ import annotations

import os

from dagster import EnvVar


def env_or_default(name: str, default: str) -> str | EnvVar:
    """An ``EnvVar`` when the variable is set (so the UI shows where a value comes from), else the default."""
    return EnvVar(name) if os.environ.get(name) else default
