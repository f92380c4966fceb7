"""Tenant row-level security (issue 14.5): placeholder, filled in by the RLS work.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    raise RuntimeError("the ledger schema is append-only; downgrading would destroy evidence")
