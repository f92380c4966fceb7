"""Privacy requests (erasure by crypto-shredding, legal holds and their release) and their
approvals: two more append-only tables, and which request destroyed a data key.

- ``privacy_requests``: one row per request an admin made: ``erase``, ``hold`` or ``release``
  (of the hold ``hold_id``), for a ``conversation`` or a data ``subject`` (the customer the
  entries name), with its legal basis, the requester's reference (a ticket), the requesting
  credential and when it expires unapproved.
- ``privacy_approvals``: at most one per request (its primary key), by another admin
  credential. A request is approved iff it has an approval row; expired iff it has none and
  its ``expires_at`` is past. Nothing is ever updated: state is what was inserted.
- ``data_keys.erasure_request_id``: the erase request whose approval destroyed the key (NULL
  while the key lives), so reads can say which erasure made a payload unreadable.

Both tables are guarded like the other append-only tables (row triggers on UPDATE/DELETE and a
TRUNCATE trigger, ENABLE ALWAYS); ``ledger_app`` may INSERT and SELECT, ``ledger_readonly`` only
SELECT. The two-person rule is also a trigger (ENABLE ALWAYS): an approval by the requesting
credential, or after the request expired, is refused by PostgreSQL itself, whatever the
application does.

``ledger_app`` already has UPDATE on ``data_keys`` (0001; erasure sets ``wrapped`` to NULL and
``destroyed_at``), and data keys can never be deleted (0006).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = ("privacy_requests", "privacy_approvals")


def _ts(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "privacy_requests",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("log_id", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("scope_kind", sa.Text(), nullable=False),
        sa.Column("scope_id", sa.Text(), nullable=False),
        sa.Column("hold_id", sa.BigInteger(), nullable=True),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=False),
        _ts("requested_at"),
        _ts("expires_at"),
        sa.CheckConstraint(
            "action IN ('erase', 'hold', 'release')", name=op.f("ck_privacy_requests_action")
        ),
        sa.CheckConstraint(
            "scope_kind IN ('conversation', 'subject')",
            name=op.f("ck_privacy_requests_scope_kind"),
        ),
        sa.CheckConstraint(
            "(action = 'release') = (hold_id IS NOT NULL)",
            name=op.f("ck_privacy_requests_release_names_hold"),
        ),
        sa.CheckConstraint(
            "expires_at > requested_at", name=op.f("ck_privacy_requests_expires_after")
        ),
        sa.ForeignKeyConstraint(
            ["log_id"], ["logs.id"], name=op.f("fk_privacy_requests_log_id_logs")
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["credentials.id"],
            name=op.f("fk_privacy_requests_requested_by_credentials"),
        ),
        sa.ForeignKeyConstraint(
            ["hold_id"],
            ["privacy_requests.id"],
            name=op.f("fk_privacy_requests_hold_id_privacy_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_requests")),
    )
    op.create_index("ix_privacy_requests_log_id_action", "privacy_requests", ["log_id", "action"])
    op.create_table(
        "privacy_approvals",
        sa.Column("request_id", sa.BigInteger(), nullable=False),
        sa.Column("approved_by", sa.Integer(), nullable=False),
        _ts("approved_at"),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["privacy_requests.id"],
            name=op.f("fk_privacy_approvals_request_id_privacy_requests"),
        ),
        sa.ForeignKeyConstraint(
            ["approved_by"],
            ["credentials.id"],
            name=op.f("fk_privacy_approvals_approved_by_credentials"),
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_privacy_approvals")),
    )
    # No foreign key: data keys are inserted under the sequencer's round trip, and a NULL
    # reference would still queue a check per row; the erasure writes it in the same
    # transaction as the request's approval.
    op.add_column("data_keys", sa.Column("erasure_request_id", sa.BigInteger(), nullable=True))

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
    op.execute(
        """
        GRANT USAGE ON SEQUENCE privacy_requests_id_seq TO ledger_app;

        -- NIST AU-9(5): a second person approves, before the request expires.
        CREATE FUNCTION ledger_privacy_approval_rule() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            request privacy_requests%ROWTYPE;
        BEGIN
            SELECT * INTO request FROM privacy_requests WHERE id = NEW.request_id;
            IF request.requested_by = NEW.approved_by THEN
                RAISE EXCEPTION 'ledger: privacy request % cannot be approved by its requester',
                    NEW.request_id USING ERRCODE = 'check_violation';
            END IF;
            IF NEW.approved_at > request.expires_at THEN
                RAISE EXCEPTION 'ledger: privacy request % expired at %',
                    NEW.request_id, request.expires_at USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER privacy_approvals_two_person BEFORE INSERT ON privacy_approvals
            FOR EACH ROW EXECUTE FUNCTION ledger_privacy_approval_rule();
        ALTER TABLE privacy_approvals ENABLE ALWAYS TRIGGER privacy_approvals_two_person;
        """
    )


def downgrade() -> None:
    raise RuntimeError("the ledger schema is append-only; downgrading would destroy evidence")
