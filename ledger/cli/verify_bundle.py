"""``ledger verify-bundle PATH --verifier-key KEY …``: check an evidence bundle offline.

No database, no server: PATH is an evidence bundle (docs/evidence-bundle.md, a zip); the keys are
the auditor's (``GET /v1/logs/{log}/verifier-key`` fetched earlier, or an anchor), never the
bundle's. Exit 0 every check passed, 1 a check failed (each failure names file, seq, check,
expected vs found), 2 could not run (not a bundle, unreadable, no key for the bundle's log).
The checks are :mod:`ledger.services.exports.verify`; ``ops/verify_bundle_standalone.py`` makes
the same ones with the standard library and PyNaCl only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.cli.common import add_command
from ledger.cli.errors import EXIT_FAILED, EXIT_INTEGRITY, EXIT_OK
from ledger.cli.text import printable
from ledger.cli.verify_trail import read_keys_file
from ledger.errors import ConfigurationError, LedgerError
from ledger.settings import Settings

if TYPE_CHECKING:
    from ledger.core.signing import NoteVerifier
    from ledger.services.exports.verify import BundleReport

PROG = "ledger verify-bundle"
PROGRESS_MIN_BYTES = 16 << 20
"""Progress is shown (on a terminal) for an ``entries.jsonl`` at least this big."""


def cmd_verify_bundle(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.exports.verify import verify_bundle

    del settings  # offline: nothing configured is used
    progress = _Progress() if not args.json and sys.stderr.isatty() else None
    try:
        keys = list(args.verifier_key or [])
        if args.verifier_keys_file:
            keys += read_keys_file(Path(args.verifier_keys_file))
        report = verify_bundle(
            Path(args.path),
            _verifiers(keys),
            progress=progress,
            witness_keys=args.witness_key or (),
        )
    except (OSError, LedgerError) as exc:
        return _cannot_run(args, str(exc))
    finally:
        if progress is not None:
            progress.clear()
    if args.json:
        print(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        print(render(report))
    return EXIT_OK if report.intact else EXIT_INTEGRITY


def _verifiers(keys: list[str]) -> list[NoteVerifier]:
    from ledger.core.signing import NoteVerifier

    if not keys:
        raise ConfigurationError(
            "no verifier key given: pass the log's key(s) as fetched from "
            "GET /v1/logs/{log}/verifier-key or an anchor, never from the bundle"
        )
    return [NoteVerifier.from_verifier_key(k) for k in keys]


def _cannot_run(args: argparse.Namespace, message: str) -> int:
    print(f"{PROG}: cannot verify: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps({"status": "error", "intact": False, "error": message}, indent=2))
    return EXIT_FAILED


class _Progress:
    """``entries.jsonl: 42% (1.2 of 2.9 GB)`` on stderr, rewritten at most twice a second."""

    def __init__(self) -> None:
        self.shown = False
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if total < PROGRESS_MIN_BYTES or (now - self.last < 0.5 and done < total):
            return
        self.last = now
        percent = 100 * done // max(total, 1)
        sys.stderr.write(
            f"\r{PROG}: entries.jsonl {percent:3d}% ({done / 1e9:.2f} of {total / 1e9:.2f} GB)"
        )
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "verify-bundle",
        cmd_verify_bundle,
        "check an evidence bundle offline (no database, no server)",
    )
    p.add_argument("path", help="the evidence bundle (a zip, docs/evidence-bundle.md)")
    p.add_argument(
        "--verifier-key",
        action="append",
        metavar="KEY",
        help="the log's verifier key name+hexid+base64 (repeat for several); from "
        "GET /v1/logs/{log}/verifier-key or an anchor, not from the bundle",
    )
    p.add_argument(
        "--verifier-keys-file",
        metavar="FILE",
        help="verifier keys, one a line (the /verifier-key response saved)",
    )
    p.add_argument(
        "--witness-key",
        action="append",
        metavar="KEY",
        help="a witness's cosignature key name+hexid+base64 you trust (repeat for several);"
        " given, a cosignature in the bundle under any other key fails",
    )
    p.add_argument("--json", action="store_true", help="the report as JSON")


def render(report: BundleReport) -> str:
    lines = [
        f"Evidence bundle {report.file}",
        f"  log {report.log!r}, origin {report.origin!r}; profile {report.profile}, "
        f"selection {report.selection}",
        f"  manifest: signed by {', '.join(report.manifest_signed_by)}"
        if report.manifest_signed_by
        else "  manifest: NOT opened under your keys",
        f"  checkpoint: size {report.tree_size}, root {report.root}, signed by "
        f"{', '.join(report.checkpoint_signed_by)}"
        if report.checkpoint_signed_by
        else "  checkpoint: NOT opened under your keys",
    ]
    lines += [f"  key certified by a rotation statement: {k}" for k in report.certified_keys]
    if report.range is not None:
        s, e = report.range
        what = "population" if report.selection == "sample" else "range"
        lines.append(f"  {what}: seq [{s}, {e})")
    if report.sample_size is not None:
        lines.append(f"  sample: {report.sample_size} seqs, seed {report.sample_seed!r}")
    if report.conversations:
        shown = ", ".join(report.conversations[:10])
        more = len(report.conversations) - 10
        lines.append(
            f"  conversations ({len(report.conversations)}): {shown}"
            + (f", … ({more} more)" if more > 0 else "")
        )
    lines.append(
        f"  entries checked: {report.entries} (seq {report.first_seq}..{report.last_seq}); "
        f"payloads verified: {report.payloads_verified}; files checked: {report.files_checked}"
    )
    if report.writer_signatures:
        lines.append(f"  writer signatures verified: {report.writer_signatures}")
    for status, count in sorted(report.withheld.items()):
        lines.append(f"  payloads {status}: {count}: not a failure, the entries remain proven")
    if report.consistency_from is not None:
        lines.append(
            f"  consistency: from the checkpoint of size {report.consistency_from} to "
            f"{report.tree_size}"
        )
    if report.failures_total:
        lines.append(f"FAILURES ({report.failures_total})")
        lines += [f"  ! {f}" for f in report.failures]
        if report.failures_total > len(report.failures):
            lines.append(f"  … and {report.failures_total - len(report.failures)} more")
    if report.warnings_total:
        lines.append(f"Warnings ({report.warnings_total})")
        lines += [f"  ~ {w}" for w in report.warnings]
        if report.warnings_total > len(report.warnings):
            lines.append(f"  … and {report.warnings_total - len(report.warnings)} more")
    if report.intact:
        lines.append("Proven")
        lines += [f"  - {p}" for p in report.proven()]
    lines.append("Not proven")
    lines += [f"  - {p}" for p in report.not_proven()]
    count = report.failures_total
    lines.append(
        "RESULT: VERIFIED"
        if report.intact
        else f"RESULT: FAILED ({count} failure{'s' if count > 1 else ''}); nothing above "
        "is proven until each is explained"
    )
    return "\n".join(printable(line) for line in lines)  # file data is shown, not obeyed
