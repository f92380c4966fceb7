"""Group commit: many concurrent requests, one transaction and one checkpoint per batch.

Requests are queued; a single committer thread per process takes everything queued (up to a
cap), groups it by log, and appends each group in one transaction via ``append_batch``. Each
request's future is resolved only after its batch committed, so a receipt always means durable
and covered by a signed checkpoint. Across processes the head-row lock keeps order.

A batch whose COMMIT was sent but whose connection then broke may be stored (the reply was
lost) or not. The committer retries once (which finds a stored batch by its idempotency keys);
if the database is gone for that retry too, it waits up to ``OUTCOME_WAIT_SECONDS`` for it to
come back and looks the batch's ``(source, id)`` keys up: its writers get their receipts if it
is stored, a 503 ("outcome unknown, retry with the same ids") only if it is not or the database
stays away.
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
from ledger.errors import ClientError, LedgerError, LogMoved, StoreUnavailable
from ledger.storage.db import before_last_writes, unit_of_work
from ledger.storage.keystore import DataKeyStore, SignerCache
from ledger.storage.sequencer import BatchOutcome, append_batch, stored_results

log = logging.getLogger(__name__)
SWITCH_INTERVAL = 0.0005
OUTCOME_WAIT_SECONDS = 10.0
"""How long a batch whose COMMIT's reply was lost waits for the database to tell whether it was
stored: a PostgreSQL restart takes a few seconds."""
OUTCOME_POLL_SECONDS = 0.2


@dataclass(slots=True)
class _Attempts:
    """What the committer's attempts at one batch did: when each ran (its ``now``, which the
    entries it stores keep as ``received_at``) and whether one sent its COMMIT."""

    at: list[datetime]
    commit_sent: bool = False


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
        outcome_wait_seconds: float = OUTCOME_WAIT_SECONDS,
    ) -> None:
        self._engine = engine
        self._signers = signers
        self._data_keys = data_keys
        self._max_events = max_events
        self._wait = wait_seconds
        self._clock = clock
        self._on_commit = on_commit
        self._outcome_wait = outcome_wait_seconds
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

    def _append_with_one_retry(
        self, log_info: LogInfo, items: list[_Pending], attempts: _Attempts
    ) -> BatchOutcome:
        """One retry when the connection was dead (the pool has no pre-ping). Safe even if the
        first COMMIT did land: the retry finds every (source, id) and returns its receipts."""

        def sending() -> None:
            attempts.commit_sent = True

        for attempt in (1, 2):
            now = self._clock()
            attempts.at.append(now)
            try:
                # The batch is this unit of work's one append: commit with its writes. One
                # log's batch is one tenant's: row security admits nothing else (0011).
                with unit_of_work(
                    self._engine, tenant=log_info.tenant, commit_with_last_writes=True
                ) as conn:
                    before_last_writes(conn, sending)
                    return append_batch(
                        conn,
                        log_info,
                        [i.request for i in items],
                        signers=self._signers,
                        data_keys=self._data_keys,
                        now=now,
                    )
            except LogMoved:
                raise  # the database answered: nothing to retry here
            except (StoreUnavailable, DBAPIError):
                if attempt == 2:
                    raise
                log.info("append to %s: connection lost, retrying once", log_info.id)
        raise AssertionError("unreachable")

    def _stored_after_lost_reply(
        self, log_info: LogInfo, items: list[_Pending], attempts: _Attempts
    ) -> list[AppendResult | None] | None:
        """Per request, its receipts if the batch is stored though no attempt heard its COMMIT
        answered; None if no COMMIT was sent (then nothing was stored) or the database did not
        come back within ``OUTCOME_WAIT_SECONDS``."""
        if not attempts.commit_sent:
            return None
        deadline = time.monotonic() + self._outcome_wait
        while True:
            try:
                with unit_of_work(self._engine, tenant=log_info.tenant) as conn:
                    found = stored_results(
                        conn, log_info, [i.request for i in items], attempted_at=attempts.at
                    )
            except (StoreUnavailable, DBAPIError) as exc:
                if time.monotonic() >= deadline:
                    log.warning("append to %s: outcome still unknown: %s", log_info.id, exc)
                    return None
                time.sleep(OUTCOME_POLL_SECONDS)
                continue
            told = sum(result is not None for result in found)
            log.warning(
                "append to %s: COMMIT's reply was lost; %d of %d requests found stored",
                log_info.id,
                told,
                len(found),
            )
            return found

    def _commit(self, items: list[_Pending]) -> None:
        log_info = items[0].log
        started = time.perf_counter()
        attempts = _Attempts(at=[])
        try:
            outcome = self._append_with_one_retry(log_info, items, attempts)
        except LogMoved as exc:  # nothing stored: the server re-routes the writer's retry
            log.warning("append to %s refused: %s", log_info.id, exc)
            for item in items:
                item.future.set_exception(exc)
            return
        except (StoreUnavailable, DBAPIError) as exc:
            log.warning("append to %s failed: %s", log_info.id, exc)
            error: BaseException = StoreUnavailable("the database is unavailable; retry later")
            error.__cause__ = exc
            stored = self._stored_after_lost_reply(log_info, items, attempts)
            for item, receipts in zip(items, stored or [None] * len(items), strict=True):
                if receipts is None:
                    item.future.set_exception(error)
                else:
                    item.future.set_result(receipts)
            if stored and self._on_commit is not None:
                appended = sum(found.appended for found in stored if found is not None)
                self._on_commit(log_info.id, appended, time.perf_counter() - started)
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
