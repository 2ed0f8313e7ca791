"""The transaction data contract, checked on ingest before anything reaches the warehouse."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import iso18245
import numpy as np
import pandas as pd

from orchestration_pipelines.fraud.geo import country_codes
from orchestration_pipelines.fraud.policy import IntakeRules, load_policy

TRANSACTION_COLUMNS: dict[str, str] = {
    "transaction_id": "string",
    "account_id": "string",
    "card_id": "string",
    "timestamp": "datetime64[ns, UTC]",
    "amount": "float64",
    "currency": "string",
    "merchant_id": "string",
    "merchant_category": "string",
    "country": "string",
    "channel": "string",
    "device_id": "string",
}
LABEL_COLUMNS: dict[str, str] = {"is_fraud": "int8", "fraud_pattern": "string"}
OPTIONAL_COLUMNS = {"fraud_pattern"}  # empty for legitimate transactions
CHANNELS = ("card_present", "contactless", "ecommerce", "atm")

# Approximate conversion to EUR so amounts from different currencies compare within an account.
EUR_PER_UNIT = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "CHF": 1.04, "PLN": 0.23, "SEK": 0.087, "JPY": 0.0062}


@dataclass
class ContractReport:
    """What was wrong with a batch, in a form both people and machines read."""

    errors: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, kind: str, column: str | None, message: str, examples: list | None = None) -> None:
        self.errors.append({"kind": kind, "column": column, "message": message, "examples": examples or []})

    def summary(self) -> str:
        return "; ".join(e["message"] for e in self.errors)


class ContractViolation(ValueError):
    def __init__(self, report: ContractReport):
        super().__init__(report.summary())
        self.report = report


def _examples(values: pd.Series, limit: int = 5) -> list:
    return [str(v) for v in values.head(limit).tolist()]


@cache
def merchant_category_codes() -> frozenset[str]:
    """Every MCC that ISO 18245 or a card network assigns (``iso18245``), as four-digit strings."""
    return frozenset(entry.mcc for entry in iso18245.get_all_mccs())


# An ISO 8601 time followed by a zone (Z, UTC or an offset); a date alone has no zone either.
_ZONED = r"(?i)[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|UTC|[+-]\d{2}(?::?\d{2})?)$"


def _naive_timestamps(values: pd.Series) -> pd.Series:
    """True where a present timestamp carries no time zone."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return pd.Series(False, index=values.index)
    if pd.api.types.is_datetime64_dtype(values):
        return values.notna()
    text = values.astype("string[pyarrow]")
    return (text.notna() & ~text.str.contains(_ZONED, regex=True)).fillna(False).astype(bool)


