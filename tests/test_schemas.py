"""GET /v1/schemas: the event catalogue as JSON Schemas, public, and in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from ledger.events import event_types


def test_every_type_has_a_schema(client: Any) -> None:
    r = client.get("/v1/schemas")
    assert r.status_code == 200
    schemas = r.json()
    assert sorted(schemas) == event_types()
    tool = schemas["handoff.tool.call.v1"]
    assert tool["properties"]["type"] == {"const": "handoff.tool.call.v1"}
    assert "data" in tool["required"]


def test_one_schema_and_an_unknown_type(client: Any) -> None:
    r = client.get("/v1/schemas/handoff.handoff.accepted.v1")
    assert r.status_code == 200
    assert r.json()["title"] == "handoff.handoff.accepted.v1"
    missing = client.get("/v1/schemas/handoff.nope.v1")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_schemas_and_trail_are_in_the_openapi_document(client: Any) -> None:
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    assert paths["/v1/schemas"]["get"]["operationId"] == "list_schemas"
    assert paths["/v1/schemas/{event_type}"]["get"]["operationId"] == "get_schema"
    trail = paths["/v1/logs/{log}/conversations/{conversation_id}/trail"]["get"]
    assert trail["operationId"] == "get_trail"
    assert trail["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Trail"
    }
    assert {"entries", "back_links", "summary", "checkpoint"} <= set(
        doc["components"]["schemas"]["Trail"]["properties"]
    )
