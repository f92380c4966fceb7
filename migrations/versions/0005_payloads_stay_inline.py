"""Sealed payloads stay in the payloads row and are never compressed.

A row longer than ~2 KB goes through PostgreSQL's toaster, which first tries to compress its
largest value and then moves it out of line to the TOAST table. A sealed payload is AES-GCM
output: compression always fails (CPU spent for nothing), and out of line every payload costs an
extra TOAST index entry and heap tuple on insert, and a TOAST index lookup on every read — the
verifier reads every payload. With ``toast_tuple_target`` at its maximum a payload row up to
~8 KB stays inline; ``STORAGE EXTERNAL`` lets larger ones (events up to 1 MiB) go out of line
without a compression attempt. Rows written before this revision keep their storage.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE payloads SET (toast_tuple_target = 8160)")
    op.execute("ALTER TABLE payloads ALTER COLUMN sealed SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.execute("ALTER TABLE payloads ALTER COLUMN sealed SET STORAGE EXTENDED")
    op.execute("ALTER TABLE payloads RESET (toast_tuple_target)")
