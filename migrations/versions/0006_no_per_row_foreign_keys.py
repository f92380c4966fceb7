"""Entries and payloads: no per-row foreign-key checks under the log's lock; data keys are
never deleted instead.

A foreign key costs PostgreSQL one lookup per inserted row (its RI trigger). The sequencer
writes entries and payloads while it holds the log's head-row lock, so every writer waits for
those lookups: with batches of 500 they took ~6 ms of each table's COPY (~12 of ~30 ms).
They guarded nothing that is not guarded otherwise:

* ``entries.log_id -> logs``: the sequencer writes only under the lock of the log's head row,
  which has its own foreign key to ``logs``, and ``logs`` rows are never deleted (trigger).
* ``payloads.data_key_id -> data_keys``: the id comes from ``data_keys`` in the same
  transaction. What the key protected was that a data key is never deleted outright (erasure
  destroys its key material and keeps the row). That is now a trigger, as for ``logs``,
  ``ENABLE ALWAYS``, so it holds even with ``session_replication_role = replica``, which
  switches foreign keys off. So the guard is stronger than before, and costs nothing on insert.

``ledger verify`` checks both links anyway: an entry's log is its chain, and a payload whose
data key is missing is reported as tampering.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("fk_entries_log_id_logs", "entries", type_="foreignkey")
    op.drop_constraint("fk_payloads_data_key_id_data_keys", "payloads", type_="foreignkey")
    op.execute(
        """
        CREATE TRIGGER data_keys_no_delete BEFORE DELETE ON data_keys
            FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
        CREATE TRIGGER data_keys_no_truncate BEFORE TRUNCATE ON data_keys
            FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
        ALTER TABLE data_keys ENABLE ALWAYS TRIGGER data_keys_no_delete;
        ALTER TABLE data_keys ENABLE ALWAYS TRIGGER data_keys_no_truncate;
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER data_keys_no_truncate ON data_keys")
    op.execute("DROP TRIGGER data_keys_no_delete ON data_keys")
    op.create_foreign_key(
        "fk_payloads_data_key_id_data_keys", "payloads", "data_keys", ["data_key_id"], ["id"]
    )
    op.create_foreign_key("fk_entries_log_id_logs", "entries", "logs", ["log_id"], ["id"])
