"""Operator commands: schema, logs, credentials, signing keys."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import timedelta
from typing import Any

from ledger.cli import master_keys
from ledger.cli.clusters import (
    clustered,
    logs_placed_on,
    on_cluster,
    over_clusters,
    placed_logs,
)
from ledger.cli.common import (
    add_command,
    cluster_names,
    cluster_urls,
    engine,
    key_ring,
    now,
    operator,
)
from ledger.cli.errors import EXIT_OK
from ledger.cli.text import printable
from ledger.core.entry import format_time
from ledger.domain import MAIN_CLUSTER
from ledger.settings import Settings


def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    """Every configured cluster to the newest migration, main first; then each other cluster
    gets the main cluster's card-fingerprint key (``share_fingerprint_key``)."""
    from sqlalchemy.exc import OperationalError

    from ledger.errors import StoreUnavailable
    from ledger.storage.db import upgrade_schema

    down = []
    for name, cluster in cluster_urls(settings, setup=True).items():
        try:
            upgrade_schema(cluster.url)
        except OperationalError as exc:  # the others are upgraded all the same
            down.append(f"cluster {name}: {exc.orig}" if clustered(settings) else str(exc.orig))
            continue
        print(f"schema is at head{on_cluster(settings, name)}", file=sys.stderr)
    if down:
        raise StoreUnavailable("; ".join(down))
    if clustered(settings):
        share_fingerprint_key(settings)
        give_id_blocks(settings)
    return EXIT_OK


def give_id_blocks(settings: Settings) -> None:
    """Give every cluster that has handed out no id yet a block of its own
    (``ledger.storage.placement.ID_BLOCK``): the lowest block no other configured cluster uses
    (the main cluster's is 0). Ids are named in signed records and a tenant's move keeps them,
    so two clusters must never hand out the same one. Every cluster answered the upgrade just
    before, so every block in use is seen."""
    from ledger.errors import ConfigurationError
    from ledger.storage.db import unit_of_work
    from ledger.storage.placement import ID_BLOCK, claim_id_block, id_block

    blocks: dict[str, int | None] = {}
    for name in cluster_names(settings):
        with unit_of_work(engine(settings, cluster=name)) as conn:
            blocks[name] = id_block(conn)
    used = {block for block in blocks.values() if block is not None} | {0}
    for name, block in blocks.items():
        if block is not None or name == MAIN_CLUSTER:
            continue
        free = next((k for k in range(1, 22) if k not in used), None)
        if free is None:
            raise ConfigurationError("every id block is in use: at most 21 clusters")
        with unit_of_work(engine(settings, cluster=name)) as conn:
            claim_id_block(conn, free)
        used.add(free)
        print(f"cluster {name} numbers its ids from {free * ID_BLOCK + 1}", file=sys.stderr)


def share_fingerprint_key(settings: Settings) -> None:
    """Copy the main cluster's ``pan-fingerprint`` secret to every other cluster that has none.

    The card guard fingerprints card numbers with one key per ledger (``pan_fingerprint_key``),
    so a number is recognised as the same whichever cluster its log is on; made on first use,
    each cluster would otherwise make its own. Copying the wrapped bytes as they are is sound:
    the secret is wrapped bound to its name only (not to a database), under a master key every
    cluster's processes hold (one master key ring for the ledger), and a master-key rotation
    re-wraps each cluster's copy. A cluster that already has one keeps it (never overwritten:
    the table allows no change but a re-wrap); if it was made there before this copy, its
    fingerprints differ from main's, which this says rather than hides."""
    from sqlalchemy import text

    from ledger.storage.db import unit_of_work
    from ledger.storage.keystore import FINGERPRINT_SECRET, pan_fingerprint_key

    with unit_of_work(engine(settings)) as conn:
        pan_fingerprint_key(conn, key_ring(settings, setup=True).masters)  # made if missing
        master_key_id, wrapped = conn.execute(
            text("SELECT master_key_id, wrapped FROM wrapped_secrets WHERE name = :name"),
            {"name": FINGERPRINT_SECRET},
        ).one()
    for name in cluster_names(settings)[1:]:
        with unit_of_work(engine(settings, cluster=name)) as conn:
            copied = conn.execute(
                text(
                    "INSERT INTO wrapped_secrets (name, master_key_id, wrapped)"
                    " VALUES (:name, :mk, :wrapped) ON CONFLICT (name) DO NOTHING"
                ),
                {"name": FINGERPRINT_SECRET, "mk": master_key_id, "wrapped": bytes(wrapped)},
            ).rowcount
        if copied:
            print(f"card fingerprint key copied from {MAIN_CLUSTER} to {name}", file=sys.stderr)
        elif not _same_fingerprint_key(settings, name):
            print(
                f"ledger db upgrade: cluster {name} has a card fingerprint key of its own, not"
                f" {MAIN_CLUSTER}'s: a card number seen on both is not recognised as the same",
                file=sys.stderr,
            )


