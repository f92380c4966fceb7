"""Tenant row-level security (issue 14.5): defence in depth under the application's own checks.

The application already refuses every cross-tenant call (``ledger.services.access``: a
credential holds its role on its own log only; ``tests/test_permission_matrix.py``). This
revision makes PostgreSQL refuse them too, so a query that forgets its tenant filter still
returns nothing of another tenant.

**How a session says whose it is.** One setting, ``ledger.scope``, set by the unit of work
(``ledger.storage.db.unit_of_work``) as its first statement with ``SET LOCAL``, so nothing
survives the transaction into the connection pool:

- ``tenant:<tenant>``: the tenant a request serves, the tenant of the log it names, which
  authorization has tied to the principal (the group committer: the tenant of the log a batch
  appends to). Every table below admits only that tenant's rows, for reading and for writing
  (a policy ``FOR ALL`` with the same ``USING`` and ``WITH CHECK``: another tenant's row is
  neither seen nor inserted nor updated, nor can a row be moved to another tenant).
- ``system:<component>``: a component that spans tenants by design. The set is small and each
  member is named where it opens its unit of work or its engine
  (``ledger.storage.db.SYSTEM_COMPONENTS``): ``operator`` (the ``ledger`` commands an operator
  runs as the schema owner: logs, credentials and keys, ``anchor``, ``export``, ``trail``,
  ``demo``), ``verifier`` (``ledger verify`` and its parallel parts: every log), ``anchoring``
  (the server's anchoring schedule: every log's checkpoints) and ``migrations``
  (``migrations/env.py``: a data migration must see every row).

A session with neither sees nothing and can write nothing (fail closed): no tenant is matched.

**Why a setting, not a role with BYPASSRLS.** Creating a BYPASSRLS role needs a superuser, which
the schema owner need not be, and the server would have to be a member of it anyway (it runs the
sequencer and the requests in one process). So what is enforced here is a guard against the
application's own mistakes (a forgotten ``WHERE``, a wrong join, a cached id of another tenant),
not against someone who can send arbitrary SQL as the application role: such a one can set the
tenant, as it could read every table before this revision. The ledger's integrity does not rest
on it (hashes, signatures and the append-only triggers do).

**Which roles it binds.** The policies are for every role (``PUBLIC``), and every table is
``FORCE ROW LEVEL SECURITY``, so they bind its owner too (a ``ledger serve`` or a ``ledger``
command connected as the schema owner). Only superusers and roles with BYPASSRLS are never bound
by row security, whatever is set: the server runs as ``ledger_app`` (``LEDGER_DB_ROLE``, or a
login role in it, ``ops/db-roles.sql``), and ``ledger serve`` on the embedded database, whose
user is a superuser, sets that role itself.

**Before the tenant is known.** Two lookups must cross tenants, and are the only functions that
do, each returning one row the caller already names:

- ``ledger_active_credential(token_hash, at)``: authentication, the active credential whose
  token hash the caller presented, with its log's tenant;
- ``ledger_log_directory(log_id)``: the log a path names (origin, tenant, kind, policy), which
  public reads (checkpoint, verifier keys) and authorization need first.

Each sets ``ledger.scope`` to ``system:directory`` for its one query and puts the caller's
back (a ``SET`` clause on the function would say it more briefly, but PostgreSQL lets only a
superuser attach a custom setting to a function, and the schema owner need not be one; if the
query fails, the transaction or savepoint that fails takes the change with it). They are not
``SECURITY DEFINER``: the exception is the scope, not a privilege (the application role may
read both tables anyway), and a definer would be the owner, whom ``FORCE`` binds too.

**Entries and payloads have no tenant column**: their tenant is their log's. The policy of every
table keyed by ``log_id`` is ``log_id IN (the session tenant's logs)``, which PostgreSQL plans as
one hashed subplan over ``logs`` (indexed by tenant here) per statement, probed once per row; in
system scope the ``OR`` stops before it. The scope is read in scalar subqueries,
``(SELECT ledger_system_scope())``, which PostgreSQL evaluates once per statement (an InitPlan)
instead of once per row: a trail's query (225 entries and their payloads, as ``ledger_app``
against a superuser, whom row security does not bind) went from 1.22-1.25x to 1.12-1.16x. Every
query the ledger makes keeps its index (equality on text and integers is leakproof, so the
policy does not stand between a query's conditions and its index). Ingest and trails through
the server: README, Performance.

**Adding a table.** ``SELECT ledger_protect_tenant_rows('new_table')`` in a later revision (the
tenant is that of its ``log_id`` column), or ``SELECT ledger_protect_tenant_rows('new_table',
'<predicate: this row is the session tenant''s>')``, as 0013 does for the console's index; and
its name in ``TENANT_TABLES`` of ``tests/test_row_security.py``, which fails on any table that
is neither listed there nor one of the installation's own (``GLOBAL_TABLES``).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

OF_TENANT_LOG = "log_id IN (SELECT id FROM logs WHERE tenant = (SELECT ledger_current_tenant()))"
"""The row's log is one of the session tenant's logs."""

TENANT_TABLES: tuple[tuple[str, str], ...] = (
    # (table, when a row is the session tenant's)
    ("logs", "tenant = (SELECT ledger_current_tenant())"),
    ("log_heads", OF_TENANT_LOG),
    ("entries", OF_TENANT_LOG),
    ("payloads", OF_TENANT_LOG),
    ("tree_nodes", OF_TENANT_LOG),
    ("checkpoints", OF_TENANT_LOG),
    ("data_keys", OF_TENANT_LOG),
    ("signing_keys", OF_TENANT_LOG),
    ("key_rotations", OF_TENANT_LOG),
    ("credentials", OF_TENANT_LOG),
    ("anchorings", OF_TENANT_LOG),
    ("witness_cosignatures", OF_TENANT_LOG),
    ("privacy_requests", OF_TENANT_LOG),
    ("writer_keys", OF_TENANT_LOG),  # 0009
    (
        "privacy_approvals",
        "request_id IN (SELECT r.id FROM privacy_requests r JOIN logs l ON l.id = r.log_id"
        " WHERE l.tenant = (SELECT ledger_current_tenant()))",
    ),
)


def _literal(sql: str) -> str:
    return "'" + sql.replace("'", "''") + "'"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE INDEX ix_logs_tenant ON logs (tenant);

        -- NULL unless the scope is 'tenant:<tenant>' (unset, or '' after an earlier
        -- transaction's SET LOCAL: no tenant). Plain SQL expressions, inlined by PostgreSQL.
        CREATE FUNCTION ledger_current_tenant() RETURNS text
            LANGUAGE sql STABLE PARALLEL SAFE
            AS $$ SELECT CASE WHEN left(current_setting('ledger.scope', true), 7) = 'tenant:'
                         THEN substr(current_setting('ledger.scope', true), 8) END $$;

        CREATE FUNCTION ledger_system_scope() RETURNS boolean
            LANGUAGE sql STABLE PARALLEL SAFE
            AS $$ SELECT coalesce(left(current_setting('ledger.scope', true), 7) = 'system:',
                                  false) $$;

        CREATE FUNCTION ledger_protect_tenant_rows(
            tbl regclass, of_tenant text DEFAULT {_literal(OF_TENANT_LOG)}
        ) RETURNS void LANGUAGE plpgsql AS $$
        DECLARE
            admitted text := format('(SELECT ledger_system_scope()) OR (%s)', of_tenant);
        BEGIN
            EXECUTE format(
                'ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', tbl);
            EXECUTE format(
                'CREATE POLICY tenant_rows ON %s USING (%s) WITH CHECK (%s)',
                tbl, admitted, admitted);
        END $$;
        """
    )
    for table, of_tenant in TENANT_TABLES:
        op.execute(f"SELECT ledger_protect_tenant_rows({_literal(table)}, {_literal(of_tenant)})")
    op.execute(
        """
        CREATE FUNCTION ledger_active_credential(token_hash bytea, at timestamptz)
            RETURNS TABLE (id integer, log_id text, role text, label text,
                           expires_at timestamptz, tenant text)
            LANGUAGE plpgsql
            AS $$
            #variable_conflict use_column
            DECLARE
                caller text := current_setting('ledger.scope', true);
            BEGIN
                PERFORM set_config('ledger.scope', 'system:directory', true);
                RETURN QUERY
                    SELECT c.id, c.log_id, c.role, c.label, c.expires_at, l.tenant
                    FROM credentials c JOIN logs l ON l.id = c.log_id
                    WHERE c.token_hash = $1 AND c.revoked_at IS NULL
                      AND (c.expires_at IS NULL OR c.expires_at > $2);
                PERFORM set_config('ledger.scope', coalesce(caller, ''), true);
            END $$;

        CREATE FUNCTION ledger_log_directory(log_id text) RETURNS SETOF logs
            LANGUAGE plpgsql
            AS $$
            DECLARE
                caller text := current_setting('ledger.scope', true);
            BEGIN
                PERFORM set_config('ledger.scope', 'system:directory', true);
                RETURN QUERY SELECT * FROM logs l WHERE l.id = $1;
                PERFORM set_config('ledger.scope', coalesce(caller, ''), true);
            END $$;
        """
    )


def downgrade() -> None:
    raise RuntimeError("the ledger schema is append-only; downgrading would destroy evidence")
