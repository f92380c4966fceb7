"""Credential expiry: ``credentials.expires_at`` (NULL: never expires).

An expired credential is refused like a revoked one (``ledger.storage.credentials``); it is kept,
like every credential. A check keeps the expiry after the creation.

``ledger_app`` already has SELECT, INSERT and UPDATE on ``credentials`` (0001): table-wide
grants cover the new column.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("credentials", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        op.f("ck_credentials_expires_after"), "credentials", "expires_at > created_at"
    )


def downgrade() -> None:
    raise RuntimeError("the ledger schema is append-only; downgrading would destroy evidence")
