"""Key rotation statements, anchorings and witness cosignatures: three more append-only tables.

- ``key_rotations``: for each rotation, the statement (a C2SP signed note, see
  ``ledger.core.rotation``) signed by the old key and the new one, so a verifier that pinned the
  old key can accept the new key without trusting the database.
- ``anchorings``: which checkpoint was published to which external sink, and when.
- ``witness_cosignatures``: C2SP tlog-cosignature lines returned by tlog-witnesses.

All three are guarded like the other append-only tables (row triggers on UPDATE/DELETE and a
TRUNCATE trigger, ENABLE ALWAYS); ``ledger_app`` may INSERT and SELECT, ``ledger_readonly`` only
SELECT (0001's ``GRANT ... ON ALL TABLES`` does not cover tables created later).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("key_rotations", "anchorings", "witness_cosignatures")


def upgrade() -> None:
    op.create_table(
        "key_rotations",
        sa.Column("log_id", sa.Text(), nullable=False),
        sa.Column("old_key_id", sa.LargeBinary(), nullable=False),
        sa.Column("new_key_id", sa.LargeBinary(), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["log_id"], ["logs.id"], name=op.f("fk_key_rotations_log_id_logs")),
        sa.PrimaryKeyConstraint("log_id", "new_key_id", name=op.f("pk_key_rotations")),
    )
    op.create_table(
        "anchorings",
        sa.Column("log_id", sa.Text(), nullable=False),
        sa.Column("sink", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("anchored_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["log_id"], ["logs.id"], name=op.f("fk_anchorings_log_id_logs")),
        sa.PrimaryKeyConstraint("log_id", "sink", "size", name=op.f("pk_anchorings")),
    )
    op.create_table(
        "witness_cosignatures",
        sa.Column("log_id", sa.Text(), nullable=False),
        sa.Column("witness", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("cosignature", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["log_id"], ["logs.id"], name=op.f("fk_witness_cosignatures_log_id_logs")
        ),
        sa.PrimaryKeyConstraint("log_id", "witness", "size", name=op.f("pk_witness_cosignatures")),
    )
    for table in TABLES:
        op.execute(
            f"""
            CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
            CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
            ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_update_delete;
            ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_truncate;
            GRANT SELECT, INSERT ON {table} TO ledger_app;
            GRANT SELECT ON {table} TO ledger_readonly;
            """
        )


def downgrade() -> None:
    raise RuntimeError("the ledger schema is append-only; downgrading would destroy evidence")
