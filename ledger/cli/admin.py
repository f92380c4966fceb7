"""Operator commands: schema, logs, credentials, signing keys."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import timedelta
from typing import Any

from ledger.cli import master_keys
from ledger.cli.common import add_command, database_url, engine, key_ring, now, operator
from ledger.cli.errors import EXIT_OK
from ledger.cli.text import printable
from ledger.core.entry import format_time
from ledger.settings import Settings


def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from ledger.storage.db import upgrade_schema

    upgrade_schema(database_url(settings, setup=True))
    print("schema is at head", file=sys.stderr)
    return EXIT_OK


def cmd_logs_create(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.admin.logs import create_log
    from ledger.storage.db import unit_of_work

    with unit_of_work(engine(settings, setup=True)) as conn:
        info = create_log(
            conn,
            key_ring(settings, setup=True),
            args.id,
            origin_prefix=settings.origin_prefix,
            actor=operator(),
            now=now(),
            tenant=args.tenant,
            card_policy=args.card_policy,
            retention_days=args.retention,
        )
    print(info.origin)
    return EXIT_OK


def retention_period(value: str) -> int:
    """``--retention``: days, as ``ledger.services.privacy.retention.parse_retention`` reads
    them (a bad value exits 2 with argparse's message)."""
    from ledger.errors import InvalidRequest
    from ledger.services.privacy.retention import parse_retention

    try:
        return parse_retention(value)
    except InvalidRequest as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def cmd_logs_list(settings: Settings, _args: argparse.Namespace) -> int:
    from ledger.storage.db import unit_of_work
    from ledger.storage.logs import list_logs

    with unit_of_work(engine(settings)) as conn:
        for info in list_logs(conn):
            print(f"{info.id}\t{info.kind}\t{info.origin}")
    return EXIT_OK


DURATION_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
MAX_EXPIRES_IN = timedelta(days=3650)
_DURATION = re.compile(r"([1-9][0-9]{0,6})([mhd])", re.ASCII)


def expires_in(value: str) -> timedelta:
    """``--expires-in``: a positive whole number of minutes, hours or days (``30m``, ``12h``,
    ``90d``), at most ten years; anything else is refused (exit 2), never guessed at."""
    match = _DURATION.fullmatch(value)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a duration: a positive whole number and a unit m, h or d"
            " (e.g. 90d, 12h, 30m)"
        )
    duration = int(match[1]) * DURATION_UNITS[match[2]]
    if duration > MAX_EXPIRES_IN:
        raise argparse.ArgumentTypeError(f"{value!r} is too long: at most 3650d")
    return duration