def check_transactions(
    raw: pd.DataFrame, labelled: bool = False, intake: IntakeRules | None = None
) -> tuple[pd.DataFrame, list[dict]]:
    """Coerce a raw batch to the contract's types or raise ``ContractViolation`` naming every problem.

    Checks, all in one pass: the file has rows and the required columns; values parse (timestamps,
    amounts); no missing values; amounts positive, finite and at most ``intake.max_amount_eur`` in EUR;
    timestamps carry a time zone (or are assumed UTC, as ``intake.naive_timestamps`` says); currency
    and channel known; country an ISO 3166 alpha-2 code; merchant category an ISO 18245 MCC; unique
    transaction ids. ``intake`` defaults to the packaged policy's. Returns the typed copy and the
    notes on what was accepted with a caveat (same shape as errors).
    """
    intake = intake or load_policy().intake
    expected = {**TRANSACTION_COLUMNS, **(LABEL_COLUMNS if labelled else {})}
    report = ContractReport()
    if raw.empty:
        report.add("empty", None, "the file holds no transactions (no rows)")
    missing = [c for c in expected if c not in raw.columns]
    if missing:
        report.add("schema", None, f"missing columns: {', '.join(missing)}", missing)
    if not report.ok:
        raise ContractViolation(report)

    notes: list[dict] = []
    df = raw[list(expected)].copy()
    present = {column: raw[column].notna() for column in expected}  # each column scanned once
    for column, dtype in expected.items():
        if dtype == "string" and pd.api.types.infer_dtype(df[column]) not in ("string", "empty"):
            df[column] = df[column].map(str, na_action="ignore")  # e.g. numeric codes from a Parquet file
    naive = _naive_timestamps(raw["timestamp"])
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, errors="coerce", format="ISO8601")
    df["amount"] = pd.to_numeric(df["amount"], errors="coerce")
    for column, kind in (("timestamp", "timestamp"), ("amount", "number")):
        unparsable = df[column].isna() & present[column]
        if unparsable.any():
            report.add(
                "unparsable",
                column,
                f"{int(unparsable.sum())} values in {column} are not a valid {kind}",
                _examples(raw.loc[unparsable, column]),
            )
    naive &= df["timestamp"].notna()
    if naive.any():
        message = f"{int(naive.sum())} timestamps have no time zone"
        if intake.naive_timestamps == "assume_utc":
            notes.append(
                _problem(
                    "naive_timestamps_assumed_utc",
                    "timestamp",
                    f"{message}: taken as UTC",
                    raw.loc[naive, "timestamp"],
                    int(naive.sum()),
                )
            )
        else:
            report.add(
                "timezone",
                "timestamp",
                f"{message} (policy intake.naive_timestamps: reject)",
                _examples(raw.loc[naive, "timestamp"]),
            )
    for column in expected:
        missing_values = len(df) - int(present[column].sum())
        if column not in OPTIONAL_COLUMNS and missing_values:
            report.add("null", column, f"{missing_values} missing values in {column}")
    _check_amounts(df, intake.max_amount_eur, report)
    for column, allowed, what in (
        ("currency", EUR_PER_UNIT.keys(), "currency"),
        ("channel", CHANNELS, "channel"),
        ("country", country_codes(), "country (expected an ISO 3166 alpha-2 code)"),
        ("merchant_category", merchant_category_codes(), "merchant category (expected an ISO 18245 MCC)"),
    ):
        unknown = ~df[column].isin(allowed) & present[column]
        if unknown.any():
            report.add(
                "domain",
                column,
                f"{int(unknown.sum())} rows with an unknown {what}",
                _examples(df.loc[unknown, column].drop_duplicates()),
            )
    duplicated = df["transaction_id"].duplicated(keep=False) & present["transaction_id"]
    if duplicated.any():
        report.add(
            "duplicate",
            "transaction_id",
            f"{int(df.loc[duplicated, 'transaction_id'].nunique())} transaction ids appear more than once",
            _examples(df.loc[duplicated, "transaction_id"].drop_duplicates()),
        )
    if labelled:
        df["is_fraud"] = pd.to_numeric(df["is_fraud"], errors="coerce")
        not_binary = ~df["is_fraud"].isin([0, 1]) & present["is_fraud"]
        if not_binary.any():
            report.add(
                "domain", "is_fraud", "is_fraud must be 0 or 1", _examples(raw.loc[not_binary, "is_fraud"])
            )
    if not report.ok:
        raise ContractViolation(report)

    for column, dtype in expected.items():
        if column in OPTIONAL_COLUMNS:
            df[column] = df[column].fillna("").astype(str)
        elif dtype != "string" and column != "timestamp":
            df[column] = df[column].astype(dtype)
    return df, notes


def validate_transactions(
    raw: pd.DataFrame, labelled: bool = False, intake: IntakeRules | None = None
) -> pd.DataFrame:
    """The typed batch of ``check_transactions``, for callers that need no notes."""
    return check_transactions(raw, labelled, intake)[0]


def _problem(kind: str, column: str | None, message: str, examples: pd.Series, rows: int) -> dict:
    return {"kind": kind, "column": column, "message": message, "examples": _examples(examples), "rows": rows}


def _check_amounts(df: pd.DataFrame, max_amount_eur: float, report: ContractReport) -> None:
    """Positive, finite and plausible (in EUR, where the currency is known) amounts."""
    amount = df["amount"]
    eur = amount * df["currency"].map(EUR_PER_UNIT)
    for kind, bad in (
        ("non-positive amounts", amount <= 0),
        ("amounts that are not finite numbers", amount.isin([np.inf, -np.inf])),
        (
            f"amounts above the plausible maximum of {max_amount_eur:,.0f} EUR",
            np.isfinite(amount) & (eur > max_amount_eur),
        ),
    ):
        if bad.any():
            report.add(
                "range", "amount", f"{int(bad.sum())} {kind}", _examples(df.loc[bad, "transaction_id"])
            )


def amount_in_eur(df: pd.DataFrame) -> np.ndarray:
    rates = df["currency"].map(EUR_PER_UNIT).to_numpy(dtype="float64")
    return df["amount"].to_numpy(dtype="float64") * rates
