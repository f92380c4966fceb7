"""Writer keys (issue 18): the Ed25519 public keys writers sign their events with.

``writer_keys`` holds one row per registered key: the writer credential it belongs to, its
``kid`` (RFC 7638 thumbprint, unique per log), the 32-byte public key, when it was added and,
once revoked, when. Keys are never deleted (what a key signed must stay verifiable for ever):
no DELETE, no TRUNCATE, and an UPDATE may only set ``revoked_at`` once, from NULL, to a time at
or after ``added_at``; nothing else of a row ever changes. All ``ENABLE ALWAYS``.

``ledger_app`` may SELECT, INSERT and UPDATE (revocation) ``writer_keys``, and UPDATE the
``policy`` column of ``logs`` (a log's ``signatures`` policy is changed in place, each change an
event in the tenant's system log); ``ledger_readonly`` may SELECT.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "writer_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("log_id", sa.Text(), nullable=False),
        sa.Column("credential_id", sa.Integer(), nullable=False),
        sa.Column("kid", sa.Text(), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("length(public_key) = 32", name=op.f("ck_writer_keys_ed25519")),
        sa.CheckConstraint("revoked_at >= added_at", name=op.f("ck_writer_keys_revoked_after")),
        sa.ForeignKeyConstraint(["log_id"], ["logs.id"], name=op.f("fk_writer_keys_log_id_logs")),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["credentials.id"],
            name=op.f("fk_writer_keys_credential_id_credentials"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_writer_keys")),
        sa.UniqueConstraint("log_id", "kid", name=op.f("uq_writer_keys_log_id_kid")),
    )
    op.execute(
        """
        CREATE FUNCTION ledger_writer_key_revoke_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
               AND (NEW.id, NEW.log_id, NEW.credential_id, NEW.kid, NEW.public_key,
                    NEW.added_at)
                   IS NOT DISTINCT FROM
                   (OLD.id, OLD.log_id, OLD.credential_id, OLD.kid, OLD.public_key,
                    OLD.added_at) THEN
                RETURN NEW;
            END IF;
            RAISE EXCEPTION 'ledger: writer keys may only be revoked, never changed'
                USING ERRCODE = 'insufficient_privilege';
        END $$;
        CREATE TRIGGER writer_keys_revoke_only BEFORE UPDATE ON writer_keys
            FOR EACH ROW EXECUTE FUNCTION ledger_writer_key_revoke_only();
        CREATE TRIGGER writer_keys_no_delete BEFORE DELETE ON writer_keys
            FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
        CREATE TRIGGER writer_keys_no_truncate BEFORE TRUNCATE ON writer_keys
            FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
        ALTER TABLE writer_keys ENABLE ALWAYS TRIGGER writer_keys_revoke_only;
        ALTER TABLE writer_keys ENABLE ALWAYS TRIGGER writer_keys_no_delete;
        ALTER TABLE writer_keys ENABLE ALWAYS TRIGGER writer_keys_no_truncate;
        GRANT SELECT, INSERT, UPDATE ON writer_keys TO ledger_app;
        GRANT USAGE ON SEQUENCE writer_keys_id_seq TO ledger_app;
        GRANT SELECT ON writer_keys TO ledger_readonly;
        GRANT UPDATE (policy) ON logs TO ledger_app;
        """
    )


def downgrade() -> None:
    raise RuntimeError("the ledger schema is append-only; downgrading would destroy evidence")
