"""The auditor console's search index: one summary row per conversation, events per day, and how
far each log has been indexed.

These tables are *derived* (like ``log_heads``): everything in them is recomputed from the
entries (and, for the escalation triggers, the payloads) by
``ledger.services.console.index.catch_up``, so they are mutable and carry no append-only
trigger. They hold nothing a trail does not: conversation ids, event types, the customers'
pseudonymous ids (all in the clear in the entry header already), header times, and the typed
escalation trigger names (``sentiment_shift``, ...), never a transcript. ``ledger_app`` may
SELECT, INSERT and UPDATE them; ``ledger_readonly`` only SELECT. Like every table of a
tenant's rows they are under row security (migration 0011): a session sees and writes only its
tenant's logs' rows.

Searching conversations newest first walks ``ix_console_conversations_log_id_last_seq``; a data
subject is found by the GIN index on ``subjects``.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLES = ("console_conversations", "console_daily", "console_index_heads")


def upgrade() -> None:
    op.create_table(
        "console_conversations",
        sa.Column("log_id", sa.Text(), nullable=False),
        sa.Column("conversation_id", sa.Text(), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_types", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("subjects", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("triggers", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("handed_off", sa.Boolean(), nullable=False),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("productive_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("log_id", "conversation_id", name=op.f("pk_console_conversations")),
    )
    op.create_index(
        op.f("ix_console_conversations_log_id_last_seq"),
        "console_conversations",
        ["log_id", "last_seq"],
    )
    op.create_index(
        op.f("ix_console_conversations_subjects"),
        "console_conversations",
        ["subjects"],
        postgresql_using="gin",
    )
    op.create_table(
        "console_daily",
        sa.Column("log_id", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("log_id", "day", name=op.f("pk_console_daily")),
    )
    op.create_table(
        "console_index_heads",
        sa.Column("log_id", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("log_id", name=op.f("pk_console_index_heads")),
    )
    for table in TABLES:
        op.execute(
            f"""
            GRANT SELECT, INSERT, UPDATE ON {table} TO ledger_app;
            GRANT SELECT ON {table} TO ledger_readonly;
            SELECT ledger_protect_tenant_rows('{table}');
            """
        )


def downgrade() -> None:
    raise RuntimeError("the ledger schema is append-only; downgrading would destroy evidence")
