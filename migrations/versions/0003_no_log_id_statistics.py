"""No planner statistics on ``log_id``: every query plan stays an index probe of one log.

Statistics on ``log_id`` describe the logs that existed at the last ANALYZE. A log created
since then is estimated at a single row, so every index that starts with ``log_id`` looks
equally cheap, and PostgreSQL may pick the conversation index to look up ``(source, id)`` —
scanning the new log's whole index range for each event of each batch, a cost that grows with
the log until autovacuum's next ANALYZE (after 10% of the table has changed). Without
statistics on the column, equality on ``log_id`` gets the default selectivity and the index
matching the most conditions always wins: the unique ``(log_id, source, event_id)`` index for
idempotency lookups, ``(log_id, conversation_id, seq)`` for trails, the primary keys for ranges.
(Shown with EXPLAIN on a 1.1M-entry database in the issue note.) A database that was already
analyzed keeps its old statistics rows until a superuser removes them:
``DELETE FROM pg_statistic WHERE starelid = 'entries'::regclass AND staattnum = 1``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("entries", "payloads", "tree_nodes", "checkpoints")


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN log_id SET STATISTICS 0")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN log_id SET STATISTICS -1")
