"""Group commit: many concurrent requests, one transaction and one checkpoint per batch.

Requests are queued; a single committer thread per process takes everything queued (up to a
cap), groups it by log, and appends each group in one transaction via ``append_batch``. Each
request's future is resolved only after its batch committed, so a receipt always means durable
and covered by a signed checkpoint. Across processes the head-row lock keeps order.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from ledger.domain import AppendRequest, AppendResult, LogInfo
from ledger.errors import ClientError, LedgerError, StoreUnavailable
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import DataKeyStore, SignerCache
from ledger.storage.sequencer import BatchOutcome, append_batch

log = logging.getLogger(__name__)
SWITCH_INTERVAL = 0.0005


@dataclass(slots=True)
class _Pending:
    log: LogInfo
    request: AppendRequest
    future: Future[AppendResult]


class GroupCommitter:
    def __init__(
        self,
        engine: Engine,
        *,
        signers: SignerCache,
        data_keys: DataKeyStore,
        max_events: int = 5000,
        wait_seconds: float = 0.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_commit: Callable[[str, int, float], None] | None = None,
    ) -> None:
        self._engine = engine
        self._signers = signers
        self._data_keys = data_keys
        self._max_events = max_events
        self._wait = wait_seconds
        self._clock = clock
        self._on_commit = on_commit
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        # The committer holds the log's row lock while it runs; every database round trip
        # releases the GIL, and getting it back from a busy event loop waits up to the switch
        # interval (5 ms by default), with the lock held. A shorter interval keeps batches short.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def submit(self, log: LogInfo, request: AppendRequest) -> Future[AppendResult]:
        future: Future[AppendResult] = Future()
        self._queue.put(_Pending(log, request, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def __enter__(self) -> GroupCommitter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            count = len(first.request.events)
            deadline = time.monotonic() + self._wait
            stop = False
            while count < self._max_events:
                try:
                    timeout = deadline - time.monotonic()
                    item = (
                        self._queue.get(timeout=timeout)
                        if timeout > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
                count += len(item.request.events)
            by_log: dict[str, list[_Pending]] = {}
            for item in batch:
                by_log.setdefault(item.log.id, []).append(item)
            for items in by_log.values():
                self._commit(items)
            if stop:
                return

    def _append_with_one_retry(self, log_info: LogInfo, items: list[_Pending]) -> BatchOutcome:
        """One retry when the connection was dead (the pool has no pre-ping). Safe even if the
        first COMMIT did land: the retry finds every (source, id) and returns its receipts."""
        for attempt in (1, 2):
            try:
                # The batch is this unit of work's one append: commit with its writes.
                with unit_of_work(self._engine, commit_with_last_writes=True) as conn:
                    return append_batch(
                        conn,
                        log_info,
                        [i.request for i in items],
                        signers=self._signers,
                        data_keys=self._data_keys,
                        now=self._clock(),
                    )
            except (StoreUnavailable, DBAPIError):
                if attempt == 2:
                    raise
                log.info("append to %s: connection lost, retrying once", log_info.id)
        raise AssertionError("unreachable")

    def _commit(self, items: list[_Pending]) -> None:
        log_info = items[0].log
        started = time.perf_counter()
        try:
            outcome = self._append_with_one_retry(log_info, items)
        except (StoreUnavailable, DBAPIError) as exc:
            log.warning("append to %s failed: %s", log_info.id, exc)
            error: BaseException = StoreUnavailable("the database is unavailable; retry later")
            error.__cause__ = exc
            for item in items:
                item.future.set_exception(error)
            return
        except LedgerError as exc:
            log.error("append to %s refused: %s", log_info.id, exc)  # noqa: TRY400 - expected, not a bug
            for item in items:
                item.future.set_exception(exc)
            return
        except Exception as exc:  # the committer thread must survive anything
            log.exception("append to %s crashed", log_info.id)
            for item in items:
                item.future.set_exception(exc)
            return
        if self._on_commit is not None:
            self._on_commit(log_info.id, outcome.appended, time.perf_counter() - started)
        for item, result in zip(items, outcome.results, strict=True):
            if isinstance(result, ClientError):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)
