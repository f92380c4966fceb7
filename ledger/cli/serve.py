"""``ledger serve``: the HTTP API, on an embedded PostgreSQL when none is configured."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from ledger.cli.common import add_command, database_url, engine, now
from ledger.cli.errors import EXIT_FAILED, EXIT_OK
from ledger.errors import ConfigurationError
from ledger.settings import Settings

APP = "api.main:create_app_from_env"
"""The ASGI application factory every worker serves."""


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from ledger.storage.db import schema_is_current, upgrade_schema

    embedded = settings.database_url is None
    url = database_url(settings)
    if embedded or settings.migrate_on_start:
        upgrade_schema(url)
    elif not schema_is_current(url):
        # Production: migrations run as the schema owner (`ledger db upgrade`), the server as
        # the application role, which may not change the schema.
        raise ConfigurationError("the database schema is not at the newest migration; run "
                                 "`ledger db upgrade` as the schema owner, then start again")
    host, port = args.host or settings.host, args.port or settings.port
    if args.demo:
        _demo_setup(settings, port)
    os.environ["LEDGER_DATABASE_URL"] = url  # worker processes read their settings from here
    workers = args.workers or settings.workers
    print(f"ledger listening on http://{host}:{port} with {workers} worker(s) "
          "(OpenAPI at /docs)", file=sys.stderr)
    if workers > 1:
        # Our own supervisor, not uvicorn's: it deals connections to workers in turn
        # (ledger/server/workers.py says why). It stops on SIGTERM and returns.
        from ledger.server import workers as pool

        status = pool.serve(APP, host=host, port=port, workers=workers)
        return EXIT_OK if status == 0 else EXIT_FAILED
    # uvicorn re-raises SIGTERM once it has shut down; with the default handler the process
    # would die before the embedded PostgreSQL is stopped. Exit normally instead.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    uvicorn.run(APP, factory=True, host=host, port=port, log_level="warning", access_log=False)
    return EXIT_OK


DEMO_CONVERSATIONS = 100


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _demo_setup(settings: Settings, port: int) -> None:
    from ledger.cli.demo import fill
    from ledger.services.admin.credentials import create_credential
    from ledger.services.admin.logs import create_log, find_log
    from ledger.services.demo.conversations import sample_conversation
    from ledger.services.reads.entries import log_size
    from ledger.storage.db import unit_of_work

    with unit_of_work(engine(settings)) as conn:
        if find_log(conn, "demo") is None:
            # Card policy "mask", so the demo shows the guard masking a typed card number.
            create_log(conn, "demo", origin_prefix=settings.origin_prefix,
                       master_key=settings.master_key_bytes, now=now(), card_policy="mask")
        _, writer = create_credential(conn, log_id="demo", role="writer", label="demo writer",
                                      now=now())
        _, auditor = create_credential(conn, log_id="demo", role="auditor",
                                       label="demo auditor", now=now())
        empty = log_size(conn, "demo") == 0
    if empty:  # a new user sees real trails at once
        print(f"filling log 'demo' with {DEMO_CONVERSATIONS} sample conversations…",
              file=sys.stderr)
        fill(settings, "demo", DEMO_CONVERSATIONS, seed=1)
    with unit_of_work(engine(settings)) as conn:
        conversation = sample_conversation(conn, "demo") or "c-2f9e1a"
    base = f"http://127.0.0.1:{port}/v1/logs/demo"
    print(
        f"""
demo log 'demo' is ready. Try, in another terminal:

  export WRITER={writer}
  export AUDITOR={auditor}
  curl -s -X POST {base}/events \\
       -H "Authorization: Bearer $WRITER" -H 'Content-Type: application/json' \\
       --data @../shared/examples/escalated-conversation.json
  curl -s {base}/checkpoint
  curl -s -H "Authorization: Bearer $AUDITOR" '{base}/entries?start=0&end=2'
  curl -s -H "Authorization: Bearer $AUDITOR" {base}/conversations/{conversation}/trail
  ledger trail demo {conversation}        # the same trail, for a terminal
""",
        file=sys.stderr,
    )


def register(sub: Any) -> None:
    serve = add_command(sub, "serve", cmd_serve,
                        "run the HTTP API (embedded PostgreSQL if none set)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--demo", action="store_true",
                       help="create log 'demo' (filled with sample conversations when empty) and "
                            "print a writer and an auditor token")
