"""Prometheus metrics of this process."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from ledger.storage.replicas import ReplicaStatus

REGISTRY = CollectorRegistry()
EVENTS_APPENDED = Counter(
    "ledger_events_appended", "Events appended to logs", ["log"], registry=REGISTRY
)
BATCHES = Counter("ledger_batches_committed", "Group-commit batches", ["log"], registry=REGISTRY)
BATCH_SECONDS = Histogram(
    "ledger_batch_commit_seconds", "Time to append and commit one batch", registry=REGISTRY
)
REQUESTS = Counter(
    "ledger_http_requests",
    "HTTP requests by route and status",
    ["route", "status"],
    registry=REGISTRY,
)
REPLICA_LAG = Gauge(
    "ledger_replica_lag_seconds",
    "How far each standby's replay was behind its primary at the last probe (NaN: unknown)",
    ["cluster", "replica"],
    registry=REGISTRY,
)
REPLICA_USABLE = Gauge(
    "ledger_replica_usable",
    "1 when the standby may serve reads (lag known and within LEDGER_READ_MAX_LAG_SECONDS)",
    ["cluster", "replica"],
    registry=REGISTRY,
)
READS = Counter(
    "ledger_reads",
    "Reads by which server answered them (replica: a standby; primary: none usable or the"
    " standby had not seen what was asked)",
    ["cluster", "served_by"],
    registry=REGISTRY,
)
_READ_COUNTERS: dict[tuple[str, str], Any] = {}
"""``READS``' children by (cluster, served_by), as ``_REQUEST_COUNTERS``."""
_REQUEST_COUNTERS: dict[tuple[str, int], Any] = {}
"""``REQUESTS``' children by (route template, status): ``labels()`` costs more than ``inc()``.
Bounded: route templates (or ``unmatched``) times the statuses the API answers."""


def observe_commit(log_id: str, appended: int, seconds: float) -> None:
    EVENTS_APPENDED.labels(log_id).inc(appended)
    BATCHES.labels(log_id).inc()
    BATCH_SECONDS.observe(seconds)


def count_request(route: str, status: int) -> None:
    """One answer of ``route`` (its template, e.g. ``/v1/logs/{log}/events``) with ``status``."""
    child = _REQUEST_COUNTERS.get((route, status))
    if child is None:
        child = REQUESTS.labels(route, str(status))
        _REQUEST_COUNTERS[(route, status)] = child
    child.inc()


def observe_replicas(cluster: str, statuses: Iterable[ReplicaStatus]) -> None:
    """A lag probe's results (``ReadReplicas``' ``on_probe``)."""
    for status in statuses:
        lag = math.nan if status.lag_seconds is None else status.lag_seconds
        REPLICA_LAG.labels(cluster, status.host).set(lag)
        REPLICA_USABLE.labels(cluster, status.host).set(1 if status.usable else 0)


def count_read(cluster: str, served_by: str) -> None:
    """One read of ``cluster`` answered by a standby (``replica``) or the ``primary``."""
    child = _READ_COUNTERS.get((cluster, served_by))
    if child is None:
        if served_by not in ("replica", "primary"):
            raise ValueError(f"served_by is replica or primary, not {served_by!r}")
        child = READS.labels(cluster, served_by)
        _READ_COUNTERS[(cluster, served_by)] = child
    child.inc()