def cmd_credentials_create(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.admin.credentials import create_credential
    from ledger.storage.db import unit_of_work

    created = now()
    expires_at = None if args.expires_in is None else created + args.expires_in
    with unit_of_work(engine(settings)) as conn:
        new = create_credential(
            conn,
            key_ring(settings),
            log_id=args.log,
            role=args.role,
            label=args.label,
            actor=operator(),
            now=created,
            expires_at=expires_at,
        )
    until = "" if expires_at is None else f", expires {format_time(expires_at)}"
    print(
        f"credential {new.id}: {args.role} on {args.log}{until} (token shown once)",
        file=sys.stderr,
    )
    print(new.token)
    return EXIT_OK


def cmd_credentials_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.admin.credentials import revoke_credential
    from ledger.storage.db import unit_of_work

    with unit_of_work(engine(settings)) as conn:
        log_id = revoke_credential(conn, key_ring(settings), args.id, actor=operator(), now=now())
    print(f"credential {args.id} on {log_id} revoked", file=sys.stderr)
    return EXIT_OK


def cmd_credentials_list(settings: Settings, args: argparse.Namespace) -> int:
    """The log's credentials: id, role, label, created, expires (``never``), then ``active``,
    ``expired`` or ``revoked <time>`` (tokens are never stored)."""
    from ledger.storage.credentials import list_credentials
    from ledger.storage.db import unit_of_work
    from ledger.storage.logs import get_log

    with unit_of_work(engine(settings)) as conn:
        get_log(conn, args.log)
        records = list_credentials(conn, args.log)
    at = now()
    for c in records:
        if c.revoked_at:
            state = f"revoked {format_time(c.revoked_at)}"
        else:
            state = "expired" if c.expires_at is not None and c.expires_at <= at else "active"
        expires = "never" if c.expires_at is None else format_time(c.expires_at)
        created = format_time(c.created_at)
        print(f"{c.id}\t{c.role}\t{printable(c.label)}\t{created}\t{expires}\t{state}")
    return EXIT_OK


def cmd_keys_generate(settings: Settings, args: argparse.Namespace) -> int:
    """The signing key of a log that has none active; a log with one is rotated instead."""
    from ledger.services.admin.signing_keys import generate_first_key
    from ledger.storage.db import unit_of_work
    from ledger.storage.logs import get_log

    with unit_of_work(engine(settings)) as conn:
        signer = generate_first_key(
            conn, key_ring(settings), get_log(conn, args.log), now=now(), actor=operator()
        )
    print(signer.verifier_key())
    return EXIT_OK


def cmd_keys_rotate(settings: Settings, args: argparse.Namespace) -> int:
    """A new signing key, certified by the old one; prints the new verifier key."""
    from ledger.services.admin.signing_keys import rotate_signing_key
    from ledger.storage.db import unit_of_work
    from ledger.storage.logs import get_log

    with unit_of_work(engine(settings)) as conn:
        rotation = rotate_signing_key(
            conn, key_ring(settings), get_log(conn, args.log), now=now(), actor=operator()
        )
    print(f"rotated {args.log}: {rotation.old.verifier_key()} retired", file=sys.stderr)
    print(rotation.new.verifier_key())
    return EXIT_OK


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.storage.db import unit_of_work
    from ledger.storage.keystore import verifier_keys
    from ledger.storage.logs import get_log

    with unit_of_work(engine(settings)) as conn:
        get_log(conn, args.log)
        for key in verifier_keys(conn, args.log):
            print(key)
    return EXIT_OK


def register(sub: Any) -> None:
    db = sub.add_parser("db", help="schema").add_subparsers(dest="db_command", required=True)
    add_command(db, "upgrade", cmd_db_upgrade, "apply every migration (as the schema owner)")

    logs = sub.add_parser("logs", help="logs").add_subparsers(dest="logs_command", required=True)
    create = add_command(
        logs, "create", cmd_logs_create, "create a log (and its tenant's system log)"
    )
    create.add_argument("id")
    create.add_argument("--tenant")
    create.add_argument("--card-policy", choices=["reject", "mask"], default="reject")
    create.add_argument(
        "--retention",
        type=retention_period,
        metavar="PERIOD",
        help="how long payloads are kept: e.g. 365d, or pci-dss (12 months), hipaa (6 years,"
        " the default); change it later with `ledger retention set` (two admins)",
    )
    add_command(logs, "list", cmd_logs_list, "list logs")

    creds = sub.add_parser("credentials", help="API tokens").add_subparsers(
        dest="cred_command", required=True
    )
    cc = add_command(
        creds, "create", cmd_credentials_create, "create a token; printed once on stdout"
    )
    cc.add_argument("--log", required=True)
    cc.add_argument("--role", required=True, choices=["writer", "auditor", "verifier", "admin"])
    cc.add_argument("--label", default="")
    cc.add_argument(
        "--expires-in",
        type=expires_in,
        metavar="DURATION",
        help="refused once this long has passed: e.g. 90d, 12h, 30m (default: never)",
    )
    cl = add_command(creds, "list", cmd_credentials_list, "a log's credentials, revoked ones too")
    cl.add_argument("--log", required=True)
    cr = add_command(
        creds,
        "revoke",
        cmd_credentials_revoke,
        "revoke a credential by id (it is kept, never deleted)",
    )
    cr.add_argument("id", type=int)

    keys = sub.add_parser("keys", help="checkpoint signing keys").add_subparsers(
        dest="keys_command", required=True
    )
    kg = add_command(
        keys,
        "generate",
        cmd_keys_generate,
        "signing key for a log without an active one (else: rotate)",
    )
    kg.add_argument("--log", required=True)
    kr = add_command(
        keys,
        "rotate",
        cmd_keys_rotate,
        "new signing key certified by the old one, which is retired",
    )
    kr.add_argument("--log", required=True)
    kl = add_command(keys, "list", cmd_keys_list, "verifier keys, current first")
    kl.add_argument("--log", required=True)
    master_keys.register(keys)
