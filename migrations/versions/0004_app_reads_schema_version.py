"""The application role may read ``alembic_version``: ``ledger serve`` checks the schema is at
head before it starts, as the application user that may not change it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("GRANT SELECT ON alembic_version TO ledger_app, ledger_readonly")


def downgrade() -> None:
    op.execute("REVOKE SELECT ON alembic_version FROM ledger_app")
