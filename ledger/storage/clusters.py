"""The PostgreSQL clusters a process knows, and where each log is (issue 17: logs over several
clusters).

The main cluster is ``LEDGER_DATABASE_URL`` (with ``LEDGER_READ_DATABASE_URL``, its standbys);
``LEDGER_CLUSTERS`` names the others. Each is a whole ledger database; the main one also holds
the placement table (``ledger.storage.placement``), which a process reads through
``PlacementCache``.

Why a cached placement is safe to serve stale: a log's placement changes only when its tenant
moves, and the move fences the old cluster first (its heads name the new cluster, and the
sequencer appends nothing to a fenced log). A process that still routes a write by the old
placement gets ``LogMoved`` (a 503 to retry) and drops the entry; a read by it is served from
the old, frozen copy: every row and checkpoint there is one the ledger signed, only older.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine

from ledger.domain import MAIN_CLUSTER
from ledger.errors import ConfigurationError, StoreUnavailable
from ledger.storage.db import unit_of_work
from ledger.storage.placement import cluster_of_log

logger = logging.getLogger(__name__)

CLUSTER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}", re.ASCII)

PLACEMENT_CACHE_SECONDS = 5.0
"""How long a process routes a log by the placement it read (a move's switch reaches every
process within this; until then the old cluster answers writes with ``LogMoved``)."""


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    url: str
    read_url: str | None


class ClusterUrls(Protocol):
    """One of ``LEDGER_CLUSTERS`` (``ledger.settings.ClusterSettings``)."""

    url: str
    read_url: str | None


def configured_clusters(
    main_url: str, main_read_url: str | None, others: Mapping[str, ClusterUrls]
) -> dict[str, ClusterConfig]:
    """The main cluster (``main_url``: ``LEDGER_DATABASE_URL``, or the embedded database; its
    standbys ``LEDGER_READ_DATABASE_URL``) and ``LEDGER_CLUSTERS``' others (``others``), main
    first then by name."""
    clusters = {MAIN_CLUSTER: ClusterConfig(MAIN_CLUSTER, main_url, main_read_url)}
    for name in sorted(others):
        if name == MAIN_CLUSTER:
            raise ConfigurationError(
                f"LEDGER_CLUSTERS may not name {MAIN_CLUSTER!r}: that is LEDGER_DATABASE_URL"
            )
        if not CLUSTER_NAME.fullmatch(name):
            raise ConfigurationError(
                f"cluster name {name!r} in LEDGER_CLUSTERS must be 1-63 characters of a-z, 0-9 "
                "and '-', starting alphanumeric"
            )
        clusters[name] = ClusterConfig(name, others[name].url, others[name].read_url)
    return clusters


class PlacementCache:
    """Which cluster holds each log, read from the main cluster's placement table and kept for
    ``PLACEMENT_CACHE_SECONDS``; served stale while the main cluster cannot answer (see the
    module's docstring for why that is safe)."""

    def __init__(
        self, main: Engine, known: Callable[[str], bool], ttl: float = PLACEMENT_CACHE_SECONDS
    ) -> None:
        self._main = main
        self._known = known
        self._ttl = ttl
        self._items: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def cluster_of(self, log_id: str) -> str:
        hit = self._items.get(log_id)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            with unit_of_work(self._main) as conn:
                cluster = cluster_of_log(conn, log_id)
        except StoreUnavailable:
            if hit is None:
                raise
            logger.warning("placement of %s served from cache: the main cluster is down", log_id)
            return hit[1]
        if not self._known(cluster):
            raise ConfigurationError(
                f"log {log_id!r} is placed on cluster {cluster!r}, which this process does not "
                "configure (LEDGER_CLUSTERS)"
            )
        with self._lock:
            if len(self._items) > 100_000:
                self._items.clear()
            self._items[log_id] = (now + self._ttl, cluster)
        return cluster

    def forget(self, log_id: str) -> None:
        """Read the log's placement again on next use (it moved)."""
        with self._lock:
            self._items.pop(log_id, None)
