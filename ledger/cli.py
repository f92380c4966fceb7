"""``ledger``: the command line. Thin: parse, open the unit of work, call a service, print.

Exit codes: 0 success (for ``verify``: intact); 1 integrity failure found; 2 could not run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from ledger.errors import ClientError, ConfigurationError, LedgerError, StoreUnavailable
from ledger.settings import Settings, load_settings

EXIT_OK, EXIT_INTEGRITY, EXIT_FAILED = 0, 1, 2


def _now() -> datetime:
    return datetime.now(UTC)


def database_url(settings: Settings) -> str:
    """The configured server, or the embedded one under the data directory."""
    if settings.database_url:
        return settings.database_url
    from ledger.embedded import embedded_database_url

    url = embedded_database_url(settings.data_dir)
    settings.database_url = url
    return url


_engines: list[Engine] = []


def _engine(settings: Settings, *, as_app: bool = False) -> Engine:
    """An engine for this command; ``main`` disposes of every one before it returns."""
    from ledger.storage.db import make_engine

    role = settings.db_role if as_app else None
    engine = make_engine(database_url(settings), role=role, pool_size=2)
    _engines.append(engine)
    return engine


def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from ledger.storage.db import upgrade_schema

    upgrade_schema(database_url(settings))
    print("schema is at head", file=sys.stderr)
    return EXIT_OK


def cmd_logs_create(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.logs import create_log
    from ledger.storage.db import unit_of_work

    with unit_of_work(_engine(settings)) as conn:
        info = create_log(conn, args.id, origin_prefix=settings.origin_prefix,
                          master_key=settings.master_key_bytes, now=_now(), tenant=args.tenant,
                          card_policy=args.card_policy)
    print(info.origin)
    return EXIT_OK


def cmd_logs_list(settings: Settings, _args: argparse.Namespace) -> int:
    from ledger.services.logs import list_logs
    from ledger.storage.db import unit_of_work

    with unit_of_work(_engine(settings)) as conn:
        for info in list_logs(conn):
            print(f"{info.id}\t{info.kind}\t{info.origin}")
    return EXIT_OK


def cmd_credentials_create(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.credentials import create_credential
    from ledger.services.logs import get_log
    from ledger.storage.db import unit_of_work

    with unit_of_work(_engine(settings)) as conn:
        get_log(conn, args.log)
        cred_id, token = create_credential(conn, log_id=args.log, role=args.role,
                                           label=args.label, now=_now())
    print(f"credential {cred_id}: {args.role} on {args.log} (token shown once)", file=sys.stderr)
    print(token)
    return EXIT_OK


def cmd_keys_generate(settings: Settings, args: argparse.Namespace) -> int:
    """A new signing key for the log; the previous one is retired, never deleted."""
    from ledger.services.logs import get_log
    from ledger.storage.db import unit_of_work
    from ledger.storage.keystore import create_signing_key

    with unit_of_work(_engine(settings)) as conn:
        info = get_log(conn, args.log)
        signer = create_signing_key(conn, log_id=info.id, origin=info.origin,
                                    master_key=settings.master_key_bytes, now=_now())
    print(signer.verifier_key())
    return EXIT_OK


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.logs import get_log
    from ledger.storage.db import unit_of_work
    from ledger.storage.keystore import verifier_keys

    with unit_of_work(_engine(settings)) as conn:
        get_log(conn, args.log)
        for key in verifier_keys(conn, args.log):
            print(key)
    return EXIT_OK


def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.logs import get_log, list_logs
    from ledger.services.verify import VerifyReport, verify_log
    from ledger.storage.db import unit_of_work
    from ledger.storage.keystore import DataKeyStore

    engine = _engine(settings)
    data_keys = DataKeyStore(settings.master_key_bytes)
    report = VerifyReport()
    show_progress = not args.json and sys.stderr.isatty()

    def progress(log_id: str, done: int, total: int) -> None:
        print(f"\r{log_id}: {done}/{total} entries", end="", file=sys.stderr, flush=True)

    with unit_of_work(engine) as conn:
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        logs = [get_log(conn, args.log)] if args.log else list_logs(conn)
        for info in logs:
            result = verify_log(conn, info, data_keys, progress if show_progress else None)
            if show_progress:
                print(file=sys.stderr)
            report.logs.append(result)
    if args.json:
        print(json.dumps({"intact": report.intact, "logs": [r.as_json() for r in report.logs]},
                         indent=2))
    else:
        for r in report.logs:
            state = "intact" if r.failure is None else f"FAILED: {r.failure}"
            print(f"{r.log}: {r.entries} entries, {r.checkpoints} checkpoints: {state}")
    return EXIT_OK if report.intact else EXIT_INTEGRITY


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from ledger.storage.db import upgrade_schema

    url = database_url(settings)
    upgrade_schema(url)
    host, port = args.host or settings.host, args.port or settings.port
    if args.demo:
        _demo_setup(settings, port)
    os.environ["LEDGER_DATABASE_URL"] = url  # worker processes read their settings from here
    workers = args.workers or settings.workers
    print(f"ledger listening on http://{host}:{port} (OpenAPI at /docs)", file=sys.stderr)
    uvicorn.run("api.main:create_app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level="warning", access_log=False)
    return EXIT_OK


def _demo_setup(settings: Settings, port: int) -> None:
    from ledger.services.credentials import create_credential
    from ledger.services.logs import create_log, find_log
    from ledger.storage.db import unit_of_work

    with unit_of_work(_engine(settings)) as conn:
        if find_log(conn, "demo") is None:
            create_log(conn, "demo", origin_prefix=settings.origin_prefix,
                       master_key=settings.master_key_bytes, now=_now())
        _, writer = create_credential(conn, log_id="demo", role="writer", label="demo writer",
                                      now=_now())
        _, auditor = create_credential(conn, log_id="demo", role="auditor",
                                       label="demo auditor", now=_now())
    print(
        f"""
