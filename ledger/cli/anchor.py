"""``ledger anchor``: publish each log's latest checkpoint to the configured external sinks.

Exit 0 when every sink took what it was given (or there was nothing new), 1 when a sink holds a
different checkpoint of the same size (a fork: the database was rewritten), 2 when a sink could
not be reached or nothing is configured.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ledger.cli.clusters import clustered, logs_placed_on, on_cluster, placed_logs
from ledger.cli.common import (
    add_command,
    cluster_names,
    cluster_of,
    engine,
    key_ring,
    now,
    operator,
)
from ledger.cli.errors import EXIT_FAILED, EXIT_INTEGRITY, EXIT_OK
from ledger.settings import Settings


def cmd_anchor(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.errors import StoreUnavailable
    from ledger.services.anchoring.anchor import anchor, sinks_from_settings
    from ledger.storage.db import unit_of_work
    from ledger.storage.logs import get_log, list_logs

    sinks = sinks_from_settings(settings)
    if not sinks:
        print(
            "ledger anchor: no sink configured (LEDGER_ANCHOR_DIR, LEDGER_ANCHOR_WEBHOOK_URL,"
            " LEDGER_ANCHOR_WITNESS_URL)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    keys = key_ring(settings)
    outcomes = set()
    done = []
    # One cluster at a time, each in its own unit of work (a log's anchoring is recorded in its
    # tenant's system log, on the same cluster); --log: the cluster holding that log.
    names = [cluster_of(settings, args.log)] if args.log else cluster_names(settings)
    placed = placed_logs(settings) if clustered(settings) and not args.log else {}
    for name in names:
        try:
            with unit_of_work(engine(settings, cluster=name)) as conn:
                if args.log:
                    logs = [get_log(conn, args.log)]
                elif clustered(settings):
                    logs = logs_placed_on(conn, name, placed)
                else:
                    logs = list_logs(conn)
                anchored = anchor(conn, keys, logs, sinks, actor=operator(), now=now())
        except StoreUnavailable as exc:
            if len(names) == 1:
                raise
            # The other clusters' logs are anchored all the same; this one's next run.
            print(f"ledger anchor: cluster {name} skipped: {exc}", file=sys.stderr)
            outcomes.add("failure")
            continue
        done += anchored
        for anchoring in anchored:
            for sink in anchoring.sinks:
                outcomes.add(sink["outcome"])
                result = (
                    "ok"
                    if sink["outcome"] == "success"
                    else f"{sink['outcome'].upper()}: {sink['error']}"
                )
                print(
                    f"{anchoring.log.id} size {anchoring.checkpoint.size} -> {sink['sink']}:"
                    f" {result}{on_cluster(settings, name)}"
                )
    if not done:
        print("nothing new to anchor", file=sys.stderr)
    if "fork" in outcomes:
        return EXIT_INTEGRITY
    return EXIT_FAILED if "failure" in outcomes else EXIT_OK


def register(sub: Any) -> None:
    anchor = add_command(
        sub, "anchor", cmd_anchor, "publish new checkpoints to the external sinks (LEDGER_ANCHOR_*)"
    )
    anchor.add_argument("--log", help="one log (default: every log)")
