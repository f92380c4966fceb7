"""``ledger keys rotate-master | retire-master | masters``: the master keys that wrap every data
key and signing key (``ledger.keys``; the rotation itself: ``ledger.services.admin.master_keys``).

Output names master keys by id (``local:<key check value>``, a KMS key's name), never by any
byte of a key.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ledger.cli.clusters import clustered, on_cluster, over_clusters
from ledger.cli.common import add_command, cluster_names, engine, key_ring, now, operator
from ledger.cli.errors import EXIT_FAILED, EXIT_OK
from ledger.settings import Settings


def cmd_rotate_master(settings: Settings, args: argparse.Namespace) -> int:
    """Re-wrap every key under ``--to`` (a provider spec, or the id of a master key this
    process already holds through LEDGER_EXTRA_KEY_PROVIDERS)."""
    from ledger.keys.config import provider_from_spec
    from ledger.services.admin.master_keys import rotate_master

    keys = key_ring(settings)
    if keys.masters.holds(args.to):
        target = args.to
    else:
        provider = provider_from_spec(args.to)
        keys.masters.add(provider)
        target = provider.key_id
    show = sys.stderr.isatty()

    def progress(tenant: str, done: int) -> None:
        print(f"\r{tenant}: {done} keys re-wrapped", end="", file=sys.stderr, flush=True)

    print(
        f"rotating to master key {target} (holding {', '.join(keys.masters.ids)})", file=sys.stderr
    )
    remaining = 0
    # Each cluster holds its own wrapped keys (and its own record of the active master key):
    # each is rotated in turn, with the same ring (which follows the target after the first).
    for name in cluster_names(settings):
        report = rotate_master(
            engine(settings, cluster=name),
            keys,
            target,
            actor=operator(),
            now=now,
            batch=args.batch,
            max_rate=args.max_rate,
            settle_seconds=settings.master_key_refresh_seconds,
            progress=progress if show else None,
        )
        if show:
            print(file=sys.stderr)
        r = report.rewrapped
        print(
            f"{target}: {r['data_keys']} data keys, {r['signing_keys']} signing keys,"
            f" {r['wrapped_secrets']} secrets re-wrapped in {report.seconds:.2f} s"
            f" ({report.waited:.1f} s of it waiting: for servers to follow, --max-rate;"
            f" {report.rate:.0f} keys/s of work, {report.passes} passes, {report.skipped} skipped"
            f"{', resumed' if report.resumed else ''}){on_cluster(settings, name)}"
        )
        remaining += report.remaining
    if remaining:
        print(
            f"ledger keys rotate-master: {remaining} keys are still wrapped under another"
            " master key: a server without the new key keeps making them; give every server the"
            " new key (LEDGER_EXTRA_KEY_PROVIDERS or LEDGER_KEY_PROVIDER) and run this again",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def cmd_retire_master(settings: Settings, args: argparse.Namespace) -> int:
    """Refused while any cluster still has a key wrapped under ``args.id`` (checked on every
    cluster before any records the retirement); then retired on each cluster (each re-checks
    under its lock), skipping one that retired it already (a run that stopped half way)."""
    from ledger.errors import KeyStateConflict
    from ledger.services.admin.master_keys import list_master_keys, retire_master
    from ledger.storage.db import unit_of_work
    from ledger.storage.keystore import master_key_state

    keys = key_ring(settings)
    names = cluster_names(settings)
    pending = []
    for name in names:
        cluster = engine(settings, cluster=name)
        with unit_of_work(cluster) as conn:
            if args.id in master_key_state(conn).retired:
                continue
        pending.append(name)
        if len(names) == 1:
            break  # retire_master's own check says it, as it always did
        for listed in list_master_keys(cluster, keys):
            still = sum(listed.wrapped.values())
            if listed.master_key_id in (args.id, None) and still:
                raise KeyStateConflict(
                    f"master key {args.id} may still wrap {still} keys on cluster {name}: run"
                    " `ledger keys rotate-master --to SPEC` to the end first (nothing retired)"
                )
    if not pending:
        raise KeyStateConflict(f"master key {args.id} is retired already")
    for name in pending:
        retire_master(engine(settings, cluster=name), keys, args.id, actor=operator(), now=now)
    print(
        f"master key {args.id} retired: nothing is wrapped under it"
        f"{'' if len(names) == 1 else ' on any cluster'}",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_masters(settings: Settings, _args: argparse.Namespace) -> int:
    """One line per master key: id, state, data keys, signing keys, secrets wrapped under it,
    and whether this process holds it; with clusters configured, one per master key and
    cluster, the cluster last."""
    from ledger.services.admin.master_keys import list_master_keys

    keys = key_ring(settings)

    def list_on(name: str) -> None:
        for k in list_master_keys(engine(settings, cluster=name), keys):
            w = k.wrapped
            print(
                f"{k.master_key_id or '(unrecorded)'}\t{k.state}\t{w['data_keys']}\t"
                f"{w['signing_keys']}\t{w['wrapped_secrets']}\t{'held' if k.held else 'not held'}"
                + (f"\t{name}" if clustered(settings) else "")
            )

    return over_clusters(settings, "keys masters", list_on)


def register(keys: Any) -> None:
    """Under ``ledger keys``."""
    rm = add_command(
        keys,
        "rotate-master",
        cmd_rotate_master,
        "re-wrap every data and signing key under a new master key, online and resumable",
    )
    rm.add_argument(
        "--to",
        required=True,
        metavar="SPEC",
        help="the new master key: env:NAME, file:PATH, package.module:factory[:ARG],"
        " or the id of one held through LEDGER_EXTRA_KEY_PROVIDERS",
    )
    rm.add_argument("--batch", type=int, default=500, help="keys per transaction (500)")
    rm.add_argument(
        "--max-rate",
        type=float,
        metavar="KEYS_PER_SECOND",
        help="re-wrap at most this many keys a second, leaving the machine to the servers",
    )
    rt = add_command(
        keys,
        "retire-master",
        cmd_retire_master,
        "record that a master key wraps nothing any more (refused while it does)",
    )
    rt.add_argument("id", help="master key id, as `ledger keys masters` lists it")
    add_command(keys, "masters", cmd_masters, "master keys and what each still wraps")
