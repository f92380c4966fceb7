"""``ledger verify``: the scheduled integrity job.

Exit 0 intact, 1 integrity failure found, 2 could not run (nothing proven either way). Runs in
one read-only, repeatable-read transaction, so a read-only database role is enough; the verifier
state is saved only for intact logs, after the transaction. A failure (1 or 2) triggers the
configured alerts; every run is recorded on the ledger server when a record URL is configured
(a run that could not be recorded exits 2 unless it found tampering).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from ledger.cli.common import add_command, engine, now
from ledger.cli.errors import EXIT_FAILED, EXIT_INTEGRITY, EXIT_OK
from ledger.errors import ConfigurationError, LedgerError
from ledger.settings import Settings

if TYPE_CHECKING:
    from ledger.services.verification.state import VerifierStateStore
    from ledger.services.verification.verify import VerifyReport


def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.core.entry import format_time
    from ledger.services.verification.state import VerifierStateStore

    if args.rebaseline and not args.log:
        print("ledger verify: --rebaseline needs --log (one log at a time)", file=sys.stderr)
        return EXIT_FAILED
    states = VerifierStateStore(settings.verifier_state_path)
    started = now()
    run: dict[str, Any] = {"status": "error", "intact": False,
                           "mode": "full" if args.full or args.rebaseline else "incremental",
                           "host": socket.gethostname(), "started_at": format_time(started),
                           "logs": []}
    tenants: dict[str, str] = {}
    problems: list[str] = []
    try:
        report = _verify(settings, args, states, tenants)
    except LedgerError as exc:
        run["error"] = f"{type(exc).__name__}: {exc}"
        code = EXIT_FAILED
    else:
        from ledger.services.verification.verify import save_states

        run["logs"] = [r.as_json() for r in report.logs]
        run["status"] = "intact" if report.intact else "tampered"
        run["intact"] = report.intact
        code = EXIT_OK if report.intact else EXIT_INTEGRITY
        try:
            save_states(report, states, now=now())
        except (OSError, LedgerError) as exc:
            problems.append(f"verifier state not saved: {exc}")
    run["finished_at"] = format_time(now())

    if code != EXIT_OK or problems:
        problems += _alert(settings, run)
    problems += _record(settings, args, run, tenants)
    if problems and code == EXIT_OK:
        code = EXIT_FAILED
    _print(args, run, problems)
    return code


def _verify(settings: Settings, args: argparse.Namespace, states: VerifierStateStore,
            tenants: dict[str, str]) -> VerifyReport:
    from ledger.services.admin.logs import get_log, list_logs
    from ledger.services.verification.verify import verify_logs
    from ledger.storage.db import unit_of_work
    from ledger.storage.keystore import DataKeyStore

    show_progress = not args.json and sys.stderr.isatty()

    def progress(log_id: str, done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\r{log_id}: {done}/{total} entries", end=end, file=sys.stderr, flush=True)

    with unit_of_work(engine(settings)) as conn:
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        if args.log:
            logs = [get_log(conn, args.log)]
        else:
            logs = [i for i in list_logs(conn) if args.tenant in (None, i.tenant)]
        tenants.update({i.id: i.tenant for i in logs})
        if args.rebaseline:
            try:
                moved = states.archive(args.log, now=now())
            except OSError as exc:
                raise ConfigurationError(f"cannot set the verifier state aside: {exc}") from exc
            print(f"re-baselining {args.log}: previous state moved to {moved}", file=sys.stderr)
        return verify_logs(conn, logs, data_keys=DataKeyStore(settings.master_key_bytes),
                           states=states, anchor_dir=settings.anchor_dir,
                           full=args.full or args.rebaseline, jobs=args.jobs,
                           progress=progress if show_progress else None)


def _alert(settings: Settings, run: dict[str, Any]) -> list[str]:
    from ledger.services.verification.alerts import send_alert

    return send_alert(json.dumps(run, indent=2).encode(), webhook_url=settings.alert_webhook_url,
                      command=settings.alert_command, timeout=settings.http_timeout_seconds)


def _record(settings: Settings, args: argparse.Namespace, run: dict[str, Any],
            tenants: dict[str, str]) -> list[str]:
    """Record the run on the server, one request per tenant (``--tenant`` alone if it could not
    even list the logs)."""
    if not settings.verify_record_url:
        return []
    if not settings.verify_record_token:
        return ["LEDGER_VERIFY_RECORD_URL is set without LEDGER_VERIFY_RECORD_TOKEN"]
    from ledger.services.verification.record import post_run

    by_tenant: dict[str, list[dict[str, Any]]] = {}
    for entry in run["logs"]:
        by_tenant.setdefault(tenants[entry["log"]], []).append(entry)
    if not by_tenant and args.tenant:
        by_tenant[args.tenant] = []
    problems = []
    for tenant, logs in by_tenant.items():
        try:
            post_run(settings.verify_record_url, settings.verify_record_token, tenant,
                     {**run, "logs": logs}, timeout=settings.http_timeout_seconds)
        except LedgerError as exc:
            problems.append(f"run not recorded for tenant {tenant}: {exc}")
    return problems


def _print(args: argparse.Namespace, run: dict[str, Any], problems: list[str]) -> None:
    if run["status"] == "error":
        print(f"ledger verify: could not run: {run['error']}", file=sys.stderr)
    for problem in problems:
        print(f"ledger verify: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps({**run, "problems": problems}, indent=2))
        return
    for r in run["logs"]:
        state = "intact" if r["failure"] is None else f"FAILED: {r['failure']['message']}"
        print(f"{r['log']}: {r['mode']} [{r['from_size']}, {r['to_size']}),"
              f" {r['entries']} entries, {r['checkpoints']} checkpoints,"
              f" {r['anchors']} anchors: {state}")


def register(sub: Any) -> None:
    verify = add_command(sub, "verify", cmd_verify,
                         "check the database against its own bytes, the verifier state and"
                         " the anchors")
    scope = verify.add_mutually_exclusive_group()
    scope.add_argument("--log", help="one log (default: every log)")
    scope.add_argument("--tenant", help="every log of one tenant")
    verify.add_argument("--full", action="store_true",
                        help="recompute from genesis (default: from the last verified checkpoint)")
    verify.add_argument("--json", action="store_true", help="machine-readable report, no progress")
    verify.add_argument("--rebaseline", action="store_true",
                        help="after an approved restore: set the log's verifier state aside and"
                             " verify in full (see ops/RUNBOOK.md)")
    verify.add_argument("--jobs", type=_positive, default=os.cpu_count() or 1, metavar="N",
                        help="processes a long run (200,000+ entries) is split over"
                             " (default: the number of CPUs)")


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number
