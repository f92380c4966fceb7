"""``ledger tenants``: where each tenant is, and moving one to another cluster (issue 17).

    ledger tenants list [--json]                 # tenant, cluster, logs
    ledger tenants move TENANT --to CLUSTER [--json]
    ledger tenants drop-copy TENANT --cluster CLUSTER    # a copy an abandoned move left

``move`` copies, verifies, switches and verifies again (``ledger.services.admin.move``;
the operator's procedure: ``docs/moving-a-tenant.md``). Progress goes to stderr, the summary
to stdout. Exit 0 moved and verified; 1 the copy or the verification after found a
difference (before the switch: nothing changed); 2 could not run (nothing changed).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ledger.cli.common import add_command, cluster_names, engine, now
from ledger.cli.errors import EXIT_INTEGRITY, EXIT_OK
from ledger.cli.text import printable
from ledger.settings import Settings


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.admin.move import list_tenants
    from ledger.storage.db import unit_of_work

    with unit_of_work(engine(settings)) as directory:
        rows = list_tenants(directory)
    if args.json:
        print(
            json.dumps(
                {"tenants": [{"tenant": t, "cluster": c, "logs": n} for t, c, n in rows]},
                indent=2,
            )
        )
        return EXIT_OK
    for tenant, cluster, logs in rows:
        print(f"{printable(tenant)}\t{printable(cluster)}\t{logs}")
    return EXIT_OK


def cmd_move(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.keys.config import master_key_ring
    from ledger.services.admin.move import move_tenant, plan_move, verify_moved
    from ledger.services.verification.job import Alerts
    from ledger.services.verification.state import VerifierStateStore
    from ledger.storage.keystore import DataKeyStore

    def say(message: str) -> None:
        print(f"ledger tenants move: {message}", file=sys.stderr, flush=True)

    def engine_of(name: str) -> Any:
        return engine(settings, cluster=name)

    plan = plan_move(engine(settings), engine_of, cluster_names(settings), args.tenant, args.to)
    say(f"tenant {plan.tenant}: {len(plan.logs)} log(s) from {plan.source} to {plan.target}")
    report = move_tenant(
        plan,
        main=engine(settings),
        source=engine_of(plan.source),
        target=engine_of(plan.target),
        say=say,
    )
    say(f"verifying tenant {plan.tenant} on {plan.target} (ledger verify --full)")
    outcome = verify_moved(
        engine_of(plan.target),
        plan.tenant,
        data_keys=DataKeyStore(master_key_ring(settings)),
        states=VerifierStateStore(settings.verifier_state_path),
        anchor_dir=settings.anchor_dir,
        alerts=Alerts(
            settings.alert_webhook_url, settings.alert_command, settings.http_timeout_seconds
        ),
        now=now,
    )
    for problem in outcome.problems:
        say(problem)
    summary = {**report.as_json(), "verification": outcome.run}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(report.as_json(), outcome.run)
    return EXIT_OK if outcome.status == "intact" else EXIT_INTEGRITY


def cmd_drop_copy(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.services.admin.move import drop_copy

    deleted = drop_copy(
        engine(settings), lambda name: engine(settings, cluster=name), args.tenant, args.cluster
    )
    print(
        f"ledger tenants drop-copy: the copy of tenant {args.tenant} on cluster {args.cluster}"
        f" is gone ({sum(deleted.values())} rows)",
        file=sys.stderr,
    )
    print(json.dumps({"tenant": args.tenant, "cluster": args.cluster, "deleted": deleted}))
    return EXIT_OK


def _print_summary(report: dict[str, Any], run: dict[str, Any]) -> None:
    print(f"tenant {report['tenant']}: {report['from']} -> {report['to']}")
    for name, table in report["tables"].items():
        if table["inserted"] or table["updated"] or table["compared"]:
            print(
                f"  {name}: {table['inserted']} copied, {table['updated']} updated,"
                f" {table['compared']} compared (sha256 {table['sha256'][:16]}…)"
            )
    for log, size in report["entries"].items():
        print(f"  {log}: Merkle root of {size} entries = signed checkpoint")
    print("  seconds: " + ", ".join(f"{k} {v:.3f}" for k, v in report["seconds"].items()))
    for r in run.get("logs", []):
        state = "intact" if r["failure"] is None else f"FAILED: {r['failure']['message']}"
        print(f"  verify {r['log']}: {r['mode']} {r['entries']} entries: {state}")
    if run.get("status") == "error":
        print(f"  verify could not run: {run.get('error')}")


def register(sub: Any) -> None:
    tenants = sub.add_parser("tenants", help="where tenants are; move one to another cluster")
    commands = tenants.add_subparsers(dest="tenants_command", required=True)
    listing = add_command(commands, "list", cmd_list, "each tenant's cluster and log count")
    listing.add_argument("--json", action="store_true")
    move = add_command(
        commands, "move", cmd_move, "move a tenant to another cluster: copy, verify, switch"
    )
    move.add_argument("tenant")
    move.add_argument("--to", required=True, help="the cluster (LEDGER_CLUSTERS, or main)")
    move.add_argument("--json", action="store_true", help="the summary as JSON")
    drop = add_command(
        commands,
        "drop-copy",
        cmd_drop_copy,
        "delete a copy of a tenant the placement does not name (an abandoned move's)",
    )
    drop.add_argument("tenant")
    drop.add_argument("--cluster", required=True, help="the cluster holding the copy")
