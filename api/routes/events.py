"""POST /v1/logs/{log}/events — the writers' door."""

from __future__ import annotations

import asyncio
import base64

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import authorize, log_info
from ledger.domain import AppendRequest
from ledger.errors import InvalidRequest, PayloadTooLarge
from ledger.events import GuardPolicy
from ledger.server.state import LedgerState
from ledger.services.ingest.prepare import IngestLimits, parse_body, prepare_all, validate_all

router = APIRouter(prefix="/v1/logs/{log}", tags=["events"])

MAX_BODY_BYTES = 64 << 20
WRITER = ("writer",)


@router.post(
    "/events",
    operation_id="append_events",
    status_code=201,
    summary="Append one event or an atomic batch; answered once durable and signed",
    responses={200: {"description": "every event was already recorded (idempotent retry)"}},
    # The body is read raw (orjson, size limits, per-event JSON Pointers), so describe it here.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {
                "description": "One CloudEvents 1.0 handoff event (schemas per type at "
                               "GET /v1/schemas), or {\"events\": [...]} with up to 1000 "
                               "events appended atomically.",
                "type": "object",
            }}},
        },
        "security": [{"bearer": []}],
    },
)
async def append_events(log: str, request: Request) -> Response:
    return await ingest(request.app.state.ledger, request, log)


async def ingest(state: LedgerState, request: Request, log: str) -> Response:
    """The whole request: authorize, read, validate, prepare, append, answer. Reached through
    the route above, or straight from ``LedgerApp`` without the framework's routing."""
    principal = authorize(state, request, log, WRITER)
    info = log_info(state, log)
    if info.kind != "events":
        raise InvalidRequest(f"log {log!r} is written only by the ledger itself")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body over {MAX_BODY_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body over {MAX_BODY_BYTES} bytes")
    settings = state.settings
    limits = IngestLimits(settings.max_batch_events, settings.max_event_bytes)
    raws, batch = parse_body(body, limits)
    policy = GuardPolicy(cards=info.policy.get("card_policy", settings.card_policy))
    validated = validate_all(
        raws, batch=batch, policy=policy, fingerprint_key=state.fingerprint_key
    )
    prepared = prepare_all(validated, batch=batch)
    assert state.committer is not None
    future = state.committer.submit(info, AppendRequest(prepared, principal))
    result = await asyncio.wrap_future(future)
    body_out = {
        "receipts": [
            {
                "event_id": r.event_id,
                "seq": r.seq,
                "leaf_hash": base64.b64encode(r.leaf_hash).decode(),
            }
            for r in result.receipts
        ],
        "checkpoint": result.checkpoint,
    }
    return Response(orjson.dumps(body_out), status_code=201 if result.created else 200,
                    media_type="application/json")
