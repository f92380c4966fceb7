"""Reads from PostgreSQL standbys (issue 17.3): which standby of one cluster may serve a read now.

A standby serves reads only while its replay lag is known and within the bound
(``read_max_lag_seconds``); otherwise the caller reads the primary. Lag is measured here, from
the primary's side, and not with ``now() - pg_last_xact_replay_timestamp()`` on the standby:
that is the age of the last transaction replayed, so on an idle primary it grows without bound
while the standby has replayed everything (every standby would look stale after a quiet
minute), and it stays small on a standby stuck behind a primary whose last commits are not yet
shipped (it says nothing of what the standby has not received).

The measure: a probe thread reads the primary's ``pg_current_wal_lsn()`` every
``probe_seconds`` and keeps (monotonic time, LSN) samples, the first time each LSN was seen.
A standby that has replayed up to LSN ``r`` lacks exactly the WAL beyond ``r``; the oldest
sample beyond ``r`` is the earliest moment the primary is known to have had WAL the standby
lacks, so its lag is ``now - that moment`` (0 when it has replayed the newest sample: idle
primary, idle lag). It errs low by at most one probe interval (the WAL may have been written
just after the sample before), which the bound should allow for. A standby behind every sample
kept has a lag known only from below: not usable until that lower bound says it is too far
behind or it catches up past a sample.

Not usable either: a host that does not answer, one not in recovery (promoted: it may have
taken writes the primary never saw, a split brain), one of another cluster (its system
identifier is not the primary's), and any host when the primary has not been measured within
the bound (a standby cannot be shown to be close to a primary nobody can see). ``engine()`` also
adds the time since the last probe to each lag, so a probe thread that stalls or dies stops
reads from standbys instead of trusting an old measure.

A long read on a standby may be cancelled by replay (``max_standby_streaming_delay``); the
ledger's tables are append-only, so conflicts are rare, and ``hot_standby_feedback = on`` on
the standbys removes the rest.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_for_futures
from dataclasses import dataclass

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ledger.errors import ConfigurationError
from ledger.storage.db import hosts_of, make_engine, url_for_host

log = logging.getLogger("ledger.replicas")

CONNECT_TIMEOUT_SECONDS = 2
"""libpq's ``connect_timeout`` on each standby when its URL gives none (2 is the smallest libpq
honours): a host that drops packets costs a probe this long, not forever."""

ANSWER_SECONDS = 3.0
"""How long one probe round waits for a standby's answer before calling it down (the connect
timeout plus a query). A host still answering an earlier round is not asked again."""

_PRIMARY_QUERY = (
    "SELECT pg_current_wal_lsn()::text, (SELECT system_identifier FROM pg_control_system())"
)
_STANDBY_QUERY = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,"
    " (SELECT system_identifier FROM pg_control_system())"
)


@dataclass(frozen=True)
class ReplicaStatus:
    """One standby as of the last probe (for ``/metrics`` and the operator)."""

    cluster: str
    host: str
    lag_seconds: float | None
    """How far behind the primary it was, in seconds; None: unknown (not probed yet, down,
    promoted, or the primary not measured)."""
    usable: bool
    reason: str
    """``ok``, or why it serves no reads."""


@dataclass(frozen=True)
class WalSample:
    at: float
    """``time.monotonic()`` when the primary was first seen at ``lsn``."""
    lsn: int


@dataclass(frozen=True)
class _Answer:
    in_recovery: bool
    replayed: int | None
    system_identifier: int
    at: float


def parse_lsn(text: str) -> int:
    """PostgreSQL's ``pg_lsn`` text (``16/B374D848``) as the byte position it names."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def measure_lag(samples: Sequence[WalSample], replayed: int, now: float) -> tuple[float, bool]:
    """A standby's lag at ``now`` from the primary's ``samples`` (oldest first, not empty) and
    the LSN it has replayed: (seconds, exact). Not exact: it is behind every sample, so the
    lag is at least that much (the primary had the WAL it lacks before the oldest sample)."""
    for index, sample in enumerate(samples):
        if sample.lsn > replayed:
            return now - sample.at, index > 0
    return 0.0, True


