"""The readings contract: a machine id, a timestamp and the numeric sensor columns the plant declares.

Bad rows never block good ones and are never lost silently. One pass reports every problem; rows or
values that cannot be trusted are returned in ``rejected`` with a reason (to be quarantined), exact
duplicates are dropped and counted, the rest is sorted per machine and split by day. Only a file
without the key columns is rejected as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from orchestration_pipelines.maintenance.plant import PlantConfig

KEY_COLUMNS = ("machine_id", "timestamp")
REJECTED_COLUMNS = ["machine_id", "timestamp", "column", "value", "reason"]


class ReadingsFileRejected(ValueError):
    """The file as a whole cannot be read as readings (e.g. no machine id column)."""

    def __init__(self, problems: list[dict]):
        super().__init__("; ".join(p["message"] for p in problems))
        self.problems = problems


@dataclass
class ReadingsCheck:
    readings: pd.DataFrame  # typed, deduplicated, sorted by machine and time; impossible values nulled
    rejected: pd.DataFrame  # REJECTED_COLUMNS, one row per rejected row or value, raw values as text
    problems: list[dict] = field(default_factory=list)

    def add(self, kind: str, message: str, count: int, examples: list | None = None) -> None:
        self.problems.append(
            {"kind": kind, "message": message, "count": int(count), "examples": examples or []}
        )

    @property
    def days(self) -> list[pd.Timestamp]:
        return sorted(self.readings["timestamp"].dt.normalize().unique())

    def for_day(self, day: pd.Timestamp) -> pd.DataFrame:
        """The readings of one UTC day: a file spanning two days feeds two daily partitions."""
        start = pd.Timestamp(day).normalize()
        ts = self.readings["timestamp"]
        return self.readings[(ts >= start) & (ts < start + pd.Timedelta(days=1))].reset_index(drop=True)


def _examples(values: pd.Series, limit: int = 5) -> list[str]:
    return [str(v) for v in values.drop_duplicates().head(limit).tolist()]


def _stripped_ids(ids: pd.Series) -> pd.Series:
    """Machine ids as text without surrounding blanks; each distinct id is converted once (fast on
    millions of readings from a few thousand machines)."""
    codes, uniques = pd.factorize(ids)
    text = pd.Index(uniques).astype(str).str.strip().to_numpy(dtype=object)
    return pd.Series(np.where(codes >= 0, text[np.maximum(codes, 0)], None), index=ids.index, dtype=object)


def _rejections(raw: pd.DataFrame, mask: pd.Series, column: str | None, reason: str) -> pd.DataFrame:
    rows = raw.loc[mask]
    return pd.DataFrame(
        {
            "machine_id": rows["machine_id"].astype(str),
            "timestamp": rows["timestamp"].astype(str),
            "column": column or "",
            "value": rows[column].astype(str) if column else "",
            "reason": reason,
        }
    )


def check_readings(raw: pd.DataFrame, plant: PlantConfig) -> ReadingsCheck:
    """Type, clean and judge one file of readings against ``plant``; see the module docstring.

    Naive timestamps are read as UTC. Sensor columns the plant does not declare are ignored and
    reported; a declared sensor missing from the file is all-missing (a dropout), also reported.
    """
    missing_keys = [c for c in KEY_COLUMNS if c not in raw.columns]
    sensors = [c for c in plant.sensor_names if c in raw.columns]
    file_problems = []
    if missing_keys:
        file_problems.append(
            {"kind": "missing_column", "message": f"missing columns: {', '.join(missing_keys)}"}
        )
    if not sensors:
        file_problems.append({"kind": "missing_column", "message": "no sensor column declared by the plant"})
    if file_problems:
        raise ReadingsFileRejected(file_problems)

    raw = raw.reset_index(drop=True)
    check = ReadingsCheck(readings=pd.DataFrame(), rejected=pd.DataFrame(columns=REJECTED_COLUMNS))
    rejected: list[pd.DataFrame] = []
    ignored = [c for c in raw.columns if c not in KEY_COLUMNS and c not in plant.sensors]
    if ignored:
        check.add(
            "unknown_column", f"ignored columns the plant does not declare: {ignored}", len(ignored), ignored
        )
    absent = [c for c in plant.sensor_names if c not in raw.columns]
    if absent:
        check.add(
            "absent_sensor", f"declared sensors absent from the file (all missing): {absent}", len(absent)
        )

    df = pd.DataFrame({"machine_id": _stripped_ids(raw["machine_id"])})
    parsed = pd.to_datetime(raw["timestamp"], utc=True, errors="coerce", format="ISO8601")
    df["timestamp"] = parsed
    keep = pd.Series(True, index=raw.index)

    bad_time = parsed.isna()
    if bad_time.any():
        check.add(
            "unparsable_timestamp",
            f"{int(bad_time.sum())} rows with a missing or invalid timestamp",
            bad_time.sum(),
            _examples(raw.loc[bad_time, "timestamp"]),
        )
        rejected.append(_rejections(raw, bad_time, None, "unparsable_timestamp"))
        keep &= ~bad_time

    unknown = ~df["machine_id"].isin(list(plant.machines)) & keep
    if unknown.any():
        check.add(
            "unknown_machine",
            f"{int(unknown.sum())} rows from machines the plant does not know",
            unknown.sum(),
            _examples(raw.loc[unknown, "machine_id"]),
        )
        rejected.append(_rejections(raw, unknown, None, "unknown_machine"))
        keep &= ~unknown

    for column in plant.sensor_names:
        if column not in raw.columns:
            df[column] = np.nan
            continue
        values = pd.to_numeric(raw[column], errors="coerce")
        unparsable = values.isna() & raw[column].notna()
        if unparsable.any():  # blank text is a missing value, not an unparsable one
            text = raw.loc[unparsable, column].astype(str).str.strip()
            unparsable[unparsable] = (text != "").to_numpy(dtype=bool)
        non_finite = ~np.isfinite(values) & values.notna()
        spec = plant.sensors[column]
        impossible = (values < spec.min) | (values > spec.max) | non_finite
        for mask, reason, text in (
            (unparsable, "unparsable_value", "are not numbers"),
            (impossible, "impossible_value", f"are outside the physical range [{spec.min:g}, {spec.max:g}]"),
        ):
            mask = mask & keep
            if mask.any():
                check.add(
                    reason,
                    f"{int(mask.sum())} {column} values {text} (value dropped, row kept)",
                    mask.sum(),
                    _examples(raw.loc[mask, column]),
                )
                rejected.append(_rejections(raw, mask, column, reason))
        df[column] = values.where(~(unparsable | impossible)).astype("float64")

    df = df[keep]
    # Exact duplicates share their key: comparing whole rows only where keys repeat is a quarter of
    # the cost of comparing every row, and marks the same rows.
    shared_key = df.duplicated(list(KEY_COLUMNS), keep=False)
    exact = np.zeros(len(df), dtype=bool)
    if shared_key.any():
        exact[shared_key.to_numpy()] = df[shared_key].duplicated(keep="first").to_numpy()
    exact = pd.Series(exact, index=df.index)
    if exact.any():
        check.add(
            "duplicate",
            f"{int(exact.sum())} exact duplicate readings dropped",
            exact.sum(),
            _examples(df.loc[exact, "machine_id"] + "@" + df.loc[exact, "timestamp"].astype(str)),
        )
        df = df[~exact]
    conflicting = (
        df.duplicated(list(KEY_COLUMNS), keep=False) if shared_key.any() else pd.Series(False, index=df.index)
    )
    if conflicting.any():
        check.add(
            "conflicting_duplicate",
            f"{int(conflicting.sum())} readings share a machine and timestamp with different values",
            conflicting.sum(),
            _examples(df.loc[conflicting, "machine_id"]),
        )
        rejected.append(
            _rejections(raw, raw.index.isin(df.index[conflicting]), None, "conflicting_duplicate")
        )
        df = df[~conflicting]

    out_of_order = (df.groupby("machine_id", sort=False)["timestamp"].diff() < pd.Timedelta(0)).sum()
    if out_of_order:
        check.add(
            "out_of_order", f"{int(out_of_order)} readings arrived out of time order (sorted)", out_of_order
        )
    df = df.sort_values(list(KEY_COLUMNS), kind="stable").reset_index(drop=True)
    check.readings = df
    if len(check.days) > 1:
        days = [d.date().isoformat() for d in check.days]
        check.add(
            "spans_days", f"the file spans {len(days)} days; rows go to each day's partition", len(days), days
        )
    if rejected:
        check.rejected = pd.concat(rejected, ignore_index=True)[REJECTED_COLUMNS]
    return check


def days_in_file(path: Path) -> list[str]:
    """The UTC days (YYYY-MM-DD) a readings file covers, reading only its timestamp column.

    Raises ``ValueError`` when the file has no readable timestamp column; the daily run quarantines it.
    """
    try:
        if path.suffix == ".parquet":
            stamps = pd.read_parquet(path, columns=["timestamp"])["timestamp"]
        else:
            stamps = pd.read_csv(path, usecols=["timestamp"], dtype=str)["timestamp"]
    except Exception as exc:  # any reader error means the same: the days cannot be known from the file
        raise ValueError(f"{path.name}: no readable timestamp column ({exc})") from exc
    parsed = pd.to_datetime(stamps, utc=True, errors="coerce", format="ISO8601").dropna()
    # Format the few distinct days, not every reading: strftime per row cost seconds per million rows.
    return sorted(parsed.dt.normalize().drop_duplicates().dt.strftime("%Y-%m-%d"))
