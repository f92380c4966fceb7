"""POST /v1/logs/{log}/events — the writers' door."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import authorize
from api.permissions import roles_for
from api.schemas import Receipts
from ledger.domain import AppendResult
from ledger.errors import PayloadTooLarge
from ledger.server.state import LedgerState
from ledger.services.ingest.append import ingest as ingest_events
from ledger.services.ingest.prepare import IngestLimits

router = APIRouter(prefix="/v1/logs/{log}", tags=["events"])

MAX_BODY_BYTES = 64 << 20
WRITER = roles_for("append_events")


@router.post(
    "/events",
    operation_id="append_events",
    status_code=201,
    summary="Append one event or an atomic batch; answered once durable and signed",
    response_model=Receipts,
    responses={
        200: {
            "model": Receipts,
            "description": "every event was already recorded (idempotent retry)",
        }
    },
    # The body is read raw (orjson, size limits, per-event JSON Pointers), so describe it here;
    # api/openapi.py gives it the event types' schemas.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "description": "One CloudEvents 1.0 handoff event (schemas per type at "
                        'GET /v1/schemas), or {"events": [...]} with up to 1000 '
                        "events appended atomically.",
                    }
                }
            },
        },
        "security": [{"bearer": []}],
    },
)
async def append_events(log: str, request: Request) -> Response:
    return await ingest(request.app.state.ledger, request, log)


async def ingest(state: LedgerState, request: Request, log: str) -> Response:
    """Authorize, read the body, call the ingest use case, answer with its receipts. Reached
    through the route above, or straight from ``LedgerApp`` without the framework's routing."""
    writer = authorize(state, request, log, WRITER)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body over {MAX_BODY_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body over {MAX_BODY_BYTES} bytes")
    settings = state.settings
    appended = ingest_events(
        body,
        log=state.log_info(log),
        writer=writer,
        committer=state,
        limits=IngestLimits(settings.max_batch_events, settings.max_event_bytes),
        default_card_policy=settings.card_policy,
        fingerprint_key=state.fingerprint_key,
        writer_keys=state,
    )
    result = await asyncio.wrap_future(appended)
    return Response(
        orjson.dumps(_receipts(result)),
        status_code=201 if result.created else 200,
        media_type="application/json",
    )


def _receipts(result: AppendResult) -> dict[str, Any]:
    return {
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
