"""Dependencies as Annotated aliases: the process state, and who is calling with which role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import orjson
from fastapi import Depends, Request, Response
from sqlalchemy import Connection

from api.permissions import roles_for
from ledger.domain import Principal
from ledger.server.state import LedgerState
from ledger.services.access import authorize as authorize_access
from ledger.services.system_log import Access, ReadRecordedOnce, credential_actor

T = TypeVar("T")


async def _state(request: Request) -> LedgerState:  # async: no thread-pool hop per request
    state: LedgerState = request.app.state.ledger
    return state


State = Annotated[LedgerState, Depends(_state)]


def access_of(request: Request) -> Access:
    """Where the request came from, as the system log records it."""
    return Access(
        client=client_of(request),
        method=request.method,
        path=request.url.path,
        query=str(request.url.query),
    )


def client_of(request: Request) -> str:
    """The source of a request, as the server sees it (what failures are counted by)."""
    client = request.scope.get("client")
    return str(client[0]) if client else "unknown"


def authorize(state: LedgerState, request: Request, log: str, roles: tuple[str, ...]) -> Principal:
    """The caller's principal if it holds one of ``roles`` on ``log``; else 401/403/404, or 429
    for a source over its limit of failed authentications.

    Called directly (not through FastAPI's dependency solver) by the ingest route, where the
    solver's per-request cost is a third of the CPU a single-event request takes.
    """
    return authorize_access(
        request.headers.get("authorization"),
        log,
        roles,
        access=lambda: access_of(request),
        principals=state.principal,
        logs=state.log_info,
        system_log=state.system_log,
        now=datetime.now(UTC),
        failures=state.auth_failures,
        source=lambda: client_of(request),
    )


def require(operation_id: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: a valid token for the log in the path, with one of the roles the
    permission matrix (``api.permissions.OPERATIONS``) gives ``operation_id``.

    Async on purpose: with the principal and log cached it does no I/O, and an async
    dependency saves every request a hop through the thread pool.
    """
    roles = roles_for(operation_id)
    if not roles:
        raise ValueError(f"{operation_id} is public in the permission matrix: nothing to require")

    async def dependency(log: str, request: Request, state: State) -> Principal:
        return authorize(state, request, log, roles)

    return dependency


def recorded_read(
    state: LedgerState,
    request: Request,
    log: str,
    reader: Principal,
    read: Callable[..., T],
    *args: object,
    **kwargs: object,
) -> T:
    """Run the read use case ``read`` (``read(conn, system_log, log_info, *args, reader=,
    access=, data_keys=, now=, **kwargs)``, which records itself in the tenant's system log
    before it reads) on ``log`` for ``reader``, in one read-only unit of work on the log's
    tenant, on a standby when one is fresh enough (``LedgerState.read``; recorded once even if
    the primary is asked after the standby)."""
    system_log = ReadRecordedOnce(state.system_log)
    info = state.log_info(log)
    actor = credential_actor(reader)
    access = access_of(request)
    now = datetime.now(UTC)

    def run(conn: Connection) -> T:
        return read(
            conn,
            system_log,
            info,
            *args,
            reader=actor,
            access=access,
            data_keys=state.keys.data_keys,
            now=now,
            **kwargs,
        )

    return state.read(log, run)


def json_response(body: object) -> Response:
    """``body`` as JSON, serialized by orjson (the read bodies are already plain JSON values:
    no response model validation on the way out)."""
    return Response(orjson.dumps(body), media_type="application/json")
