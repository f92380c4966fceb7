"""Placing logs on clusters: the rule ``ledger logs create`` follows, and the check every process
runs at start that the placement table tells the truth.

**The rule.** A tenant is placed once, and all its logs go where it is (they share
transactions: ``migrations/versions/0014_placement.py``). A new tenant goes to the cluster the
operator names (``--cluster``), else to the configured cluster holding the fewest tenants (ties:
the main cluster, then by name). A tenant with logs on the main cluster from before placement
existed stays there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine

from ledger.domain import MAIN_CLUSTER, LogInfo
from ledger.errors import ConfigurationError, InvalidRequest, LogExists, StoreUnavailable
from ledger.services.admin.logs import create_log
from ledger.services.system_log import system_log_id
from ledger.storage.db import ping, unit_of_work
from ledger.storage.keystore import KeyRing
from ledger.storage.logs import find_log
from ledger.storage.placement import (
    cluster_of_tenant,
    is_placed,
    lock_placement,
    logs_held,
    place_log,
    place_tenant,
    placements,
    tenants_per_cluster,
    unplaced_tenants,
)

logger = logging.getLogger(__name__)


def choose_cluster(
    directory: Connection, tenant: str, clusters: Sequence[str], requested: str | None
) -> str:
    """The cluster a new log of ``tenant`` goes to (the module's rule). ``directory``: the main
    cluster, where the placement table is; ``clusters``: the configured ones, main first."""
    if requested is not None and requested not in clusters:
        raise InvalidRequest(
            f"no cluster {requested!r}: configured are {', '.join(clusters)} (LEDGER_CLUSTERS)"
        )
    placed = cluster_of_tenant(directory, tenant)
    if placed is None and find_log(directory, system_log_id(tenant)) is not None:
        placed = MAIN_CLUSTER  # a tenant from before placement: its logs are on main
    if placed is not None:
        if requested is not None and requested != placed:
            raise InvalidRequest(
                f"tenant {tenant!r} is on cluster {placed!r}: a tenant's logs share one cluster "
                "(move the tenant with `ledger tenants move`)"
            )
        return placed
    if requested is not None:
        return requested
    load = tenants_per_cluster(directory)
    load[MAIN_CLUSTER] = load.get(MAIN_CLUSTER, 0) + unplaced_tenants(directory)
    return min(clusters, key=lambda name: (load.get(name, 0), name != MAIN_CLUSTER, name))


def create_placed_log(
    main: Engine,
    engine_of: Callable[[str], Engine],
    clusters: Sequence[str],
    keys: KeyRing,
    log_id: str,
    *,
    cluster: str | None = None,
    tenant: str | None = None,
    **create: Any,
) -> tuple[LogInfo, str]:
    """Create ``log_id`` (``ledger.services.admin.logs.create_log``'s ``create`` arguments) on
    the cluster the rule chooses, and record where. Engines are the operator's (every tenant).

    Two databases, no two-phase commit: the placement rows are written first in a transaction
    on the main cluster that stays open (holding the log id and the placement lock) until the
    log's own transaction on its cluster has committed. If the main cluster's COMMIT is then
    lost, the log exists unplaced and unreachable; running the same command again finds it and
    places it (it is never created twice)."""
    tenant = tenant or log_id
    with unit_of_work(main) as directory:
        lock_placement(directory)  # two new tenants at once: "fewest tenants" spreads them
        chosen = choose_cluster(directory, tenant, clusters, cluster)
        if chosen != MAIN_CLUSTER and find_log(directory, log_id) is not None:
            raise LogExists(f"log {log_id!r} already exists (on cluster {MAIN_CLUSTER!r})")
        if is_placed(directory, log_id):
            raise LogExists(f"log {log_id!r} already exists")
        place_tenant(directory, tenant, chosen)
        place_log(directory, log_id, tenant, chosen)
        place_log(directory, system_log_id(tenant), tenant, chosen)
        target = directory if chosen == MAIN_CLUSTER else None
        if target is not None:
            return create_log(target, keys, log_id, tenant=tenant, **create), chosen
        with unit_of_work(engine_of(chosen)) as conn:
            existing = find_log(conn, log_id)
            if existing is not None and existing.tenant == tenant:
                logger.warning("log %s was on cluster %s unplaced: placed now", log_id, chosen)
                return existing, chosen
            return create_log(conn, keys, log_id, tenant=tenant, **create), chosen


def check_placement(
    main: Engine, engines: dict[str, Engine], *, clusters: Sequence[str] | None = None
) -> dict[str, int]:
    """That every placed log is on the cluster the placement names, and every named cluster is
    configured: a ``ConfigurationError`` naming what is wrong (a server refuses to start on it,
    rather than answer from the wrong database). ``clusters``: check only these (e.g. one that
    was down at start); a cluster that cannot be reached raises ``StoreUnavailable``. Returns
    the number of placed logs checked per cluster."""
    with unit_of_work(main) as directory:
        placed = placements(directory)
    unknown = sorted({p.cluster for p in placed} - set(engines))
    if unknown:
        raise ConfigurationError(
            f"the placement table names cluster(s) {', '.join(unknown)}, which this process "
            "does not configure (LEDGER_CLUSTERS)"
        )
    checked: dict[str, int] = {}
    for name in clusters if clusters is not None else list(engines):
        ids = [p.log_id for p in placed if p.cluster == name]
        with unit_of_work(engines[name]) as conn:
            held = logs_held(conn, ids) if ids else set()
        missing = sorted(set(ids) - held)
        if missing:
            shown = ", ".join(missing[:5]) + (
                f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            )
            raise ConfigurationError(
                f"the placement table puts {shown} on cluster {name!r}, which does not hold "
                f"{'it' if len(missing) == 1 else 'them'} (a wrong LEDGER_CLUSTERS URL, or a "
                "move that did not finish: `ledger tenants move` again)"
            )
        checked[name] = len(ids)
    return checked


def check_reachable_placement(main: Engine, engines: dict[str, Engine]) -> list[str]:
    """``check_placement`` on every cluster that answers; returns those not checked (each is
    checked on its first use instead: a cluster down at start costs its own logs, not the
    server; with the main cluster down, none is checked yet)."""
    down: list[str] = []
    reachable: list[str] = []
    for name, engine in engines.items():
        try:
            ping(engine)
            reachable.append(name)
        except StoreUnavailable as exc:
            logger.warning(
                "cluster %s is unreachable at start (%s): its logs answer 503", name, exc
            )
            down.append(name)
    if MAIN_CLUSTER in down:  # the placement itself cannot be read: check each on first use
        return list(engines)
    check_placement(main, engines, clusters=reachable)
    return down
