"""Writer keys (issue 18): placeholder, filled in by the writer-signature work.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    raise RuntimeError("the ledger schema is append-only; downgrading would destroy evidence")
