"""Logs over several PostgreSQL clusters: the placement table, and the fence a move leaves.

Every cluster is a whole ledger database (this schema, every migration); the *main* cluster
(``LEDGER_DATABASE_URL``) also holds the placement, which says which cluster holds each log:

- ``tenant_placements``: the cluster of each tenant. The tenant is the unit of placement: a
  tenant's logs and its system log share transactions (a credential and its
  ``credential.created``, an erasure and its record, a writer key and its record), which a
  single PostgreSQL transaction keeps atomic only on one cluster.
- ``log_placements``: each log's cluster, with its tenant; the composite foreign key holds every
  log on its tenant's cluster, and ``ON UPDATE CASCADE`` moves all of a tenant's logs in the one
  UPDATE that switches a move. A log with no row is on the main cluster (logs made before this
  migration, and a single-cluster installation that never placed anything).

Neither is a tenant's table under row security: like ``ledger_log_directory`` (0011) they are
the directory a server reads before it knows a request's tenant. ``ledger_app`` may only read
them; the operator's commands place logs and switch moves.

``log_heads.moved_to``: set on the cluster a tenant moved *away from*, in the transaction that
holds its logs' locks while the last rows are copied. The sequencer reads it under the log's
lock and appends nothing to a log whose head names another cluster, so a server that still
routes by a placement it cached before the switch gets a 503 to retry, never a write the
new cluster lacks. ``ledger_logs_held`` answers the start-up check: which of these logs does
this cluster hold (and not as a moved-away copy)?

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE tenant_placements (
            tenant text NOT NULL,
            cluster text NOT NULL,
            placed_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_tenant_placements PRIMARY KEY (tenant),
            CONSTRAINT uq_tenant_placements_tenant_cluster UNIQUE (tenant, cluster)
        );
        CREATE TABLE log_placements (
            log_id text NOT NULL,
            tenant text NOT NULL,
            cluster text NOT NULL,
            placed_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_log_placements PRIMARY KEY (log_id),
            CONSTRAINT fk_log_placements_tenant_cluster FOREIGN KEY (tenant, cluster)
                REFERENCES tenant_placements (tenant, cluster) ON UPDATE CASCADE
        );
        CREATE INDEX ix_log_placements_cluster ON log_placements (cluster);
        GRANT SELECT ON tenant_placements, log_placements TO ledger_app, ledger_readonly;

        ALTER TABLE log_heads ADD COLUMN moved_to text;

        CREATE FUNCTION ledger_logs_held(log_ids text[]) RETURNS SETOF text
            LANGUAGE plpgsql
            AS $$
            DECLARE
                caller text := current_setting('ledger.scope', true);
            BEGIN
                PERFORM set_config('ledger.scope', 'system:directory', true);
                RETURN QUERY SELECT h.log_id FROM log_heads h
                    WHERE h.log_id = ANY ($1) AND h.moved_to IS NULL;
                PERFORM set_config('ledger.scope', coalesce(caller, ''), true);
            END $$;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP FUNCTION ledger_logs_held(text[]);
        ALTER TABLE log_heads DROP COLUMN moved_to;
        DROP TABLE log_placements;
        DROP TABLE tenant_placements;
        """
    )
