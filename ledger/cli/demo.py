"""``ledger demo --log ID``: fill a log with realistic handoff conversations (see
:mod:`ledger.services.demo.conversations`), through the same validation, guard and sequencer
as the API; or over HTTP with ``--url`` and a writer token, exactly as an integration would."""

from __future__ import annotations

import argparse
import getpass
import hashlib
import os
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

from ledger.cli.common import add_command, database_url, engine, key_ring, now
from ledger.cli.errors import EXIT_OK
from ledger.errors import InvalidRequest
from ledger.settings import Settings

if TYPE_CHECKING:
    from ledger.services.demo.conversations import DemoConversation

BATCH_EVENTS = 500


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.demo.conversations import generate

    if args.url:
        conversations = generate(
            args.conversations, seed=args.seed, raw_cards=args.card_policy == "mask"
        )
        appended = _post(args.url, args.log, _token(args), conversations, args.signing_key)
    else:
        conversations, appended = fill(settings, args.log, args.conversations, seed=args.seed)
    kinds = Counter(c.kind for c in conversations)
    print(
        f"{len(conversations)} conversations ({', '.join(f'{n} {k}' for k, n in kinds.items())});"
        f" {appended} events appended to {args.log}",
        file=sys.stderr,
    )
    for kind in kinds:
        print(f"{kind}\t{next(c.id for c in conversations if c.kind == kind)}")
    return EXIT_OK


def fill(
    settings: Settings, log_id: str, count: int, *, seed: int
) -> tuple[list[DemoConversation], int]:
    from ledger.services.demo.fill import fill as fill_log

    database_url(settings, setup=True)  # the embedded database made first, as it always was
    return fill_log(
        engine(settings, log=log_id, setup=True),
        key_ring(settings, setup=True),
        log_id,
        count,
        seed=seed,
        operator="cli:" + getpass.getuser(),
        now=now,
    )


def _token(args: argparse.Namespace) -> str:
    token = args.token or os.environ.get("LEDGER_WRITER_TOKEN")
    if not token:
        raise InvalidRequest("--url needs a writer token: --token or LEDGER_WRITER_TOKEN")
    return str(token)


def _post(
    url: str,
    log_id: str,
    token: str,
    conversations: list[DemoConversation],
    signing_key: str | None = None,
) -> int:
    """POST the events in batches through ``ledger.client``, as a writer would (signed with
    the writer's key file when given; retried with the same bytes on a 503 or a dropped
    connection). Returns the events in batches answered 201 (something new); a 200 means the
    whole batch was already recorded (a retry)."""
    from ledger.client import LedgerClient, load_signing_key
    from ledger.services.demo.conversations import chunks, interleave

    key = None if signing_key is None else load_signing_key(signing_key)

    def demo_salt(event: dict[str, Any]) -> bytes:
        # The same seed twice must be a retry (200), so a signed event's salt is derived from
        # its id. Sample data only: a real writer's salts are random (or derived from a
        # secret), or its erased commitments could be tested against guesses.
        return hashlib.sha256(b"ledger demo salt\n" + event["id"].encode()).digest()

    appended = 0
    with LedgerClient(
        url, log_id, token=token, signing_key=key, timeout=60, salt_for=demo_salt
    ) as client:
        for batch in chunks(interleave(conversations), BATCH_EVENTS):
            if client.append(batch).created:
                appended += len(batch)
    return appended


def register(sub: Any) -> None:
    p = add_command(sub, "demo", cmd_demo, "fill a log with realistic sample handoff conversations")
    p.add_argument("--log", required=True)
    p.add_argument("--conversations", type=int, default=300)
    p.add_argument("--seed", type=int, default=1, help="same seed, same events (idempotent)")
    p.add_argument("--url", help="post over HTTP to this server instead of the database")
    p.add_argument("--token", help="writer token for --url (else LEDGER_WRITER_TOKEN)")
    p.add_argument(
        "--signing-key",
        metavar="FILE",
        help="with --url: sign each event with this writer key (PEM, `ledger writers keygen`)",
    )
    p.add_argument(
        "--card-policy",
        choices=["reject", "mask"],
        default="reject",
        help="with --url: the log's card policy (mask: send card numbers as typed)",
    )
