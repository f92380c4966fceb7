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
import sys
from typing import Any

from ledger.cli.common import add_command, engine, now
from ledger.cli.errors import EXIT_FAILED, EXIT_INTEGRITY, EXIT_OK
from ledger.settings import Settings


def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.keys.config import master_key_ring
    from ledger.services.verification.job import Alerts, RunRecorder, Scope, run_verification
    from ledger.services.verification.state import VerifierStateStore
    from ledger.storage.keystore import DataKeyStore

    show_progress = not args.json and sys.stderr.isatty()

    def progress(log_id: str, done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\r{log_id}: {done}/{total} entries", end=end, file=sys.stderr, flush=True)

    timeout = settings.http_timeout_seconds
    outcome = run_verification(
        engine(settings, system="verifier"),
        data_keys=DataKeyStore(master_key_ring(settings)),
        states=VerifierStateStore(settings.verifier_state_path),
        anchor_dir=settings.anchor_dir,
        scope=Scope(log=args.log, tenant=args.tenant),
        full=args.full,
        rebaseline=args.rebaseline,
        jobs=args.jobs,
        alerts=Alerts(settings.alert_webhook_url, settings.alert_command, timeout),
        recorder=RunRecorder(settings.verify_record_url, settings.verify_record_token, timeout)
        if settings.verify_record_url
        else None,
        now=now,
        progress=progress if show_progress else None,
    )
    for note in outcome.notes:
        print(note, file=sys.stderr)
    _print(args, outcome.run, outcome.problems)
    if outcome.status == "tampered":
        return EXIT_INTEGRITY
    return EXIT_OK if outcome.status == "intact" and not outcome.problems else EXIT_FAILED


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
        print(
            f"{r['log']}: {r['mode']} [{r['from_size']}, {r['to_size']}),"
            f" {r['entries']} entries, {r['checkpoints']} checkpoints,"
            f" {r['anchors']} anchors: {state}"
        )


def register(sub: Any) -> None:
    verify = add_command(
        sub,
        "verify",
        cmd_verify,
        "check the database against its own bytes, the verifier state and the anchors",
    )
    scope = verify.add_mutually_exclusive_group()
    scope.add_argument("--log", help="one log (default: every log)")
    scope.add_argument("--tenant", help="every log of one tenant")
    verify.add_argument(
        "--full",
        action="store_true",
        help="recompute from genesis (default: from the last verified checkpoint)",
    )
    verify.add_argument("--json", action="store_true", help="machine-readable report, no progress")
    verify.add_argument(
        "--rebaseline",
        action="store_true",
        help="after an approved restore: set the log's verifier state aside and"
        " verify in full (see ops/RUNBOOK.md)",
    )
    verify.add_argument(
        "--jobs",
        type=_positive,
        default=os.cpu_count() or 1,
        metavar="N",
        help="processes a long run (200,000+ entries) is split over (default: the number of CPUs)",
    )


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number
