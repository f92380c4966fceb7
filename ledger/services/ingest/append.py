"""The writers' use case: a request body in, receipts out.

Everything that can be done without a sequence number happens here, in the caller's thread and
outside the log's lock (parse, validate, guard, canonicalize, commit to the payload); the group
committer then appends the request as a whole, and the future resolves once it is durable and
covered by a signed checkpoint.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from ledger.domain import AppendRequest, AppendResult, LogInfo, Principal
from ledger.errors import InvalidRequest
from ledger.events import GuardPolicy
from ledger.services.ingest.prepare import IngestLimits, parse_body, prepare_all, validate_all
from ledger.services.ingest.signatures import NoWriterKeys, SignatureChecker, WriterKeyLookup
from ledger.storage.appenders import Appender


def ingest(
    body: bytes,
    *,
    log: LogInfo,
    writer: Principal,
    committer: Appender,
    limits: IngestLimits,
    default_card_policy: str,
    fingerprint_key: bytes,
    writer_keys: WriterKeyLookup | None = None,
) -> Future[AppendResult]:
    """Validate ``body`` (one event or ``{"events": [...]}``) and submit it, all or nothing.
    Raises the first problem (``EventInvalid`` naming it by JSON Pointer, ``PayloadTooLarge``,
    ``MalformedRequest``) before anything reaches the database. Signed events are checked
    against ``writer_keys`` (none given: the log takes no signatures from this caller)."""
    if log.kind != "events":
        raise InvalidRequest(f"log {log.id!r} is written only by the ledger itself")
    raws, batch = parse_body(body, limits)
    policy = GuardPolicy(cards=log.policy.get("card_policy", default_card_policy))
    validated = validate_all(raws, batch=batch, policy=policy, fingerprint_key=fingerprint_key)
    checker = SignatureChecker(log, writer, writer_keys or NoWriterKeys())
    prepared = prepare_all(
        validated,
        batch=batch,
        max_event_bytes=limits.max_event_bytes,
        log=log,
        signatures=checker,
    )
    request = AppendRequest(prepared, writer, batch=batch)
    if checker.pending < OFFLOAD_SIGNATURES:
        checker.verify()
        return committer.submit(log, request)
    return _verified_then_submitted(checker, committer, log, request)


OFFLOAD_SIGNATURES = 16
"""From this many signed events a request's Ed25519 checks (~50 µs each, the GIL released) run
on a pool thread, so the caller's thread (the server's event loop) parses the next request
meanwhile; fewer are checked at once (a thread hop would cost more than it frees)."""
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _signature_pool() -> ThreadPoolExecutor:
    global _pool  # noqa: PLW0603 - one pool per process, made on first use
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=os.cpu_count() or 2, thread_name_prefix="writer-signatures"
            )
        return _pool


def _verified_then_submitted(
    checker: SignatureChecker, committer: Appender, log: LogInfo, request: AppendRequest
) -> Future[AppendResult]:
    """A future of the request's result: its signatures verified on a pool thread, then the
    request submitted; a bad signature fails the future (nothing is submitted)."""
    outcome: Future[AppendResult] = Future()

    def relay(done: Future[AppendResult]) -> None:
        error = done.exception()
        if error is not None:
            outcome.set_exception(error)
        else:
            outcome.set_result(done.result())

    def run() -> None:
        try:
            checker.verify()
            appended = committer.submit(log, request)
        except BaseException as exc:  # handed to the caller, who raises it
            outcome.set_exception(exc)
            return
        appended.add_done_callback(relay)

    _signature_pool().submit(run)
    return outcome
