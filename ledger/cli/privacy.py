"""Erasure, legal holds, retention and approvals on the command line: ``ledger erase``,
``ledger approve``, ``ledger holds place|release|list``, ``ledger privacy-requests``,
``ledger retention show|set|run``.

The two-person rule holds here as over HTTP. The command line has no credential of its own (it
runs as the operator, with the database owner's rights), so each request and approval names the
admin credential it acts as by its token (``--token``, or ``LEDGER_TOKEN`` so it stays out of
the process list), authenticated and authorized exactly as the API does it (an unknown token or
a non-admin one is refused and recorded in the tenant's system log). The request records that
credential, and the approval must come from another admin credential of the same log, so one
operator with one token cannot erase alone. Listing needs no token (it reads, as the operator).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from ledger.cli.clusters import on_cluster
from ledger.cli.common import add_command, engine, key_ring, now
from ledger.cli.errors import EXIT_FAILED, EXIT_OK
from ledger.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from ledger.domain import LogInfo, Principal
    from ledger.services.system_log import SystemLog
    from ledger.storage.keystore import KeyRing

T = TypeVar("T")
TOKEN_ENV = "LEDGER_TOKEN"  # noqa: S105 - the name of a variable, not a secret


def _print_json(value: Any) -> None:
    import orjson

    print(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _as_admin(
    settings: Settings,
    args: argparse.Namespace,
    act: Callable[[Connection, KeyRing, LogInfo, Principal, SystemLog], T],
) -> T:
    """Authenticate ``--token`` as an admin of ``--log`` (as the API would), then run ``act``
    in one unit of work; refusals are recorded through a committer of their own."""
    from ledger.errors import Unauthenticated
    from ledger.services.access import authorize
    from ledger.services.admin.credentials import authenticate
    from ledger.services.system_log import Access, SystemLog
    from ledger.storage.db import unit_of_work
    from ledger.storage.group_commit import GroupCommitter
    from ledger.storage.logs import get_log

    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        raise Unauthenticated(
            f"an admin credential's token is needed: --token, or {TOKEN_ENV} in the environment"
        )
    eng: Engine = engine(settings, log=args.log)
    keys = key_ring(settings)

    def principal(t: str) -> Principal:
        with unit_of_work(eng) as conn:
            return authenticate(conn, t)

    def log_info(log_id: str) -> LogInfo:
        with unit_of_work(eng) as conn:
            return get_log(conn, log_id)

    with GroupCommitter(eng, signers=keys.signers, data_keys=keys.data_keys) as committer:
        system_log = SystemLog.committing(committer, eng)
        admin = authorize(
            f"Bearer {token}",
            args.log,
            ("admin",),
            access=lambda: Access(client="cli", host=socket.gethostname()),
            principals=principal,
            logs=log_info,
            system_log=system_log,
            now=now(),
        )
        # On behalf of the admin credential: its tenant's rows only (row security, 0011).
        info = log_info(args.log)
        with unit_of_work(eng, tenant=info.tenant) as conn:
            return act(conn, keys, info, admin, system_log)


def _ttl(settings: Settings) -> timedelta:
    return timedelta(hours=settings.approval_ttl_hours)


def _scope(args: argparse.Namespace) -> Any:
    from ledger.services.privacy.scopes import Scope

    return Scope.of(conversation=args.conversation, subject=args.subject)


def cmd_erase(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.privacy.requests import request_erasure

    record = _two_person_request(settings, args, request_erasure, _scope(args))
    print(
        f"erasure request {record.id} is pending: another admin approves it with "
        f"`ledger approve {record.id} --log {args.log}` before {record.expires_at.isoformat()}",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_approve(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.privacy.approve import approve
    from ledger.services.privacy.requests import request_json

    at = now()
    done = _as_admin(
        settings,
        args,
        lambda conn, keys, log, admin, refusals: approve(
            conn, keys, log, args.request_id, approver=admin, now=at, refusals=refusals
        ),
    )
    print(done.done, file=sys.stderr)
    _print_json(
        {
            "request": request_json(done.request, at),
            "done": done.done,
            "erasure": None if done.erasure is None else done.erasure.as_json(),
            "system_seqs": done.system_seqs,
        }
    )
    return EXIT_OK


def cmd_holds_place(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.privacy.requests import request_hold

    record = _two_person_request(settings, args, request_hold, _scope(args))
    print(
        f"hold request {record.id} is pending: in force once another admin runs "
        f"`ledger approve {record.id} --log {args.log}`",
        file=sys.stderr,
    )
    return EXIT_OK


def _two_person_request(
    settings: Settings, args: argparse.Namespace, make: Callable[..., Any], target: object
) -> Any:
    """A two-person request (``make``: erasure, hold, release or retention change) on
    ``target``, with ``--legal-basis`` and ``--reference``, made as the admin of ``--token``;
    prints the pending request as JSON and returns it."""
    from ledger.services.privacy.requests import request_json

    at = now()
    record = _as_admin(
        settings,
        args,
        lambda conn, keys, log, admin, refusals: make(
            conn,
            keys,
            log,
            target,
            legal_basis=args.legal_basis,
            reference=args.reference,
            requester=admin,
            now=at,
            ttl=_ttl(settings),
            refusals=refusals,
        ),
    )
    _print_json(request_json(record, at))
    return record


def cmd_holds_release(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.privacy.requests import request_release

    record = _two_person_request(settings, args, request_release, args.hold_id)
    print(
        f"release request {record.id} is pending: the hold stays in force until another admin "
        f"runs `ledger approve {record.id} --log {args.log}`",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_holds_list(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.privacy.requests import active_holds, request_json
    from ledger.storage.db import read_only, unit_of_work
    from ledger.storage.logs import get_log

    at = now()
    with unit_of_work(engine(settings, log=args.log)) as conn:
        read_only(conn)
        holds = active_holds(conn, get_log(conn, args.log))
    if args.json:
        _print_json([request_json(h, at) for h in holds])
    else:
        for h in holds:
            print(
                f"{h.id}\t{h.scope_kind} {h.scope_id}\t{h.reference}\t"
                f"approved {h.approved_at.isoformat() if h.approved_at else '-'}"
            )
    return EXIT_OK


def cmd_requests_list(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.privacy.requests import list_requests, request_json
    from ledger.storage.db import read_only, unit_of_work
    from ledger.storage.logs import get_log

    at = now()
    with unit_of_work(engine(settings, log=args.log)) as conn:
        read_only(conn)
        found = list_requests(conn, get_log(conn, args.log), status=args.status, now=at)
    if args.json:
        _print_json([request_json(r, at) for r in found])
    else:
        for r in found:
            print(
                f"{r.id}\t{r.action}\t{r.scope_kind} {r.scope_id}\t{r.status(at)}\t"
                f"by {r.requested_by}\t{r.reference}"
            )
    return EXIT_OK


def cmd_retention_show(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.privacy.retention import retention_policy
    from ledger.storage.db import read_only, unit_of_work
    from ledger.storage.logs import get_log

    with unit_of_work(engine(settings, log=args.log)) as conn:
        read_only(conn)
        policy = retention_policy(conn, get_log(conn, args.log))
    print(f"{args.log}\t{policy.days}d\t{policy.set_by}")
    return EXIT_OK


def cmd_retention_set(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.privacy.retention import request_retention_change

    record = _two_person_request(settings, args, request_retention_change, args.retention)
    print(
        f"retention request {record.id} is pending: in force once another admin runs "
        f"`ledger approve {record.id} --log {args.log}`",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_retention_run(settings: Settings, args: argparse.Namespace) -> int:
    """Shred what has expired; one line per log (``--json``: the runs), exit 0 also when
    nothing expired (the run is recorded either way). Every cluster, each its own logs (those
    the placement puts there); ``--log`` / ``--tenant``: the cluster holding it."""
    from ledger.cli.clusters import cluster_of_tenant, clustered, logs_placed_on, placed_logs
    from ledger.cli.common import cluster_names, cluster_of, operator
    from ledger.errors import StoreUnavailable
    from ledger.services.privacy.retention import run_retention
    from ledger.storage.db import unit_of_work

    if args.log is not None:
        names = [cluster_of(settings, args.log)]
    elif args.tenant is not None:
        names = [cluster_of_tenant(settings, args.tenant)]
    else:
        names = cluster_names(settings)
    placed = placed_logs(settings) if clustered(settings) else {}
    keys = key_ring(settings)
    runs = []
    down = []
    for name in names:
        log_ids = None if args.log is None else [args.log]
        try:
            if log_ids is None and clustered(settings):
                with unit_of_work(engine(settings, cluster=name)) as conn:
                    log_ids = [info.id for info in logs_placed_on(conn, name, placed)]
            runs += [
                (name, run)
                for run in run_retention(
                    engine(settings, cluster=name),
                    keys,
                    now=now(),
                    actor={**operator(), "job": "retention"},
                    log_ids=log_ids,
                    tenant=args.tenant,
                )
            ]
        except StoreUnavailable as exc:
            if len(names) == 1:
                raise
            # The other clusters' logs are shredded all the same; this one's on the next run.
            print(f"ledger retention run: cluster {name} skipped: {exc}", file=sys.stderr)
            down.append(name)
    if args.json:
        _print_json(
            [
                {**r.as_json(), "cluster": name} if clustered(settings) else r.as_json()
                for name, r in runs
            ]
        )
    for name, r in runs:
        shredded = r.as_json()
        print(
            f"{r.log}: kept {r.policy.days}d (cutoff {shredded['cutoff']}), "
            f"{len(shredded['conversations'])} conversation(s) / {shredded['entries']} payloads "
            f"shredded, {len(shredded['held'])} held, recorded at system seqs "
            f"{shredded['system_seqs']}{on_cluster(settings, name)}",
            file=sys.stderr,
        )
    return EXIT_FAILED if down else EXIT_OK


def _scope_args(p: argparse.ArgumentParser) -> None:
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument("--conversation", help="one conversation")
    scope.add_argument("--subject", help="a data subject: every conversation naming this customer")


def _request_args(p: argparse.ArgumentParser, *, basis_help: str) -> None:
    p.add_argument("--legal-basis", required=True, help=basis_help)
    p.add_argument("--reference", required=True, help="your reference (a ticket)")


def _token_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log", required=True)
    p.add_argument(
        "--token", help=f"an admin credential's token of the log (default: ${TOKEN_ENV})"
    )


def register(sub: Any) -> None:
    erase = add_command(
        sub,
        "erase",
        cmd_erase,
        "ask for an erasure (crypto-shredding); another admin approves it",
    )
    _token_arg(erase)
    _scope_args(erase)
    _request_args(erase, basis_help="e.g. 'GDPR Art. 17(1)(a), request of 2026-12-01'")

    approve = add_command(
        sub,
        "approve",
        cmd_approve,
        "approve another admin's erasure, hold or release request, and carry it out",
    )
    approve.add_argument("request_id", type=int)
    _token_arg(approve)

    holds = sub.add_parser("holds", help="legal holds").add_subparsers(
        dest="holds_command", required=True
    )
    place = add_command(
        holds, "place", cmd_holds_place, "ask for a legal hold; in force once approved"
    )
    _token_arg(place)
    _scope_args(place)
    _request_args(place, basis_help="why the data must be kept")
    release = add_command(
        holds, "release", cmd_holds_release, "ask for a hold's release; released once approved"
    )
    release.add_argument("hold_id", type=int)
    _token_arg(release)
    _request_args(release, basis_help="why the hold ends")
    listed = add_command(holds, "list", cmd_holds_list, "the holds in force")
    listed.add_argument("--log", required=True)
    listed.add_argument("--json", action="store_true")

    from ledger.cli.admin import retention_period

    retention = sub.add_parser("retention", help="payload retention").add_subparsers(
        dest="retention_command", required=True
    )
    show = add_command(retention, "show", cmd_retention_show, "a log's retention period")
    show.add_argument("--log", required=True)
    change = add_command(
        retention,
        "set",
        cmd_retention_set,
        "ask for a new retention period; in force once approved",
    )
    _token_arg(change)
    change.add_argument("--retention", required=True, type=retention_period, metavar="PERIOD")
    _request_args(change, basis_help="why the period changes")
    run = add_command(
        retention, "run", cmd_retention_run, "crypto-shred expired payloads (never entries)"
    )
    which = run.add_mutually_exclusive_group()
    which.add_argument("--log")
    which.add_argument("--tenant")
    run.add_argument("--json", action="store_true")

    reqs = add_command(
        sub, "privacy-requests", cmd_requests_list, "erasure, hold and release requests"
    )
    reqs.add_argument("--log", required=True)
    reqs.add_argument("--status", choices=["pending", "approved", "expired"])
    reqs.add_argument("--json", action="store_true")
