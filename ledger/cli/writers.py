"""``ledger writers``: writers' signing keys (issue 18) and each log's signature policy.

    ledger writers keygen -o FILE                  # a writer's key pair, made on the writer's side
    ledger writers keys add --log ID --credential N (--public-key KEY | --public-key-file F)
    ledger writers keys list --log ID [--json]
    ledger writers keys revoke KID --log ID
    ledger writers policy --log ID [required|optional|off]

``keygen`` touches no database: the private key is written to FILE (PEM PKCS #8, mode 0600)
and never sent anywhere; its public key is printed for ``keys add``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ledger.cli.common import add_command, engine, key_ring, now, operator
from ledger.cli.errors import EXIT_OK
from ledger.cli.text import printable
from ledger.errors import InvalidRequest
from ledger.settings import Settings


def cmd_keygen(_settings: Settings, args: argparse.Namespace) -> int:
    from ledger.client import generate_signing_key, save_signing_key

    key = generate_signing_key()
    save_signing_key(key, args.output)
    print(f"private key written to {args.output} (keep it with the writer)", file=sys.stderr)
    print(key.public_key_b64url)
    return EXIT_OK


def cmd_keys_add(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.admin.writer_keys import add_writer_key
    from ledger.storage.db import unit_of_work

    if args.public_key_file:
        try:
            with open(args.public_key_file, encoding="ascii") as handle:
                public_key = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"cannot read {args.public_key_file}: {exc}") from exc
    else:
        public_key = args.public_key
    with unit_of_work(engine(settings, log=args.log)) as conn:
        record = add_writer_key(
            conn,
            key_ring(settings),
            log_id=args.log,
            credential_id=args.credential,
            public_key=public_key,
            actor=operator(),
            now=now(),
        )
    print(f"writer key added for credential {record.credential_id} on {args.log}", file=sys.stderr)
    print(record.kid)
    return EXIT_OK


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    """kid, credential, added, then ``active`` or ``revoked <time>``; ``--json``: with keys."""
    from ledger.core.entry import format_time
    from ledger.services.admin.writer_keys import key_json, list_writer_keys
    from ledger.storage.db import unit_of_work

    with unit_of_work(engine(settings, log=args.log)) as conn:
        records = list_writer_keys(conn, args.log)
    if args.json:
        print(json.dumps({"keys": [key_json(r) for r in records]}, indent=2))
        return EXIT_OK
    for r in records:
        state = "active" if r.revoked_at is None else f"revoked {format_time(r.revoked_at)}"
        print(f"{printable(r.kid)}\t{r.credential_id}\t{format_time(r.added_at)}\t{state}")
    return EXIT_OK


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.core.entry import format_time
    from ledger.services.admin.writer_keys import revoke_writer_key
    from ledger.storage.db import unit_of_work

    with unit_of_work(engine(settings, log=args.log)) as conn:
        record = revoke_writer_key(
            conn, key_ring(settings), log_id=args.log, kid=args.kid, actor=operator(), now=now()
        )
    assert record.revoked_at is not None
    print(
        f"writer key {record.kid} on {args.log} revoked at {format_time(record.revoked_at)}",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_policy(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.core.writer_signature import DEFAULT_POLICY
    from ledger.services.admin.writer_keys import set_signature_policy
    from ledger.storage.db import unit_of_work
    from ledger.storage.logs import get_log

    with unit_of_work(engine(settings, log=args.log)) as conn:
        if args.signatures is None:
            print(get_log(conn, args.log).policy.get("signatures", DEFAULT_POLICY))
            return EXIT_OK
        previous = set_signature_policy(
            conn,
            key_ring(settings),
            log_id=args.log,
            policy=args.signatures,
            actor=operator(),
            now=now(),
        )
    print(f"{args.log}: signatures {previous} -> {args.signatures}", file=sys.stderr)
    return EXIT_OK


def register(sub: Any) -> None:
    writers = sub.add_parser("writers", help="writers' signing keys, signature policy")
    commands = writers.add_subparsers(dest="writers_command", required=True)
    gen = add_command(commands, "keygen", cmd_keygen, "make a writer key pair (no database)")
    gen.add_argument("-o", "--output", required=True, help="private key file (PEM, mode 0600)")

    keys = commands.add_parser("keys", help="writers' public keys").add_subparsers(
        dest="writer_keys_command", required=True
    )
    add = add_command(keys, "add", cmd_keys_add, "register a writer credential's public key")
    add.add_argument("--log", required=True)
    add.add_argument("--credential", required=True, type=int, help="the writer credential's id")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--public-key", help="Ed25519 public key: base64url/base64 of 32 bytes")
    source.add_argument("--public-key-file", help="a PEM public key or the base64 text")
    listing = add_command(keys, "list", cmd_keys_list, "a log's writer keys, revoked ones too")
    listing.add_argument("--log", required=True)
    listing.add_argument("--json", action="store_true")
    revoke = add_command(keys, "revoke", cmd_keys_revoke, "revoke a writer key (kept for ever)")
    # A kid is base64url: one in 64 begins with "-", which argparse reads as an option
    # unless it follows "--" (`ledger writers keys revoke --log L -- -Xy…`).
    revoke.add_argument("kid", help="the key's kid (one beginning with '-': after --)")
    revoke.add_argument("--log", required=True)

    policy = add_command(commands, "policy", cmd_policy, "show or set a log's signature policy")
    policy.add_argument("--log", required=True)
    policy.add_argument("signatures", nargs="?", choices=["required", "optional", "off"])
