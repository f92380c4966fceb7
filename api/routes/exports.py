"""POST /v1/logs/{log}/exports — evidence bundles and reports for auditors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import State, access_of, require
from api.schemas import ExportRequest
from ledger.domain import Principal
from ledger.errors import ExportInvalid
from ledger.services.exports.export import Export, run_export
from ledger.services.exports.query import parse_query
from ledger.services.system_log import credential_actor

router = APIRouter(prefix="/v1/logs/{log}", tags=["exports"])
MAX_BODY_BYTES = 1 << 20
ExportAuth = Annotated[Principal, Depends(require("create_export"))]


@router.post(
    "/exports",
    operation_id="create_export",
    summary="Export a population, a conversation's or a data subject's records: an evidence "
    "bundle (zip) or a report (JSON Lines, CSV, OCSF, HTML); recorded before it is served",
    responses={
        200: {
            "description": "the export, streamed; X-Ledger-Export-SHA256 is the bundle "
            "manifest's (or the file's) SHA-256, as recorded in the system log",
            "content": {
                "application/zip": {},
                "application/x-ndjson": {},
                "text/csv": {},
                "text/html": {},
            },
        }
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ExportRequest.model_json_schema()}},
        }
    },
)
async def create_export(
    log: str, request: Request, state: State, auditor: ExportAuth
) -> StreamingResponse:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ExportInvalid(f"the export request is over {MAX_BODY_BYTES} bytes")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ExportInvalid(f"the export request is not JSON: {exc}") from exc
    query = parse_query(document)
    info = state.log_info(log)

    def produce() -> Export:
        return state.read(
            log,
            lambda conn: run_export(
                conn,
                state.system_log,
                info,
                query,
                keys=state.keys,
                actor=credential_actor(auditor),
                access=access_of(request),
                now=datetime.now(UTC),
            ),
            repeatable=True,
        )

    # The export reads and writes for as long as its population takes: off the event loop.
    export = await run_in_threadpool(produce)
    return StreamingResponse(
        export.chunks(),
        media_type=export.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{export.filename}"',
            "X-Ledger-Export-SHA256": export.sha256,
            "X-Ledger-Export-Count": str(export.count),
        },
    )
