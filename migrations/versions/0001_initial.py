"""Initial schema: logs, entries, payloads, tree nodes, checkpoints, keys, credentials.

Append-only is enforced here, by PostgreSQL, not by the application: row triggers raise on
UPDATE and DELETE, a statement trigger raises on TRUNCATE, and every one is ENABLE ALWAYS so
``session_replication_role = replica`` does not silence it. The application role ``ledger_app``
gets INSERT and SELECT only on the append-only tables; ``ledger_readonly`` (the verifier) gets
SELECT only.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY = ("entries", "payloads", "tree_nodes", "checkpoints")
# Rows here may change in one narrow way (retire a key, revoke a credential) but never vanish.
NEVER_DELETED = ("logs", "signing_keys", "credentials")


def _ts(name: str, *, nullable: bool = False, default: bool = False) -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if default else None,
    )


def upgrade() -> None:
    op.create_table(
        "logs",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("policy", postgresql.JSONB(), server_default="{}", nullable=False),
        _ts("created_at", default=True),
        sa.CheckConstraint("kind IN ('events', 'system')", name=op.f("ck_logs_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logs")),
        sa.UniqueConstraint("origin", name=op.f("uq_logs_origin")),
    )
    op.create_table(
        "log_heads",
        sa.Column("log_id", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.Column("last_leaf", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["log_id"], ["logs.id"], name=op.f("fk_log_heads_log_id_logs")),
        sa.PrimaryKeyConstraint("log_id", name=op.f("pk_log_heads")),
    )
    op.create_table(
        "entries",
        sa.Column("log_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("conversation_id", sa.Text(), nullable=False),
        _ts("received_at"),
        sa.Column("request_digest", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["log_id"], ["logs.id"], name=op.f("fk_entries_log_id_logs")),
        sa.PrimaryKeyConstraint("log_id", "seq", name=op.f("pk_entries")),
        sa.UniqueConstraint(
            "log_id", "source", "event_id", name=op.f("uq_entries_log_id_source_event_id")
        ),
    )
    op.create_index("ix_entries_conversation", "entries", ["log_id", "conversation_id", "seq"])
    op.create_table(
        "data_keys",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("log_id", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=True),
        _ts("created_at", default=True),
        _ts("destroyed_at", nullable=True),
        sa.ForeignKeyConstraint(["log_id"], ["logs.id"], name=op.f("fk_data_keys_log_id_logs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_keys")),
        sa.UniqueConstraint("log_id", "scope", name=op.f("uq_data_keys_log_id_scope")),
    )
    op.create_table(
        "payloads",
        sa.Column("log_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("data_key_id", sa.BigInteger(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("seq >= 0", name=op.f("ck_payloads_seq_nonnegative")),
        sa.ForeignKeyConstraint(
            ["data_key_id"], ["data_keys.id"], name=op.f("fk_payloads_data_key_id_data_keys")
        ),
        sa.PrimaryKeyConstraint("log_id", "seq", name=op.f("pk_payloads")),
    )
    op.create_table(
        "tree_nodes",
        sa.Column("log_id", sa.Text(), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("log_id", "level", "idx", name=op.f("pk_tree_nodes")),
    )
    op.create_table(
        "checkpoints",
        sa.Column("log_id", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("key_id", sa.LargeBinary(), nullable=False),
        _ts("signed_at"),
        sa.ForeignKeyConstraint(["log_id"], ["logs.id"], name=op.f("fk_checkpoints_log_id_logs")),
        sa.PrimaryKeyConstraint("log_id", "size", name=op.f("pk_checkpoints")),
    )
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("log_id", sa.Text(), nullable=False),
        sa.Column("key_id", sa.LargeBinary(), nullable=False),
        sa.Column("verifier_key", sa.Text(), nullable=False),
        sa.Column("sealed_private", sa.LargeBinary(), nullable=False),
        _ts("created_at", default=True),
        _ts("retired_at", nullable=True),
        sa.ForeignKeyConstraint(["log_id"], ["logs.id"], name=op.f("fk_signing_keys_log_id_logs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_keys")),
        sa.UniqueConstraint("log_id", "key_id", name=op.f("uq_signing_keys_log_id_key_id")),
    )
    op.create_table(
        "credentials",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("log_id", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), server_default="", nullable=False),
        _ts("created_at", default=True),
        _ts("revoked_at", nullable=True),
        sa.CheckConstraint(
            "role IN ('writer', 'auditor', 'verifier', 'admin')", name=op.f("ck_credentials_role")
        ),
        sa.ForeignKeyConstraint(["log_id"], ["logs.id"], name=op.f("fk_credentials_log_id_logs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credentials")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_credentials_token_hash")),
    )

    op.execute(
        """
        CREATE FUNCTION ledger_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'ledger: % on append-only table % is forbidden', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END $$;

        -- signing_keys: only retired_at may go from NULL to a time; nothing else ever changes.
        CREATE FUNCTION ledger_signing_key_retire_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.retired_at IS NULL AND NEW.retired_at IS NOT NULL
               AND (NEW.id, NEW.log_id, NEW.key_id, NEW.verifier_key, NEW.sealed_private,
                    NEW.created_at)
                   IS NOT DISTINCT FROM
                   (OLD.id, OLD.log_id, OLD.key_id, OLD.verifier_key, OLD.sealed_private,
                    OLD.created_at) THEN
                RETURN NEW;
            END IF;
            RAISE EXCEPTION 'ledger: signing keys may only be retired, never changed'
                USING ERRCODE = 'insufficient_privilege';
        END $$;
        """
    )
    for table in APPEND_ONLY:
        op.execute(
            f"""
            CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
            CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
            ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_update_delete;
            ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_truncate;
            """
        )
    for table in NEVER_DELETED:
        op.execute(
            f"""
            CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
            CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
            ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_delete;
            ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_truncate;
            """
        )
    op.execute(
        """
        CREATE TRIGGER signing_keys_retire_only BEFORE UPDATE ON signing_keys
            FOR EACH ROW EXECUTE FUNCTION ledger_signing_key_retire_only();
        ALTER TABLE signing_keys ENABLE ALWAYS TRIGGER signing_keys_retire_only;
        """
    )

    # Roles are cluster-wide: create them once, grant per database.
    op.execute(
        """
        DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ledger_app') THEN
                CREATE ROLE ledger_app NOLOGIN;
            END IF;
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ledger_readonly') THEN
                CREATE ROLE ledger_readonly NOLOGIN;
            END IF;
        END $$;
        GRANT SELECT, INSERT ON entries, payloads, tree_nodes, checkpoints TO ledger_app;
        GRANT SELECT, INSERT, UPDATE ON log_heads, data_keys, signing_keys, credentials
            TO ledger_app;
        GRANT SELECT, INSERT ON logs TO ledger_app;
        GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ledger_app;
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO ledger_readonly;
        """
    )


def downgrade() -> None:
    raise RuntimeError("the ledger schema is append-only; downgrading would destroy evidence")
