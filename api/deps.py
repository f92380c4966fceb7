"""Dependencies as Annotated aliases: the process state, and who is calling with which role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from api.state import LedgerState
from ledger.errors import Forbidden, Unauthenticated
from ledger.services.credentials import authenticate, token_hash
from ledger.services.logs import get_log
from ledger.storage.db import unit_of_work
from ledger.storage.rows import LogInfo, Principal


def _state(request: Request) -> LedgerState:
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
    key = token_hash(token)
    cached = state.principals.get(key)
    if cached is not None:
        return cached
    with unit_of_work(state.engine) as conn:
        principal = authenticate(conn, token)
    state.principals.put(key, principal)
    return principal


def log_info(state: LedgerState, log_id: str) -> LogInfo:
    cached = state.logs.get(log_id)
    if cached is not None:
        return cached
    with unit_of_work(state.engine) as conn:
        info = get_log(conn, log_id)
    state.logs.put(log_id, info)
    return info


def require(*roles: str) -> Callable[..., Principal]:
    """A dependency: a valid token for the log in the path, with one of ``roles``."""

    def dependency(log: str, request: Request, state: State) -> Principal:
        principal = principal_for(state, _bearer(request))
        log_info(state, log)  # an unknown log is a 404 for any authenticated caller
        if principal.log_id != log:
            # Say no more than that: another log's existence is not this caller's business.
            raise Forbidden("this credential is not valid for that log")
        if principal.role not in roles:
            raise Forbidden(f"this operation needs the {' or '.join(roles)} role")
        return principal

    return dependency


WriterAuth = Annotated[Principal, Depends(require("writer"))]
AuditorAuth = Annotated[Principal, Depends(require("auditor", "admin"))]
