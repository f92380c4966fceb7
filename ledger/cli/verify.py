"""``ledger verify``: the scheduled integrity job. Exit 0 intact, 1 integrity failure, 2 could
not run."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ledger.cli.common import EXIT_INTEGRITY, EXIT_OK, add_command, engine
from ledger.settings import Settings


def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.logs import get_log, list_logs
    from ledger.services.verify import VerifyReport, verify_log
    from ledger.storage.db import unit_of_work
    from ledger.storage.keystore import DataKeyStore

    data_keys = DataKeyStore(settings.master_key_bytes)
    report = VerifyReport()
    show_progress = not args.json and sys.stderr.isatty()

    def progress(log_id: str, done: int, total: int) -> None:
        print(f"\r{log_id}: {done}/{total} entries", end="", file=sys.stderr, flush=True)

    with unit_of_work(engine(settings)) as conn:
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


def register(sub: Any) -> None:
    verify = add_command(sub, "verify", cmd_verify, "recompute and check everything stored")
    verify.add_argument("--log")
    verify.add_argument("--full", action="store_true", help="from genesis (the default for now)")
    verify.add_argument("--json", action="store_true", help="machine-readable report, no progress")
