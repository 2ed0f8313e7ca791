"""A bank's own labelled feature table: read with its types, its time column and label made sense of.

Unlike landing files, which the transaction contract reads as text and checks column by column, a
feature table has columns nobody here knows in advance, so types are inferred and the time column is
interpreted from what it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

# A number at least this large is epoch time in this unit; dates from 1973 onwards clear each bound,
# and the next unit's bound would put them thousands of years ahead. Smaller numbers count from a start.
_EPOCH_UNITS = [(1e17, "ns", "nanoseconds"), (1e14, "us", "microseconds"), (1e11, "ms", "milliseconds")]
_EPOCH_SECONDS_FROM = 1e8
_PLAUSIBLE = (pd.Timestamp("1973-01-01", tz="UTC"), pd.Timestamp("2200-01-01", tz="UTC"))
_EXAMPLES = 5


def read_feature_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet table with numeric columns as numbers."""
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path, low_memory=False)
    raise ValueError(f"{path}: expected a .csv or .parquet file")


@dataclass(frozen=True)
class ParsedTime:
    """UTC timestamps (NaT where a row has no usable time), how they were read, and what was not."""

    values: pd.Series
    interpretation: str
    unusable: int
    examples: list[dict] = field(default_factory=list)

    def report(self, column: str) -> dict:
        return {
            "column": column,
            "interpretation": self.interpretation,
            "rows_without_time": self.unusable,
            "examples": self.examples,
        }


def _numeric_times(numbers: pd.Series) -> tuple[pd.Series, str]:
    """Timestamps from numbers, the unit judged by the typical magnitude; off-scale values become NaT."""
    finite = numbers.where(np.isfinite(numbers))
    typical = float(finite.abs().median())
    if typical < _EPOCH_SECONDS_FROM:
        return (
            pd.to_datetime(finite, unit="s", utc=True, errors="coerce"),
            "seconds since a start (no calendar date: only order and spacing are used)",
        )
    unit, name = next(((u, n) for bound, u, n in _EPOCH_UNITS if typical >= bound), ("s", "seconds"))
    values = pd.to_datetime(finite, unit=unit, utc=True, errors="coerce")
    return values.where((values >= _PLAUSIBLE[0]) & (values < _PLAUSIBLE[1])), f"epoch {name}"


def parse_time_column(raw: pd.Series) -> ParsedTime:
    """Interpret datetimes, ISO 8601 strings, or numbers (offsets in seconds, epoch s/ms/µs/ns) as UTC."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        values, interpretation = raw.dt.tz_convert("UTC"), "datetimes"
    elif pd.api.types.is_datetime64_any_dtype(raw):
        values, interpretation = raw.dt.tz_localize("UTC"), "datetimes without a time zone, read as UTC"
    elif pd.api.types.is_bool_dtype(raw):
        raise ValueError(f"time column {raw.name!r} holds true/false values, not times")
    elif pd.api.types.is_numeric_dtype(raw):
        values, interpretation = _numeric_times(raw.astype("float64"))
    else:
        text = raw.astype("string").str.strip().replace("", pd.NA)
        numbers = pd.to_numeric(text, errors="coerce")
        if numbers.notna().sum() > text.notna().sum() / 2:
            values, interpretation = _numeric_times(numbers.astype("float64"))
        else:
            values = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
            interpretation = "ISO 8601 strings (those without a UTC offset read as UTC)"
    values = pd.Series(values, index=raw.index, name=raw.name)
    missing = values.isna().to_numpy()
    if missing.all():
        raise ValueError(
            f"time column {raw.name!r} has no usable time: expected datetimes, ISO 8601 strings, or "
            f"numbers (seconds since a start, epoch seconds or milliseconds); e.g. {raw.head(3).tolist()}"
        )
    rows = np.flatnonzero(missing)[:_EXAMPLES]
    examples = [{"row": int(r), "value": None if pd.isna(raw.iloc[r]) else str(raw.iloc[r])} for r in rows]
    return ParsedTime(values, interpretation, int(missing.sum()), examples)


def binary_label(column: pd.Series) -> pd.Series:
    """The label as 0/1 integers, or a clear refusal: empty values, other values, or a single class."""
    name = column.name
    empty = int(column.isna().sum())
    if empty:
        raise ValueError(f"label column {name!r} has {empty} empty values; label every row 0 or 1")
    if pd.api.types.is_bool_dtype(column):
        column = column.astype("int64")
    values = pd.unique(column)
    if not pd.api.types.is_numeric_dtype(column) or not set(values) <= {0, 1}:
        raise ValueError(
            f"label column {name!r} must hold only 0 and 1 (1 = fraud); found {sorted(map(str, values))[:5]}"
        )
    if len(values) < 2:
        only = "fraud" if values[0] == 1 else "legitimate"
        raise ValueError(
            f"label column {name!r} has only one class (every row is {only}): a model needs both "
            "fraud and legitimate examples"
        )
    return column.astype("int64")
