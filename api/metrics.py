"""Prometheus metrics of this process."""

from __future__ import annotations

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


def observe_commit(log_id: str, appended: int, seconds: float) -> None:
    EVENTS_APPENDED.labels(log_id).inc(appended)
    BATCHES.labels(log_id).inc()
    BATCH_SECONDS.observe(seconds)