def _same_fingerprint_key(settings: Settings, name: str) -> bool:
    from ledger.storage.db import unit_of_work
    from ledger.storage.keystore import pan_fingerprint_key

    masters = key_ring(settings).masters
    keys = []
    for cluster in (MAIN_CLUSTER, name):
        with unit_of_work(engine(settings, cluster=cluster)) as conn:
            keys.append(pan_fingerprint_key(conn, masters))
    return keys[0] == keys[1]


def cmd_logs_create(settings: Settings, args: argparse.Namespace) -> int:
    """Through the placement rule (``ledger.services.admin.placement``): the tenant's cluster,
    ``--cluster`` for a new tenant, else the cluster with the fewest tenants."""
    from ledger.services.admin.placement import create_placed_log

    info, cluster = create_placed_log(
        engine(settings, setup=True),
        lambda name: engine(settings, cluster=name, setup=True),
        cluster_names(settings),
        key_ring(settings, setup=True),
        args.id,
        cluster=args.cluster,
        tenant=args.tenant,
        origin_prefix=settings.origin_prefix,
        actor=operator(),
        now=now(),
        card_policy=args.card_policy,
        retention_days=args.retention,
    )
    print(info.origin)
    if clustered(settings):
        print(f"placed on cluster {cluster}", file=sys.stderr)
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
    """id, kind, origin; and the cluster when clusters are configured (each log once: where
    the placement puts it)."""
    from ledger.storage.db import unit_of_work
    from ledger.storage.logs import list_logs

    if not clustered(settings):
        with unit_of_work(engine(settings)) as conn:
            for info in list_logs(conn):
                print(f"{info.id}\t{info.kind}\t{info.origin}")
        return EXIT_OK
    placed = placed_logs(settings)

    def list_on(name: str) -> None:
        with unit_of_work(engine(settings, cluster=name)) as conn:
            for info in logs_placed_on(conn, name, placed):
                print(f"{info.id}\t{info.kind}\t{info.origin}\t{name}")

    return over_clusters(settings, "logs list", list_on)


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
    with unit_of_work(engine(settings, log=args.log)) as conn:
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

    cluster = credential_cluster(settings, args)
    with unit_of_work(engine(settings, cluster=cluster)) as conn:
        log_id = revoke_credential(conn, key_ring(settings), args.id, actor=operator(), now=now())
    print(
        f"credential {args.id} on {log_id} revoked{on_cluster(settings, cluster)}", file=sys.stderr
    )
    return EXIT_OK


def credential_cluster(settings: Settings, args: argparse.Namespace) -> str:
    """The cluster of credential ``args.id``: the one of ``--log`` or ``--cluster``; else, the
    only cluster holding an active credential of that id on a log placed there (each cluster
    numbers its credentials itself, so the same id on two clusters is refused, not guessed)."""
    from sqlalchemy import text

    from ledger.cli.common import cluster_of
    from ledger.errors import InvalidRequest, NotFound
    from ledger.storage.db import unit_of_work

    if args.log is not None:
        return cluster_of(settings, args.log)
    if args.cluster is not None or not clustered(settings):
        return str(args.cluster or MAIN_CLUSTER)
    placed = placed_logs(settings)
    found = []
    for name in cluster_names(settings):
        with unit_of_work(engine(settings, cluster=name)) as conn:
            log_id = conn.execute(
                text("SELECT log_id FROM credentials WHERE id = :id AND revoked_at IS NULL"),
                {"id": args.id},
            ).scalar_one_or_none()
        if log_id is not None and placed.get(log_id, MAIN_CLUSTER) == name:
            found.append(name)
    if not found:
        raise NotFound(f"no active credential {args.id} on any cluster")
    if len(found) > 1:
        raise InvalidRequest(
            f"credential {args.id} is active on clusters {', '.join(found)} (each numbers its"
            " own): name its log with --log, or the cluster with --cluster"
        )
    return found[0]


def cmd_credentials_list(settings: Settings, args: argparse.Namespace) -> int:
    """The log's credentials: id, role, label, created, expires (``never``), then ``active``,
    ``expired`` or ``revoked <time>`` (tokens are never stored)."""
    from ledger.storage.credentials import list_credentials
    from ledger.storage.db import unit_of_work
    from ledger.storage.logs import get_log

    with unit_of_work(engine(settings, log=args.log)) as conn:
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

    with unit_of_work(engine(settings, log=args.log)) as conn:
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

    with unit_of_work(engine(settings, log=args.log)) as conn:
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

    with unit_of_work(engine(settings, log=args.log)) as conn:
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
    create.add_argument("--tenant", help="the tenant the log belongs to (default: the log id)")
    create.add_argument(
        "--cluster",
        help="for a new tenant: the cluster to place it on (LEDGER_CLUSTERS; default: the one"
        " with the fewest tenants); a tenant's logs all stay on its cluster",
    )
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
    where = cr.add_mutually_exclusive_group()
    where.add_argument("--log", help="the credential's log (finds its cluster)")
    where.add_argument("--cluster", help="the cluster holding the credential")

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
