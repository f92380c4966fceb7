"""The console's reads over HTTP (search, random handoff, overview, the log list) and how the
console itself is served (one page for every route, strict headers, only its own files)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text

from ledger.services.system_log import system_log_id
from tests.conftest import make_event

EXAMPLE_CONVERSATION = "c-2f9e1a"


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def searchable(client: Any, example_log: str, token: Any) -> dict[str, Any]:
    """The example (escalated, handed-off) conversation, then three plain ones after it."""
    writer = token(example_log, "writer")
    for n, conversation in enumerate(("c-plain-a", "c-plain-b", "c-plain-c")):
        event = make_event(conversation, n)
        event["data"]["actor"] = {"kind": "customer", "id": f"cust-{conversation}"}
        r = client.post(f"/v1/logs/{example_log}/events", json=event, headers=_headers(writer))
        assert r.status_code == 201, r.text
    return {"log": example_log, "auditor": token(example_log, "auditor")}


def _search(client: Any, world: dict[str, Any], **query: Any) -> dict[str, Any]:
    r = client.get(
        f"/v1/logs/{world['log']}/conversations",
        params=query,
        headers=_headers(world["auditor"]),
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _ids(body: dict[str, Any]) -> list[str]:
    return [c["conversation"] for c in body["conversations"]]


def test_search_newest_first_with_every_filter(client: Any, searchable: dict[str, Any]) -> None:
    everything = _search(client, searchable)
    assert _ids(everything) == ["c-plain-c", "c-plain-b", "c-plain-a", EXAMPLE_CONVERSATION]
    assert everything["index"] == {"indexed": 19, "tree_size": 19, "behind": 0}
    example = everything["conversations"][-1]
    assert example["events"] == 16
    assert example["subjects"] == ["cust-91b7"]
    assert example["triggers"] == ["policy_trigger", "uncertainty_threshold"]
    assert example["handed_off"] is True
    assert example["escalated"] is True
    assert example["time_to_accept_seconds"] is not None
    assert example["time_to_productive_seconds"] >= example["time_to_accept_seconds"]

    assert _ids(_search(client, searchable, subject="cust-91b7")) == [EXAMPLE_CONVERSATION]
    assert _ids(_search(client, searchable, subject="cust-c-plain-b")) == ["c-plain-b"]
    assert _ids(_search(client, searchable, subject="cust-nobody")) == []
    assert _ids(_search(client, searchable, trigger="uncertainty_threshold")) == [
        EXAMPLE_CONVERSATION
    ]
    assert _ids(_search(client, searchable, trigger="sentiment_shift")) == []
    assert _ids(_search(client, searchable, handed_off="true")) == [EXAMPLE_CONVERSATION]
    assert _ids(_search(client, searchable, handed_off="false")) == [
        "c-plain-c",
        "c-plain-b",
        "c-plain-a",
    ]
    assert _ids(_search(client, searchable, event_type="handoff.tool.call.v1")) == [
        EXAMPLE_CONVERSATION
    ]
    # Time range by the ledger's received_at: everything was received just now.
    assert len(_ids(_search(client, searchable, **{"from": "2020-01-01T00:00:00Z"}))) == 4
    assert _ids(_search(client, searchable, **{"to": "2020-01-01T00:00:00Z"})) == []


def test_search_pages_by_last_seq(client: Any, searchable: dict[str, Any]) -> None:
    seen: list[str] = []
    below: int | None = None
    for _ in range(5):
        query: dict[str, Any] = {"limit": 3}
        if below is not None:
            query["below_seq"] = below
        page = _search(client, searchable, **query)
        seen += _ids(page)
        below = page["next_below_seq"]
        if below is None:
            break
    assert seen == ["c-plain-c", "c-plain-b", "c-plain-a", EXAMPLE_CONVERSATION]


def test_the_index_follows_new_entries(client: Any, searchable: dict[str, Any], token: Any) -> None:
    assert _ids(_search(client, searchable, limit=1)) == ["c-plain-c"]
    writer = token(searchable["log"], "writer")
    r = client.post(
        f"/v1/logs/{searchable['log']}/events",
        json=make_event("c-plain-a", 7),
        headers=_headers(writer),
    )
    assert r.status_code == 201, r.text
    page = _search(client, searchable)
    assert _ids(page)[0] == "c-plain-a"
    assert page["conversations"][0]["events"] == 2
    assert page["index"]["indexed"] == 20


def test_random_handoff_and_overview(client: Any, searchable: dict[str, Any]) -> None:
    log, headers = searchable["log"], _headers(searchable["auditor"])
    for _ in range(3):
        r = client.get(f"/v1/logs/{log}/random-handoff", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["conversation"]["conversation"] == EXAMPLE_CONVERSATION
    r = client.get(f"/v1/logs/{log}/overview", headers=headers)
    assert r.status_code == 200, r.text
    overview = r.json()
    assert overview["conversations"] == 4
    assert overview["handed_off"] == 1
    assert overview["handoff_rate"] == 0.25
    assert sum(d["events"] for d in overview["events_per_day"]) == 19
    assert {t["trigger"]: t["conversations"] for t in overview["trigger_mix"]} == {
        "policy_trigger": 1,
        "uncertainty_threshold": 1,
    }
    assert overview["time_to_productive"]["count"] == 1
    assert overview["time_to_productive"]["median_seconds"] > 0


def test_random_handoff_without_one_is_404(client: Any, new_log: Any, token: Any) -> None:
    log = new_log()
    writer, auditor = token(log, "writer"), token(log, "auditor")
    r = client.post(f"/v1/logs/{log}/events", json=make_event("c-x"), headers=_headers(writer))
    assert r.status_code == 201
    r = client.get(f"/v1/logs/{log}/random-handoff", headers=_headers(auditor))
    assert r.status_code == 404
    assert "no handed-off conversation" in r.json()["detail"]


def test_list_logs_names_the_credentials_own_log(
    client: Any, searchable: dict[str, Any], token: Any
) -> None:
    r = client.get("/v1/logs", headers=_headers(searchable["auditor"]))
    assert r.status_code == 200, r.text
    (log,) = r.json()["logs"]
    assert log["log"] == searchable["log"]
    assert log["size"] == 19
    assert log["checkpoint"]["note"].startswith(log["origin"] + "\n19\n")
    assert log["last_verification"] is None
    assert client.get("/v1/logs").status_code == 401
    assert client.get("/v1/logs", headers=_headers("hlt_forged")).status_code == 401
    writer = token(searchable["log"], "writer")
    assert client.get("/v1/logs", headers=_headers(writer)).status_code == 403


def test_every_console_read_is_recorded_first(
    client: Any, searchable: dict[str, Any], engine: Engine
) -> None:
    log, headers = searchable["log"], _headers(searchable["auditor"])
    client.get("/v1/logs", headers=headers)
    _search(client, searchable, subject="cust-91b7")
    client.get(f"/v1/logs/{log}/random-handoff", headers=headers)
    client.get(f"/v1/logs/{log}/overview", headers=headers)
    with engine.connect() as conn:
        tenant_log = conn.execute(
            text("SELECT tenant FROM logs WHERE id = :log"), {"log": log}
        ).scalar_one()
        types = (
            conn.execute(
                text(
                    "SELECT event_type FROM entries WHERE log_id = :system"
                    " AND conversation_id = 'access' AND position(:log IN entry) > 0"
                    " ORDER BY seq"
                ),
                {"system": system_log_id(tenant_log), "log": f'"id":"{log}"'.encode()},
            )
            .scalars()
            .all()
        )
    assert types == [
        "ledger.logs.read.v1",
        "ledger.conversations.read.v1",
        "ledger.conversations.read.v1",
        "ledger.overview.read.v1",
    ]


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 0},
        {"limit": 201},
        {"from": "yesterday"},
        {"below_seq": -1},
        {"below_seq": 2**53},
        {"handed_off": "perhaps"},
        {"subject": "x" * 513},
    ],
)
def test_bad_search_is_a_precise_422(
    client: Any, searchable: dict[str, Any], query: dict[str, Any]
) -> None:
    r = client.get(
        f"/v1/logs/{searchable['log']}/conversations",
        params=query,
        headers=_headers(searchable["auditor"]),
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_another_logs_auditor_sees_nothing(
    client: Any, searchable: dict[str, Any], new_log: Any, token: Any
) -> None:
    stranger = token(new_log(), "auditor")
    for path in ("conversations", "random-handoff", "overview"):
        r = client.get(f"/v1/logs/{searchable['log']}/{path}", headers=_headers(stranger))
        assert r.status_code == 403, r.text
        assert EXAMPLE_CONVERSATION not in r.text


# --- serving the page -----------------------------------------------------------------------


CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


@pytest.mark.parametrize(
    "path",
    [
        "/console/",
        "/console/logs/demo",
        "/console/logs/demo/conversations/c-2f9e1a",
        "/console/anything/else",
    ],
)
def test_every_console_route_is_the_one_page_with_strict_headers(client: Any, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert '<script type="module" src="/console/static/app.js"></script>' in r.text
    # No inline script or style for the CSP to have to allow.
    assert "<style" not in r.text
    assert "style=" not in r.text
    assert r.text.count("<script") == 1


def test_console_assets_are_served_from_the_package_only(client: Any) -> None:
    r = client.get("/console/static/app.js")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert r.headers["content-security-policy"] == CSP
    assert client.get("/console/static/console.css").headers["content-type"].startswith("text/css")
    for name in ("nope.js", "__init__.py", "schemas.py", "index.html.bak"):
        assert client.get(f"/console/static/{name}").status_code == 404, name
    # A path that leaves the folder names no file at all: it is a page route like any other.
    r = client.get("/console/static/..%2F__init__.py")
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "import" not in r.text
    r = client.get("/console", follow_redirects=False)
    assert r.status_code == 308
    assert r.headers["location"] == "/console/"


def test_no_asset_reaches_for_the_network(client: Any) -> None:
    from api.console import STATIC, asset_names

    for name in asset_names():
        body = (STATIC / name).read_text(encoding="utf-8", errors="replace")
        assert "http://" not in body.replace("http://www.w3.org/2000/svg", ""), name
        assert "https://" not in body, name
        assert "innerHTML" not in body, name
        assert "eval(" not in body, name
