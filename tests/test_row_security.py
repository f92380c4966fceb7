"""Tenant row-level security (migration 0011): under the application's own checks, PostgreSQL
itself admits only the session tenant's rows, so a query that forgets its tenant filter still
returns nothing of another tenant.

One world for the module: tenants A and B, each with an events log and its system log, filled
so that every tenant-bearing table holds rows of both (entries, payloads, tree nodes and data
keys written through the server running as ``ledger_app``, as in production; a key rotation, a
legal hold requested and approved, an anchoring, a witness cosignature, a writer key, the
console's search index). The
database's own superuser sees everything (row security never binds superusers); every check
below runs as ``ledger_app``, scoped the way the server scopes a request
(``unit_of_work(engine, tenant=...)``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError

from ledger.settings import Settings
from ledger.storage.db import make_engine, unit_of_work
from ledger.storage.keystore import KeyRing
from tests.conftest import TEST_ACTOR, make_event, now

TENANT_TABLES = (
    # Every table that holds a tenant's rows (migration 0011's list, and any added later).
    "logs",
    "log_heads",
    "entries",
    "payloads",
    "tree_nodes",
    "checkpoints",
    "data_keys",
    "signing_keys",
    "key_rotations",
    "credentials",
    "anchorings",
    "witness_cosignatures",
    "privacy_requests",
    "privacy_approvals",
    "writer_keys",
    "console_conversations",  # 0013, the console's search index
    "console_daily",
    "console_index_heads",
)
GLOBAL_TABLES = (
    "alembic_version",
    "master_key_changes",
    "wrapped_secrets",
    "tenant_placements",  # 0014: the directory of which cluster holds each tenant and log
    "log_placements",
)
"""Tables of the whole installation, no tenant's: the schema version, the master key's history
and the secrets it wraps for the server itself."""


@dataclass
class World:
    tenants: tuple[str, str]
    logs: dict[str, list[str]]  # tenant -> its logs (events log first, then system log)
    admins: dict[str, tuple[str, str]]  # tenant -> two admin tokens
    app: Engine  # ledger_app, as the server connects


def _tenant_of_rows(owner: Engine) -> dict[str, Any]:
    """As the superuser: which tenant each log and each privacy request belongs to."""
    with owner.connect() as conn:
        log_tenant = dict(conn.execute(text("SELECT id, tenant FROM logs")).all())
        request_log = dict(conn.execute(text("SELECT id, log_id FROM privacy_requests")).all())
    return {"log": log_tenant, "request": request_log}


def row_tenant(table: str, row: dict[str, Any], of: dict[str, Any]) -> str:
    """Whose a row is, found independently of the policies."""
    if table == "logs":
        return str(row["tenant"])
    if "log_id" in row:
        return str(of["log"][row["log_id"]])
    if table == "privacy_approvals":
        return str(of["log"][of["request"][row["request_id"]]])
    raise AssertionError(f"no way to tell the tenant of a row of {table}: say it here")


@pytest.fixture(scope="module")
def world(settings: Settings, engine: Engine, db_url: str) -> Iterator[World]:
    from api.app import create_app
    from ledger.services.admin.credentials import create_credential
    from ledger.services.admin.logs import create_log
    from ledger.services.admin.signing_keys import rotate_signing_key
    from ledger.storage.anchorings import insert_anchoring, insert_cosignature
    from ledger.storage.checkpoints import latest_checkpoint
    from ledger.storage.logs import get_log
    from ledger.storage.writer_keys import insert_writer_key

    keys = KeyRing.from_master(settings.master_key_bytes)
    tag = secrets.token_hex(4)
    tenants = (f"rls-{tag}-a", f"rls-{tag}-b")
    logs: dict[str, list[str]] = {}
    admins: dict[str, tuple[str, str]] = {}
    writers: dict[str, str] = {}
    with unit_of_work(engine) as conn:
        for tenant in tenants:
            log_id = f"{tenant}-log"
            create_log(
                conn,
                keys,
                log_id,
                origin_prefix=settings.origin_prefix,
                actor=TEST_ACTOR,
                now=now(),
                tenant=tenant,
            )
            logs[tenant] = [log_id, f"{tenant}.system"]

            def credential(role: str, log_id: str = log_id) -> Any:
                return create_credential(
                    conn, keys, log_id=log_id, role=role, label="rls", actor=TEST_ACTOR, now=now()
                )

            writer = credential("writer")
            writers[tenant] = writer.token
            admins[tenant] = (credential("admin").token, credential("admin").token)
            rotate_signing_key(conn, keys, get_log(conn, log_id), now=now(), actor=TEST_ACTOR)
            insert_writer_key(
                conn,
                log_id=log_id,
                credential_id=writer.id,
                kid=f"k-{tenant}",
                public_key=secrets.token_bytes(32),
                added_at=now(),
            )

    app_settings = settings.model_copy(
        update={"db_role": "ledger_app", "auth_failures_per_window": 1_000_000}
    )
    with TestClient(create_app(app_settings)) as client:
        for tenant in tenants:
            log_id = logs[tenant][0]
            r = client.post(
                f"/v1/logs/{log_id}/events",
                json={"events": [make_event("c-1", n) for n in range(3)]},
                headers={"Authorization": f"Bearer {writers[tenant]}"},
            )
            assert r.status_code == 201, r.text
            first, second = admins[tenant]
            r = client.post(
                f"/v1/logs/{log_id}/holds",
                json={"conversation": "c-1", "legal_basis": "litigation", "reference": "r-1"},
                headers={"Authorization": f"Bearer {first}"},
            )
            assert r.status_code == 202, r.text
            r = client.post(
                f"/v1/logs/{log_id}/privacy-requests/{r.json()['id']}/approve",
                headers={"Authorization": f"Bearer {second}"},
            )
            assert r.status_code == 200, r.text
            # The console's search index (0013) gets this tenant's rows.
            r = client.get(
                f"/v1/logs/{log_id}/overview", headers={"Authorization": f"Bearer {first}"}
            )
            assert r.status_code == 200, r.text

    with unit_of_work(engine) as conn:
        for tenant in tenants:
            log_id = logs[tenant][0]
            cp = latest_checkpoint(conn, log_id)
            insert_anchoring(
                conn, log_id, sink="dir:/rls", size=cp.size, root=cp.root, anchored_at=now()
            )
            insert_cosignature(
                conn,
                log_id,
                witness="witness.example",
                size=cp.size,
                root=cp.root,
                line="— witness.example AAAA",
                timestamp=1,
            )
    app = make_engine(db_url, role="ledger_app", pool_size=1)
    yield World(tenants, logs, admins, app)
    app.dispose()


def _rows(conn: Any, table: str) -> list[dict[str, Any]]:
    """``SELECT *`` with no ``WHERE``: the query that forgot its tenant filter."""
    return [dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {table}"))]


def test_every_tenant_bearing_table_is_under_row_security(engine: Engine) -> None:
    with engine.connect() as conn:
        tables = conn.execute(
            text(
                "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
                " (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)"
                " FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
                " AND c.relkind = 'r'"
            )
        ).all()
    protected = {name for name, enabled, forced, policies in tables if enabled and forced}
    assert set(TENANT_TABLES) <= protected
    # A new table is either some tenant's (then under row security, and listed above) or
    # the installation's: nothing is left unsaid.
    assert {name for name, *_ in tables} - set(TENANT_TABLES) == set(GLOBAL_TABLES)
    assert all(policies == 1 for name, _, _, policies in tables if name in protected)


def test_a_query_forgetting_its_tenant_filter_returns_nothing_of_another_tenant(
    world: World, engine: Engine
) -> None:
    of = _tenant_of_rows(engine)
    with engine.connect() as conn:  # the superuser sees both tenants in every table
        for table in TENANT_TABLES:
            owners = {row_tenant(table, row, of) for row in _rows(conn, table)}
            assert set(world.tenants) <= owners, f"{table}: the test needs rows of both tenants"
    for tenant in world.tenants:
        with unit_of_work(world.app, tenant=tenant) as conn:
            for table in TENANT_TABLES:
                rows = _rows(conn, table)
                owners = {row_tenant(table, row, of) for row in rows}
                assert owners == {tenant}, f"{table} as {tenant}: rows of {owners}"


def test_a_session_with_no_tenant_sees_nothing(world: World) -> None:
    with unit_of_work(world.app) as conn:
        for table in TENANT_TABLES:
            assert _rows(conn, table) == [], table


def test_the_scope_ends_with_its_transaction(world: World) -> None:
    """The one pooled connection served tenant A just before: nothing of A stays on it."""
    a, _ = world.tenants
    with unit_of_work(world.app, tenant=a) as conn:
        assert _rows(conn, "entries")
    with unit_of_work(world.app) as conn:
        assert _rows(conn, "entries") == []
        assert conn.execute(text("SELECT current_setting('ledger.scope', true)")).scalar() in (
            None,
            "",
        )


def test_writing_another_tenants_rows_is_refused(world: World, engine: Engine) -> None:
    a, b = world.tenants
    b_log = world.logs[b][0]
    refused = "row-level security"
    with pytest.raises(ProgrammingError, match=refused), unit_of_work(world.app, tenant=a) as conn:
        conn.execute(
            text("INSERT INTO logs (id, origin, tenant, kind) VALUES (:id, :id, :t, 'events')"),
            {"id": f"{b}-planted", "t": b},
        )
    with pytest.raises(ProgrammingError, match=refused), unit_of_work(world.app, tenant=a) as conn:
        conn.execute(
            text(
                "INSERT INTO entries (log_id, seq, leaf_hash, entry, source, event_id, event_type,"
                " conversation_id, received_at, request_digest)"
                " VALUES (:log, 1000000, '\\x00', '\\x00', 's', 'e', 't', 'c', now(), '\\x00')"
            ),
            {"log": b_log},
        )
    # Moving one's own row over to the other tenant is refused too (WITH CHECK).
    with pytest.raises(ProgrammingError, match=refused), unit_of_work(world.app, tenant=a) as conn:
        conn.execute(
            text("UPDATE credentials SET log_id = :b WHERE log_id = :a"),
            {"a": world.logs[a][0], "b": b_log},
        )
    # Another tenant's rows cannot be updated: there are none, as far as this session knows.
    with unit_of_work(world.app, tenant=a) as conn:
        revoked = conn.execute(
            text("UPDATE credentials SET revoked_at = now() WHERE log_id = :b"), {"b": b_log}
        )
        assert revoked.rowcount == 0
        moved = conn.execute(
            text("UPDATE log_heads SET size = size WHERE log_id = :b"), {"b": b_log}
        )
        assert moved.rowcount == 0
    with engine.connect() as conn:
        active = conn.execute(
            text("SELECT count(*) FROM credentials WHERE log_id = :b AND revoked_at IS NULL"),
            {"b": b_log},
        ).scalar()
    assert active == 3


def test_a_system_component_sees_every_tenant(world: World, engine: Engine) -> None:
    of = _tenant_of_rows(engine)
    with unit_of_work(world.app, system="anchoring") as conn:
        owners = {row_tenant("entries", row, of) for row in _rows(conn, "entries")}
    assert set(world.tenants) <= owners
    with (
        pytest.raises(ValueError, match="not a system component"),
        unit_of_work(world.app, system="requests"),
    ):
        pass
    with (
        pytest.raises(ValueError, match="tenant or to a system component"),
        unit_of_work(world.app, tenant="a", system="operator"),
    ):
        pass


def test_authentication_and_the_log_directory_look_across_tenants(world: World) -> None:
    """Before a request's tenant is known: its credential by token hash, its log by id, through
    the two functions that may (and they return nothing else)."""
    from ledger.services.admin.credentials import authenticate
    from ledger.storage.logs import find_log, log_directory

    a, b = world.tenants
    with unit_of_work(world.app) as conn:
        principal = authenticate(conn, world.admins[b][0])
        assert principal.log_id == world.logs[b][0]
        assert log_directory(conn, world.logs[b][0]).tenant == b
        assert _rows(conn, "credentials") == []  # and the session is as unscoped as before
    with unit_of_work(world.app, tenant=a) as conn:
        assert find_log(conn, world.logs[b][0]) is None  # an ordinary read stays in its tenant
        assert log_directory(conn, world.logs[b][0]).tenant == b
        # The scope the functions raise is theirs alone.
        assert {r["tenant"] for r in _rows(conn, "logs")} == {a}


def test_the_server_as_ledger_app_serves_each_tenant_its_own(
    world: World, settings: Settings
) -> None:
    """The application's answers are unchanged under row security: an admin of A lists A's
    holds, and is refused B's log (403) exactly as without it."""
    a, b = world.tenants
    app_settings = settings.model_copy(update={"db_role": "ledger_app"})
    from api.app import create_app

    with TestClient(create_app(app_settings)) as client:
        auth = {"Authorization": f"Bearer {world.admins[a][0]}"}
        r = client.get(f"/v1/logs/{world.logs[a][0]}/holds", headers=auth)
        assert r.status_code == 200, r.text
        assert len(r.json()["holds"]) == 1
        r = client.get(f"/v1/logs/{world.logs[b][0]}/holds", headers=auth)
        assert r.status_code == 403, r.text
        r = client.get(f"/v1/logs/{world.logs[b][0]}/checkpoint")  # public: B's own tenant
        assert r.status_code == 200, r.text


