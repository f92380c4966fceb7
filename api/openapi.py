"""What the OpenAPI document says that FastAPI cannot see by itself.

* Every error a route can answer, as it is answered: an RFC 9457 problem document
  (``application/problem+json``, :class:`~api.schemas.Problem`) for each status of the error
  table (``api/errors.py``) that the route can reach: 401/403/429 where a credential is needed
  (from the one permission table, ``api/permissions.py``, which also sets ``security``),
  503 where the database is read, 404 where the path names something, 400/422 where a body
  or parameters are read, 409/413 for a POST, 500 everywhere.
  FastAPI's own ``HTTPValidationError`` is never answered (``api/errors.py`` turns it into a
  problem), so it is not documented either.
* The writers' body, which ingest reads raw: one CloudEvents event of any registered type (the
  JSON Schemas of ``GET /v1/schemas``, their ``$defs`` moved into ``components``) or
  ``{"events": [...]}``.

Applied once, when the document is first built (``api.app``).
"""

from __future__ import annotations

import copy
from typing import Any, Final

from api.errors import PROBLEM
from api.permissions import OPERATIONS
from api.schemas import Problem
from ledger.events import json_schemas

PROBLEM_REF: Final = {"$ref": "#/components/schemas/Problem"}
EVENT_REF: Final = "#/components/schemas/Event"
MAX_BATCH: Final = 1000

_ERRORS: Final = {
    "400": "malformed or inconsistent request (not JSON; a range or size that cannot be)",
    "401": "missing, invalid, expired or revoked bearer token",
    "403": "the credential's role or log does not allow this",
    "404": "no such log, or nothing at that id",
    "409": "conflicts with what is stored: an event id reused with other content, an erased "
    "conversation, a legal hold, a request no longer pending",
    "413": "a body, an event or an answer over its limit",
    "422": "invalid input, named by a JSON Pointer where there is one",
    "429": "too many failed authentications from this source (see Retry-After)",
    "500": "a fault on the server; the detail is in the server's log",
    "503": "the database is unavailable (see Retry-After). For a write the outcome is "
    "unknown: retry with the same event ids",
}


def complete(document: dict[str, Any]) -> None:
    """Complete ``document`` (FastAPI's) in place."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Problem"] = Problem.model_json_schema()
    _add_event_schemas(components)
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            _complete_operation(path, method, operation)


def _complete_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    operation_id = operation.get("operationId", "")
    row = OPERATIONS.get(operation_id)
    statuses = {"500"}
    if path.startswith("/v1/logs"):
        statuses.add("503")
    if "{" in path:
        statuses.add("404")
    if row is not None and row.roles:
        statuses |= {"401", "403", "429"}
        operation["security"] = [{"bearer": []}]
    if operation.get("parameters") or "requestBody" in operation:
        statuses |= {"400", "422"}
    if method == "post":
        statuses |= {"400", "409", "413"}
    if operation_id == "metrics":
        statuses |= {"401", "403"}
        operation["responses"]["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
    if operation_id == "append_events":
        body = operation["requestBody"]["content"]["application/json"]
        body["schema"] = {
            "description": body["schema"].get("description", ""),
            "anyOf": [{"$ref": EVENT_REF}, {"$ref": "#/components/schemas/EventBatch"}],
        }
    responses = operation.setdefault("responses", {})
    statuses |= {s for s, response in responses.items() if s[0] in "45" and not _typed(response)}
    for status in sorted(statuses):
        response = responses.setdefault(status, {"description": _ERRORS.get(status, "error")})
        if status == "422" and response.get("description") == "Validation Error":
            response["description"] = _ERRORS["422"]
        if not _typed(response):
            response["content"] = {PROBLEM: {"schema": PROBLEM_REF}}


def _typed(response: dict[str, Any]) -> bool:
    """Whether the route documents a body of its own for this status (``/healthz``'s 503);
    FastAPI's ``HTTPValidationError`` does not count (it is never answered)."""
    content = response.get("content") or {}
    return any(media.get("schema") for media in content.values()) and not _is_validation_error(
        response
    )


def _is_validation_error(response: dict[str, Any]) -> bool:
    content = response.get("content") or {}
    return any(
        media.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError")
        for media in content.values()
    )


def _add_event_schemas(components: dict[str, Any]) -> None:
    """Each event type's schema as ``Event.<type>``, its ``$defs`` as components of their own
    (``EventPart.<name>``, or ``EventPart.<type>.<name>`` where two types differ)."""
    types = json_schemas()
    shared: dict[str, Any] = {}
    for schema in types.values():
        for name, definition in schema.get("$defs", {}).items():
            if shared.setdefault(name, definition) != definition:
                shared[name] = None  # differs between types: each keeps its own
    refs = []
    for type_name, schema in sorted(types.items()):
        renames = {
            name: f"EventPart.{name}"
            if shared.get(name) is not None
            else f"EventPart.{type_name}.{name}"
            for name in schema.get("$defs", {})
        }
        for name, definition in schema.pop("$defs", {}).items():
            components[renames[name]] = _rewrite_refs(definition, renames)
        for key in ("$schema", "$id"):
            schema.pop(key, None)
        components[f"Event.{type_name}"] = _rewrite_refs(schema, renames)
        refs.append({"$ref": f"#/components/schemas/Event.{type_name}"})
    components["Event"] = {
        "description": "One CloudEvents 1.0 handoff event of a registered type (GET /v1/schemas)",
        "anyOf": refs,
    }
    components["EventBatch"] = {
        "description": f"Up to {MAX_BATCH} events, appended atomically",
        "type": "object",
        "required": ["events"],
        "properties": {
            "events": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH,
                "items": {"$ref": EVENT_REF},
            }
        },
        "additionalProperties": False,
    }


def _rewrite_refs(value: Any, renames: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {key: _rewrite_refs(item, renames) for key, item in value.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            out["$ref"] = "#/components/schemas/" + renames[ref.removeprefix("#/$defs/")]
        return out
    if isinstance(value, list):
        return [_rewrite_refs(item, renames) for item in value]
    return copy.copy(value)
