"""Shared pieces of the CLI: the clock, the database and its engines.

Where a command finds its database and master key: ``LEDGER_DATABASE_URL`` and
``LEDGER_KEY_PROVIDER`` / ``LEDGER_MASTER_KEY_FILE`` / ``LEDGER_MASTER_KEY``, else the embedded
database and key file under ``LEDGER_DATA_DIR`` (default ``./.ledger`` of the folder it runs
from). Only the commands that set the ledger up (``serve``, ``db upgrade``, ``logs create``,
``demo``) create them when they are missing; every other command says what is missing and exits
2, rather than work on a new, empty database or a new key (where every payload would look
tampered with).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from ledger.domain import MAIN_CLUSTER
from ledger.errors import ConfigurationError
from ledger.settings import Settings

if TYPE_CHECKING:
    from ledger.storage.clusters import ClusterConfig
    from ledger.storage.keystore import KeyRing

Handler = Callable[[Settings, argparse.Namespace], int]


def now() -> datetime:
    return datetime.now(UTC)


def operator() -> dict[str, str]:
    """Who runs this command, as the actor of what it records in a system log."""
    import getpass
    import socket

    return {"kind": "system", "id": f"cli:{getpass.getuser()}@{socket.gethostname()}"}


def key_ring(settings: Settings, *, setup: bool = False) -> KeyRing:
    """The configured master keys (``ledger.keys.config``) and fresh caches, for this
    command's run (``setup``: make the development key file if no key is configured)."""
    from ledger.keys.config import master_key_ring
    from ledger.storage.keystore import KeyRing

    return KeyRing.from_masters(master_key_ring(settings, create=setup))


def database_url(settings: Settings, *, setup: bool = False) -> str:
    """The configured server, or the embedded one under the data directory (``setup``: start a
    new one there if there is none)."""
    if settings.database_url:
        return settings.database_url
    from ledger.embedded import embedded_database_url

    pgdata = settings.data_dir / "pgdata"
    if not setup and not pgdata.is_dir():
        raise ConfigurationError(
            f"no database: LEDGER_DATABASE_URL is unset and there is no embedded database at "
            f"{pgdata.resolve()} (the data directory is LEDGER_DATA_DIR, default ./.ledger of "
            "the folder you run from: run from the folder the ledger was set up in, or set "
            "LEDGER_DATABASE_URL)"
        )
    url = embedded_database_url(settings.data_dir)
    settings.database_url = url
    return url


_engines: dict[tuple[str, str | None, str], Engine] = {}


def engine(
    settings: Settings,
    *,
    as_app: bool = False,
    setup: bool = False,
    system: str = "operator",
    cluster: str | None = None,
    log: str | None = None,
) -> Engine:
    """An engine for this command, on the main cluster, on ``cluster``, or on the cluster the
    placement table says holds ``log`` (issue 17: logs over several clusters); ``main``
    disposes of every one before it returns. Its connections are a system component's
    (``system``: the operator's commands span tenants; row security, migration 0011); a
    command acting for a credential scopes its own units of work to that credential's tenant."""
    from ledger.storage.db import make_engine

    name = cluster_of(settings, log) if log is not None else (cluster or MAIN_CLUSTER)
    clusters = cluster_urls(settings, setup=setup)
    if name not in clusters:
        raise ConfigurationError(
            f"no cluster {name!r}: configured are {', '.join(clusters)} (LEDGER_CLUSTERS)"
        )
    url = clusters[name].url
    role = settings.db_role if as_app else None
    key = (url, role, system)
    if key not in _engines:
        _engines[key] = make_engine(url, role=role, pool_size=2, system=system)
    return _engines[key]


def cluster_urls(settings: Settings, *, setup: bool = False) -> dict[str, ClusterConfig]:
    """Every configured cluster, main first (``ledger.storage.clusters``)."""
    from ledger.storage.clusters import configured_clusters

    return configured_clusters(
        database_url(settings, setup=setup), settings.read_database_url, settings.clusters
    )


def cluster_names(settings: Settings) -> list[str]:
    """The configured clusters' names, main first: what a command over every log goes through."""
    return [MAIN_CLUSTER, *sorted(settings.clusters)]


def cluster_of(settings: Settings, log_id: str) -> str:
    """The cluster holding ``log_id``, by the placement table on the main cluster."""
    from ledger.storage.db import unit_of_work
    from ledger.storage.placement import cluster_of_log

    with unit_of_work(engine(settings)) as conn:
        cluster = cluster_of_log(conn, log_id)
    if cluster not in cluster_names(settings):
        raise ConfigurationError(
            f"log {log_id!r} is on cluster {cluster!r}, which is not configured here "
            "(LEDGER_CLUSTERS)"
        )
    return cluster


def dispose_engines() -> None:
    while _engines:
        _engines.popitem()[1].dispose()


def add_command(parent: Any, name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = parent.add_parser(name, help=help_)
    p.set_defaults(handler=handler)
    return p
