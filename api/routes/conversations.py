"""Reads for finding conversations (the auditor console calls them; so may any script): the logs a
credential reads, conversations by filters, a random handed-off conversation, a log's overview.
Each read is recorded in the tenant's system log before it is served."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from api.console.schemas import ConversationPage, LogList, Overview, RandomHandoff
from api.deps import State, authorize, json_response, recorded_read, require
from api.permissions import roles_for
from ledger.core.canonical import MAX_SAFE_INTEGER
from ledger.domain import Principal
from ledger.errors import Unauthenticated
from ledger.server.state import LedgerState
from ledger.services.access import bearer_token
from ledger.services.console import reads
from ledger.services.console.index import catch_up
from ledger.storage.console import ConversationFilter

router = APIRouter(tags=["conversations"])

SearchAuth = Annotated[Principal, Depends(require("list_conversations"))]
RandomAuth = Annotated[Principal, Depends(require("random_handoff"))]
OverviewAuth = Annotated[Principal, Depends(require("get_overview"))]


async def _own_log_reader(request: Request, state: State) -> Principal:
    """The caller of ``GET /v1/logs``: a credential names its log, so the log to authorize on is
    the token's own; a bad token goes through the same counting and recording as anywhere."""
    try:
        log = state.principal(bearer_token(request.headers.get("authorization"))).log_id
    except Unauthenticated:
        log = ""
    return authorize(state, request, log, roles_for("list_logs"))


@router.get(
    "/v1/logs",
    operation_id="list_logs",
    response_model=LogList,
    summary="The logs this credential can read, with size, latest checkpoint and the last "
    "recorded verification run's result",
)
def list_logs(
    request: Request, state: State, reader: Annotated[Principal, Depends(_own_log_reader)]
) -> Response:
    log = recorded_read(state, request, reader.log_id, reader, reads.describe_log_for)
    return json_response({"logs": [log]})


@router.get(
    "/v1/logs/{log}/conversations",
    operation_id="list_conversations",
    response_model=ConversationPage,
    summary="Conversations, newest first, by time range, data subject, event type, escalation "
    "trigger and whether a handoff happened",
)
def list_conversations(
    log: str,
    request: Request,
    state: State,
    auditor: SearchAuth,
    since: Annotated[
        datetime | None, Query(alias="from", description="activity at or after (RFC 3339)")
    ] = None,
    until: Annotated[
        datetime | None, Query(alias="to", description="activity before (RFC 3339)")
    ] = None,
    subject: Annotated[
        str | None,
        Query(min_length=1, max_length=512, description="a customer id"),
    ] = None,
    event_type: Annotated[
        str | None, Query(min_length=1, max_length=512, description="e.g. handoff.tool.call.v1")
    ] = None,
    trigger: Annotated[
        str | None, Query(min_length=1, max_length=512, description="e.g. sentiment_shift")
    ] = None,
    handed_off: Annotated[bool | None, Query(description="a handoff was requested")] = None,
    below_seq: Annotated[
        int | None, Query(ge=0, le=MAX_SAFE_INTEGER, description="the page after this one")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=reads.MAX_PAGE)] = 50,
) -> Response:
    where = ConversationFilter(
        since=_utc(since),
        before=_utc(until),
        subject=subject,
        event_type=event_type,
        trigger=trigger,
        handed_off=handed_off,
    )
    _index_on_primary(state, log)
    return json_response(
        recorded_read(
            state, request, log, auditor, reads.search_for, where, below_seq=below_seq, limit=limit
        )
    )


@router.get(
    "/v1/logs/{log}/random-handoff",
    operation_id="random_handoff",
    response_model=RandomHandoff,
    summary="A randomly chosen handed-off conversation (the pilot test's random handoff)",
)
def random_handoff(log: str, request: Request, state: State, auditor: RandomAuth) -> Response:
    _index_on_primary(state, log)
    return json_response(recorded_read(state, request, log, auditor, reads.random_handoff_for))


@router.get(
    "/v1/logs/{log}/overview",
    operation_id="get_overview",
    response_model=Overview,
    summary="Events per day, handoff rate, escalation trigger mix, times to accept and to "
    "productive takeover (median, p90)",
)
def get_overview(log: str, request: Request, state: State, auditor: OverviewAuth) -> Response:
    _index_on_primary(state, log)
    return json_response(recorded_read(state, request, log, auditor, reads.overview_for))


def _index_on_primary(state: LedgerState, log: str) -> None:
    """The console's index is derived data, written on the primary only: bring it up to date
    there (a budget of entries at a time), then the read, maybe on a standby, reads it as
    replicated (its ``index`` member says how far that is)."""
    with state.unit_of_work(log) as conn:
        catch_up(conn, state.log_info(log), state.keys.data_keys)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
