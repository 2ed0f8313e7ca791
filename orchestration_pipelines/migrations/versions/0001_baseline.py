"""Baseline: the tables the operational store held before migrations, adopting databases that have them.

Databases created by the earlier ad-hoc ``CREATE TABLE IF NOT EXISTS`` code already hold some of these
tables: each existing table is kept with its rows, an audit log from before event ids gains the
``event_id`` column, and only missing tables are created. A table lacking any other column is refused.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_metadata = sa.MetaData()


def _text(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Text, nullable=nullable)


AUDIT_LOG = sa.Table(
    "audit_log",
    _metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    _text("recorded_at"),
    _text("workflow"),
    _text("event"),
    _text("subject"),
    _text("actor"),
    _text("run_id", nullable=True),
    _text("details"),
    _text("prev_hash"),
    _text("entry_hash"),
    _text("event_id", nullable=True),
    sa.Index("audit_log_event_id", "event_id", unique=True),
)
LLM_LEDGER = sa.Table(
    "llm_ledger",
    _metadata,
    sa.Column("call_id", sa.Text, primary_key=True),
    _text("recorded_at"),
    _text("day"),
    _text("workflow"),
    _text("asset", nullable=True),
    _text("run_id", nullable=True),
    _text("partition_key", nullable=True),
    _text("tier"),
    _text("model"),
    _text("prompt_id"),
    _text("prompt_version"),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_usd", sa.Double, nullable=False),
    sa.Column("latency_ms", sa.Double, nullable=False),
    sa.Column("cache_hit", sa.BigInteger, nullable=False),
    _text("outcome"),
    _text("error", nullable=True),
)
LLM_RESPONSE_CACHE = sa.Table(
    "llm_response_cache",
    _metadata,
    sa.Column("cache_key", sa.Text, primary_key=True),
    _text("prompt_id"),
    _text("prompt_version"),
    _text("model"),
    _text("output"),
    _text("created_at"),
)
LLM_ACTIVE_VERSIONS = sa.Table(
    "llm_active_versions",
    _metadata,
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    _text("version"),
    _text("payload", nullable=True),
    _text("promoted_at"),
    _text("actor"),
)
SHADOW_RESULTS = sa.Table(
    "shadow_results",
    _metadata,
    sa.Column("experiment", sa.Text, primary_key=True),
    sa.Column("variant", sa.Text, primary_key=True),
    sa.Column("item_id", sa.Text, primary_key=True),
    _text("version"),
    _text("output", nullable=True),
    _text("route"),
    sa.Column("cost_usd", sa.Double, nullable=False),
    _text("label", nullable=True),
    _text("recorded_at"),
)
MAINTENANCE_WORK_ORDERS = sa.Table(
    "maintenance_work_orders",
    _metadata,
    sa.Column("work_order_key", sa.Text, primary_key=True),
    _text("machine_id"),
    _text("team"),
    _text("alerted_at"),
    _text("status"),
    _text("payload"),
    _text("created_at"),
    _text("run_id", nullable=True),
    _text("delivery"),
    sa.Column("delivery_attempts", sa.Integer, nullable=False),
    _text("delivered_at", nullable=True),
    _text("last_error", nullable=True),
)
MAINTENANCE_NOTIFICATIONS = sa.Table(
    "maintenance_notifications",
    _metadata,
    sa.Column("notification_key", sa.Text, primary_key=True),
    _text("team"),
    _text("subject"),
    _text("body"),
    _text("created_at"),
    _text("delivery"),
    sa.Column("delivery_attempts", sa.Integer, nullable=False),
    _text("delivered_at", nullable=True),
    _text("last_error", nullable=True),
)


def _adopt(inspector: sa.Inspector, table: sa.Table) -> None:
    """Keep a table created before migrations; add what the old code itself added later."""
    present = {column["name"] for column in inspector.get_columns(table.name)}
    missing = set(table.columns.keys()) - present
    if table is AUDIT_LOG and missing == {"event_id"}:
        op.add_column("audit_log", sa.Column("event_id", sa.Text, nullable=True))
        op.create_index("audit_log_event_id", "audit_log", ["event_id"], unique=True)
    elif missing:
        raise RuntimeError(
            f"table {table.name} predates migrations but lacks columns {sorted(missing)}: "
            "it was not created by this platform; move it aside and upgrade again"
        )


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    existing = set(inspector.get_table_names())
    for table in _metadata.sorted_tables:
        if table.name in existing:
            _adopt(inspector, table)
        else:
            table.create(bind)


def downgrade() -> None:
    raise RuntimeError("the baseline holds the audit log, which no migration ever drops")
