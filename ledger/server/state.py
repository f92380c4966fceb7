"""What one server process holds: settings, engine, key caches, the group committer."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

import ledger
from ledger.domain import (
    MAIN_CLUSTER,
    AppendRequest,
    AppendResult,
    LogInfo,
    PreparedEvent,
    Principal,
)
from ledger.errors import (
    BeyondLatestCheckpoint,
    CheckpointFork,
    ConfigurationError,
    LogMoved,
    NotFound,
    StoreUnavailable,
    Unauthenticated,
)
from ledger.keys.config import master_key_ring
from ledger.services.admin.credentials import authenticate, token_hash
from ledger.services.admin.logs import is_log_reference
from ledger.services.admin.placement import check_placement, check_reachable_placement
from ledger.services.anchoring.anchor import sinks_from_settings
from ledger.services.anchoring.fence import ForkAlerts, learn_anchored
from ledger.services.anchoring.schedule import AnchorScheduler
from ledger.services.auth_failures import AuthFailures
from ledger.services.system_log import SystemLog, service_event
from ledger.settings import Settings
from ledger.storage.checkpoints import StoredCheckpoint
from ledger.storage.clusters import PlacementCache, configured_clusters
from ledger.storage.db import make_engine, ping, read_only, unit_of_work
from ledger.storage.group_commit import GroupCommitter
from ledger.storage.keystore import KeyRing, master_key_state, pan_fingerprint_key
from ledger.storage.logs import log_directory
from ledger.storage.replicas import ReadReplicas, ReplicaStatus
from ledger.storage.writer_keys import WriterKeyRecord, writer_key_by_kid

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

PRINCIPAL_CACHE_SECONDS = 1.0
"""How long a process serves a credential from memory (issue 14.7: a revocation is effective on
every server process within a second). Counted from when the database was asked, so a
revocation committed at T is refused everywhere from T + 1 s. Shorter than invalidation by
LISTEN/NOTIFY needs no connection per process and no fallback for a lost notification; it costs
one indexed lookup per token, process and second (README, Performance)."""


@dataclass
class TtlCache(Generic[K, V]):
    """A tiny cache for hot lookups (tokens, logs). Short TTL: a revocation lands in seconds.
    With ``expires`` (a value's own end, e.g. a credential's expiry; None: none) a value is
    never served past it, however long the TTL."""

    ttl: float
    expires: Callable[[V], datetime | None] | None = None
    _items: dict[K, tuple[float, V]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _deadline(self, value: V, asked_at: float) -> float:
        """When (``time.monotonic``) a value the database was asked for at ``asked_at`` stops
        being served: the TTL runs from the question, not the answer, so a slow answer does not
        stretch it."""
        deadline = asked_at + self.ttl
        end = None if self.expires is None else self.expires(value)
        if end is not None:
            deadline = min(deadline, time.monotonic() + (end - datetime.now(UTC)).total_seconds())
        return deadline

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        """The cached value, or ``load()``'s (cached only if it returned: errors are not)."""
        hit = self._items.get(key)
        asked_at = time.monotonic()
        if hit is not None and hit[0] > asked_at:
            return hit[1]
        value = load()
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[key] = (self._deadline(value, asked_at), value)
        return value

    def forget(self, key: K) -> None:
        with self._lock:
            self._items.pop(key, None)

    def peek(self, key: K) -> V | None:
        """The cached value if it is fresh, else None: never loads."""
        hit = self._items.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None


@dataclass
class Cluster:
    """One PostgreSQL cluster as a server process uses it (issue 17): its primary, its standbys
    (reads within the lag bound), and what writes to it: a group committer and the anchoring
    schedule of its logs."""

    name: str
    engine: Engine
    read_url: str | None = None
    """Its standbys (``LEDGER_READ_DATABASE_URL``, or its ``read_url`` in ``LEDGER_CLUSTERS``)."""
    replicas: ReadReplicas | None = None
    committer: GroupCommitter | None = None
    anchorer: AnchorScheduler | None = None
    checked: bool = False
    """Whether the placement's claims about this cluster were checked (at start; a cluster
    that was down then is checked on first use)."""


