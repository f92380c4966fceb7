"""Retention policies (issue 14.4): a change of a log's retention goes through the two-person
rule like an erasure, and a data key records what destroyed it.

- ``privacy_requests`` may now ask for ``retention`` (scope kind ``log``, the log itself) with
  ``retention_days``, the new period. Approved like any privacy request (a second admin, before
  expiry: migration 0007's trigger); a log's policy is the ``retention_days`` of its latest
  approved ``retention`` request, else what it was created with (``logs.policy``). Nothing is
  updated: ``logs`` stays INSERT-only for the application.
- ``data_keys.destroyed_by``: ``erasure`` (an approved erasure request,
  ``erasure_request_id``) or ``retention`` (``ledger retention run``); NULL while the key lives.
  Keys destroyed before this migration were destroyed by erasures.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE privacy_requests DROP CONSTRAINT ck_privacy_requests_action;
        ALTER TABLE privacy_requests ADD CONSTRAINT ck_privacy_requests_action
            CHECK (action IN ('erase', 'hold', 'release', 'retention'));
        ALTER TABLE privacy_requests DROP CONSTRAINT ck_privacy_requests_scope_kind;
        ALTER TABLE privacy_requests ADD CONSTRAINT ck_privacy_requests_scope_kind
            CHECK (scope_kind IN ('conversation', 'subject', 'log'));
        ALTER TABLE privacy_requests ADD COLUMN retention_days integer;
        ALTER TABLE privacy_requests ADD CONSTRAINT ck_privacy_requests_retention_names_days
            CHECK ((action = 'retention') = (retention_days IS NOT NULL)
                   AND (retention_days IS NULL OR retention_days > 0));

        ALTER TABLE data_keys ADD COLUMN destroyed_by text;
        UPDATE data_keys SET destroyed_by = 'erasure' WHERE wrapped IS NULL;
        ALTER TABLE data_keys ADD CONSTRAINT ck_data_keys_destroyed_by
            CHECK (destroyed_by IN ('erasure', 'retention'));
        """
    )


def downgrade() -> None:
    raise RuntimeError("the ledger schema is append-only; downgrading would destroy evidence")
