"""Every size is bounded: a trail by the stored bytes of its conversation, a verification report
field by field, and every POST body but ingest's before it is read (no token: 401 unread; over
the cap: 413, declared or streamed)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import Engine

from api.app import MAX_REQUEST_BODY
from ledger.errors import IntegrityFailure
from ledger.services.trails import read as trail_read
from ledger.services.verification.verify import REPORT_TEXT_MAX, LogReport
from ledger.storage.db import unit_of_work
from ledger.storage.entries import conversation_entries, conversation_stored_bytes
from tests.test_ingest_api import auth, system_entries
from tests.test_trail import CONVERSATION, trail_url

# --- trails by stored bytes ----------------------------------------------------------------------


def test_stored_bytes_are_the_entries_and_sealed_payloads(engine: Engine, example_log: str) -> None:
    with unit_of_work(engine) as conn:
        rows = conversation_entries(conn, example_log, CONVERSATION, 16, limit=100)
        stored = conversation_stored_bytes(conn, example_log, CONVERSATION, 16, limit=100)
        assert conversation_stored_bytes(conn, example_log, CONVERSATION, 3, limit=100) > 0
        assert conversation_stored_bytes(conn, example_log, "c-none", 16, limit=100) == 0
    assert stored == sum(len(r[2]) + len(r[4] or b"") for r in rows)


def test_a_trail_over_its_stored_bytes_is_a_413_naming_exports(
    client: Any, token: Any, example_log: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    auditor = auth(token(example_log, "auditor"))
    monkeypatch.setattr(trail_read, "MAX_TRAIL_STORED_BYTES", 1000)
    r = client.get(trail_url(example_log), headers=auditor)
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith(":trail-too-large")
    assert f"/v1/logs/{example_log}/exports" in r.json()["detail"]
    assert "conversations" in r.json()["detail"]
    monkeypatch.setattr(trail_read, "MAX_TRAIL_STORED_BYTES", 64 << 20)
    assert client.get(trail_url(example_log), headers=auditor).status_code == 200


# --- verification reports ------------------------------------------------------------------------


def _run(log_id: str, failure: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "status": "tampered" if failure else "intact",
        "intact": failure is None,
        "mode": "full",
        "host": "h",
        "started_at": "2026-12-06T00:00:00Z",
        "finished_at": "2026-12-06T00:00:01Z",
        "logs": [
            {
                "log": log_id,
                "intact": failure is None,
                "mode": "full",
                "from_size": 0,
                "to_size": 3,
                "entries": 3,
                "checkpoints": 1,
                "anchors": 0,
                "erased_payloads": 0,
                "failure": failure,
            }
        ],
    }


def _runs_recorded(client: Any, token: Any, log_id: str) -> int:
    return sum(
        e["entry"]["event"]["type"] == "ledger.verification.run.v1"
        for e in system_entries(client, token, log_id)
    )


def test_a_failure_as_the_job_sends_it_is_recorded(client: Any, new_log: Any, token: Any) -> None:
    log_id = new_log()
    system = f"{log_id}.system"
    report = LogReport(log_id, "full", to_size=3, entries=3)
    report.failure = IntegrityFailure(
        "leaf hash differs", log=log_id, seq=2, expected="a" * 44, found="x" * 10_000
    )
    failure = report.as_json()["failure"]
    assert len(failure["found"]) == len(failure["message"]) == REPORT_TEXT_MAX
    r = client.post(
        f"/v1/logs/{system}/verifications",
        json=_run(log_id, failure),
        headers=auth(token(system, "verifier")),
    )
    assert r.status_code == 201, r.text
    assert _runs_recorded(client, token, log_id) == 1


@pytest.mark.parametrize(
    "failure",
    [
        {"what": "x", "message": "m", "blob": "y" * (9 << 20)},  # 9 MiB: over the body cap
        {"what": "x", "message": "m", "blob": "y" * 1000},  # a field the report does not have
        {"what": "x", "message": "m" * (REPORT_TEXT_MAX + 1)},
        {"what": "x", "message": "m", "expected": "e" * (REPORT_TEXT_MAX + 1)},
        {"what": "x", "message": "m", "found": {"nested": "object"}},
        {"what": "x", "message": "m", "seq": 2**53},
        {"what": "x", "message": "m", "expected": 2**53},
        {"message": "no what"},
    ],
)
def test_an_unbounded_failure_report_is_refused_and_not_stored(
    client: Any, new_log: Any, token: Any, failure: dict[str, Any]
) -> None:
    log_id = new_log()
    system = f"{log_id}.system"
    r = client.post(
        f"/v1/logs/{system}/verifications",
        json=_run(log_id, failure),
        headers=auth(token(system, "verifier")),
    )
    assert r.status_code in (413, 422), r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert _runs_recorded(client, token, log_id) == 0


# --- bodies before authentication ----------------------------------------------------------------


def _post_streaming(
    app: Any, path: str, headers: dict[str, str], total: int, chunk: int = 64 << 10
) -> tuple[int, int, bytes]:
    """POST ``total`` bytes in chunks straight to the ASGI app; the status, how many body bytes
    the app consumed, and the response body."""
    consumed = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal consumed
        if consumed >= total:
            await asyncio.sleep(3600)  # a client that sent everything waits for the answer
        size = min(chunk, total - consumed)
        consumed += size
        return {"type": "http.request", "body": b"x" * size, "more_body": consumed < total}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "app": app,
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 30))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, consumed, body


TEN_MB = 10_000_000


@pytest.mark.parametrize("declared", [True, False])
def test_a_post_without_a_token_is_a_401_unread(client: Any, new_log: Any, declared: bool) -> None:
    log_id = new_log()
    headers = {"content-type": "application/json"}
    if declared:
        headers["content-length"] = str(TEN_MB)
    status, consumed, body = _post_streaming(
        client.app, f"/v1/logs/{log_id}.system/verifications", headers, TEN_MB
    )
    assert status == 401
    assert consumed == 0
    assert b"missing, invalid or revoked bearer token" in body
    r = client.post(f"/v1/logs/{log_id}/exports", json={"profile": "pci-dss-10"})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == "missing, invalid or revoked bearer token"
    # A token of another scheme is no bearer token.
    r = client.post(f"/v1/logs/{log_id}/exports", json={}, headers={"Authorization": "Basic dTpw"})
    assert r.status_code == 401


def test_a_post_over_the_cap_is_a_413(client: Any, new_log: Any, token: Any) -> None:
    log_id = new_log()
    system = f"{log_id}.system"
    path = f"/v1/logs/{system}/verifications"
    bearer = auth(token(system, "verifier"))
    declared = {**bearer, "content-type": "application/json", "content-length": str(TEN_MB)}
    status, consumed, body = _post_streaming(client.app, path, declared, TEN_MB)
    assert (status, consumed) == (413, 0)
    assert b"payload-too-large" in body

    streamed = {**bearer, "content-type": "application/json"}
    status, consumed, body = _post_streaming(client.app, path, streamed, TEN_MB)
    assert status == 413
    assert consumed <= MAX_REQUEST_BODY + (64 << 10)
    assert b"payload-too-large" in body

    r = client.post(
        path,
        content=b" " * (MAX_REQUEST_BODY + 1),
        headers=declared | {"content-length": str(MAX_REQUEST_BODY + 1)},
    )
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert _runs_recorded(client, token, log_id) == 0


def test_ingest_keeps_its_own_cap(client: Any, new_log: Any, token: Any) -> None:
    """A batch over MAX_REQUEST_BODY is still ingested (the ingest path has its 64 MiB cap)."""
    from tests.conftest import make_event

    log_id = new_log()
    events = [
        make_event("c-big", n, content={"parts": [{"type": "text", "content": "z" * 20_000}]})
        for n in range(60)
    ]
    r = client.post(
        f"/v1/logs/{log_id}/events", json={"events": events}, headers=auth(token(log_id, "writer"))
    )
    assert r.status_code == 201, r.text
