"""Helpers for fraud tests that put files where the platform expects them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from orchestration_pipelines.fraud.generator import unlabelled


def write_landing_file(folder: Path, name: str, batch: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    frame = unlabelled(batch) if "is_fraud" in batch else batch
    frame.to_parquet(path, index=False) if path.suffix == ".parquet" else frame.to_csv(path, index=False)
    return path


def write_history(data_dir: Path, history: pd.DataFrame) -> None:
    folder = data_dir / "history" / "fraud"
    folder.mkdir(parents=True, exist_ok=True)
    history.to_parquet(folder / "history.parquet", index=False)
