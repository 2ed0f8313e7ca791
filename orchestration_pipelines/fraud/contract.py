"""The transaction data contract, checked on ingest before anything reaches the warehouse."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

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


def validate_transactions(raw: pd.DataFrame, labelled: bool = False) -> pd.DataFrame:
    """Coerce a raw batch to the contract's types or raise ``ContractViolation`` naming every problem.

    Checks: required columns present, values parse (timestamps, amounts), no missing values, positive
    amounts, known currency and channel, and unique transaction ids. Returns a typed copy.
    """
    expected = {**TRANSACTION_COLUMNS, **(LABEL_COLUMNS if labelled else {})}
    report = ContractReport()
    missing = [c for c in expected if c not in raw.columns]
    if missing:
        report.add("schema", None, f"missing columns: {', '.join(missing)}", missing)
        raise ContractViolation(report)

    df = raw[list(expected)].copy()
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, errors="coerce", format="ISO8601")
    df["amount"] = pd.to_numeric(df["amount"], errors="coerce")
    for column, kind in (("timestamp", "timestamp"), ("amount", "number")):
        unparsable = df[column].isna() & raw[column].notna()
        if unparsable.any():
            report.add(
                "unparsable",
                column,
                f"{int(unparsable.sum())} values in {column} are not a valid {kind}",
                _examples(raw.loc[unparsable, column]),
            )
    for column in expected:
        nulls = raw[column].isna()
        if column not in OPTIONAL_COLUMNS and nulls.any():
            report.add("null", column, f"{int(nulls.sum())} missing values in {column}")
    if report.ok:
        non_positive = df["amount"] <= 0
        if non_positive.any():
            report.add(
                "range",
                "amount",
                f"{int(non_positive.sum())} non-positive amounts",
                _examples(df.loc[non_positive, "transaction_id"]),
            )
    for column, allowed in (("currency", list(EUR_PER_UNIT)), ("channel", CHANNELS)):
        unknown = ~df[column].isin(allowed) & df[column].notna()
        if unknown.any():
            report.add(
                "domain",
                column,
                f"{int(unknown.sum())} rows with an unknown {column}",
                _examples(df.loc[unknown, column].drop_duplicates()),
            )
    duplicated = df["transaction_id"].duplicated(keep=False) & df["transaction_id"].notna()
    if duplicated.any():
        report.add(
            "duplicate",
            "transaction_id",
            f"{int(df.loc[duplicated, 'transaction_id'].nunique())} transaction ids appear more than once",
            _examples(df.loc[duplicated, "transaction_id"].drop_duplicates()),
        )
    if labelled and report.ok and not df["is_fraud"].isin([0, 1]).all():
        report.add("domain", "is_fraud", "is_fraud must be 0 or 1")
    if not report.ok:
        raise ContractViolation(report)

    for column, dtype in expected.items():
        if dtype == "string":
            df[column] = df[column].fillna("").astype(str)  # only optional columns can still be missing
        elif column != "timestamp":
            df[column] = df[column].astype(dtype)
    return df


def amount_in_eur(df: pd.DataFrame) -> np.ndarray:
    rates = df["currency"].map(EUR_PER_UNIT).to_numpy(dtype="float64")
    return df["amount"].to_numpy(dtype="float64") * rates