def test_superusers_are_never_bound(world: World, engine: Engine) -> None:
    """Why the server must not run as a superuser (``LEDGER_DB_ROLE``): PostgreSQL never applies
    row security to one, whatever the session says."""
    with unit_of_work(engine, tenant=world.tenants[0]) as conn:
        tenants = {r["tenant"] for r in _rows(conn, "logs")}
    assert set(world.tenants) <= tenants
    with engine.connect() as conn:
        assert conn.execute(
            text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        ).scalar()


def test_an_owner_that_is_not_a_superuser_is_bound_and_its_commands_are_the_operators(
    admin_url: str, ledger_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production's schema owner is an ordinary role: ``FORCE ROW LEVEL SECURITY`` binds it
    (unscoped, it sees nothing), its migrations run (``system:migrations``), and the ``ledger``
    commands it runs span tenants as the operator (``system:operator``)."""
    from sqlalchemy.engine import make_url

    from ledger.storage.db import sqlalchemy_url, upgrade_schema
    from tests.conftest import drop_database

    name = f"ledger_test_owner_{secrets.token_hex(3)}"
    admin = sqlalchemy_url(admin_url).replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ledger_test_owner')"
            " THEN CREATE ROLE ledger_test_owner LOGIN NOSUPERUSER; END IF; END $$"
        )
        conn.execute(f'CREATE DATABASE "{name}" OWNER ledger_test_owner')
    url = (
        make_url(sqlalchemy_url(admin_url))
        .set(database=name, username="ledger_test_owner", password=None)
        .render_as_string(hide_password=False)
    )
    try:
        upgrade_schema(url)
        monkeypatch.setenv("LEDGER_DATABASE_URL", url)
        for tenant in ("acme", "globex"):
            code, _, err = ledger_cli("logs", "create", f"{tenant}-support", "--tenant", tenant)
            assert code == 0, err
        code, out, err = ledger_cli("logs", "list")
        assert code == 0, err
        for log_id in ("acme-support", "acme.system", "globex-support", "globex.system"):
            assert log_id in out
        owner = make_engine(url, pool_size=1)
        try:
            with unit_of_work(owner) as conn:
                assert _rows(conn, "logs") == []
                assert _rows(conn, "checkpoints") == []
            with unit_of_work(owner, tenant="acme") as conn:
                assert {r["id"] for r in _rows(conn, "logs")} == {"acme-support", "acme.system"}
        finally:
            owner.dispose()
    finally:
        drop_database(admin_url, name)
