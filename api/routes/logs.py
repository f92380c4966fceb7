"""Reads of a log: checkpoint and verifier keys (public), entries (auditors)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse

from api.deps import State, access_of, require
from api.schemas import EntriesPage, Entry
from ledger.core.canonical import MAX_SAFE_INTEGER
from ledger.domain import Principal
from ledger.services.reads import entries
from ledger.services.system_log import credential_actor
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
        return PlainTextResponse(latest_checkpoint(conn, log).note)


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
    with state.unit_of_work(log) as conn:
        page = entries.list_entries(
            conn,
            state.system_log,
            state.log_info(log),
            start=start,
            end=end,
            reader=credential_actor(auditor),
            access=access_of(request),
            data_keys=state.keys.data_keys,
            now=datetime.now(UTC),
        )
    body: dict[str, Any] = {
        "start": page.start,
        "end": page.end,
        "tree_size": page.tree_size,
        "entries": page.entries,
    }
    if page.rest is not None:
        body["next"] = f"/v1/logs/{log}/entries?start={page.rest[0]}&end={page.rest[1]}"
    return Response(orjson.dumps(body), media_type="application/json")


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
    with state.unit_of_work(log) as conn:
        entry = entries.get_entry(
            conn,
            state.system_log,
            state.log_info(log),
            seq,
            reader=credential_actor(auditor),
            access=access_of(request),
            data_keys=state.keys.data_keys,
            now=datetime.now(UTC),
        )
    return Response(orjson.dumps(entry), media_type="application/json")
