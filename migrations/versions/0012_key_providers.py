"""Master keys by id (issue 14.8): which master key wrapped each key, so a rotation re-wraps
online, resumes after a crash and can prove when nothing is left under the old key.

- ``data_keys.master_key_id``, ``signing_keys.master_key_id``: the provider key id
  (``ledger.keys``) of the master key that wrapped the row; NULL for rows wrapped before this
  migration (any configured key that opens them: AES-GCM authenticates, a wrong key fails).
- ``wrapped_secrets``: secrets the ledger keeps wrapped rather than derives from the master
  key, which a KMS never hands out: the card guard's fingerprint key (``pan-fingerprint``).
- ``master_key_changes``: append-only, which master key became the one new keys are wrapped
  under (``activated``: a rotation started), which keys that rotation replaces
  (``superseded``), and which was retired (nothing wrapped under it any more). Servers follow
  the latest activation they hold the key for.

Why the re-wrap is an UPDATE of the key rows, not a new row per wrapping: the point of
rotating a master key (often: it may have leaked) is that the old key opens nothing any more.
A wrapped copy kept under the old key would still open everything to whoever holds it and a
backup; and an erasure must destroy every copy of a data key, which an insert-only table of
copies could not. The key tables were never evidence tables: ``data_keys`` is mutable already
(an erasure or retention run destroys ``wrapped``), ``signing_keys`` lets ``retired_at`` be set.
Both now get a trigger (ENABLE ALWAYS) that allows exactly those changes and the re-wrap, which
may replace only the wrapped bytes and ``master_key_id`` and never brings a destroyed key back.
Evidence (entries, payloads, tree nodes, checkpoints, rotations, privacy requests and
approvals, the system log) is not touched by a rotation, and its triggers are unchanged.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE data_keys ADD COLUMN master_key_id text;
        ALTER TABLE signing_keys ADD COLUMN master_key_id text;

        CREATE TABLE wrapped_secrets (
            name text NOT NULL,
            master_key_id text,
            wrapped bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_wrapped_secrets PRIMARY KEY (name)
        );
        CREATE TABLE master_key_changes (
            id bigserial NOT NULL,
            master_key_id text NOT NULL,
            change text NOT NULL,
            changed_at timestamptz NOT NULL,
            actor text NOT NULL,
            CONSTRAINT pk_master_key_changes PRIMARY KEY (id),
            CONSTRAINT ck_master_key_changes_change CHECK (change IN ('activated', 'superseded', 'retired'))
        );
        CREATE UNIQUE INDEX uq_master_key_changes_retired ON master_key_changes (master_key_id)
            WHERE change = 'retired';

        -- data_keys: two changes only. Destroying (erasure, retention): wrapped becomes NULL
        -- and destroyed_at is set. Re-wrapping (a master-key rotation): wrapped and
        -- master_key_id replaced, nothing else. A destroyed key never comes back.
        CREATE FUNCTION ledger_data_key_change_rule() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.wrapped IS NULL THEN
                RAISE EXCEPTION 'ledger: data key % is destroyed; it never changes again', OLD.id
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF NEW.wrapped IS NULL AND NEW.destroyed_at IS NOT NULL
               AND (NEW.id, NEW.log_id, NEW.scope, NEW.created_at, NEW.master_key_id)
                   IS NOT DISTINCT FROM
                   (OLD.id, OLD.log_id, OLD.scope, OLD.created_at, OLD.master_key_id) THEN
                RETURN NEW;
            END IF;
            IF NEW.wrapped IS NOT NULL AND NEW.master_key_id IS NOT NULL
               AND to_jsonb(NEW) - 'wrapped' - 'master_key_id'
                   = to_jsonb(OLD) - 'wrapped' - 'master_key_id' THEN
                RETURN NEW;
            END IF;
            RAISE EXCEPTION 'ledger: data keys may only be destroyed or re-wrapped'
                USING ERRCODE = 'insufficient_privilege';
        END $$;
        CREATE TRIGGER data_keys_change_rule BEFORE UPDATE ON data_keys
            FOR EACH ROW EXECUTE FUNCTION ledger_data_key_change_rule();
        ALTER TABLE data_keys ENABLE ALWAYS TRIGGER data_keys_change_rule;

        -- signing_keys: retired_at from NULL to a time, or the private half re-wrapped under
        -- another master key; nothing else ever changes (the public half is evidence).
        CREATE OR REPLACE FUNCTION ledger_signing_key_retire_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.retired_at IS NULL AND NEW.retired_at IS NOT NULL
               AND to_jsonb(NEW) - 'retired_at' = to_jsonb(OLD) - 'retired_at' THEN
                RETURN NEW;
            END IF;
            IF NEW.master_key_id IS NOT NULL
               AND to_jsonb(NEW) - 'sealed_private' - 'master_key_id'
                   = to_jsonb(OLD) - 'sealed_private' - 'master_key_id' THEN
                RETURN NEW;
            END IF;
            RAISE EXCEPTION 'ledger: signing keys may only be retired or re-wrapped, never changed'
                USING ERRCODE = 'insufficient_privilege';
        END $$;

        -- wrapped_secrets: only re-wrapped; never deleted.
        CREATE FUNCTION ledger_wrapped_secret_rewrap_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.master_key_id IS NOT NULL
               AND (NEW.name, NEW.created_at) IS NOT DISTINCT FROM (OLD.name, OLD.created_at) THEN
                RETURN NEW;
            END IF;
            RAISE EXCEPTION 'ledger: wrapped secrets may only be re-wrapped'
                USING ERRCODE = 'insufficient_privilege';
        END $$;
        CREATE TRIGGER wrapped_secrets_rewrap_only BEFORE UPDATE ON wrapped_secrets
            FOR EACH ROW EXECUTE FUNCTION ledger_wrapped_secret_rewrap_only();
        CREATE TRIGGER wrapped_secrets_no_delete BEFORE DELETE ON wrapped_secrets
            FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
        CREATE TRIGGER wrapped_secrets_no_truncate BEFORE TRUNCATE ON wrapped_secrets
            FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
        ALTER TABLE wrapped_secrets ENABLE ALWAYS TRIGGER wrapped_secrets_rewrap_only;
        ALTER TABLE wrapped_secrets ENABLE ALWAYS TRIGGER wrapped_secrets_no_delete;
        ALTER TABLE wrapped_secrets ENABLE ALWAYS TRIGGER wrapped_secrets_no_truncate;

        CREATE TRIGGER master_key_changes_no_update_delete
            BEFORE UPDATE OR DELETE ON master_key_changes
            FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
        CREATE TRIGGER master_key_changes_no_truncate BEFORE TRUNCATE ON master_key_changes
            FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
        ALTER TABLE master_key_changes ENABLE ALWAYS TRIGGER master_key_changes_no_update_delete;
        ALTER TABLE master_key_changes ENABLE ALWAYS TRIGGER master_key_changes_no_truncate;

        GRANT SELECT, INSERT, UPDATE ON wrapped_secrets TO ledger_app;
        GRANT SELECT, INSERT ON master_key_changes TO ledger_app;
        GRANT USAGE ON SEQUENCE master_key_changes_id_seq TO ledger_app;
        GRANT SELECT ON wrapped_secrets, master_key_changes TO ledger_readonly;
        """
    )


def downgrade() -> None:
    raise RuntimeError("the ledger schema is append-only; downgrading would destroy evidence")
