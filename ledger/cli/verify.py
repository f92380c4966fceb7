"""``ledger verify``: the scheduled integrity job.

Exit 0 intact, 1 integrity failure found, 2 could not run (nothing proven either way). Runs in
one read-only, repeatable-read transaction, so a read-only database role is enough; the verifier
state is saved only for intact logs, after the transaction. A failure (1 or 2) triggers the
configured alerts; every run is recorded on the ledger server when a record URL is configured
(a run that could not be recorded exits 2 unless it found tampering).

With ``LEDGER_READ_DATABASE_URL`` set it reads a standby, one that has replayed everything the
primary held when the run began (else the primary), and says which on stderr. Nothing it does
writes to the database (a standby would refuse): its transaction is read-only, and the
verifier state, alerts and run records go to files and the server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from ledger.cli.clusters import cluster_of_tenant, clustered, on_cluster
from ledger.cli.common import add_command, cluster_names, cluster_of, cluster_urls, now
from ledger.cli.errors import EXIT_FAILED, EXIT_INTEGRITY, EXIT_OK
from ledger.settings import Settings

if TYPE_CHECKING:
    from ledger.services.verification.job import JobOutcome


def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.keys.config import master_key_ring
    from ledger.services.verification.job import Alerts, RunRecorder, Scope, run_verification
    from ledger.services.verification.state import VerifierStateStore
    from ledger.storage.keystore import DataKeyStore

    show_progress = not args.json and sys.stderr.isatty()

    def progress(log_id: str, done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\r{log_id}: {done}/{total} entries", end=end, file=sys.stderr, flush=True)

    timeout = settings.http_timeout_seconds
    data_keys = DataKeyStore(master_key_ring(settings))
    outcomes: dict[str, JobOutcome] = {}
    clusters = cluster_urls(settings)
    for name in _clusters_to_verify(settings, args):
        cluster = clusters[name]
        with verification_engine(settings, cluster.url, cluster.read_url) as source:
            if source.said:
                print(f"ledger verify: {source.said}{on_cluster(settings, name)}", file=sys.stderr)
            outcomes[name] = run_verification(
                source.engine,
                data_keys=data_keys,
                states=VerifierStateStore(settings.verifier_state_path),
                anchor_dir=settings.anchor_dir,
                scope=Scope(log=args.log, tenant=args.tenant),
                full=args.full,
                rebaseline=args.rebaseline,
                jobs=args.jobs,
                alerts=Alerts(settings.alert_webhook_url, settings.alert_command, timeout),
                recorder=RunRecorder(
                    settings.verify_record_url, settings.verify_record_token, timeout
                )
                if settings.verify_record_url
                else None,
                now=now,
                progress=progress if show_progress else None,
            )
    for outcome in outcomes.values():
        for note in outcome.notes:
            print(note, file=sys.stderr)
    if clustered(settings):
        _print_clusters(args, outcomes)
    else:
        (outcome,) = outcomes.values()
        _print(args, outcome.run, outcome.problems)
    if any(outcome.status == "tampered" for outcome in outcomes.values()):
        return EXIT_INTEGRITY
    intact = all(o.status == "intact" and not o.problems for o in outcomes.values())
    return EXIT_OK if intact else EXIT_FAILED


def _clusters_to_verify(settings: Settings, args: argparse.Namespace) -> list[str]:
    """The cluster of ``--log`` or ``--tenant``, else every configured cluster (on each, the
    logs it holds live: ``list_logs``)."""
    if args.log:
        return [cluster_of(settings, args.log)]
    if args.tenant:
        return [cluster_of_tenant(settings, args.tenant)]
    return cluster_names(settings)


def _print_clusters(args: argparse.Namespace, outcomes: dict[str, JobOutcome]) -> None:
    """Each cluster's run, as ``_print`` prints one. ``--json``: ``{"status", "clusters": {name:
    run}}``, whose ``status`` is ``tampered`` if any cluster's is, else ``error`` if any could
    not run, else ``intact``."""
    if args.json:
        statuses = {o.status for o in outcomes.values()}
        status = "tampered" if "tampered" in statuses else "intact"
        status = "error" if status == "intact" and statuses != {"intact"} else status
        runs = {name: {**o.run, "problems": o.problems} for name, o in outcomes.items()}
        print(json.dumps({"status": status, "clusters": runs}, indent=2))
        return
    quiet = argparse.Namespace(**{**vars(args), "json": False})
    for name, outcome in outcomes.items():
        print(f"cluster {name}:", file=sys.stderr)
        _print(quiet, outcome.run, outcome.problems)


@dataclass(frozen=True)
class VerificationSource:
    engine: Engine
    """The verifier's engine (``system="verifier"``: every tenant's rows)."""
    said: str | None
    """Which server it reads, for the operator; None when no standby is configured."""


@contextmanager
def verification_engine(
    settings: Settings, url: str, read_url: str | None
) -> Iterator[VerificationSource]:
    """The engine ``ledger verify`` reads one cluster with (``url``: its primary; ``read_url``:
    its standbys, if any), closed on exit. A standby only once it has replayed everything the
    primary held when this was called (waiting up to ``read_max_lag_seconds``): its snapshot
    then holds every checkpoint an earlier run pinned, so a run on a lagging standby cannot
    report a rollback that is only lag. Else the primary."""
    from ledger.storage.db import make_engine
    from ledger.storage.replicas import ReadReplicas

    primary = make_engine(url, pool_size=2, system="verifier")
    replicas = None
    try:
        source = VerificationSource(primary, None)
        if read_url:
            replicas = ReadReplicas(
                primary,
                read_url,
                role=None,
                system="verifier",
                max_lag_seconds=settings.read_max_lag_seconds,
                probe_seconds=settings.read_lag_probe_seconds,
                pool_size=2,
            )
            wait = settings.read_max_lag_seconds
            standby = replicas.caught_up_engine(timeout=wait)
            source = (
                VerificationSource(
                    standby,
                    f"reading standby {standby.url.host}:{standby.url.port}"
                    " (it had replayed all the primary held when the run began)",
                )
                if standby is not None
                else VerificationSource(
                    primary, f"reading the primary: no standby caught up with it within {wait:g} s"
                )
            )
        yield source
    finally:
        if replicas is not None:
            replicas.stop()
        primary.dispose()


def _print(args: argparse.Namespace, run: dict[str, Any], problems: list[str]) -> None:
    if run["status"] == "error":
        print(f"ledger verify: could not run: {run['error']}", file=sys.stderr)
    for problem in problems:
        print(f"ledger verify: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps({**run, "problems": problems}, indent=2))
        return
    for r in run["logs"]:
        state = "intact" if r["failure"] is None else f"FAILED: {r['failure']['message']}"
        print(
            f"{r['log']}: {r['mode']} [{r['from_size']}, {r['to_size']}),"
            f" {r['entries']} entries, {r['checkpoints']} checkpoints,"
            f" {r['anchors']} anchors: {state}"
        )


def register(sub: Any) -> None:
    verify = add_command(
        sub,
        "verify",
        cmd_verify,
        "check the database against its own bytes, the verifier state and the anchors",
    )
    scope = verify.add_mutually_exclusive_group()
    scope.add_argument("--log", help="one log (default: every log)")
    scope.add_argument("--tenant", help="every log of one tenant")
    verify.add_argument(
        "--full",
        action="store_true",
        help="recompute from genesis (default: from the last verified checkpoint)",
    )
    verify.add_argument("--json", action="store_true", help="machine-readable report, no progress")
    verify.add_argument(
        "--rebaseline",
        action="store_true",
        help="after an approved restore: set the log's verifier state aside and"
        " verify in full (see ops/RUNBOOK.md)",
    )
    verify.add_argument(
        "--jobs",
        type=_positive,
        default=os.cpu_count() or 1,
        metavar="N",
        help="processes a long run (200,000+ entries) is split over (default: the number of CPUs)",
    )


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number
