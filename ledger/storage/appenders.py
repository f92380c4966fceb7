"""How a use case hands events to the sequencer: an ``Appender``.

There is one way to append to a log, ``sequencer.append_batch``; an appender says in which unit
of work it runs:

- ``GroupCommitter`` (``group_commit``): the server's. Many requests, one transaction and one
  checkpoint per batch, each its own unit of work; the future resolves once the batch committed.
- ``InTransaction`` (here): the caller's unit of work. For a use case whose own rows and the
  events that record them must commit together or not at all (a credential and its
  ``credential.created``); the future is resolved before ``submit`` returns, and the events are
  durable when the caller's unit of work commits.
"""

from __future__ import annotations

from concurrent.futures import Future
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection

from ledger.domain import AppendRequest, AppendResult, LogInfo
from ledger.storage.keystore import KeyRing
from ledger.storage.sequencer import append_batch


class Appender(Protocol):
    def submit(self, log: LogInfo, request: AppendRequest) -> Future[AppendResult]:
        """Append ``request``'s events to ``log``, all or none."""
        ...


class InTransaction:
    """Appends at once, in the caller's unit of work (``conn``), stamped ``now``."""

    def __init__(self, conn: Connection, keys: KeyRing, *, now: datetime) -> None:
        self._conn = conn
        self._keys = keys
        self._now = now

    def submit(self, log: LogInfo, request: AppendRequest) -> Future[AppendResult]:
        outcome = append_batch(
            self._conn,
            log,
            [request],
            signers=self._keys.signers,
            data_keys=self._keys.data_keys,
            now=self._now,
        )
        future: Future[AppendResult] = Future()
        result = outcome.results[0]
        if isinstance(result, AppendResult):
            future.set_result(result)
        else:
            future.set_exception(result)
        return future
