"""``ledger``: the command line. Thin: parse, open the unit of work, call a service, print.

Exit codes: 0 success (for ``verify``: intact); 1 integrity failure found; 2 could not run
(``ledger/cli/errors.py``: the one table from errors to exit codes).
Each command group lives in its own module with a ``register(subparsers)`` function.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from ledger.cli import (
    admin,
    anchor,
    clusters,
    demo,
    export,
    privacy,
    serve,
    tenants,
    trail,
    verify,
    verify_bundle,
    verify_trail,
    writers,
)
from ledger.cli.common import Handler, dispose_engines
from ledger.cli.errors import EXIT_OK, exit_code_for, message_for
from ledger.errors import LedgerError
from ledger.settings import load_settings

COMMAND_GROUPS = (
    serve,
    admin,
    clusters,
    verify,
    anchor,
    trail,
    export,
    privacy,
    demo,
    tenants,
    verify_trail,
    verify_bundle,
    writers,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledger", description="Handoff Ledger: a verifiable audit trail for AI handoffs"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings()
        handler: Handler = args.handler
        return handler(settings, args)
    except LedgerError as exc:
        print(f"ledger: {message_for(exc)}", file=sys.stderr)
        return exit_code_for(type(exc))
    except BrokenPipeError:
        # The reader went away (`ledger trail --json | head`): not our failure, and nothing
        # more to say. Point stdout at /dev/null so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    finally:
        dispose_engines()
