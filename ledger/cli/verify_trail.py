"""``ledger verify-trail PATH --verifier-key KEY …``: check a saved trail offline.

No database, no server: PATH is the JSON body of ``GET /v1/logs/{log}/conversations/{id}/trail``
saved to a file; the keys are the auditor's (``GET /v1/logs/{log}/verifier-key`` fetched earlier,
or an anchor), never the file's. Exit 0 every check passed, 1 a check failed (each failure names
seq, check, expected vs found), 2 could not run (unreadable or malformed file, no usable key).
The checks are :mod:`ledger.services.trails.verify`; ``ops/verify_trail_standalone.py`` makes
the same ones with the standard library and PyNaCl only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.cli.common import add_command
from ledger.cli.errors import EXIT_FAILED, EXIT_INTEGRITY, EXIT_OK
from ledger.cli.text import printable
from ledger.errors import LedgerError
from ledger.settings import Settings

if TYPE_CHECKING:
    from ledger.services.trails.verify import TrailReport

PROG = "ledger verify-trail"


def cmd_verify_trail(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.trails.verify import parse_trail, parse_verifier_keys, verify_trail

    del settings  # offline: nothing configured is used
    try:
        keys = list(args.verifier_key or [])
        if args.verifier_keys_file:
            keys += read_keys_file(Path(args.verifier_keys_file))
        verifiers = parse_verifier_keys(keys)
        data = Path(args.path).read_bytes()
        trail = parse_trail(data)
    except (OSError, LedgerError) as exc:
        return _cannot_run(args, str(exc))
    report = verify_trail(trail, verifiers)
    if args.json:
        print(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        print(render(report))
    return EXIT_OK if report.intact else EXIT_INTEGRITY


def read_keys_file(path: Path) -> list[str]:
    """One verifier key a line, as ``/verifier-key`` serves them; blank and ``#`` lines skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]


def _cannot_run(args: argparse.Namespace, message: str) -> int:
    print(f"{PROG}: cannot verify: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps({"status": "error", "intact": False, "error": message}, indent=2))
    return EXIT_FAILED


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "verify-trail",
        cmd_verify_trail,
        "check a saved conversation trail offline (no database, no server)",
    )
    p.add_argument("path", help="the JSON body of GET /v1/logs/{log}/conversations/{id}/trail")
    p.add_argument(
        "--verifier-key",
        action="append",
        metavar="KEY",
        help="the log's verifier key name+hexid+base64 (repeat for rotated keys); "
        "from GET /v1/logs/{log}/verifier-key or an anchor, not from the file",
    )
    p.add_argument(
        "--verifier-keys-file",
        metavar="FILE",
        help="verifier keys, one a line (the /verifier-key response saved)",
    )
    p.add_argument("--json", action="store_true", help="the report as JSON")


def render(report: TrailReport) -> str:
    first, last = report.first_seq, report.last_seq
    lines = [
        f"Trail of conversation {report.conversation!r}, log origin {report.origin!r}",
        (
            f"  checkpoint: size {report.checkpoint_size}, root {report.checkpoint_root}, "
            f"signed by {', '.join(report.signed_by)}"
        )
        if report.signed_by
        else "  checkpoint: NOT opened under your keys",
        *(
            f"  key certified by a rotation from a key you trust: {k}"
            for k in report.certified_keys
        ),
        f"  entries checked: {report.entries} (seq {first}..{last}); "
        f"payloads verified: {len(report.payloads_verified)}",
    ]
    for kid, seqs in report.writer_signed.items():
        lines.append(f"  writer signatures verified: {len(seqs)} by key {kid} (seq {_seqs(seqs)})")
    for status, seqs in sorted(report.withheld.items()):
        lines.append(
            f"  payloads {status}: {len(seqs)} (seq {_seqs(seqs)}): not a failure, "
            "the entries and their commitments remain"
        )
    if report.failures:
        lines.append(f"FAILURES ({len(report.failures)})")
        lines += [f"  ! {f}" for f in report.failures]
    if report.warnings:
        lines.append(f"Warnings ({len(report.warnings)})")
        lines += [f"  ~ {w}" for w in report.warnings]
    if report.intact:
        lines.append("Proven")
        lines += [f"  - {p}" for p in report.proven()]
    lines.append("Not proven")
    lines += [f"  - {p}" for p in report.not_proven()]
    count = len(report.failures)
    lines.append(
        "RESULT: VERIFIED"
        if report.intact
        else f"RESULT: FAILED ({count} failure{'s' if count > 1 else ''}); nothing above "
        "is proven until each is explained"
    )
    return "\n".join(printable(line) for line in lines)  # file data is shown, not obeyed


def _seqs(seqs: list[int], limit: int = 20) -> str:
    shown = ", ".join(str(s) for s in seqs[:limit])
    return shown + (f", … ({len(seqs) - limit} more)" if len(seqs) > limit else "")
