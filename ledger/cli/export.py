"""``ledger export --log ID --profile P [--format F] [filters] -o FILE``: an evidence bundle or
a report, written by the same use case as ``POST /v1/logs/{log}/exports`` and recorded in the
tenant's system log before the file is in place. Progress shows on a terminal."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ledger.cli.common import add_command, engine, key_ring, now, operator
from ledger.cli.errors import EXIT_OK
from ledger.errors import ExportInvalid
from ledger.settings import Settings


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    import socket

    from ledger.services.exports.export import run_export
    from ledger.services.exports.query import parse_query
    from ledger.services.system_log import Access, SystemLog
    from ledger.storage.db import read_only, unit_of_work
    from ledger.storage.group_commit import GroupCommitter
    from ledger.storage.logs import get_log

    query = parse_query(request_body(args))
    target = Path(args.output)
    if not target.parent.is_dir():
        raise ExportInvalid(f"-o {target}: no such directory {target.parent}")
    show = sys.stderr.isatty()

    def progress(done: int) -> None:
        print(f"\r{args.log}: {done:,} entries", end="", file=sys.stderr, flush=True)

    eng, keys = engine(settings, log=args.log), key_ring(settings)
    with (
        GroupCommitter(eng, signers=keys.signers, data_keys=keys.data_keys) as committer,
        unit_of_work(eng) as conn,
    ):
        read_only(conn, repeatable=True)
        export = run_export(
            conn,
            SystemLog.committing(committer, eng),
            get_log(conn, args.log),
            query,
            keys=keys,
            actor=operator(),
            access=Access(client="cli", host=socket.gethostname()),
            now=now(),
            workdir=target.parent,
            progress=progress if show else None,
        )
    export.path.replace(target)
    if show:
        print(file=sys.stderr)
    print(f"{target}: {export.count} entries, sha256 {export.sha256} (recorded)", file=sys.stderr)
    return EXIT_OK


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    """The options as the HTTP request body would hold them (one set of rules for both)."""
    body: dict[str, Any] = {"profile": args.profile, "format": args.format}
    for name in ("start_seq", "end_seq", "from_time", "to_time", "data_subject", "sample", "seed"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    for name, option in (
        ("conversations", "conversation"),
        ("event_types", "event_type"),
        ("include", "include"),
    ):
        if getattr(args, option):
            body[name] = getattr(args, option)
    if args.since_checkpoint:
        try:
            body["since_checkpoint"] = Path(args.since_checkpoint).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ExportInvalid(f"--since-checkpoint: {exc}") from exc
    return body


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "export",
        cmd_export,
        "an evidence bundle or report of a range, conversations or a data subject",
    )
    p.add_argument("--log", required=True)
    p.add_argument(
        "--profile", required=True, choices=["soc2-population", "pci-dss-10", "hipaa-disclosures"]
    )
    p.add_argument("--format", default="bundle", choices=["bundle", "jsonl", "csv", "ocsf", "html"])
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    p.add_argument("--start-seq", type=int, dest="start_seq")
    p.add_argument("--end-seq", type=int, dest="end_seq", help="half-open: [start, end)")
    p.add_argument(
        "--from", dest="from_time", metavar="TIME", help="received_at >= TIME (RFC 3339)"
    )
    p.add_argument("--to", dest="to_time", metavar="TIME", help="received_at < TIME")
    p.add_argument("--conversation", action="append", metavar="ID")
    p.add_argument("--data-subject", dest="data_subject", metavar="CUSTOMER_ID")
    p.add_argument("--event-type", action="append", dest="event_type", metavar="TYPE")
    p.add_argument("--sample", type=int, metavar="N", help="draw N entries from the range")
    p.add_argument("--seed", help="your part of the sample's seed")
    p.add_argument(
        "--since-checkpoint",
        metavar="FILE",
        help="a signed checkpoint you hold: the bundle proves consistency from it",
    )
    p.add_argument(
        "--include",
        action="append",
        choices=["jsonl", "csv", "ocsf", "html"],
        help="a report the bundle carries too (repeat)",
    )