demo log 'demo' is ready. Try, in another terminal:

  export WRITER={writer}
  export AUDITOR={auditor}
  curl -s -X POST http://127.0.0.1:{port}/v1/logs/demo/events \\
       -H "Authorization: Bearer $WRITER" -H 'Content-Type: application/json' \\
       --data @../shared/examples/escalated-conversation.json
  curl -s http://127.0.0.1:{port}/v1/logs/demo/checkpoint
  curl -s -H "Authorization: Bearer $AUDITOR" 'http://127.0.0.1:{port}/v1/logs/demo/entries?start=0&end=2'
""",
        file=sys.stderr,
    )


Handler = Callable[[Settings, argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledger", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(parent: Any, name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_)
        p.set_defaults(handler=handler)
        return p

    serve = add(sub, "serve", cmd_serve, "run the HTTP API (embedded PostgreSQL if none set)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--demo", action="store_true",
                       help="create log 'demo' and print a writer and an auditor token")

    db = sub.add_parser("db", help="schema").add_subparsers(dest="db_command", required=True)
    add(db, "upgrade", cmd_db_upgrade, "apply every migration (as the schema owner)")

    logs = sub.add_parser("logs", help="logs").add_subparsers(dest="logs_command", required=True)
    create = add(logs, "create", cmd_logs_create, "create a log (and its tenant's system log)")
    create.add_argument("id")
    create.add_argument("--tenant")
    create.add_argument("--card-policy", choices=["reject", "mask"], default="reject")
    add(logs, "list", cmd_logs_list, "list logs")

    creds = sub.add_parser("credentials", help="API tokens").add_subparsers(
        dest="cred_command", required=True)
    cc = add(creds, "create", cmd_credentials_create, "create a token; printed once on stdout")
    cc.add_argument("--log", required=True)
    cc.add_argument("--role", required=True, choices=["writer", "auditor", "verifier", "admin"])
    cc.add_argument("--label", default="")

    keys = sub.add_parser("keys", help="checkpoint signing keys").add_subparsers(
        dest="keys_command", required=True)
    kg = add(keys, "generate", cmd_keys_generate, "new signing key; the old one is retired")
    kg.add_argument("--log", required=True)
    kl = add(keys, "list", cmd_keys_list, "verifier keys, current first")
    kl.add_argument("--log", required=True)

    verify = add(sub, "verify", cmd_verify, "recompute and check everything stored")
    verify.add_argument("--log")
    verify.add_argument("--full", action="store_true", help="from genesis (the default for now)")
    verify.add_argument("--json", action="store_true", help="machine-readable report, no progress")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        handler: Handler = args.handler
        return handler(settings, args)
    except (ClientError, ConfigurationError) as exc:
        print(f"ledger: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except StoreUnavailable as exc:
        print(f"ledger: database unavailable: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except LedgerError as exc:
        print(f"ledger: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        while _engines:
            _engines.pop().dispose()


if __name__ == "__main__":
    sys.exit(main())
