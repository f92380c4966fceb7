"""GET /v1/logs/{log}/conversations/{conversation_id}/trail — a conversation's whole trail, with
proof it is complete and unaltered, for auditors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request, Response

from api.deps import State, access_of, require
from api.schemas import Trail
from ledger.domain import Principal
from ledger.services.system_log import credential_actor
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
    with state.unit_of_work(log) as conn:
        body = read_trail_for(
            conn,
            state.system_log,
            state.log_info(log),
            conversation_id,
            reader=credential_actor(auditor),
            access=access_of(request),
            data_keys=state.keys.data_keys,
            now=datetime.now(UTC),
        )
    return Response(orjson.dumps(body), media_type="application/json")
