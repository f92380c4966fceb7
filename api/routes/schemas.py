"""GET /v1/schemas — the JSON Schema of every event type writers may post (public)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ledger.errors import NotFound
from ledger.events import json_schemas

router = APIRouter(prefix="/v1/schemas", tags=["schemas"])

_SCHEMA_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"schema": {"type": "object"}}}},
}


@router.get(
    "",
    operation_id="list_schemas",
    summary="Every event type → its JSON Schema (draft 2020-12), envelope included",
    responses=_SCHEMA_DOC,
)
def list_schemas() -> JSONResponse:
    return JSONResponse(json_schemas())


@router.get(
    "/{event_type}",
    operation_id="get_schema",
    summary="The JSON Schema of one event type, e.g. handoff.tool.call.v1",
    responses=_SCHEMA_DOC,
)
def get_schema(event_type: str) -> JSONResponse:
    schema = json_schemas().get(event_type)
    if schema is None:
        raise NotFound(f"no event type {event_type!r}; GET /v1/schemas lists them")
    return JSONResponse(schema)
