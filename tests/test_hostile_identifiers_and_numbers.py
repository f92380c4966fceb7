"""500s from input (issue 16, class 6): every identifier and number a client sends is checked
before it reaches PostgreSQL or the system log, and answered with a precise 4xx."""

from __future__ import annotations

import logging
import socket
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tests.conftest import make_event, served

BIG = 2**53


def auth(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


@pytest.mark.parametrize(
    "path",
    [
        "/v1/logs/a%00b/checkpoint",
        "/v1/logs/a%00b/verifier-key",
        "/v1/logs/a%00b/entries",
        "/v1/logs/a%00b/events",
        "/v1/logs/" + "x" * 2000 + "/checkpoint",
        "/v1/logs/..%2F..%2Fetc/checkpoint",
    ],
)
def test_a_log_id_that_names_no_log_is_a_404_with_or_without_a_token(
    client: Any, path: str
) -> None:
    for headers in ({}, auth("hlt_forged")):
        if path.endswith("/events"):
            r = client.post(path, json={}, headers=headers)
        else:
            r = client.get(path, headers=headers)
        assert r.status_code in (401, 404), r.text
        assert r.headers["content-type"] == "application/problem+json"


def test_a_conversation_id_that_names_no_conversation_is_a_404(
    client: Any, new_log: Any, token: Any
) -> None:
    log_id = new_log()
    r = client.get(
        f"/v1/logs/{log_id}/conversations/c%00x/trail", headers=auth(token(log_id, "auditor"))
    )
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "query",
    [
        f"entries?start={BIG}",
        f"entries?start=0&end={BIG}",
        f"entries/{BIG}",
        f"entries/{2**70}",
        f"proofs/inclusion?seq={BIG}&tree_size=1",
        f"proofs/inclusion?seq=0&tree_size={BIG}",
        f"proofs/consistency?first={BIG}&second=1",
        f"proofs/consistency?first=0&second={2**64}",
    ],
)
def test_numbers_at_or_beyond_2_53_are_a_422(
    client: Any, new_log: Any, token: Any, query: str
) -> None:
    log_id = new_log()
    r = client.get(f"/v1/logs/{log_id}/{query}", headers=auth(token(log_id, "auditor")))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"holds/{BIG + 1}/release", {"legal_basis": "x", "reference": "r"}),  # was a 500
        (f"holds/{2**63}/release", {"legal_basis": "x", "reference": "r"}),
        (f"privacy-requests/{BIG}/approve", None),
    ],
)
def test_ids_at_or_beyond_2_53_in_a_path_are_a_422(
    client: Any, new_log: Any, token: Any, path: str, body: Any
) -> None:
    log_id = new_log()
    r = client.post(f"/v1/logs/{log_id}/{path}", json=body, headers=auth(token(log_id, "admin")))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_a_verification_report_with_a_huge_number_is_a_422(
    client: Any, new_log: Any, token: Any
) -> None:
    log_id = new_log()
    system = f"{log_id}.system"
    run = {
        "status": "intact",
        "intact": True,
        "mode": "full",
        "host": "h",
        "started_at": "2026-12-06T00:00:00Z",
        "finished_at": "2026-12-06T00:00:01Z",
        "logs": [
            {
                "log": log_id,
                "intact": True,
                "mode": "full",
                "from_size": 0,
                "to_size": BIG,
                "entries": 0,
                "checkpoints": 0,
                "anchors": 0,
                "erased_payloads": 0,
            }
        ],
    }
    r = client.post(
        f"/v1/logs/{system}/verifications", json=run, headers=auth(token(system, "verifier"))
    )
    assert r.status_code == 422, r.text


def test_an_export_naming_a_conversation_with_a_nul_is_a_422(
    client: Any, new_log: Any, token: Any
) -> None:
    log_id = new_log()
    r = client.post(
        f"/v1/logs/{log_id}/exports",
        json={"profile": "pci-dss-10", "conversations": ["c\x00x"]},
        headers=auth(token(log_id, "auditor")),
    )
    assert r.status_code == 422, r.text


def test_a_tenant_name_that_cannot_name_a_system_log_is_refused(ledger_cli: Any) -> None:
    code, _, err = ledger_cli("logs", "create", "good-log", "--tenant", "bad tenant/..")
    assert code == 2
    assert "tenant" in err


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("/conversations?trigger=a%00b", "admin"),  # found by schemathesis: it was a 500
        ("/entries?start=0%00", "auditor"),
        ("/privacy-requests?status=%00", "admin"),
    ],
)
def test_a_nul_in_any_query_parameter_is_a_422(
    client: Any, new_log: Any, token: Any, path: str, role: str
) -> None:
    log_id = new_log()
    r = client.get(f"/v1/logs/{log_id}{path}", headers=auth(token(log_id, role)))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


# --- a client that goes away ----------------------------------------------------------------


@pytest.fixture
def live_server(settings: Any) -> Iterator[int]:
    from api.app import create_app

    with served(create_app(settings)) as port:
        yield port


def _send_and_close(port: int, head: bytes, body: bytes, *, wait: float = 0.0) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + body)
        time.sleep(wait)


def test_a_client_disconnect_is_not_an_error_in_the_server_log(
    live_server: int, new_log: Any, token: Any, caplog: pytest.LogCaptureFixture
) -> None:
    log_id = new_log()
    writer, admin = token(log_id, "writer"), token(log_id, "admin")
    event = orjson.dumps(make_event("gone", 0))
    caplog.set_level(logging.INFO)

    def head(path: str, tok: str, length: int) -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        ).encode()

    events = f"/v1/logs/{log_id}/events"
    erasures = f"/v1/logs/{log_id}/erasures"
    # Half a body, then gone: on the writers' door and on a framework route.
    _send_and_close(live_server, head(events, writer, len(event)), event[:40], wait=0.2)
    _send_and_close(live_server, head(erasures, admin, 500), b'{"conversation":', wait=0.2)
    # A whole request, closed while the answer is being made.
    _send_and_close(live_server, head(events, writer, len(event)), event)
    # Headers only.
    with socket.create_connection(("127.0.0.1", live_server)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    time.sleep(1.0)  # let the server notice each of them

    with urllib.request.urlopen(f"http://127.0.0.1:{live_server}/healthz", timeout=10) as ok:
        assert ok.status == 200  # and it serves on
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not loud, [(r.name, r.getMessage()) for r in loud]
    assert "Traceback" not in caplog.text
    assert any("client closed the connection" in r.getMessage() for r in caplog.records)
