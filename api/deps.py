"""Dependencies as Annotated aliases: the process state, and who is calling with which role."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from ledger.domain import LogInfo, Principal
from ledger.errors import Forbidden, NotFound, Unauthenticated
from ledger.server.state import LedgerState
from ledger.services.admin.credentials import authenticate, token_hash
from ledger.services.system_log import credential_actor, system_event
from ledger.storage.db import unit_of_work

logger = logging.getLogger("ledger.api.auth")


async def _state(request: Request) -> LedgerState:  # async: no thread-pool hop per request
    state: LedgerState = request.app.state.ledger
    return state


State = Annotated[LedgerState, Depends(_state)]


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("no bearer token")
    return token.strip()


def principal_for(state: LedgerState, token: str) -> Principal:
    def load() -> Principal:
        with unit_of_work(state.engine) as conn:
            return authenticate(conn, token)

    return state.principals.get_or_load(token_hash(token), load)


def log_info(state: LedgerState, log_id: str) -> LogInfo:
    return state.log_info(log_id)


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: a valid token for the log in the path, with one of ``roles``.

    Async on purpose: with the principal and log cached it does no I/O, and an async
    dependency saves every request a hop through the thread pool.
    """

    async def dependency(log: str, request: Request, state: State) -> Principal:
        return authorize(state, request, log, roles)

    return dependency


def authorize(state: LedgerState, request: Request, log: str, roles: tuple[str, ...]) -> Principal:
    """The caller's principal if it holds one of ``roles`` on ``log``; else 401/403/404.

    Called directly (not through FastAPI's dependency solver) by the ingest route, where the
    solver's per-request cost is a third of the CPU a single-event request takes.
    """
    try:
        principal = principal_for(state, _bearer(request))
    except Unauthenticated as exc:
        _record_auth_failure(state, log, request, str(exc))
        raise
    info = log_info(state, log)  # an unknown log is a 404 for any authenticated caller
    if principal.log_id != log:
        _record_denied(state, info, principal, request, roles)
        # Say no more than that: another log's existence is not this caller's business.
        raise Forbidden("this credential is not valid for that log")
    if principal.role not in roles:
        _record_denied(state, info, principal, request, roles)
        raise Forbidden(f"this operation needs the {' or '.join(roles)} role")
    return principal


def _record_auth_failure(state: LedgerState, log_id: str, request: Request, reason: str) -> None:
    """PCI DSS 10.2.1.4: an invalid access attempt on a known log goes to its tenant's system
    log. Not awaited: a flood of bad tokens must not slow anyone down or fill memory waiting."""
    try:
        info = state.log_info(log_id)
    except NotFound:
        logger.warning("authentication failure on unknown log %r from %s", log_id,
                       _client(request))
        return
    logger.warning("authentication failure on %s from %s: %s", log_id, _client(request), reason)
    state.record(info.tenant, system_event(
        "auth.failed", stream="auth", outcome="failure", now=datetime.now(UTC),
        data={"log": log_id, "method": request.method, "path": request.url.path,
              "client": _client(request), "reason": reason},
        resource={"type": "log", "id": log_id},
    ))


def _record_denied(state: LedgerState, info: LogInfo, principal: Principal, request: Request,
                   roles: tuple[str, ...]) -> None:
    state.record(info.tenant, system_event(
        "access.denied", stream="auth", outcome="failure", now=datetime.now(UTC),
        actor=credential_actor(principal),
        data={"log": info.id, "method": request.method, "path": request.url.path,
              "client": _client(request), "needed_roles": list(roles)},
        resource={"type": "log", "id": info.id},
    ))


def audit_read(state: LedgerState, info: LogInfo, principal: Principal, request: Request,
               what: str, **details: object) -> None:
    """PCI DSS 10.2.1.3: every read of the audit trail is itself logged, before it is served."""
    state.record_and_wait(info.tenant, system_event(
        f"{what}.read", stream="access", now=datetime.now(UTC),
        actor=credential_actor(principal),
        data={"log": info.id, "method": request.method, "path": request.url.path,
              "query": str(request.url.query), "client": _client(request), **details},
        resource={"type": "log", "id": info.id},
    ))


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


AuditorAuth = Annotated[Principal, Depends(require("auditor", "admin"))]
