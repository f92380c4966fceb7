"""The one table from domain errors to HTTP problems (RFC 9457 application/problem+json).

Routes never invent status codes: they raise domain errors and this table answers.
Security failures tell the client little (one message); the log gets the detail.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ledger.errors import ClientError, EventInvalid, StoreUnavailable, Unauthenticated

log = logging.getLogger("ledger.api")
PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: object) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _client_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ClientError)
    if isinstance(exc, Unauthenticated):
        return problem(exc.status, exc.title, "missing, invalid or revoked bearer token")
    if isinstance(exc, EventInvalid):
        return problem(exc.status, exc.title, str(exc), pointer=exc.pointer)
    return problem(exc.status, exc.title, str(exc))


def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("store unavailable: %s", exc)
    return problem(503, "Service unavailable", "the database is unavailable; retry later")


def _request_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ())]
    where = " ".join(loc) or "request"
    return problem(422, "Invalid request", f"{where}: {first.get('msg', 'invalid')}",
                   pointer="/" + "/".join(loc[1:]) if len(loc) > 1 else "")


def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return problem(500, "Internal error", "the ledger hit an unexpected error; it is logged")


def response_for(request: Request, exc: Exception) -> JSONResponse:
    """The table itself, for callers outside FastAPI's exception handling (the ingest path)."""
    if isinstance(exc, ClientError):
        return _client_error(request, exc)
    if isinstance(exc, StoreUnavailable):
        return _unavailable(request, exc)
    return _unexpected(request, exc)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ClientError, _client_error)
    app.add_exception_handler(StoreUnavailable, _unavailable)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(Exception, _unexpected)
