"""The one table from errors to HTTP problems (RFC 9457 ``application/problem+json``).

Routes never invent status codes: they raise domain errors (``ledger/errors.py``) and ``PROBLEMS``
answers, naming every class of the tree; a test fails if a class is missing. Starlette's own
errors (an unknown path, a wrong method) and FastAPI's parameter validation are answered in the
same form, so every error body a client sees is a problem document.

Security failures tell the client little (one message for every authentication failure); the
server log gets the detail. Server-side failures (a broken key, a log that refuses to sign) are
a 500 whose detail is logged, never sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger import errors as e

log = logging.getLogger("ledger.api")
PROBLEM = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:handoff-ledger:problem:"
RETRY_AFTER_SECONDS = "5"


@dataclass(frozen=True, slots=True)
class Problem:
    status: int
    slug: str
    """The last part of the problem type URI, ``urn:handoff-ledger:problem:<slug>``."""
    title: str
    public_detail: str | None = None
    """Sent instead of the exception's message: for security failures and server faults."""


_SERVER_FAULT = "the ledger hit an unexpected error; it is logged"

PROBLEMS: dict[type[e.LedgerError], Problem] = {
    # The caller's fault: precise, nothing stored.
    e.ClientError: Problem(400, "bad-request", "Bad request"),
    e.MalformedRequest: Problem(400, "malformed-request", "Malformed request"),
    e.TrailFileMalformed: Problem(400, "malformed-request", "Malformed request"),
    e.BundleMalformed: Problem(400, "malformed-request", "Malformed request"),
    e.InvalidRequest: Problem(400, "invalid-request", "Invalid request"),
    e.BeyondLatestCheckpoint: Problem(400, "invalid-request", "Invalid request"),
    e.EventInvalid: Problem(422, "event-invalid", "Invalid event"),
    e.WriterSignatureInvalid: Problem(422, "writer-signature-invalid", "Writer signature invalid"),
    e.ExportInvalid: Problem(422, "export-invalid", "Invalid export request"),
    e.PayloadTooLarge: Problem(413, "payload-too-large", "Payload too large"),
    e.TrailTooLarge: Problem(413, "trail-too-large", "Trail too large"),
    e.Conflict: Problem(409, "conflict", "Conflict"),
    e.IdempotencyConflict: Problem(409, "idempotency-conflict", "Idempotency conflict"),
    e.LogExists: Problem(409, "log-exists", "Log exists"),
    e.KeyStateConflict: Problem(409, "key-state", "Signing key state"),
    e.ScopeErased: Problem(409, "conversation-erased", "Conversation erased"),
    e.HoldActive: Problem(409, "hold-active", "Under legal hold"),
    e.RequestNotPending: Problem(409, "request-not-pending", "Request not pending"),
    e.NotFound: Problem(404, "not-found", "Not found"),
    e.Unauthenticated: Problem(
        401, "unauthenticated", "Unauthenticated", "missing, invalid or revoked bearer token"
    ),
    e.TooManyAuthFailures: Problem(
        429, "too-many-auth-failures", "Too many authentication failures"
    ),
    e.Forbidden: Problem(403, "forbidden", "Forbidden"),
    e.TwoPersonRule: Problem(403, "two-person-rule", "Two-person rule"),
    # Not the caller's fault, and the caller may retry.
    # A write answered 503 may still have been stored (its COMMIT landed, the reply was lost):
    # the writer is told so, and that retrying with the same ids is safe (idempotency keys).
    e.StoreUnavailable: Problem(
        503,
        "unavailable",
        "Service unavailable",
        "the database is unavailable; retry later. For a write the outcome is unknown: it may "
        "have been stored. Retry with the same event ids: each (source, id) is stored once, "
        "and a retry of a stored event answers 200 with its original receipt",
    ),
    e.LogMoved: Problem(
        503,
        "unavailable",
        "Service unavailable",
        "the log is moving to another database cluster; nothing was stored. Retry with the "
        "same event ids",
    ),
    # A KMS that failed or cannot be reached: the client may retry; which key and why (the
    # provider's exception class, never key material) goes to the operator's log only.
    e.KeyProviderUnavailable: Problem(
        503, "unavailable", "Service unavailable", "a key service is unavailable; retry later"
    ),
    # Server faults: whatever they say is for the operator's log.
    e.LedgerError: Problem(500, "internal", "Internal error", _SERVER_FAULT),
    e.CryptoError: Problem(500, "internal", "Internal error", _SERVER_FAULT),
    e.InclusionProofInvalid: Problem(500, "internal", "Internal error", _SERVER_FAULT),
    e.ConsistencyProofInvalid: Problem(500, "internal", "Internal error", _SERVER_FAULT),
    e.NoteFormatError: Problem(500, "internal", "Internal error", _SERVER_FAULT),
    e.SignatureInvalid: Problem(500, "internal", "Internal error", _SERVER_FAULT),
    e.DecryptionFailed: Problem(500, "internal", "Internal error", _SERVER_FAULT),
    e.CanonicalizationError: Problem(500, "internal", "Internal error", _SERVER_FAULT),
    e.ConfigurationError: Problem(500, "internal", "Internal error", _SERVER_FAULT),
    e.IntegrityFailure: Problem(
        500,
        "integrity",
        "Integrity failure",
        "the log refuses to go on: stored data does not check out; "
        "the operator is alerted by the log",
    ),
    # Refused before anything was written or signed; retrying helps once the operator has put
    # the database that holds the acknowledged entries back in front of the ledger.
    e.CheckpointFork: Problem(
        503,
        "checkpoint-fork",
        "Log behind its checkpoints",
        "the database's log does not extend a checkpoint this ledger already signed or "
        "anchored (a rollback, or a failover to a server that lacks acknowledged entries); "
        "the ledger refuses to sign a checkpoint that contradicts it. Nothing was stored; "
        "the operator is alerted. Retry later with the same event ids",
    ),
    e.WorkerFailed: Problem(500, "internal", "Internal error", _SERVER_FAULT),
}


