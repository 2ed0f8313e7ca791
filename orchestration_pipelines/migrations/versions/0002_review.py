"""Human review: items, their events, labelled feedback, the actions outbox, reviewers, shared rate limits,
and an index on the audit log's subject for the story of one case.

Timestamps are ISO 8601 UTC text like every other table of the store, so they compare as strings and
read back the same on SQLite and PostgreSQL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _text(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Text, nullable=nullable)


def _one_of(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(f"{column} IN ({', '.join(repr(v) for v in values)})", name=name)


def upgrade() -> None:
    op.create_index("audit_log_subject", "audit_log", ["subject"])  # a case's story reads by subject
    op.create_table(
        "review_items",
        sa.Column("item_id", sa.Text, primary_key=True),
        _text("workflow"),
        _text("kind"),
        _text("case_id"),
        _text("status"),
        _text("required_role"),
        _text("assigned_to", nullable=True),
        _text("deadline_at"),
        _text("reason"),
        _text("context_json"),
        _text("input_sha256"),
        _text("model_version"),
        _text("prompt_version", nullable=True),
        _text("policy_version"),
        _text("decision", nullable=True),
        _text("decided_value", nullable=True),
        sa.Column("approvals_json", sa.Text, nullable=False, server_default="[]"),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        _text("created_at"),
        _text("updated_at"),
        sa.UniqueConstraint("workflow", "case_id", "kind", name="review_items_one_per_case_and_kind"),
        _one_of("status", ("open", "assigned", "decided", "escalated", "applied"), "review_items_status"),
    )
    op.create_index("review_items_queue", "review_items", ["status", "deadline_at"])
    op.create_index("review_items_case", "review_items", ["case_id"])

    op.create_table(
        "review_events",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("item_id", sa.Text, sa.ForeignKey("review_items.item_id"), nullable=False),
        _text("at"),
        _text("actor"),
        _text("actor_role"),
        _text("action"),
        _text("value", nullable=True),
        _text("comment", nullable=True),
        _text("outcome"),
        sa.Column("detail_json", sa.Text, nullable=False, server_default="{}"),
        _one_of("outcome", ("accepted", "refused"), "review_events_outcome"),
    )
    op.create_index("review_events_item", "review_events", ["item_id", "at"])

    op.create_table(
        "feedback",
        sa.Column("feedback_id", sa.Text, primary_key=True),
        _text("workflow"),
        _text("case_id"),
        sa.Column("item_id", sa.Text, sa.ForeignKey("review_items.item_id"), nullable=False),
        _text("label_field"),
        _text("corrected_value"),
        _text("reviewer"),
        _text("created_at"),
        _text("used_by_model_version", nullable=True),
    )
    op.create_index("feedback_unused", "feedback", ["workflow", "used_by_model_version"])

    op.create_table(
        "actions_outbox",
        sa.Column("action_id", sa.Text, primary_key=True),
        sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
        _text("workflow"),
        _text("case_id"),
        sa.Column("item_id", sa.Text, sa.ForeignKey("review_items.item_id"), nullable=True),
        _text("action"),
        _text("payload_json"),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        _text("last_error", nullable=True),
        _text("created_at"),
        _text("delivered_at", nullable=True),
        _one_of("status", ("pending", "delivered", "failed"), "actions_outbox_status"),
    )
    op.create_index("actions_outbox_pending", "actions_outbox", ["status", "created_at"])
    op.create_index("actions_outbox_case", "actions_outbox", ["case_id"])

    op.create_table(
        "reviewers",
        sa.Column("reviewer_id", sa.Text, primary_key=True),
        _text("display_name"),
        _text("roles_json"),
        sa.Column("token_sha256", sa.Text, nullable=False, unique=True),
        _text("created_at"),
        _text("disabled_at", nullable=True),
    )

    op.create_table(
        "rate_limit_buckets",
        sa.Column("bucket", sa.Text, primary_key=True),
        sa.Column("level", sa.Double, nullable=False),
        sa.Column("refreshed_at", sa.Double, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "rate_limit_buckets",
        "reviewers",
        "actions_outbox",
        "feedback",
        "review_events",
        "review_items",
    ):
        op.drop_table(table)
    op.drop_index("audit_log_subject", "audit_log")
