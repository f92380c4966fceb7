"""``ledger serve``: the HTTP API, on an embedded PostgreSQL when none is configured."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

from ledger.cli.common import (
    add_command,
    database_url,
    dispose_engines,
    engine,
    key_ring,
    now,
    operator,
)
from ledger.cli.errors import EXIT_FAILED, EXIT_OK
from ledger.domain import MAIN_CLUSTER
from ledger.errors import ConfigurationError, StoreUnavailable
from ledger.settings import Settings

APP = "api.main:create_app_from_env"
"""The ASGI application factory every worker serves, named, not imported: the HTTP shell sits on
top of the ledger (``api`` imports ``ledger``, never the reverse), and uvicorn imports it in each
worker."""


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from ledger.storage.db import schema_is_current, upgrade_schema

    embedded = settings.database_url is None
    if embedded:
        pgdata = (settings.data_dir / "pgdata").resolve()
        first = "creating" if not pgdata.is_dir() else "starting"
        _progress(f"{first} the embedded PostgreSQL in {pgdata}…")
    url = database_url(settings, setup=True)
    if embedded or settings.migrate_on_start:
        _progress("bringing the database schema up to date (migrations)…")
        upgrade_schema(url)
    elif not schema_is_current(url):
        # Production: migrations run as the schema owner (`ledger db upgrade`), the server as
        # the application role, which may not change the schema.
        raise ConfigurationError(
            "the database schema is not at the newest migration; run "
            "`ledger db upgrade` as the schema owner, then start again"
        )
    _check_clusters(settings)
    host, port = args.host or settings.host, args.port or settings.port
    if args.demo:
        _demo_setup(settings, port)
    os.environ["LEDGER_DATABASE_URL"] = url  # worker processes read their settings from here
    if embedded and not settings.db_role:
        # The embedded database's user is a superuser, which row security never binds
        # (migration 0011): serve as the application role, as production does.
        os.environ["LEDGER_DB_ROLE"] = "ledger_app"
    # The start-up checks' and the demo's connections: none of them serves a request.
    dispose_engines()
    workers = args.workers or settings.workers
    print(
        f"ledger listening on http://{host}:{port} with {workers} worker(s)"
        " (auditor console at /console/, OpenAPI at /docs)",
        file=sys.stderr,
    )
    if workers > 1:
        # Our own supervisor, not uvicorn's: it deals connections to workers in turn
        # (ledger/server/workers.py says why). It stops on SIGTERM and returns.
        from ledger.server import workers as pool

        try:
            status = pool.serve(APP, host=host, port=port, workers=workers)
        finally:
            _say_stopped(url)
        return EXIT_OK if status == 0 else EXIT_FAILED
    # uvicorn re-raises SIGTERM once it has shut down; with the default handler the process
    # would die before the embedded PostgreSQL is stopped. Exit normally instead.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run(APP, factory=True, host=host, port=port, log_level="warning", access_log=False)
    finally:
        _say_stopped(url)
    return EXIT_OK


def _check_clusters(settings: Settings) -> None:
    """Before listening: every other cluster (``LEDGER_CLUSTERS``) that answers is at the newest
    migration, and the placement table tells the truth about each
    (``ledger.services.admin.placement``). Either failure is a ``ConfigurationError`` the
    command prints and exits 2 on: a server that would answer from the wrong database does not
    start. A cluster that does not answer only costs its own logs (503) until it does."""
    from ledger.cli.common import cluster_urls
    from ledger.services.admin.placement import check_reachable_placement
    from ledger.storage.db import schema_is_current

    clusters = cluster_urls(settings)
    for name, cluster in clusters.items():
        if name == MAIN_CLUSTER:
            continue
        try:
            current = schema_is_current(cluster.url)
        except StoreUnavailable:
            continue  # check_reachable_placement says so
        if not current:
            raise ConfigurationError(
                f"cluster {name!r}'s schema is not at the newest migration; run "
                "`ledger db upgrade` (it upgrades every cluster), then start again"
            )
    check_reachable_placement(
        engine(settings), {name: engine(settings, cluster=name) for name in clusters}
    )


_STARTED = time.monotonic()


def _progress(what: str) -> None:
    """One line of what a start is doing, with the seconds since the command started: the
    first start creates a database and fills the demo log, and must not look stuck."""
    print(f"[{time.monotonic() - _STARTED:4.1f} s] {what}", file=sys.stderr, flush=True)


def _say_stopped(url: str) -> None:
    """The last line an operator sees when the server stops (Ctrl-C, SIGTERM)."""
    from ledger.embedded import is_embedded

    also = "; the embedded PostgreSQL stops with it" if is_embedded(url) else ""
    print(f"ledger stopped{also}", file=sys.stderr)


DEMO_CONVERSATIONS = 100


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _demo_setup(settings: Settings, port: int) -> None:
    import getpass

    from ledger.services.demo.fill import prepare_demo_log

    _progress(f"preparing log 'demo' ({DEMO_CONVERSATIONS} sample conversations when empty)…")
    demo = prepare_demo_log(
        engine(settings, setup=True),
        key_ring(settings, setup=True),
        origin_prefix=settings.origin_prefix,
        conversations=DEMO_CONVERSATIONS,
        actor=operator(),
        operator="cli:" + getpass.getuser(),
        now=now,
    )
    conversation = demo.sample_conversation or "c-2f9e1a"
    base = f"http://127.0.0.1:{port}/v1/logs/{demo.log.id}"
    print(
        f"""
demo log '{demo.log.id}' is ready. Try, in another terminal:

  export WRITER={demo.writer_token}
  export AUDITOR={demo.auditor_token}
  curl -s -X POST {base}/events \\
       -H "Authorization: Bearer $WRITER" -H 'Content-Type: application/json' \\
       --data @../shared/examples/escalated-conversation.json
  curl -s {base}/checkpoint
  curl -s -H "Authorization: Bearer $AUDITOR" '{base}/entries?start=0&end=2'
  curl -s -H "Authorization: Bearer $AUDITOR" {base}/conversations/{conversation}/trail
  ledger trail {demo.log.id} {conversation}        # the same trail, for a terminal
""",
        file=sys.stderr,
    )


def register(sub: Any) -> None:
    serve = add_command(
        sub, "serve", cmd_serve, "run the HTTP API (embedded PostgreSQL if none set)"
    )
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument(
        "--demo",
        action="store_true",
        help="create log 'demo' (filled with sample conversations when empty) and "
        "print a writer and an auditor token",
    )
