"""Failed authentications, counted per source and window, so that a flood of bad tokens costs
the undeletable system log a bounded number of entries while every attempt is still counted
(PCI DSS 10.2.1.4).

A source is the client address as the server sees it. Its first failure starts a window
(``auth_failure_window_seconds``). In it:

- the first failure on each log is recorded at once (``ledger.auth.failed.v1``, ``count`` 1);
- the others are summed, per log, into ONE ``ledger.auth.failed.v1`` summary (``count``,
  ``first_at``, ``last_at``, ``window``, ``reasons``), recorded when the window closes (the
  state's timer), when the source is evicted, or at shutdown;
- past ``auth_failures_per_window`` failures, the source's requests without a credential this
  process has verified recently are refused (429, ``TooManyAuthFailures``) without touching
  the database, and counted in the same summaries (reason ``refused unread``).

So each (source, log, window) costs at most two entries. Counting is per process: with several
workers each keeps its own counts and windows (the total stays bounded by workers times windows).
Memory is bounded too: at most ``auth_failure_max_sources`` sources (the oldest is flushed and
forgotten first) and ``MAX_LOGS_PER_SOURCE`` logs each (further logs' failures are counted in
the server's log only).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ledger.domain import AppendResult, LogInfo, Principal
from ledger.errors import TooManyAuthFailures
from ledger.services.system_log import (
    Access,
    SystemLog,
    auth_failed_event,
    auth_failures_summary_event,
)

logger = logging.getLogger("ledger.access")

MAX_LOGS_PER_SOURCE = 32
REFUSED_UNREAD = "refused unread: too many failures from this source"


@dataclass(slots=True)
class _Tally:
    """What is not recorded yet of one source's failures on one log in the current window."""

    log: LogInfo
    count: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class _Source:
    start: datetime
    ends: float
    """``time.monotonic()`` when the window closes."""
    failures: int = 0
    logs: dict[str, _Tally] = field(default_factory=dict)
    unattributed: int = 0
    """Failures on logs past ``MAX_LOGS_PER_SOURCE`` or not known without the database."""


class AuthFailures:
    """One process's counts of failed authentications (see the module's docstring)."""

    def __init__(
        self,
        system_log: SystemLog,
        *,
        limit: int,
        window_seconds: float,
        max_sources: int,
        cached_principal: Callable[[str], Principal | None],
        cached_log: Callable[[str], LogInfo | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.system_log = system_log
        self.limit = limit
        self.window_seconds = window_seconds
        self.max_sources = max_sources
        self._cached_principal = cached_principal
        self._cached_log = cached_log
        self._clock = clock
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def tracking(self) -> bool:
        """Whether any source has failed in an open window (the common case: none)."""
        return bool(self._sources)

    def refuse_if_limited(
        self, source: str, authorization: str | None, log_id: str, access: Callable[[], Access]
    ) -> None:
        """Raise ``TooManyAuthFailures`` if ``source`` is over its limit and the request does
        not carry a credential this process verified recently; count the refusal."""
        tracked = self._sources.get(source)
        if tracked is None or tracked.failures < self.limit:
            return
        left = tracked.ends - self._clock()
        if left <= 0:
            return  # the window closed: the timer flushes it; this request is judged afresh
        scheme, _, token = (authorization or "").partition(" ")
        has_token = scheme.lower() == "bearer" and token.strip()
        if has_token and self._cached_principal(token.strip()) is not None:
            return
        self.failed(source, log_id, access, REFUSED_UNREAD, known=self._cached_log(log_id))
        raise TooManyAuthFailures(max(1, math.ceil(left)))

    def failed(
        self,
        source: str,
        log_id: str,
        access: Callable[[], Access],
        reason: str,
        *,
        known: LogInfo | None,
    ) -> Future[AppendResult] | None:
        """Count a failure on ``known`` (the log, or None if there is none or it is not known
        without the database). Returns the record of the first failure on that log in the
        window, if this was it."""
        now = datetime.now(UTC)
        flush: list[tuple[str, _Source]] = []
        immediate = False
        with self._lock:
            tracked = self._sources.get(source)
            if tracked is not None and tracked.ends <= self._clock():
                flush.append((source, self._sources.pop(source)))
                tracked = None
            if tracked is None:
                while len(self._sources) >= self.max_sources:
                    flush.append(self._sources.popitem(last=False))
                tracked = _Source(start=now, ends=self._clock() + self.window_seconds)
                self._sources[source] = tracked
            tracked.failures += 1
            if known is None:
                tracked.unattributed += 1
            else:
                tally = tracked.logs.get(known.id)
                if tally is None and len(tracked.logs) < MAX_LOGS_PER_SOURCE:
                    tracked.logs[known.id] = _Tally(known)
                    immediate = reason != REFUSED_UNREAD
                    tally = None if immediate else tracked.logs[known.id]
                elif tally is None:
                    tracked.unattributed += 1
                if tally is not None:
                    tally.count += 1
                    tally.first_at = tally.first_at or now
                    tally.last_at = now
                    tally.reasons[reason] += 1
        for old in flush:
            self._record_summaries(*old)
        if immediate:
            assert known is not None
            origin = access()
            logger.warning("authentication failure on %s from %s: %s", log_id, source, reason)
            event = auth_failed_event(known, access=origin, reason=reason, now=now)
            return self.system_log.record(known.tenant, event)
        return None

    def flush(self, *, everything: bool = False) -> list[Future[AppendResult]]:
        """Record the summaries of the windows that have closed (``everything``: of all)."""
        done: list[tuple[str, _Source]] = []
        with self._lock:
            now = self._clock()
            while self._sources:
                source, tracked = next(iter(self._sources.items()))
                if not everything and tracked.ends > now:
                    break  # in insertion order, so in order of closing: the rest are open
                done.append((source, self._sources.pop(source)))
        records: list[Future[AppendResult]] = []
        for source, tracked in done:
            records.extend(self._record_summaries(source, tracked))
        return records

    def _record_summaries(self, source: str, tracked: _Source) -> list[Future[AppendResult]]:
        if tracked.unattributed:
            logger.warning(
                "%d authentication failures from %s on unknown or untracked logs in the "
                "window from %s",
                tracked.unattributed,
                source,
                tracked.start.isoformat(),
            )
        records = []
        for tally in tracked.logs.values():
            if not tally.count:
                continue
            assert tally.first_at is not None
            assert tally.last_at is not None
            event = auth_failures_summary_event(
                tally.log,
                client=source,
                count=tally.count,
                first_at=tally.first_at,
                last_at=tally.last_at,
                window_seconds=self.window_seconds,
                reasons=dict(tally.reasons),
                now=datetime.now(UTC),
            )
            try:
                records.append(self.system_log.record(tally.log.tenant, event))
            except Exception:  # e.g. the database is down: say what is lost, where it can be
                logger.exception(
                    "could not record %d authentication failures on %s from %s",
                    tally.count,
                    tally.log.id,
                    source,
                )
        return records