class ReadReplicas:
    """The standbys of one cluster, probed for replay lag; ``engine()`` names one that may serve
    a read now, or None (read the primary)."""

    def __init__(
        self,
        primary: Engine,
        read_url: str,
        *,
        role: str | None,
        max_lag_seconds: float,
        probe_seconds: float,
        pool_size: int = 8,
        cluster: str = "main",
        on_probe: Callable[[str, list[ReplicaStatus]], None] | None = None,
        system: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``role``: ``SET ROLE`` on every connection, as ``make_engine``. ``system``: a system
        component's engines (``ledger verify``: ``verifier``); the server's are unscoped, its
        units of work scope themselves to the tenant they serve."""
        if not read_url.startswith(("postgresql://", "postgres://")) or not all(hosts_of(read_url)):
            raise ConfigurationError(
                "the read database URL must be a libpq URL naming its standbys"
                " (postgresql://user@host:port[,host:port...]/database)"
            )
        hosts = hosts_of(read_url)
        if len(set(hosts)) != len(hosts):
            raise ConfigurationError("the read database URL names a standby twice")
        self.cluster = cluster
        self._primary = primary
        self._max_lag = max_lag_seconds
        self._probe_seconds = probe_seconds
        self._on_probe = on_probe
        self._clock = clock
        self._engines = {
            host: make_engine(
                _with_connect_timeout(url_for_host(read_url, host)),
                role=role,
                pool_size=pool_size,
                system=system,
            )
            for host in hosts
        }
        # Samples old enough to tell a standby twice the bound behind from one just past it;
        # the newest one always stays (an idle primary adds none).
        self._keep_seconds = 2 * max_lag_seconds + 2 * probe_seconds
        self._samples: deque[WalSample] = deque()
        self._primary_seen_at: float | None = None
        self._primary_identifier: int | None = None
        self._lock = threading.Lock()
        self._statuses = [ReplicaStatus(cluster, h, None, False, "not probed yet") for h in hosts]
        self._probed_at: float | None = None
        self._turn = itertools.count()
        self._asking: dict[str, Future[_Answer]] = {}
        self._states: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- reads ------------------------------------------------------------------------------

    def engine(self) -> Engine | None:
        """A standby within the lag bound now (the least behind; reads spread over those about
        as close), or None: the caller reads the primary."""
        with self._lock:
            statuses, probed_at = self._statuses, self._probed_at
        if probed_at is None:
            return None
        # Since the probe each lag may have grown by as much as the time that passed.
        since = self._clock() - probed_at
        fresh = [
            (s.lag_seconds, s.host)
            for s in statuses
            if s.usable and s.lag_seconds is not None and s.lag_seconds + since <= self._max_lag
        ]
        if not fresh:
            return None
        least = min(lag for lag, _ in fresh)
        # Lags within one probe interval are the same to this measure's resolution.
        equals = [host for lag, host in fresh if lag <= least + self._probe_seconds]
        return self._engines[equals[next(self._turn) % len(equals)]]

    def caught_up_engine(self, timeout: float) -> Engine | None:
        """A standby that has replayed all the primary had written when this was called (waiting
        up to ``timeout`` seconds), or None. A read that begins on it afterwards sees everything
        the primary held then: ``ledger verify`` then never finds a checkpoint it pinned in a
        previous run missing."""
        try:
            target, identifier = self._ask_primary()
        except (SQLAlchemyError, psycopg.Error) as exc:
            log.warning("cluster %s: the primary does not answer: %s", self.cluster, _brief(exc))
            return None
        deadline = self._clock() + timeout
        while True:
            for host, engine in self._engines.items():
                try:
                    answer = self._ask_standby(engine)
                except (SQLAlchemyError, psycopg.Error):
                    continue
                if (
                    answer.in_recovery
                    and answer.system_identifier == identifier
                    and answer.replayed is not None
                    and answer.replayed >= target
                ):
                    log.debug("cluster %s: standby %s has caught up", self.cluster, host)
                    return engine
            if self._clock() >= deadline:
                return None
            time.sleep(0.05)

    def status(self) -> list[ReplicaStatus]:
        """Every standby as of the last probe (``not probed yet`` before the first)."""
        with self._lock:
            return list(self._statuses)

    # --- probing ----------------------------------------------------------------------------

    def start(self) -> None:
        """Probe every ``probe_seconds`` in a thread of its own until ``stop()``."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"replica-probe-{self.cluster}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """End the probe thread and close every standby connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for engine in self._engines.values():
            engine.dispose()

    def probe(self) -> list[ReplicaStatus]:
        """One round: the primary's WAL position, then every standby's replay position, judged
        against the samples. Never raises: a failure is a status (and a WARNING when it is
        new)."""
        started = self._clock()
        self._sample_primary(started)
        answers = self._ask_standbys()
        judged = [self._judge(host, answers[host]) for host in self._engines]
        statuses = [status for status, _ in judged]
        with self._lock:
            self._statuses, self._probed_at = statuses, started
        for status, state in judged:
            self._transition(
                f"standby {status.host}",
                state,
                f"cluster {self.cluster}: standby {status.host} serves reads again"
                if status.usable
                else f"cluster {self.cluster}: standby {status.host} serves no reads:"
                f" {status.reason}",
            )
        if self._on_probe is not None:
            try:
                self._on_probe(self.cluster, statuses)
            except Exception as exc:  # an observer's bug must not stop the measure
                self._transition("on_probe", "failed", f"replica status observer failed: {exc}")
            else:
                self._transition("on_probe", "ok", None)
        return statuses

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self._clock()
            try:
                self.probe()
            except Exception as exc:  # the thread outlives any surprise; engine() distrusts
                # a measure that stopped coming, so a probe that keeps failing sends reads to
                # the primary rather than to a standby nobody measured
                self._transition("probe", "failed", f"replica probe failed: {_brief(exc)}")
            self._stop.wait(max(0.0, started + self._probe_seconds - self._clock()))

    def _sample_primary(self, now: float) -> None:
        try:
            lsn, identifier = self._ask_primary()
        except (SQLAlchemyError, psycopg.Error) as exc:
            self._transition(
                "primary",
                "down",
                f"cluster {self.cluster}: the primary does not answer the lag probe: {_brief(exc)}",
            )
            return
        self._transition("primary", "ok", f"cluster {self.cluster}: the primary answers again")
        self._primary_seen_at = now
        self._primary_identifier = identifier
        if not self._samples or lsn > self._samples[-1].lsn:
            self._samples.append(WalSample(now, lsn))
        elif lsn < self._samples[-1].lsn:
            # Another server behind the primary's URL (a failover to a standby that had not
            # replayed as far): positions of the old one say nothing of the new one.
            self._samples.clear()
            self._samples.append(WalSample(now, lsn))
        while len(self._samples) > 1 and now - self._samples[0].at > self._keep_seconds:
            self._samples.popleft()

    def _ask_primary(self) -> tuple[int, int]:
        lsn_text, identifier = _retrying_once(_PRIMARY_QUERY, self._primary)
        return parse_lsn(str(lsn_text)), int(str(identifier))

    def _ask_standby(self, engine: Engine) -> _Answer:
        in_recovery, replayed, identifier = _retrying_once(_STANDBY_QUERY, engine)
        return _Answer(
            bool(in_recovery),
            parse_lsn(str(replayed)) if replayed is not None else None,
            int(str(identifier)),
            self._clock(),
        )

    def _ask_standbys(self) -> dict[str, _Answer | str]:
        """Every standby's answer, asked in parallel (one that hangs does not delay the
        others' measure), or why there is none."""
        asked: dict[str, Future[_Answer]] = {}
        answers: dict[str, _Answer | str] = {}
        for host, engine in self._engines.items():
            pending = self._asking.get(host)
            if pending is not None and not pending.done():
                answers[host] = "does not answer (still on an earlier probe)"
                continue
            asked[host] = self._asking[host] = self._ask_in_thread(host, engine)
        wait_for_futures(asked.values(), timeout=ANSWER_SECONDS)
        for host, future in asked.items():
            if not future.done():
                answers[host] = f"does not answer within {ANSWER_SECONDS:g} s"
            elif (error := future.exception()) is not None:
                answers[host] = f"does not answer: {_brief(error)}"
            else:
                answers[host] = future.result()
        return answers

    def _ask_in_thread(self, host: str, engine: Engine) -> Future[_Answer]:
        """``_ask_standby`` in a daemon thread of its own: a server that stopped answering in
        the middle of a query (no timeout ends that) holds that thread, never the probe or the
        process's exit."""
        future: Future[_Answer] = Future()

        def ask() -> None:
            try:
                future.set_result(self._ask_standby(engine))
            except Exception as exc:  # handed to the probe, which reports it as a status
                future.set_exception(exc)

        threading.Thread(target=ask, name=f"replica-ask-{host}", daemon=True).start()
        return future

    def _judge(  # noqa: PLR0911 - one return per reason a standby serves no reads
        self, host: str, answer: _Answer | str
    ) -> tuple[ReplicaStatus, str]:
        """The standby's status and its state's name (a WARNING is logged when it changes)."""

        def unusable(state: str, why: str, lag: float | None = None) -> tuple[ReplicaStatus, str]:
            return ReplicaStatus(self.cluster, host, lag, False, why), state

        if isinstance(answer, str):
            return unusable("down", answer)
        if not answer.in_recovery:
            return unusable(
                "promoted", "not in recovery: promoted, it may hold writes the primary has not"
            )
        if self._primary_seen_at is None or not self._samples:
            return unusable("unmeasured", "the primary's WAL position not measured yet")
        if answer.system_identifier != self._primary_identifier:
            return unusable(
                "foreign",
                f"a standby of another cluster (system identifier {answer.system_identifier},"
                f" the primary's {self._primary_identifier})",
            )
        unseen = answer.at - self._primary_seen_at
        if unseen > self._max_lag:
            return unusable("unmeasured", f"the primary not measured for {unseen:.1f} s")
        if answer.replayed is None:
            return unusable("unmeasured", "has replayed nothing yet")
        lag, exact = measure_lag(self._samples, answer.replayed, answer.at)
        if lag > self._max_lag:
            at_least = "" if exact else "at least "
            return unusable(
                "behind", f"{at_least}{lag:.1f} s behind (bound {self._max_lag:g} s)", lag
            )
        if not exact:
            return unusable("unmeasured", "lag unknown yet: behind every WAL position measured")
        return ReplicaStatus(self.cluster, host, lag, True, "ok"), "ok"

    # --- one log line per change ------------------------------------------------------------

    def _transition(self, subject: str, state: str, message: str | None) -> None:
        """Log ``message`` when ``subject`` changes state: a WARNING when it goes wrong, INFO
        when it comes back to ``ok`` (and nothing on the first ``ok``), never a traceback."""
        previous = self._states.get(subject)
        self._states[subject] = state
        if state == previous or message is None:
            return
        if state != "ok":
            log.warning("%s", message)
        elif previous is not None:
            log.info("%s", message)


def _retrying_once(statement: str, engine: Engine) -> tuple[object, ...]:
    """One row of ``statement``, asked again once on a new connection when the pooled one was
    dead (a server restarted since: SQLAlchemy then empties the pool, so the reads that
    follow reconnect too)."""
    for attempt in (1, 2):
        try:
            with engine.connect() as conn:
                row = conn.exec_driver_sql(statement).one()
                conn.rollback()
                return tuple(row)
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def _with_connect_timeout(url: str) -> str:
    if "connect_timeout=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}connect_timeout={CONNECT_TIMEOUT_SECONDS}"


def _brief(exc: BaseException) -> str:
    """An exception's first line (libpq's messages run over several), for one log line."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__
