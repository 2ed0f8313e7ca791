"""Transactions already published in another batch: a file re-sent under a new name.

Detected per batch against the published table and handled as the policy's
``intake.resent_transactions`` says, for that batch alone: ``quarantine`` the whole file, or ``skip``
those rows and report them.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from orchestration_pipelines.fraud.contract import ContractReport, ContractViolation
from orchestration_pipelines.fraud.tables import PUBLISHED_TABLE


def published_elsewhere(con: duckdb.DuckDBPyConnection, ids: pd.Series, batch_id: str) -> pd.DataFrame:
    """``transaction_id`` and ``batch_id`` of the ids already published by a batch other than ``batch_id``."""
    schema, table = PUBLISHED_TABLE.split(".")
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()[0][0]
    if not exists:
        return pd.DataFrame({"transaction_id": pd.Series(dtype=str), "batch_id": pd.Series(dtype=str)})
    incoming = pd.DataFrame({"transaction_id": ids.to_numpy()})
    con.register("incoming_transaction_ids", incoming)
    try:
        return con.execute(
            f"SELECT DISTINCT p.transaction_id, p.batch_id FROM {PUBLISHED_TABLE} p "
            "JOIN incoming_transaction_ids USING (transaction_id) WHERE p.batch_id <> ? "
            "ORDER BY p.transaction_id",
            [batch_id],
        ).df()
    finally:
        con.unregister("incoming_transaction_ids")


def apply_resent_policy(batch: pd.DataFrame, resent: pd.DataFrame, action: str) -> tuple[pd.DataFrame, list]:
    """The batch to go on with and the notes about what was dropped.

    Raises ``ContractViolation`` (kind ``resent``) when the policy quarantines, or when skipping would
    leave no rows: a file that repeats only published transactions has nothing to score.
    """
    if resent.empty:
        return batch, []
    repeated = batch["transaction_id"].isin(resent["transaction_id"])
    count = int(repeated.sum())
    sources = sorted(resent["batch_id"].unique())
    examples = resent["transaction_id"].drop_duplicates().head(5).tolist()
    message = f"{count} transaction ids were already published in batch {', '.join(sources[:5])}"
    if action == "quarantine" or count == len(batch):
        report = ContractReport()
        report.add("resent", "transaction_id", message, examples)
        raise ContractViolation(report)
    note = {
        "kind": "resent_rows_skipped",
        "column": "transaction_id",
        "message": f"{message}: skipped",
        "examples": examples,
        "rows": count,
        "batches": sources,
    }
    return batch.loc[~repeated].reset_index(drop=True), [note]
