"""Retention policies (issue 14.4): placeholder, filled in by the retention work.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    raise RuntimeError("the ledger schema is append-only; downgrading would destroy evidence")
