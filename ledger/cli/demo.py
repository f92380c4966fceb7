"""``ledger demo --log ID``: fill a log with realistic handoff conversations (see
:mod:`ledger.services.demo.conversations`), through the same validation, guard and sequencer
as the API; or over HTTP with ``--url`` and a writer token, exactly as an integration would."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import urllib.request
from collections import Counter
from typing import TYPE_CHECKING, Any

from ledger.cli.common import add_command, engine, key_ring, now
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
        appended = _post(args.url, args.log, _token(args), conversations)
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

    return fill_log(
        engine(settings, setup=True),
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


def _post(url: str, log_id: str, token: str, conversations: list[DemoConversation]) -> int:
    """POST the events in batches, as a writer would. Returns the events in batches answered
    201 (something new); a 200 means the whole batch was already recorded (a retry)."""
    import orjson

    from ledger.services.demo.conversations import chunks, interleave

    if not url.startswith(("http://", "https://")):
        raise InvalidRequest("--url must be an http:// or https:// URL")
    endpoint = f"{url.rstrip('/')}/v1/logs/{log_id}/events"
    appended = 0
    for batch in chunks(interleave(conversations), BATCH_EVENTS):
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            endpoint,
            data=orjson.dumps({"events": batch}),
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                if response.status == 201:
                    appended += len(batch)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise InvalidRequest(f"{endpoint} answered {exc.code}: {detail}") from exc
    return appended


def register(sub: Any) -> None:
    p = add_command(sub, "demo", cmd_demo, "fill a log with realistic sample handoff conversations")
    p.add_argument("--log", required=True)
    p.add_argument("--conversations", type=int, default=300)
    p.add_argument("--seed", type=int, default=1, help="same seed, same events (idempotent)")
    p.add_argument("--url", help="post over HTTP to this server instead of the database")
    p.add_argument("--token", help="writer token for --url (else LEDGER_WRITER_TOKEN)")
    p.add_argument(
        "--card-policy",
        choices=["reject", "mask"],
        default="reject",
        help="with --url: the log's card policy (mask: send card numbers as typed)",
    )