def problem_for(error: type[e.LedgerError]) -> Problem:
    """The row of ``error``'s class, else of its nearest listed ancestor."""
    for cls in error.__mro__:
        row = PROBLEMS.get(cls)
        if row is not None:
            return row
    raise AssertionError(f"{error.__name__} is not a LedgerError")


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    retry_after: str | None = None,
    **extra: object,
) -> JSONResponse:
    body = {
        "type": PROBLEM_TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    if retry_after is None and status == 503:
        retry_after = RETRY_AFTER_SECONDS
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def response_for(_request: Request, exc: Exception) -> JSONResponse:
    """The answer to any exception: the table's for ledger errors, a logged 500 for the rest.
    Also called directly by the ingest path, which runs outside FastAPI's routing."""
    if not isinstance(exc, e.LedgerError):
        log.exception("unexpected error", exc_info=exc)
        return problem(500, "internal", "Internal error", _SERVER_FAULT)
    row = problem_for(type(exc))
    if row.status >= 500:
        if row.status == 503 and not isinstance(exc, e.IntegrityFailure):  # a fork is an ERROR
            log.warning("%s: %s", type(exc).__name__, exc)
        else:
            log.error("%s: %s", type(exc).__name__, exc, exc_info=exc)
    elif row.public_detail is not None:
        log.warning("%s: %s", type(exc).__name__, exc)
    detail = row.public_detail if row.public_detail is not None else str(exc)
    if isinstance(exc, e.TooManyAuthFailures):  # a flood: not logged per request
        return problem(row.status, row.slug, row.title, detail, retry_after=str(exc.retry_after))
    extra = {"pointer": exc.pointer} if isinstance(exc, e.EventInvalid) else {}
    return problem(row.status, row.slug, row.title, detail, **extra)


def _request_validation(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's parameter validation (query, path, a typed JSON body), as a problem naming
    the first bad field."""
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ())]
    where = " ".join(loc) or "request"
    return problem(
        422,
        "invalid-request",
        "Invalid request",
        f"{where}: {first.get('msg', 'invalid')}",
        pointer="/" + "/".join(loc[1:]) if len(loc) > 1 else "",
    )


def _framework_error(_request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own answers (404 no such path, 405 wrong method) as problem documents."""
    assert isinstance(exc, StarletteHTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    slug = phrase.lower().replace(" ", "-")
    detail = exc.detail if isinstance(exc.detail, str) else phrase
    response = problem(exc.status_code, slug, phrase, detail)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _framework_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(e.LedgerError, response_for)
    # Anything else is a bug: Starlette answers it through this handler, then re-raises it
    # for the server's log.
    app.add_exception_handler(Exception, response_for)
