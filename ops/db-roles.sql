-- Login users for the two roles the migrations create (0001: ledger_app, ledger_readonly).
-- Run as the schema owner, after `ledger db upgrade`, once per database:
--
--   psql "$OWNER_URL" -v ON_ERROR_STOP=1 \
--        -v app_password="$APP_PASSWORD" -v verifier_password="$VERIFIER_PASSWORD" \
--        -f ops/db-roles.sql
--
-- handoff_app       the API server: INSERT + SELECT on the append-only tables, nothing else.
--                   Use it in LEDGER_DATABASE_URL of `ledger serve` (the schema must already be
--                   at head: serve then only reads alembic_version).
-- handoff_verifier  `ledger verify`: SELECT only, every transaction read-only. It cannot write,
--                   so verification runs are recorded through the server (LEDGER_VERIFY_RECORD_*).
--
-- Re-running is safe: users are created once, passwords (re)set, grants repeated.

SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'handoff_app') AS create_app \gset
\if :create_app
CREATE ROLE handoff_app LOGIN IN ROLE ledger_app;
\endif
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'handoff_verifier') AS create_verifier \gset
\if :create_verifier
CREATE ROLE handoff_verifier LOGIN IN ROLE ledger_readonly;
\endif

ALTER ROLE handoff_app PASSWORD :'app_password';
ALTER ROLE handoff_verifier PASSWORD :'verifier_password';
ALTER ROLE handoff_verifier SET default_transaction_read_only = on;
ALTER ROLE handoff_verifier SET statement_timeout = '15min';

GRANT CONNECT ON DATABASE :"DBNAME" TO handoff_app, handoff_verifier;
GRANT USAGE ON SCHEMA public TO ledger_app, ledger_readonly;
-- Alembic reads its version table when the server starts (the schema must be at head).
GRANT SELECT ON alembic_version TO ledger_app, ledger_readonly;
