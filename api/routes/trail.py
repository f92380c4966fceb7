"""GET /v1/logs/{log}/conversations/{conversation_id}/trail — a conversation's whole trail, with
proof it is complete and unaltered, for auditors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from api.deps import State, json_response, recorded_read, require
from api.schemas import Trail
from ledger.domain import Principal
from ledger.services.trails.read import read_trail_for

router = APIRouter(prefix="/v1/logs/{log}", tags=["trail"])

TrailAuth = Annotated[Principal, Depends(require("get_trail"))]


@router.get(
    "/conversations/{conversation_id}/trail",
    operation_id="get_trail",
    response_model=Trail,
    summary="A conversation's entries in order, with payloads, inclusion proofs against one "
    "signed checkpoint, the back-link check and the auditor's sections",
)
def get_trail(
    log: str, conversation_id: str, request: Request, state: State, auditor: TrailAuth
) -> Response:
    return json_response(
        recorded_read(state, request, log, auditor, read_trail_for, conversation_id)
    )
