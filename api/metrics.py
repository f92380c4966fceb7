"""Prometheus metrics of this process."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

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
