"""Commands over several PostgreSQL clusters (issue 17: logs over several clusters), and the
pieces every command group uses to route by the placement table.

``ledger clusters [--json]``: each configured cluster (its name, its hosts and database without
user or password, whether it answers, the tenants and logs placed on it), then the placement
check a server runs at start (``ledger.services.admin.placement.check_placement``): exit 2 with
what is wrong when the placement names a cluster that does not hold the log, or when a cluster
does not answer.

A command that names a log takes the engine of the cluster the placement says holds it
(``engine(settings, log=...)``); a command over every log goes through ``cluster_names`` and
takes, on each cluster, only the logs placed there (``logs_placed_on``): after a tenant moves,
the cluster it left still holds a fenced copy of its logs, which must not be listed, anchored
or shredded twice.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from ledger.cli.common import add_command, cluster_names, cluster_urls, engine
from ledger.cli.errors import EXIT_FAILED, EXIT_OK
from ledger.domain import MAIN_CLUSTER
from ledger.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from ledger.domain import LogInfo


def clustered(settings: Settings) -> bool:
    """Whether clusters other than the main one are configured: only then do outputs name the
    cluster (a single-cluster installation's output stays as it always was)."""
    return bool(settings.clusters)


def on_cluster(settings: Settings, name: str) -> str:
    """`` (cluster NAME)`` to end a line with when clusters are configured, else nothing."""
    return f" (cluster {name})" if clustered(settings) else ""


def placed_logs(settings: Settings) -> dict[str, str]:
    """Each placed log's cluster, from the main cluster's placement table (a log with no row
    is on the main cluster)."""
    from ledger.storage.db import unit_of_work
    from ledger.storage.placement import placements

    with unit_of_work(engine(settings)) as conn:
        return {p.log_id: p.cluster for p in placements(conn)}


def logs_placed_on(conn: Connection, cluster: str, placed: dict[str, str]) -> list[LogInfo]:
    """The logs of ``conn``'s cluster (``cluster``) that the placement puts there: not the
    copies a tenant's move left behind, not a log that was never placed (it is unreachable)."""
    from ledger.storage.logs import list_logs

    return [info for info in list_logs(conn) if placed.get(info.id, MAIN_CLUSTER) == cluster]


def over_clusters(settings: Settings, command: str, each: Callable[[str], None]) -> int:
    """``each(cluster)`` for every configured cluster, main first. One that does not answer is
    said on stderr and skipped, the others are still done, and the command exits 2; with the
    main cluster alone, its failure is the command's, as it always was."""
    from ledger.errors import StoreUnavailable

    names = cluster_names(settings)
    down = False
    for name in names:
        try:
            each(name)
        except StoreUnavailable as exc:
            if len(names) == 1:
                raise
            print(f"ledger {command}: cluster {name} skipped: {exc}", file=sys.stderr)
            down = True
    return EXIT_FAILED if down else EXIT_OK


def cluster_of_tenant(settings: Settings, tenant: str) -> str:
    """The cluster holding ``tenant``'s logs (main if it was never placed)."""
    from ledger.storage.db import unit_of_work
    from ledger.storage.placement import cluster_of_tenant as placed_cluster

    with unit_of_work(engine(settings)) as conn:
        return placed_cluster(conn, tenant) or MAIN_CLUSTER


def hosts_of(url: str) -> str:
    """``host:port[,host:port]/database`` of a libpq URL: never its user, password or options
    (``ledger clusters`` output goes to terminals and tickets)."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    if not hosts:  # postgresql:///db?host=/run/postgresql or ?host=a&host=b
        hosts = ",".join(parse_qs(parts.query).get("host", [])) or "localhost"
    return f"{hosts}{parts.path}"


@dataclass(frozen=True)
class ClusterReport:
    name: str
    hosts: str
    reachable: bool
    tenants: int
    logs: int


def cmd_clusters(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.errors import ConfigurationError, StoreUnavailable
    from ledger.services.admin.placement import check_placement
    from ledger.storage.db import unit_of_work
    from ledger.storage.logs import list_logs
    from ledger.storage.placement import placements

    configured = cluster_urls(settings)
    with unit_of_work(engine(settings)) as directory:
        placed = placements(directory)
        # Logs from before placement (or of a single-cluster installation) are on main.
        unplaced = [i for i in list_logs(directory) if i.id not in {p.log_id for p in placed}]
    placed_tenants = {p.tenant for p in placed}
    reports = []
    for name in cluster_names(settings):
        try:
            with unit_of_work(engine(settings, cluster=name)) as conn:
                conn.exec_driver_sql("SELECT 1")
            reachable = True
        except StoreUnavailable:
            reachable = False
        tenants = {p.tenant for p in placed if p.cluster == name}
        logs = sum(1 for p in placed if p.cluster == name)
        if name == MAIN_CLUSTER:
            tenants |= {i.tenant for i in unplaced} - placed_tenants
            logs += len(unplaced)
        reports.append(
            ClusterReport(name, hosts_of(configured[name].url), reachable, len(tenants), logs)
        )
    problems = [
        f"cluster {r.name!r} does not answer: the logs placed on it answer 503"
        for r in reports
        if not r.reachable
    ]
    engines = {name: engine(settings, cluster=name) for name in cluster_names(settings)}
    try:
        check_placement(
            engine(settings), engines, clusters=[r.name for r in reports if r.reachable]
        )
    except ConfigurationError as exc:
        problems.insert(0, str(exc))
    if args.json:
        print(
            json.dumps({"clusters": [asdict(r) for r in reports], "problems": problems}, indent=2)
        )
    else:
        for r in reports:
            print(
                f"{r.name}\t{r.hosts}\t{'reachable' if r.reachable else 'UNREACHABLE'}\t"
                f"{r.tenants} tenants\t{r.logs} logs"
            )
    for problem in problems:
        print(f"ledger clusters: {problem}", file=sys.stderr)
    if problems:
        return EXIT_FAILED
    print("the placement table agrees with every cluster", file=sys.stderr)
    return EXIT_OK


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "clusters",
        cmd_clusters,
        "the configured PostgreSQL clusters, what is placed on each, and the placement check",
    )
    p.add_argument("--json", action="store_true")
