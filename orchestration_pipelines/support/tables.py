"""The warehouse tables of the support batch assets, created before a batch is written.

The DataFrame IO manager creates a table from the first frame it writes, skips empty frames, and
inserts later frames by column position. A first batch whose tickets were all rejected would then
leave ``classification`` (and what follows) without a table to read, and a column that happened to be
all empty would get a guessed type. Declaring the tables, in the assets' column order, avoids both.
"""

from __future__ import annotations

import pandas as pd

from orchestration_pipelines.audit import AuditRecord, write_outbox_record

SCHEMA = "support"
TABLES = {
    "raw_tickets": """batch_id VARCHAR, ticket_id VARCHAR, customer_id VARCHAR, channel VARCHAR,
        language VARCHAR, subject VARCHAR, body VARCHAR, created_at TIMESTAMP WITH TIME ZONE,
        order_id VARCHAR, notes VARCHAR, contract_status VARCHAR, reason VARCHAR""",
    "classification": """batch_id VARCHAR, ticket_id VARCHAR, local_intent VARCHAR, local_confidence DOUBLE,
        urgency VARCHAR, urgency_confidence DOUBLE, intent_probabilities VARCHAR,
        classifier_version VARCHAR""",
    "routes": """batch_id VARCHAR, ticket_id VARCHAR, local_intent VARCHAR, local_confidence DOUBLE,
        urgency VARCHAR, intent VARCHAR, risk DOUBLE, route VARCHAR, answered_by VARCHAR, escalated BOOLEAN,
        cost_usd DOUBLE, reason VARCHAR, needs_approval BOOLEAN, router_policy_version VARCHAR,
        support_policy_version VARCHAR, classifier_version VARCHAR, prompt VARCHAR""",
    "replies": """batch_id VARCHAR, ticket_id VARCHAR, reply VARCHAR, source VARCHAR, article_ids VARCHAR,
        order_ids VARCHAR, cost_usd DOUBLE, reason VARCHAR, trace VARCHAR""",
    "outbox": """batch_id VARCHAR, ticket_id VARCHAR, customer_id VARCHAR, status VARCHAR, reply VARCHAR,
        intent VARCHAR, route VARCHAR, answered_by VARCHAR, why VARCHAR, data_used VARCHAR,
        cost_usd DOUBLE""",
}


def create_tables(con) -> None:
    """Create the support schema and batch tables if missing (a DuckDB connection)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for name, columns in TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{name} ({columns})")


def column_names(name: str) -> list[str]:
    """The declared columns in order: an asset's frame must have exactly these (inserts are positional)."""
    return [column.split()[0] for column in TABLES[name].split(",")]


def replace_batch_with_record(
    con, name: str, batch_id: str, frame: pd.DataFrame, record: AuditRecord
) -> None:
    """Replace ``batch_id``'s rows of table ``name`` with ``frame`` and put ``record`` in the warehouse's
    audit outbox, in one transaction: the rows and their audit record are written together or not at all."""
    con.execute("BEGIN")
    try:
        con.execute(f"DELETE FROM {SCHEMA}.{name} WHERE batch_id = ?", [batch_id])
        con.register("batch_rows", frame[column_names(name)])
        con.execute(f"INSERT INTO {SCHEMA}.{name} SELECT * FROM batch_rows")
        con.unregister("batch_rows")
        write_outbox_record(con, record)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
