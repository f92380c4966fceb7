"""Engines, the unit of work, and schema migration.

One transaction per unit of work, opened at the edge (a request handler, the group committer, a
CLI command); code below never commits. Two things code below may ask of the unit of work:

- ``after_commit(conn, fn)``: run ``fn`` once the transaction has committed, never if it rolls
  back (the sequencer caches the data keys it created only then);
- ``send_last_writes(conn, queue)``: the transaction's last writes, pipelined in one round trip.
  When the edge opened the unit of work with ``commit_with_last_writes=True``, the COMMIT rides
  in that same round trip: the group committer holds a log's lock across it, and on a busy
  machine every round trip under the lock is a thread wake-up. The edge decides; the unit of
  work commits.

Row security (migration 0011): the edge also says whose the unit of work is. ``tenant=``: a
request's, scoped to the tenant of the log it serves (every tenant-bearing table then admits only
that tenant's rows); ``system=``: one of the few components that span tenants by design
(``SYSTEM_COMPONENTS``). Neither: nothing is visible to a role row security binds (fail
closed). An engine made for one system component (``make_engine(system=...)``, e.g. the
``ledger`` commands' engine) carries that scope on every connection instead.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Connection, Engine, NullPool, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError

from ledger.errors import StoreUnavailable

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def sqlalchemy_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs (as libpq and pgserver print them) for psycopg 3,
    libpq's multi-host form (``postgresql://u@h1:p1,h2:p2/db?target_session_attrs=read-write``)
    included."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + _hosts_as_query(url[len(prefix) :])
    return url


def _hosts_as_query(rest: str) -> str:
    """libpq's host list ``u@h1:p1,h2:p2/db?…``, which SQLAlchemy's URL parser cannot read, as
    the query form it can, ``u@/db?host=h1:p1&host=h2:p2&…``: psycopg hands libpq the same list,
    which tries the hosts in order (failover, with ``target_session_attrs=read-write``)."""
    userinfo, hosts, tail = _split_hosts(rest)
    if len(hosts) == 1:
        return rest
    database, _, query = tail.partition("?")
    params = "&".join(f"host={host}" for host in hosts)
    return f"{userinfo}/{database}?{params}" + (f"&{query}" if query else "")


def _split_hosts(rest: str) -> tuple[str, list[str], str]:
    """A libpq URL after its ``scheme://`` as (``user@`` or "", its hosts, what follows the
    first ``/``: ``db?query``)."""
    authority, _, tail = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    return userinfo + at, hosts.split(","), tail


def hosts_of(url: str) -> list[str]:
    """The hosts (``host:port``) of a libpq URL, in order: one, or the several of its
    multi-host form (``postgresql://u@h1:p1,h2:p2/db``)."""
    return _split_hosts(url.partition("://")[2])[1]


def url_for_host(url: str, host: str) -> str:
    """``url`` naming ``host`` alone (one of ``hosts_of(url)``): same user, database and
    parameters, for a connection to that one server (each standby of a read URL is read on its
    own)."""
    scheme, _, rest = url.partition("://")
    userinfo, hosts, tail = _split_hosts(rest)
    if host not in hosts:
        raise ValueError(f"{host!r} is not one of the URL's hosts")
    return f"{scheme}://{userinfo}{host}/{tail}"


SYSTEM_COMPONENTS = frozenset({"operator", "verifier", "anchoring", "migrations"})
"""Who may span tenants (``ledger.scope = 'system:<name>'``), and nobody else: ``operator``, the
``ledger`` commands an operator runs (logs, credentials, keys, anchor, export, trail, demo);
``verifier``, ``ledger verify`` and its parallel parts; ``anchoring``, the server's anchoring
schedule (every log's checkpoints); ``migrations`` (``migrations/env.py``). Requests, the group
committer (each batch is one log's, so one tenant's) and the system log are tenant-scoped; the
two lookups made before a request's tenant is known are SQL functions of their own (0011)."""


def _set_scope(tenant: str | None, system: str | None, *, local: bool) -> sql.Composed:
    """The one setting row security reads (migration 0011): ``ledger.scope`` is
    ``tenant:<tenant>`` or ``system:<component>``. One setting, so one statement: a tenant's
    scope on a system component's engine replaces the engine's (and a statement is a round
    trip: pipelining it with the BEGIN measured slower than sending it alone)."""
    if (tenant is None) == (system is None):
        raise ValueError("a unit of work is scoped to a tenant or to a system component")
    if system is not None:
        if system not in SYSTEM_COMPONENTS:
            raise ValueError(f"{system!r} is not a system component ({sorted(SYSTEM_COMPONENTS)})")
        scope = f"system:{system}"
    else:
        if not tenant:
            raise ValueError("an empty tenant scopes nothing")
        scope = f"tenant:{tenant}"
    verb = sql.SQL("SET LOCAL" if local else "SET")
    return sql.SQL("{} ledger.scope = {}").format(verb, sql.Literal(scope))


def make_engine(
    url: str, *, role: str | None = None, pool_size: int = 8, system: str | None = None
) -> Engine:
    """An engine whose connections ``SET ROLE role`` (if given) and, with ``system``, belong to
    that system component (``SYSTEM_COMPONENTS``) for their whole life."""
    engine = create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per transaction. A dead connection fails its
        # transaction instead (503, or one retry in the committer), and SQLAlchemy then
        # invalidates the whole pool, so the next checkout reconnects.
        pool_pre_ping=False,
        pool_recycle=1800,
    )
    on_connect: list[sql.Composable] = []
    if role:
        # Least privilege: the server's connections act as e.g. ledger_app (INSERT/SELECT only).
        on_connect.append(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    if system is not None:
        on_connect.append(_set_scope(None, system, local=False))
    if on_connect:

        @event.listens_for(engine, "connect")
        def _set_up(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            with dbapi_conn.cursor() as cur:
                for statement in on_connect:
                    cur.execute(statement)
            dbapi_conn.commit()

    return engine


_COMMIT_WITH_LAST_WRITES = "ledger.commit_with_last_writes"
_AFTER_COMMIT = "ledger.after_commit"
_BEFORE_LAST_WRITES = "ledger.before_last_writes"
_READ_ONLY = "ledger.read_only"


@contextmanager
def unit_of_work(
    engine: Engine,
    *,
    tenant: str | None = None,
    system: str | None = None,
    commit_with_last_writes: bool = False,
) -> Iterator[Connection]:
    """A transaction: committed if the block returns, rolled back if it raises.

    ``tenant``: row security admits only that tenant's rows; ``system``: a system component's
    (``SYSTEM_COMPONENTS``), every tenant's; neither: the engine's own scope, if it has one, else
    none (nothing is visible). Set by one ``SET LOCAL``, the transaction's first statement (a
    round trip, ~20 µs on an idle machine), so it does not outlive the transaction; ``SET``
    takes no snapshot, so ``read_only`` may still follow.

    ``commit_with_last_writes``: the block ends with ``send_last_writes`` (the group committer's
    one append), and the COMMIT is sent with those writes. A database that cannot be reached
    becomes ``StoreUnavailable`` (503 + Retry-After).
    """
    scope = None if tenant is None and system is None else _set_scope(tenant, system, local=True)
    try:
        with engine.begin() as conn:
            conn.info[_COMMIT_WITH_LAST_WRITES] = commit_with_last_writes
            conn.info[_AFTER_COMMIT] = []
            try:
                if scope is not None:
                    driver_connection(conn).execute(scope)
                yield conn
            except (psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction):
                # psycopg's own error, from the raw connection (the scope, a pipeline, the
                # COMMIT sent with the last writes): SQLAlchemy never saw it, so it would pool
                # the broken connection again. Drop it; the caller gets StoreUnavailable (a
                # failover's first symptom: the group committer then retries, or looks up a
                # batch whose COMMIT was sent).
                conn.invalidate()
                raise
            except DBAPIError as exc:
                if isinstance(exc.orig, psycopg.errors.ReadOnlySqlTransaction):
                    # A server that no longer takes writes (a primary demoted, or a standby a
                    # pooled connection still points at during a failover): this connection
                    # will never write again. Drop it; the next one finds the primary
                    # (``target_session_attrs=read-write``).
                    conn.invalidate()
                raise
            finally:
                # The connection goes back to the pool: nothing of this unit of work may stay.
                # An invalidated one goes nowhere (and touching its info would raise, hiding
                # the connection error behind SQLAlchemy's PendingRollbackError).
                hooks: list[Callable[[], None]] = []
                if not conn.invalidated:
                    conn.info.pop(_COMMIT_WITH_LAST_WRITES, None)
                    conn.info.pop(_BEFORE_LAST_WRITES, None)
                    conn.info.pop(_READ_ONLY, None)
                    hooks = conn.info.pop(_AFTER_COMMIT, [])
        for hook in hooks:  # reached only once engine.begin() has committed
            hook()
    except OperationalError as exc:
        raise StoreUnavailable(f"database unavailable: {exc.orig}") from exc
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"database connection lost: {exc}") from exc
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        raise StoreUnavailable(f"database takes no writes now (a standby?): {exc}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StoreUnavailable(f"database connection lost: {exc.orig}") from exc
        if isinstance(exc.orig, psycopg.errors.ReadOnlySqlTransaction):
            raise StoreUnavailable(
                f"database takes no writes now (a standby?): {exc.orig}"
            ) from exc
        raise


def after_commit(conn: Connection, hook: Callable[[], None]) -> None:
    """Run ``hook`` once this unit of work has committed; never if it rolls back."""
    hooks: list[Callable[[], None]] | None = conn.info.get(_AFTER_COMMIT)
    if hooks is None:
        raise AssertionError("after_commit outside a unit of work")
    hooks.append(hook)


def before_last_writes(conn: Connection, hook: Callable[[], None]) -> None:
    """Run ``hook`` just before ``send_last_writes`` sends anything: once it has run, a lost
    connection may have lost only the COMMIT's reply (the group committer then checks what
    was stored)."""
    conn.info[_BEFORE_LAST_WRITES] = hook


def send_last_writes(conn: Connection, queue: Callable[[psycopg.Connection[Any]], None]) -> None:
    """Send the statements ``queue`` puts on the raw connection in one pipelined round trip,
    with the COMMIT when the unit of work was opened with ``commit_with_last_writes`` (then
    nothing may be written after them: it would not be part of the same transaction)."""
    hook: Callable[[], None] | None = conn.info.pop(_BEFORE_LAST_WRITES, None)
    if hook is not None:
        hook()
    pg = driver_connection(conn)
    with pg.pipeline():
        queue(pg)
        if conn.info.get(_COMMIT_WITH_LAST_WRITES):
            conn.commit()


def ping(engine: Engine) -> None:
    """One round trip to the database; ``StoreUnavailable`` if it does not answer."""
    with unit_of_work(engine) as conn:
        conn.exec_driver_sql("SELECT 1")


def read_only(conn: Connection, *, repeatable: bool = False) -> None:
    """Make this unit of work read-only (first statement of the transaction); ``repeatable``:
    one snapshot for all its reads, so a long check sees the log as of one moment."""
    if repeatable:
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    else:
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    conn.info[_READ_ONLY] = True


def is_read_only(conn: Connection) -> bool:
    """Whether this unit of work was made read-only (it may be on a standby): a read that would
    also write derived rows (the console's index) only reads then."""
    return bool(conn.info.get(_READ_ONLY))


def driver_connection(conn: Connection) -> psycopg.Connection[Any]:
    """psycopg's own connection under ``conn``: for pipelines and binary array parameters."""
    pg = conn.connection.driver_connection
    assert isinstance(pg, psycopg.Connection)
    return pg


def binary_cursor(conn: Connection) -> psycopg.Cursor[Any]:
    """A cursor on the raw connection that reads bytea and integers in binary (no hex text to
    parse: the verifier and exports read the log a chunk at a time through these)."""
    cur: psycopg.Cursor[Any] = driver_connection(conn).cursor(binary=True)
    return cur


def upgrade_schema(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def schema_is_current(url: str) -> bool:
    """Whether the database is at the newest migration (read-only: any role may ask)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return bool(MigrationContext.configure(conn).get_current_revision() == head)
    except OperationalError as exc:
        raise StoreUnavailable(f"database unavailable: {exc.orig}") from exc
    finally:
        engine.dispose()


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    # Alembic's default stdout is sys.stdout as it was when alembic was first imported (a
    # closed capture, under a test runner): name the current one.
    cfg = Config(stdout=sys.stdout)
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg
