"""Reads of a log: checkpoint and verifier keys (public), entries (auditors)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse

from api.deps import AuditorAuth, State, audit_read, log_info
from ledger.errors import InvalidRequest
from ledger.services.reads import entries as reads
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import verifier_keys

router = APIRouter(prefix="/v1/logs/{log}", tags=["logs"])


@router.get(
    "/checkpoint",
    operation_id="get_checkpoint",
    response_class=PlainTextResponse,
    summary="The latest signed checkpoint (C2SP tlog-checkpoint in a signed note)",
)
def get_checkpoint(log: str, state: State) -> PlainTextResponse:
    log_info(state, log)
    with unit_of_work(state.engine) as conn:
        note = reads.latest_checkpoint(conn, log)
    return PlainTextResponse(note)


@router.get(
    "/verifier-key",
    operation_id="get_verifier_keys",
    response_class=PlainTextResponse,
    summary="Note verifier keys, one a line: the current key first, then every earlier one",
)
def get_verifier_keys(log: str, state: State) -> PlainTextResponse:
    log_info(state, log)
    with unit_of_work(state.engine) as conn:
        keys = verifier_keys(conn, log)
    return PlainTextResponse("".join(k + "\n" for k in keys))


@router.get("/entries", operation_id="list_entries", summary="Entries [start, end), paged")
def list_entries(
    log: str,
    request: Request,
    state: State,
    auditor: AuditorAuth,
    start: int = Query(0, ge=0),
    end: int | None = Query(None, ge=0),
) -> dict[str, Any]:
    info = log_info(state, log)
    audit_read(state, info, auditor, request, "entries", start=start, end=end)
    with unit_of_work(state.engine) as conn:
        size = reads.log_size(conn, log)
        stop = size if end is None else min(end, size)
        if end is not None and end < start:
            raise InvalidRequest(f"end ({end}) must not be before start ({start})")
        stop = min(stop, start + reads.MAX_PAGE)
        entries = reads.read_entries(conn, info, start, stop, state.data_keys)
    body: dict[str, Any] = {"start": start, "end": max(stop, start), "tree_size": size,
                            "entries": entries}
    wanted_end = size if end is None else min(end, size)
    if stop < wanted_end:
        body["next"] = f"/v1/logs/{log}/entries?start={stop}&end={wanted_end}"
    return body


@router.get("/entries/{seq}", operation_id="get_entry", summary="One entry by sequence number")
def get_entry(
    log: str, seq: int, request: Request, state: State, auditor: AuditorAuth
) -> dict[str, Any]:
    info = log_info(state, log)
    if seq < 0:
        raise InvalidRequest("seq must be >= 0")
    audit_read(state, info, auditor, request, "entry", seq=seq)
    with unit_of_work(state.engine) as conn:
        return reads.read_entry(conn, info, seq, state.data_keys)
