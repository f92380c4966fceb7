"""JSON Schemas (draft 2020-12) of every event type, envelope included, for ``GET /v1/schemas``.

Generated from the same models that validate, so they cannot drift. They describe the shape;
a few rules live only in code (the card-data guard, the size and depth limits, individual ids
of human agents), and the conditional requirements appear as ``anyOf`` / ``if``-``then``.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Final

from ledger.core.writer_signature import WRITER_ATTRIBUTES
from ledger.events.catalogue import EventType, all_types
from ledger.events.envelope import (
    DATACONTENTTYPE,
    MAX_SOURCE_LENGTH,
    MAX_TRACESTATE_LENGTH,
    SPECVERSION,
    SUBJECT_PATTERN,
    TIME_PATTERN,
    TRACEPARENT,
    TRACEPARENT_PATTERN,
    TRACESTATE,
)
from ledger.events.fields import MAX_ID_LENGTH

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID_PREFIX: Final = "urn:handoff-ledger:schema:"


def json_schemas() -> dict[str, dict[str, Any]]:
    """Type string → JSON Schema of the whole event. A fresh copy on every call."""
    return copy.deepcopy(_schemas())


@functools.cache
def _schemas() -> dict[str, dict[str, Any]]:
    return {spec.type: _event_schema(spec) for spec in all_types()}


def _event_schema(spec: EventType) -> dict[str, Any]:
    data = spec.model.model_json_schema(mode="validation")
    defs = data.pop("$defs", {})
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": SCHEMA_ID_PREFIX + spec.type,
        "title": spec.type,
        "description": (spec.model.__doc__ or "").strip() or f"A {spec.name} event.",
        "type": "object",
        "required": ["specversion", "id", "source", "type", "time", "subject", "data"],
        "properties": {
            "specversion": {"const": SPECVERSION},
            "id": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH},
            "source": {"type": "string", "format": "uri-reference", "minLength": 1,
                       "maxLength": MAX_SOURCE_LENGTH},
            "type": {"const": spec.type},
            "time": {"type": "string", "format": "date-time",
                     "pattern": f"^{TIME_PATTERN.pattern}$"},
            "subject": {"type": "string", "pattern": f"^{SUBJECT_PATTERN.pattern}$"},
            "datacontenttype": {"type": "string", "default": DATACONTENTTYPE,
                                "enum": [DATACONTENTTYPE, DATACONTENTTYPE + "; charset=utf-8"]},
            "data": data,
            TRACEPARENT: {"type": "string", "pattern": f"^{TRACEPARENT_PATTERN.pattern}$",
                          "description": "W3C Trace Context traceparent, kept in the entry"},
            TRACESTATE: {"type": "string", "maxLength": MAX_TRACESTATE_LENGTH,
                         "description": "W3C Trace Context tracestate, kept in the entry"},
            **{name: {"type": "string", "description": "writer signature (see the README)"}
               for name in sorted(WRITER_ATTRIBUTES)},
        },
        # Extension attributes: only those the ledger keeps or reads; any other is refused.
        "additionalProperties": False,
    }  # fmt: skip
    if defs:
        schema["$defs"] = defs
    return schema
