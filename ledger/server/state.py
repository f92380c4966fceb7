"""What one server process holds: settings, engine, key caches, the group committer."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, TypeVar

from sqlalchemy import Engine

import ledger
from ledger.domain import AppendRequest, AppendResult, LogInfo, PreparedEvent, Principal
from ledger.errors import NotFound
from ledger.services.admin.credentials import authenticate, token_hash
from ledger.services.admin.logs import is_log_reference
from ledger.services.anchoring.anchor import sinks_from_settings
from ledger.services.anchoring.schedule import AnchorScheduler
from ledger.services.auth_failures import AuthFailures
from ledger.services.system_log import SystemLog, service_event
from ledger.settings import Settings
from ledger.storage.db import unit_of_work
from ledger.storage.group_commit import GroupCommitter
from ledger.storage.keystore import KeyRing, pan_fingerprint_key
from ledger.storage.logs import get_log

K = TypeVar("K")
V = TypeVar("V")


@dataclass
class TtlCache(Generic[K, V]):
    """A tiny cache for hot lookups (tokens, logs). Short TTL: a revocation lands in seconds.
    With ``expires`` (a value's own end, e.g. a credential's expiry; None: none) a value is
    never served past it, however long the TTL."""

    ttl: float
    expires: Callable[[V], datetime | None] | None = None
    _items: dict[K, tuple[float, V]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _deadline(self, value: V) -> float:
        """When (``time.monotonic``) a value loaded now stops being served."""
        deadline = time.monotonic() + self.ttl
        end = None if self.expires is None else self.expires(value)
        if end is not None:
            deadline = min(deadline, time.monotonic() + (end - datetime.now(UTC)).total_seconds())
        return deadline

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        """The cached value, or ``load()``'s (cached only if it returned: errors are not)."""
        hit = self._items.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        value = load()
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[key] = (self._deadline(value), value)
        return value

    def peek(self, key: K) -> V | None:
        """The cached value if it is fresh, else None: never loads."""
        hit = self._items.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None


class LedgerState:
    """What one server process holds for its life: settings, engine, keys and their caches,
    the group committer (every append of this process goes through it), the system log
    written through it, and the counts of failed authentications (flushed to the system log
    by a timer as their windows close, and at ``stop``)."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.keys = KeyRing.from_master(settings.master_key_bytes)
        self.fingerprint_key = pan_fingerprint_key(settings.master_key_bytes)
        self.principals: TtlCache[bytes, Principal] = TtlCache(
            ttl=5.0, expires=lambda p: p.expires_at
        )
        self.logs: TtlCache[str, LogInfo] = TtlCache(ttl=30.0)
        self.committer: GroupCommitter | None = None
        self.anchorer: AnchorScheduler | None = None
        self.system_log = SystemLog(self, self.log_info)
        """Written through the group committer (``submit`` below), once ``start`` ran."""
        self._serving: set[str] = set()
        """Tenants this process has served: their system logs get its start and stop."""
        self._serving_lock = threading.Lock()
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self.auth_failures = AuthFailures(
            self.system_log,
            limit=settings.auth_failures_per_window,
            window_seconds=settings.auth_failure_window_seconds,
            max_sources=settings.auth_failure_max_sources,
            cached_principal=lambda token: self.principals.peek(token_hash(token)),
            cached_log=self.logs.peek,
        )
        self._stopping = threading.Event()
        self._flusher: threading.Thread | None = None

    def start(self, on_commit: Callable[[str, int, float], None] | None = None) -> None:
        self.committer = GroupCommitter(
            self.engine,
            signers=self.keys.signers,
            data_keys=self.keys.data_keys,
            max_events=self.settings.group_commit_max_events,
            wait_seconds=self.settings.group_commit_wait_ms / 1000,
            on_commit=on_commit,
        )
        sinks = sinks_from_settings(self.settings)
        if sinks and self.settings.anchor_interval_seconds > 0:
            self.anchorer = AnchorScheduler(
                self.engine, self.keys, sinks, interval=self.settings.anchor_interval_seconds
            )
            self.anchorer.start()
        self._flusher = threading.Thread(
            target=self._flush_auth_failures, name="auth-failure-flush", daemon=True
        )
        self._flusher.start()

    def _flush_auth_failures(self) -> None:
        """Record the summaries of failed authentications as their windows close."""
        tick = max(0.01, min(1.0, self.settings.auth_failure_window_seconds / 4))
        while not self._stopping.wait(tick):
            try:
                self.auth_failures.flush()
            except Exception:  # keep flushing: the next tick retries what is still counted
                logging.getLogger(__name__).warning(
                    "could not flush authentication failures", exc_info=True
                )

    def submit(self, log: LogInfo, request: AppendRequest) -> Future[AppendResult]:
        """The process's appender: the group committer."""
        assert self.committer is not None, "LedgerState.start() has not run"
        return self.committer.submit(log, request)

    def log_info(self, log_id: str) -> LogInfo:
        """The log (cached for seconds; ``NotFound`` if there is none)."""
        if not is_log_reference(log_id):  # e.g. a NUL: never sent to the database
            raise NotFound(f"no log {log_id!r}")

        def load() -> LogInfo:
            with unit_of_work(self.engine) as conn:
                return get_log(conn, log_id)

        info = self.logs.get_or_load(log_id, load)
        if info.tenant not in self._serving:
            self._start_serving(info.tenant)
        return info

    def principal(self, token: str) -> Principal:
        """The active credential behind ``token`` (cached for seconds: a revocation lands
        everywhere within that time; never past the credential's expiry; ``Unauthenticated``
        is never cached)."""

        def load() -> Principal:
            with unit_of_work(self.engine) as conn:
                return authenticate(conn, token)

        return self.principals.get_or_load(token_hash(token), load)

    def _start_serving(self, tenant: str) -> None:
        """PCI DSS 10.2.1.6: the start of audit logging for a tenant is itself logged — on this
        process's first contact with the tenant (a process may serve thousands; most never)."""
        with self._serving_lock:
            if tenant in self._serving:
                return
            self._serving.add(tenant)
        self.system_log.record(tenant, self._lifecycle_event("started"))

    def _lifecycle_event(self, change: str) -> PreparedEvent:
        return service_event(
            change, instance=self.instance, version=ledger.__version__, now=datetime.now(UTC)
        )

    def stop(self) -> None:
        self._stopping.set()
        if self._flusher is not None:
            self._flusher.join()
        if self.anchorer is not None:
            self.anchorer.close()
        if self.committer is not None:
            # The counts of failed authentications of windows still open, then the stop,
            # durably, before the committer closes (best effort: a database that is down at
            # shutdown cannot take them; the gap then shows in the stream).
            stops = self.auth_failures.flush(everything=True)
            stops += [
                self.system_log.record(t, self._lifecycle_event("stopped"))
                for t in sorted(self._serving)
            ]
            for done in stops:
                try:
                    done.result(timeout=10)
                except Exception:
                    logging.getLogger(__name__).warning(
                        "could not record at shutdown", exc_info=True
                    )
            self.committer.close()
        self.engine.dispose()
