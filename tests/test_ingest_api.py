"""The writers' door and the auditors' entry reads, end to end over HTTP on real PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

from ledger.core.checkpoint import open_checkpoint
from ledger.core.merkle import root_from_leaf_hashes
from ledger.core.signing import NoteVerifier
from tests.conftest import make_event


def auth(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def size_of(client: Any, log_id: str) -> int:
    r = client.get(f"/v1/logs/{log_id}/checkpoint")
    assert r.status_code == 200
    return int(r.text.split("\n")[1])


def open_latest(client: Any, log_id: str, note: str | None = None) -> Any:
    keys = client.get(f"/v1/logs/{log_id}/verifier-key").text.splitlines()
    verifiers = [NoteVerifier.from_verifier_key(k) for k in keys]
    return open_checkpoint(note or client.get(f"/v1/logs/{log_id}/checkpoint").text, verifiers)


def test_example_batch_gets_receipts_and_a_verifiable_checkpoint(
    client: Any, new_log: Any, token: Any, example_batch: dict[str, Any]
) -> None:
    log_id = new_log()
    r = client.post(
        f"/v1/logs/{log_id}/events", json=example_batch, headers=auth(token(log_id, "writer"))
    )
    assert r.status_code == 201, r.text
    body = r.json()
    receipts = body["receipts"]
    assert [x["seq"] for x in receipts] == list(range(16))
    assert [x["event_id"] for x in receipts] == [e["id"] for e in example_batch["events"]]
    cp = open_latest(client, log_id, body["checkpoint"])
    assert cp.size == 16
    leaves = [base64.b64decode(x["leaf_hash"]) for x in receipts]
    assert cp.root_hash == root_from_leaf_hashes(leaves)
    assert cp.origin == f"ledger.test/{log_id}"


def test_entries_serve_the_hashed_bytes_and_the_decrypted_payload(
    client: Any, new_log: Any, token: Any, example_batch: dict[str, Any]
) -> None:
    log_id = new_log()
    client.post(
        f"/v1/logs/{log_id}/events", json=example_batch, headers=auth(token(log_id, "writer"))
    )
    r = client.get(
        f"/v1/logs/{log_id}/entries?start=0&end=16", headers=auth(token(log_id, "auditor"))
    )
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    assert len(entries) == 16
    prev = base64.b64encode(bytes(32)).decode()
    conv_last = None
    for posted, got in zip(example_batch["events"], entries, strict=True):
        raw = base64.b64decode(got["entry_b64"])
        assert base64.b64decode(got["leaf_hash"]) == hashlib.sha256(b"\x00" + raw).digest()
        entry = json.loads(raw)
        assert entry["prev"] == prev
        assert entry["conversation_prev"] == conv_last
        assert entry["event"]["id"] == posted["id"]
        assert entry["writer"]["role"] == "writer"
        assert "data" not in entry
        assert got["payload_status"] == "verified"
        assert got["payload"] == posted["data"]
        # An auditor checks the payload offline: SHA-256(salt || canonical bytes) = commitment.
        salt, data = base64.b64decode(got["payload_salt"]), base64.b64decode(got["payload_b64"])
        commitment = base64.b64decode(entry["payload"]["commitment"])
        assert hashlib.sha256(salt + data).digest() == commitment
        assert json.loads(data) == posted["data"]
        prev, conv_last = got["leaf_hash"], got["seq"]
    one = client.get(f"/v1/logs/{log_id}/entries/5", headers=auth(token(log_id, "auditor")))
    assert one.json()["entry_b64"] == entries[5]["entry_b64"]


def test_retry_returns_the_original_receipt_and_conflict_is_409(
    client: Any, new_log: Any, token: Any
) -> None:
    log_id = new_log()
    w = auth(token(log_id, "writer"))
    event = make_event("c-r", 1)
    first = client.post(f"/v1/logs/{log_id}/events", json=event, headers=w)
    assert first.status_code == 201
    again = client.post(f"/v1/logs/{log_id}/events", json=event, headers=w)
    assert again.status_code == 200
    assert again.json()["receipts"] == first.json()["receipts"]
    changed = make_event("c-r", 1, visibility="internal")
    conflict = client.post(f"/v1/logs/{log_id}/events", json=changed, headers=w)
    assert conflict.status_code == 409
    assert conflict.headers["content-type"].startswith("application/problem+json")
    assert size_of(client, log_id) == 1


def test_a_batch_with_one_conflict_stores_nothing(client: Any, new_log: Any, token: Any) -> None:
    log_id = new_log()
    w = auth(token(log_id, "writer"))
    client.post(f"/v1/logs/{log_id}/events", json=make_event("c", 0), headers=w)
    batch = {"events": [make_event("c", 1), make_event("c", 0, visibility="internal")]}
    r = client.post(f"/v1/logs/{log_id}/events", json=batch, headers=w)
    assert r.status_code == 409
    assert size_of(client, log_id) == 1


def test_bad_input_is_refused_precisely_and_nothing_is_stored(
    client: Any, new_log: Any, token: Any
) -> None:
    log_id = new_log()
    w = auth(token(log_id, "writer"))
    url = f"/v1/logs/{log_id}/events"
    r = client.post(url, content=b"{not json", headers={**w, "Content-Type": "application/json"})
    assert r.status_code == 400
    missing = make_event("c", 0)
    del missing["data"]["outcome"]
    r = client.post(url, json={"events": [make_event("c", 1), missing]}, headers=w)
    assert r.status_code == 422
    assert r.json()["pointer"] == "/events/1/data/outcome"
    r = client.post(url, json={"events": [make_event("c", n) for n in range(1001)]}, headers=w)
    assert r.status_code == 413
    big = make_event("c", 2)
    # Over 1 MiB in all, each string under its own 256 KiB limit.
    big["data"]["content"]["parts"] = [{"type": "text", "content": "x" * 250_000}] * 5
    r = client.post(url, json=big, headers=w)
    assert r.status_code == 413
    r = client.post(url, json={"events": [make_event("c", 4), big]}, headers=w)
    assert r.status_code == 413
    assert r.json()["detail"].startswith("/events/1: event is")
    r = client.post(url, json=[make_event("c", 3)], headers=w)
    assert r.status_code == 400
    assert size_of(client, log_id) == 0


def test_authentication_and_roles(client: Any, new_log: Any, token: Any) -> None:
    log_a, log_b = new_log(), new_log()
    event = make_event("c", 0)
    assert client.post(f"/v1/logs/{log_a}/events", json=event).status_code == 401
    bad = client.post(f"/v1/logs/{log_a}/events", json=event, headers=auth("hlt_nope"))
    assert bad.status_code == 401
    assert bad.json()["detail"] == "missing, invalid or revoked bearer token"
    writer_b = auth(token(log_b, "writer"))
    assert client.post(f"/v1/logs/{log_a}/events", json=event, headers=writer_b).status_code == 403
    assert (
        client.post("/v1/logs/no-such-log/events", json=event, headers=writer_b).status_code == 404
    )
    writer_a = auth(token(log_a, "writer"))
    assert client.get(f"/v1/logs/{log_a}/entries", headers=writer_a).status_code == 403
    auditor_a = auth(token(log_a, "auditor"))
    assert client.post(f"/v1/logs/{log_a}/events", json=event, headers=auditor_a).status_code == 403
    assert client.get(f"/v1/logs/{log_b}/entries", headers=auditor_a).status_code == 403
    assert size_of(client, log_a) == 0
    assert size_of(client, log_b) == 0


def test_conversation_back_links_across_batches(client: Any, new_log: Any, token: Any) -> None:
    log_id = new_log()
    w = auth(token(log_id, "writer"))
    url = f"/v1/logs/{log_id}/events"
    client.post(url, json={"events": [make_event("a", 0), make_event("b", 0)]}, headers=w)
    client.post(url, json={"events": [make_event("a", 1), make_event("b", 1)]}, headers=w)
    entries = client.get(
        f"/v1/logs/{log_id}/entries", headers=auth(token(log_id, "auditor"))
    ).json()["entries"]
    links = [
        (e["entry"]["event"]["conversation"], e["entry"]["conversation_prev"]) for e in entries
    ]
    assert links == [("a", None), ("b", None), ("a", 0), ("b", 1)]


def test_verifier_key_and_public_reads(client: Any, new_log: Any) -> None:
    log_id = new_log()
    r = client.get(f"/v1/logs/{log_id}/verifier-key")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    key = NoteVerifier.from_verifier_key(r.text.splitlines()[0])
    assert key.name == f"ledger.test/{log_id}"
    assert open_latest(client, log_id).size == 0
    assert client.get("/v1/logs/nope/checkpoint").status_code == 404
    assert client.get("/healthz").json()["status"] == "ok"
    from fastapi.testclient import TestClient

    loopback = TestClient(client.app, client=("127.0.0.1", 50000))  # /metrics: loopback only
    assert b"ledger_batch_commit_seconds" in loopback.get("/metrics").content


def system_entries(client: Any, token: Any, log_id: str) -> list[dict[str, Any]]:
    system = f"{log_id}.system"
    r = client.get(f"/v1/logs/{system}/entries", headers=auth(token(system, "auditor")))
    assert r.status_code == 200, r.text
    return [
        e
        for e in r.json()["entries"]
        if not e["entry"]["event"]["type"].startswith("ledger.service.")
        and (
            e["entry"]["event"]["type"] != "ledger.entries.read.v1" or e["payload"]["log"] == log_id
        )
    ]


def test_reads_and_failed_logins_are_logged_in_the_system_log(
    client: Any, new_log: Any, token: Any
) -> None:
    """PCI DSS 10.2.1.3 and 10.2.1.4."""
    log_id = new_log()
    auditor = token(log_id, "auditor")
    r = client.get(f"/v1/logs/{log_id}/entries?start=0", headers=auth(auditor))
    assert r.status_code == 200
    assert client.get(f"/v1/logs/{log_id}/entries", headers=auth("hlt_forged")).status_code == 401
    writer = token(log_id, "writer")
    assert client.get(f"/v1/logs/{log_id}/entries", headers=auth(writer)).status_code == 403
    deadline = time.monotonic() + 10
    while True:  # the failure events are recorded without holding up the 401/403
        types = [
            e["entry"]["event"]["type"]
            for e in system_entries(client, token, log_id)
            if e["entry"]["event"]["conversation"] in ("access", "auth")
        ]
        if "ledger.access.denied.v1" in types or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert types[:3] == [
        "ledger.entries.read.v1",
        "ledger.auth.failed.v1",
        "ledger.access.denied.v1",
    ]
    read = next(
        e
        for e in system_entries(client, token, log_id)
        if e["entry"]["event"]["type"] == "ledger.entries.read.v1"
    )
    assert read["payload"]["actor"]["role"] == "auditor"
    assert read["payload"]["query"] == "start=0"
    assert read["entry"]["event"]["conversation"] == "access"


def test_openapi_documents_the_writers_door(client: Any) -> None:
    doc = client.get("/openapi.json").json()
    post = doc["paths"]["/v1/logs/{log}/events"]["post"]
    assert post["operationId"] == "append_events"
    assert "application/json" in post["requestBody"]["content"]
    assert post["security"] == [{"bearer": []}]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_service_start_and_stop_are_logged_per_tenant(
    settings: Any, new_log: Any, token: Any, engine: Any
) -> None:
    """PCI DSS 10.2.1.6: a server process's start and stop appear in the system log of every
    tenant it served."""
    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from api.app import create_app

    log_id = new_log()
    with TestClient(create_app(settings)) as own:
        r = own.post(
            f"/v1/logs/{log_id}/events",
            json=make_event("c", 0),
            headers=auth(token(log_id, "writer")),
        )
        assert r.status_code == 201
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT event_type FROM entries WHERE log_id = :log AND conversation_id = 'service'"
                " AND event_type LIKE 'ledger.service.%' ORDER BY seq"
            ),
            {"log": f"{log_id}.system"},
        ).all()
    assert [row[0] for row in rows] == ["ledger.service.started.v1", "ledger.service.stopped.v1"]


def test_a_retry_spelling_the_same_instant_differently_is_the_same_event(
    client: Any, new_log: Any, token: Any
) -> None:
    """Issue 16, class 5: compare what is stored, not how it was spelled."""
    log_id = new_log()
    writer = token(log_id, "writer")
    first = make_event("c-spell", 0)
    first["time"] = "2026-11-20T09:14:01Z"
    r1 = client.post(f"/v1/logs/{log_id}/events", json=first, headers=auth(writer))
    assert r1.status_code == 201, r1.text
    for spelling, content_type in (
        ("2026-11-20T09:14:01.000+00:00", "application/json"),
        ("2026-11-20T10:14:01.000000+01:00", "application/json; charset=utf-8"),
    ):
        retry = {**first, "time": spelling, "datacontenttype": content_type}
        r2 = client.post(f"/v1/logs/{log_id}/events", json=retry, headers=auth(writer))
        assert r2.status_code == 200, r2.text
        assert r2.json()["receipts"] == r1.json()["receipts"]
    other = {**first, "time": "2026-11-20T09:14:02Z"}
    assert (
        client.post(f"/v1/logs/{log_id}/events", json=other, headers=auth(writer)).status_code
        == 409
    )


def test_entry_pages_are_bounded_by_bytes_and_the_next_links_cover_the_range(
    client: Any, new_log: Any, token: Any, monkeypatch: Any
) -> None:
    """Issue 16, class 7: a page ends by size as well as by count; following ``next`` yields
    every entry once, in order."""
    from ledger.services.reads import entries

    monkeypatch.setattr(entries, "MAX_PAGE_BYTES", 30_000)
    log_id = new_log()
    big = "x" * 6000
    batch = {
        "events": [
            make_event("c-big", n, content={"parts": [{"type": "text", "content": big}]})
            for n in range(12)
        ]
    }
    assert (
        client.post(
            f"/v1/logs/{log_id}/events", json=batch, headers=auth(token(log_id, "writer"))
        ).status_code
        == 201
    )
    auditor = auth(token(log_id, "auditor"))
    url: str | None = f"/v1/logs/{log_id}/entries?start=0"
    seen: list[int] = []
    pages = 0
    while url:
        body = client.get(url, headers=auditor).json()
        assert 1 <= len(body["entries"]) < 12
        seen += [e["seq"] for e in body["entries"]]
        url = body.get("next")
        pages += 1
    assert seen == list(range(12))
    assert pages >= 3