class LedgerState:
    """What one server process holds for its life: settings, engine, keys and their caches,
    the group committer (every append of this process goes through it), the system log
    written through it, and the counts of failed authentications (flushed to the system log
    by a timer as their windows close, and at ``stop``)."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        """``engine``: the main cluster's primary (``LEDGER_DATABASE_URL``: the placement table
        and every log not placed elsewhere); the other clusters (``LEDGER_CLUSTERS``) get
        engines of their own here."""
        self.settings = settings
        self.engine = engine
        self.clusters: dict[str, Cluster] = {
            name: Cluster(
                name,
                engine
                if name == MAIN_CLUSTER
                else make_engine(config.url, role=settings.db_role, pool_size=settings.pool_size),
                read_url=config.read_url,
            )
            for name, config in configured_clusters(
                settings.database_url or "", settings.read_database_url, settings.clusters
            ).items()
        }
        self.placement = PlacementCache(engine, known=self.clusters.__contains__)
        self._on_read: Callable[[str, str], None] = lambda _cluster, _served_by: None
        self._checking = threading.Lock()
        self.keys = KeyRing.from_masters(master_key_ring(settings, create=True))
        self._fingerprint_key: bytes | None = None
        self._fingerprint_lock = threading.Lock()
        self.principals: TtlCache[bytes, Principal] = TtlCache(
            ttl=PRINCIPAL_CACHE_SECONDS, expires=lambda p: p.expires_at
        )
        self.logs: TtlCache[str, LogInfo] = TtlCache(ttl=30.0)
        self.writer_keys: TtlCache[tuple[str, str], WriterKeyRecord] = TtlCache(ttl=5.0)
        """Writers' public keys by (log, kid): a key's bytes never change; a revocation lands
        here within the TTL, and the sequencer re-checks it under the log's lock anyway."""
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
        self._follower: threading.Thread | None = None
        self._missing_master_logged: str | None = None
        self._fenced: set[str] = set()
        """Logs whose latest anchored checkpoint this process has learnt (``learn_anchored``):
        the sequencer signs nothing that contradicts it."""
        self.fork_alerts = ForkAlerts(
            webhook_url=settings.alert_webhook_url,
            command=settings.alert_command,
            timeout=settings.http_timeout_seconds,
        )

    @property
    def fingerprint_key(self) -> bytes:
        """The card guard's fingerprint key (stored wrapped: ``pan_fingerprint_key``), read
        once per process, on the first ingest that needs it."""
        if self._fingerprint_key is None:
            with self._fingerprint_lock:
                if self._fingerprint_key is None:
                    with unit_of_work(self.engine) as conn:
                        key = pan_fingerprint_key(conn, self.keys.masters)
                    self._fingerprint_key = key
        return self._fingerprint_key

    def follow_master_keys(self) -> None:
        """Wrap new keys under the master key a rotation activated, once this process holds it
        (else under its configured primary, and say so); refuse a primary that was retired."""
        with unit_of_work(self.engine) as conn:
            state = master_key_state(conn)
        masters = self.keys.masters
        if masters.primary_id in state.retired:
            raise ConfigurationError(
                f"the configured master key {masters.primary_id} was retired: configure the key"
                f" it was rotated to ({state.active or 'see `ledger keys masters`'})"
            )
        was = masters.wrapping_id
        if not masters.follow(state.active) and state.active != self._missing_master_logged:
            self._missing_master_logged = state.active
            logging.getLogger(__name__).warning(
                "master key %s is active but not configured in this process (it holds %s):"
                " new keys stay wrapped under %s until it is (LEDGER_EXTRA_KEY_PROVIDERS)",
                state.active,
                ", ".join(masters.ids),
                masters.primary_id,
            )
        if masters.wrapping_id != was:
            logging.getLogger(__name__).info(
                "new keys are now wrapped under master key %s", masters.wrapping_id
            )

    def _follow_master_keys(self) -> None:
        while not self._stopping.wait(self.settings.master_key_refresh_seconds):
            try:
                self.follow_master_keys()
            except StoreUnavailable as exc:  # a failover or restart: one line, no traceback
                logging.getLogger(__name__).warning("could not read the active master key: %s", exc)
            except Exception:  # keep following: the next tick retries
                logging.getLogger(__name__).warning(
                    "could not read the active master key", exc_info=True
                )

    def start(
        self,
        on_commit: Callable[[str, int, float], None] | None = None,
        on_replicas: Callable[[str, list[ReplicaStatus]], None] | None = None,
        on_read: Callable[[str, str], None] | None = None,
    ) -> None:
        """Start the background work: check the placement (a wrong one stops the start with a
        ``ConfigurationError`` naming it), then per cluster its committer, its standbys' lag
        probe and its anchoring; the master-key follower and the failure flusher. The
        callbacks feed the metrics: each batch committed, each probe of a cluster's standbys,
        and each read (``on_read(cluster, "replica" | "primary")``)."""
        if on_read is not None:
            self._on_read = on_read
        down = check_reachable_placement(
            self.engine, {name: c.engine for name, c in self.clusters.items()}
        )
        for name, cluster in self.clusters.items():
            cluster.checked = name not in down
        try:
            self.follow_master_keys()  # a retired primary key stops the start here
        except StoreUnavailable:  # the follower retries; keys wrap under the primary meanwhile
            logging.getLogger(__name__).warning("could not read the active master key yet")
        self._follower = threading.Thread(
            target=self._follow_master_keys, name="master-key-follow", daemon=True
        )
        self._follower.start()
        sinks = sinks_from_settings(self.settings)
        for cluster in self.clusters.values():
            cluster.committer = GroupCommitter(
                cluster.engine,
                signers=self.keys.signers,
                data_keys=self.keys.data_keys,
                max_events=self.settings.group_commit_max_events,
                wait_seconds=self.settings.group_commit_wait_ms / 1000,
                on_commit=on_commit,
            )
            if cluster.read_url:
                cluster.replicas = ReadReplicas(
                    cluster.engine,
                    cluster.read_url,
                    role=self.settings.db_role,
                    max_lag_seconds=self.settings.read_max_lag_seconds,
                    probe_seconds=self.settings.read_lag_probe_seconds,
                    pool_size=self.settings.pool_size,
                    cluster=cluster.name,
                    on_probe=on_replicas,
                )
                cluster.replicas.start()
            if sinks and self.settings.anchor_interval_seconds > 0:
                cluster.anchorer = AnchorScheduler(
                    cluster.engine, self.keys, sinks, interval=self.settings.anchor_interval_seconds
                )
                cluster.anchorer.start()
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
            except StoreUnavailable as exc:  # a failover or restart: one line, no traceback
                logging.getLogger(__name__).warning(
                    "could not flush authentication failures: %s", exc
                )
            except Exception:  # keep flushing: the next tick retries what is still counted
                logging.getLogger(__name__).warning(
                    "could not flush authentication failures", exc_info=True
                )

    def submit(self, log: LogInfo, request: AppendRequest) -> Future[AppendResult]:
        """The process's appender: the group committer of the log's cluster."""
        committer = self.cluster_of(log.id).committer
        assert committer is not None, "LedgerState.start() has not run"
        future = committer.submit(log, request)
        future.add_done_callback(lambda done: self._after_append(log.id, done))
        return future

    def gave_out(self, log_id: str, checkpoint: StoredCheckpoint) -> None:
        """``checkpoint`` was served: this process signs nothing that contradicts it."""
        self.keys.signers.given.remember(log_id, checkpoint.size, checkpoint.root, how="served")

    def _after_append(self, log_id: str, done: Future[AppendResult]) -> None:
        failure = None if done.cancelled() else done.exception()
        if isinstance(failure, CheckpointFork):
            self.fork_alerts.refused(log_id, failure)
        elif isinstance(failure, LogMoved):  # the writer's retry must find the new cluster
            self.placement.forget(log_id)
            self.logs.forget(log_id)

    def cluster_of(self, log_id: str) -> Cluster:
        """The cluster holding ``log_id``, by the placement (cached; ``PlacementCache``). A
        cluster that was down when the process started has its placement checked here, on
        first use."""
        cluster = self.clusters[self.placement.cluster_of(log_id)]
        if not cluster.checked:
            with self._checking:
                if not cluster.checked:
                    check_placement(
                        self.engine,
                        {name: c.engine for name, c in self.clusters.items()},
                        clusters=[cluster.name],
                    )
                    cluster.checked = True
        return cluster

    def log_info(self, log_id: str) -> LogInfo:
        """The log (cached for seconds; ``NotFound`` if there is none)."""
        if not is_log_reference(log_id):  # e.g. a NUL: never sent to the database
            raise NotFound(f"no log {log_id!r}")

        def load() -> LogInfo:
            with unit_of_work(self.cluster_of(log_id).engine) as conn:
                return log_directory(conn, log_id)  # before the tenant is known

        info = self.logs.get_or_load(log_id, load)
        if info.id not in self._fenced and self.settings.anchor_dir is not None:
            # Before this process signs anything of the log (once: its own anchoring and
            # signing keep it current from then on).
            with unit_of_work(self.cluster_of(info.id).engine, tenant=info.tenant) as conn:
                learn_anchored(conn, self.keys.signers, info, self.settings.anchor_dir)
            self._fenced.add(info.id)
        if info.tenant not in self._serving:
            self._start_serving(info.tenant)
        return info

    def unit_of_work(self, log_id: str) -> AbstractContextManager[Connection]:
        """A unit of work for a request on ``log_id``: row security admits only its tenant's
        rows (migration 0011). Authorization has tied the caller's credential to that log, so
        it is the principal's tenant; a public read's is the log's."""
        return unit_of_work(self.cluster_of(log_id).engine, tenant=self.log_info(log_id).tenant)

    def clusters_up(self, *, timeout: float) -> dict[str, bool]:
        """Whether each cluster's primary answers a round trip within ``timeout`` (asked at
        once, in threads of their own: a host that swallows packets must not hold the others'
        answers, and its thread is left to time out on its own)."""
        pool = ThreadPoolExecutor(len(self.clusters), thread_name_prefix="cluster-ping")
        asked = {name: pool.submit(ping, c.engine) for name, c in self.clusters.items()}
        wait(asked.values(), timeout=timeout)
        pool.shutdown(wait=False)
        return {
            name: future.done() and future.exception() is None for name, future in asked.items()
        }

    def read(self, log_id: str, read: Callable[[Connection], T], *, repeatable: bool = False) -> T:
        """Run the read-only ``read`` for a request on ``log_id`` (scoped as ``unit_of_work``)
        on a standby of the log's cluster within the lag bound, else on its primary (issue
        17.3). ``repeatable``: one snapshot for the whole read (exports).

        Never an answer against a root nobody signed: a standby replays the primary's commits in
        order, and each batch's entries, tree nodes and signed checkpoint commit together, so
        every snapshot of it is one the primary held, with its checkpoints. What a standby has
        not replayed yet is not an answer either: a read it answers ``NotFound`` or
        ``BeyondLatestCheckpoint`` (a receipt's seq or tree size, a new conversation) is asked
        again of the primary, as is a read the standby could not serve."""
        cluster = self.cluster_of(log_id)
        tenant = self.log_info(log_id).tenant
        standby = cluster.replicas.engine() if cluster.replicas is not None else None
        if standby is not None:
            try:
                with unit_of_work(standby, tenant=tenant) as conn:
                    read_only(conn, repeatable=repeatable)
                    answer = read(conn)
            except (NotFound, BeyondLatestCheckpoint):
                pass  # not replayed there yet: the primary has it (or says so itself)
            except (StoreUnavailable, DBAPIError) as exc:
                # Down, or a long read cancelled by a recovery conflict
                # (``max_standby_streaming_delay``): the primary answers instead.
                logging.getLogger(__name__).warning(
                    "a standby of cluster %s could not serve a read of %s: %s",
                    cluster.name,
                    log_id,
                    exc,
                )
            else:
                self._on_read(cluster.name, "replica")
                return answer
        with unit_of_work(cluster.engine, tenant=tenant) as conn:
            read_only(conn, repeatable=repeatable)
            result = read(conn)
        self._on_read(cluster.name, "primary")
        return result

    def writer_key(self, log_id: str, kid: str) -> WriterKeyRecord | None:
        """The log's writer key by kid (``WriterKeyLookup`` for ingest). An unknown kid is
        looked up every time, so a key is usable as soon as it is added."""
        hit = self.writer_keys.peek((log_id, kid))
        if hit is not None:
            return hit
        with self.unit_of_work(log_id) as conn:
            record = writer_key_by_kid(conn, log_id, kid)
        if record is not None:
            self.writer_keys.get_or_load((log_id, kid), lambda: record)
        return record

    def principal(self, token: str) -> Principal:
        """The active credential behind ``token`` (cached for ``PRINCIPAL_CACHE_SECONDS``: a
        revocation lands everywhere within that time; never past the credential's expiry;
        ``Unauthenticated`` is never cached)."""

        def load() -> Principal:
            return self._authenticate(token)

        return self.principals.get_or_load(token_hash(token), load)

    def _authenticate(self, token: str) -> Principal:
        """The credential behind ``token``, on whichever cluster holds it (a credential lives
        with its log's tenant): the main cluster first, then the others by name. A cluster that
        is down is skipped while another may hold the token; if none knew it and one was down,
        the answer is ``StoreUnavailable`` (503), not ``Unauthenticated``: the token may be
        valid there."""
        unreachable: StoreUnavailable | None = None
        last: Unauthenticated | None = None
        for cluster in self.clusters.values():
            try:
                with unit_of_work(cluster.engine) as conn:
                    return authenticate(conn, token)
            except Unauthenticated as exc:
                last = exc
            except StoreUnavailable as exc:
                unreachable = exc
        if unreachable is not None:
            raise unreachable
        assert last is not None
        raise last

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
        if self._follower is not None:
            self._follower.join()
        for cluster in self.clusters.values():
            if cluster.anchorer is not None:
                cluster.anchorer.close()
        if self.clusters[MAIN_CLUSTER].committer is not None:  # started
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
            for cluster in self.clusters.values():
                if cluster.committer is not None:
                    cluster.committer.close()
        for cluster in self.clusters.values():
            if cluster.replicas is not None:
                cluster.replicas.stop()
            cluster.engine.dispose()
