"""Reads of a log: checkpoint and verifier keys (public), entries (auditors)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse

from api.deps import State, json_response, recorded_read, require
from api.schemas import EntriesPage, Entry
from ledger.core.canonical import MAX_SAFE_INTEGER
from ledger.domain import Principal
from ledger.services.reads import entries
from ledger.storage.checkpoints import latest_checkpoint
from ledger.storage.keystore import verifier_keys

router = APIRouter(prefix="/v1/logs/{log}", tags=["logs"])

ListEntriesAuth = Annotated[Principal, Depends(require("list_entries"))]
GetEntryAuth = Annotated[Principal, Depends(require("get_entry"))]


@router.get(
    "/checkpoint",
    operation_id="get_checkpoint",
    response_class=PlainTextResponse,
    summary="The latest signed checkpoint (C2SP tlog-checkpoint in a signed note)",
)
def get_checkpoint(log: str, state: State) -> PlainTextResponse:
    state.log_info(log)
    with state.unit_of_work(log) as conn:
        checkpoint = latest_checkpoint(conn, log)
    state.gave_out(log, checkpoint)
    return PlainTextResponse(checkpoint.note)


@router.get(
    "/verifier-key",
    operation_id="get_verifier_keys",
    response_class=PlainTextResponse,
    summary="Note verifier keys, one a line: the current key first, then every earlier one",
)
def get_verifier_keys(log: str, state: State) -> PlainTextResponse:
    state.log_info(log)
    with state.unit_of_work(log) as conn:
        keys = verifier_keys(conn, log)
    return PlainTextResponse("".join(k + "\n" for k in keys))


@router.get(
    "/entries",
    operation_id="list_entries",
    response_model=EntriesPage,
    summary="Entries [start, end), paged",
)
def list_entries(
    log: str,
    request: Request,
    state: State,
    auditor: ListEntriesAuth,
    start: int = Query(0, ge=0, le=MAX_SAFE_INTEGER),
    end: int | None = Query(None, ge=0, le=MAX_SAFE_INTEGER),
) -> Response:
    page = recorded_read(state, request, log, auditor, entries.list_entries, start=start, end=end)
    body: dict[str, Any] = {
        "start": page.start,
        "end": page.end,
        "tree_size": page.tree_size,
        "entries": page.entries,
    }
    if page.rest is not None:
        body["next"] = f"/v1/logs/{log}/entries?start={page.rest[0]}&end={page.rest[1]}"
    return json_response(body)


@router.get(
    "/entries/{seq}",
    operation_id="get_entry",
    response_model=Entry,
    summary="One entry by sequence number",
)
def get_entry(
    log: str,
    request: Request,
    state: State,
    auditor: GetEntryAuth,
    seq: int = Path(ge=0, le=MAX_SAFE_INTEGER),
) -> Response:
    return json_response(recorded_read(state, request, log, auditor, entries.get_entry, seq))
