"""Anchoring from the server process: every ``interval`` seconds on a daemon thread, when at
least one sink is configured. Several processes may run it; ``anchor`` lets one at a time work
and the others skip that round."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine

from ledger.errors import LedgerError, StoreUnavailable
from ledger.services.anchoring.anchor import Anchoring, Sink, anchor
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import KeyRing
from ledger.storage.logs import list_logs

log = logging.getLogger(__name__)


class AnchorScheduler:
    def __init__(
        self,
        engine: Engine,
        keys: KeyRing,
        sinks: Sequence[Sink],
        *,
        interval: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._keys = keys
        self._sinks = list(sinks)
        self._interval = interval
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="anchoring", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def run_once(self) -> list[Anchoring]:
        """One round: what it anchored is recorded, committed, when this returns."""
        with unit_of_work(self._engine, system="anchoring") as conn:  # every tenant's logs
            done = anchor(conn, self._keys, list_logs(conn), self._sinks, now=self._clock())
        for anchoring in done:
            if not anchoring.ok:
                log.error("anchoring %s failed: %s", anchoring.log.id, anchoring.sinks)
        return done

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.run_once()
            except StoreUnavailable as exc:  # a failover or restart: one line, no traceback
                log.warning("anchoring round skipped: %s; retrying in %.0f s", exc, self._interval)
            except (LedgerError, OSError, TimeoutError):
                log.exception("anchoring round failed; retrying in %.0f s", self._interval)
