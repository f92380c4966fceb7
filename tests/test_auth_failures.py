"""A flood of bad tokens costs the undeletable system log a bounded number of entries, every
attempt still counted (PCI DSS 10.2.1.4); the source past its limit gets 429 with Retry-After.
And every HTTP answer is counted in ``ledger_http_requests``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.settings import Settings
from tests.conftest import make_event

OWN = ("ledger.entries.read.v1", "ledger.credential.created.v1")
"""What this test itself adds to the system log (its auditor credentials and their reads)."""
FLOOD = 1000
LIMIT = 10
WINDOW = 5.0


def auth(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


@pytest.fixture
def short_window(settings: Settings) -> Iterator[Any]:
    """An app whose failure window is seconds, not a minute (the summaries come sooner)."""
    own = settings.model_copy(
        update={"auth_failures_per_window": LIMIT, "auth_failure_window_seconds": WINDOW}
    )
    app = create_app(own)
    with TestClient(app, client=("203.0.113.7", 40000)) as attacker:
        yield app, attacker


def system_size(client: Any, log_id: str) -> int:
    r = client.get(f"/v1/logs/{log_id}.system/checkpoint")
    assert r.status_code == 200
    return int(r.text.split("\n")[1])


def system_entries(client: Any, token: Any, log_id: str) -> list[dict[str, Any]]:
    system = f"{log_id}.system"
    r = client.get(f"/v1/logs/{system}/entries", headers=auth(token(system, "auditor")))
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()["entries"]
    return entries


def auth_failures(client: Any, token: Any, log_id: str) -> list[dict[str, Any]]:
    return [
        e["payload"]
        for e in system_entries(client, token, log_id)
        if e["entry"]["event"]["type"] == "ledger.auth.failed.v1" and e["payload"]["log"] == log_id
    ]


def test_too_many_auth_failures_bounds_the_system_log_and_counts_every_attempt(
    short_window: Any, new_log: Any, token: Any
) -> None:
    app, attacker = short_window
    log_id = new_log()
    writer = token(log_id, "writer")
    honest = TestClient(app, client=("198.51.100.2", 40000))  # the app runs: no lifespan
    if True:
        r = honest.post(f"/v1/logs/{log_id}/events", json=make_event("c", 0), headers=auth(writer))
        assert r.status_code == 201, r.text
        before = system_size(honest, log_id)
        started = time.monotonic()
        statuses: list[int] = []
        for i in range(FLOOD):
            path = f"/v1/logs/{log_id}/events" if i % 2 else f"/v1/logs/{log_id}/entries"
            headers = auth(f"hlt_forged{i}") if i % 3 else {}
            if i % 2:
                r = attacker.post(path, json=make_event("c", i), headers=headers)
            else:
                r = attacker.get(path, headers=headers)
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["retry-after"]) >= 1
                body = r.json()
                assert body["type"] == "urn:handoff-ledger:problem:too-many-auth-failures"
                assert "retry in" in body["detail"]
        flood_seconds = time.monotonic() - started
        windows = int(flood_seconds // WINDOW) + 1
        assert statuses.count(401) + statuses.count(429) == FLOOD
        assert statuses.count(401) <= LIMIT * windows
        assert statuses[LIMIT:].count(429) >= FLOOD - LIMIT * windows

        # A good token from another source is unaffected, during the flood's window.
        r = honest.post(f"/v1/logs/{log_id}/events", json=make_event("c", 1), headers=auth(writer))
        assert r.status_code == 201, r.text

        deadline = time.monotonic() + WINDOW * 3 + 10
        while True:  # the summaries are recorded when the window closes
            counted = sum(p["count"] for p in auth_failures(honest, token, log_id))
            if counted >= FLOOD or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        # What the flood cost: the entries since, but for this test's own reads of them.
        growth = sum(
            1
            for e in system_entries(honest, token, log_id)
            if e["seq"] >= before and e["entry"]["event"]["type"] not in OWN
        )
        failures = auth_failures(honest, token, log_id)
    print(
        f"\nauth flood: {FLOOD} bad-token requests from one source in {flood_seconds:.2f} s "
        f"({windows} window(s) of {WINDOW:g} s): {statuses.count(401)} x 401, "
        f"{statuses.count(429)} x 429; system log grew by {growth} entries, "
        f"{len(failures)} of them ledger.auth.failed.v1 (counts {[p['count'] for p in failures]})"
    )
    assert sum(p["count"] for p in failures) == FLOOD
    assert len(failures) <= 2 * windows
    assert growth == len(failures)
    summaries = [p for p in failures if p["count"] > 1]
    assert summaries
    for s in summaries:
        assert s["client"] == "203.0.113.7"
        assert s["window"] == WINDOW
        assert s["first_at"] <= s["last_at"]
        assert sum(s["reasons"].values()) == s["count"]
        assert "refused unread: too many failures from this source" in s["reasons"]
    first = failures[0]
    assert first["count"] == 1
    assert first["client"] == "203.0.113.7"


def test_auth_failures_of_open_windows_are_flushed_at_shutdown(
    settings: Settings, new_log: Any, token: Any, client: Any
) -> None:
    own = settings.model_copy(update={"auth_failure_window_seconds": 3600.0})
    log_id = new_log()
    with TestClient(create_app(own), client=("203.0.113.8", 1)) as attacker:
        for i in range(25):
            r = attacker.get(f"/v1/logs/{log_id}/entries", headers=auth(f"hlt_bad{i}"))
            assert r.status_code == (401 if i < 10 else 429)
    # Stopped: the hour-long window's summary is durable.
    failures = auth_failures(client, token, log_id)
    assert [p["count"] for p in failures] == [1, 24]


def test_auth_failures_evict_the_oldest_source_and_flush_its_count(
    settings: Settings, new_log: Any, token: Any, client: Any
) -> None:
    own = settings.model_copy(
        update={"auth_failure_window_seconds": 3600.0, "auth_failure_max_sources": 2}
    )
    log_id = new_log()
    app = create_app(own)
    with TestClient(app):
        for n, source in enumerate(("192.0.2.1", "192.0.2.2", "192.0.2.3")):
            c = TestClient(app, client=(source, 1))  # the app runs already: no lifespan
            if True:
                for i in range(3):
                    r = c.get(f"/v1/logs/{log_id}/entries", headers=auth(f"hlt_bad{n}{i}"))
                    assert r.status_code == 401
        state = app.state.ledger
        assert len(state.auth_failures._sources) == 2
        deadline = time.monotonic() + 10
        while len(auth_failures(client, token, log_id)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        evicted = [p for p in auth_failures(client, token, log_id) if p["client"] == "192.0.2.1"]
        assert [p["count"] for p in evicted] == [1, 2]


def metric(client: Any, route: str, status: int) -> float:
    loopback = TestClient(client.app, client=("127.0.0.1", 50000))  # /metrics: loopback only
    for line in loopback.get("/metrics").text.splitlines():
        if line.startswith(f'ledger_http_requests_total{{route="{route}",status="{status}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_every_answer_is_counted_in_ledger_http_requests(
    client: Any, new_log: Any, token: Any
) -> None:
    log_id = new_log()
    ingest, entries = "/v1/logs/{log}/events", "/v1/logs/{log}/entries"
    before = {
        (ingest, 201): metric(client, ingest, 201),
        (ingest, 401): metric(client, ingest, 401),
        (entries, 401): metric(client, entries, 401),
        (entries, 404): metric(client, entries, 404),
        ("unmatched", 404): metric(client, "unmatched", 404),
    }
    writer = token(log_id, "writer")
    r = client.post(f"/v1/logs/{log_id}/events", json=make_event("c", 0), headers=auth(writer))
    assert r.status_code == 201
    assert client.post(f"/v1/logs/{log_id}/events", json=make_event("c", 1)).status_code == 401
    assert client.get(f"/v1/logs/{log_id}/entries").status_code == 401
    auditor = token(log_id, "auditor")
    assert client.get("/v1/logs/no-such-log/entries", headers=auth(auditor)).status_code == 404
    assert client.get("/v1/logs/no-such-log/checkpoint").status_code == 404
    assert client.get("/no/such/path").status_code == 404
    assert metric(client, ingest, 201) == before[(ingest, 201)] + 1
    assert metric(client, ingest, 401) == before[(ingest, 401)] + 1
    assert metric(client, entries, 401) == before[(entries, 401)] + 1
    assert metric(client, entries, 404) == before[(entries, 404)] + 1
    assert metric(client, "/v1/logs/{log}/checkpoint", 404) >= 1
    assert metric(client, "unmatched", 404) == before[("unmatched", 404)] + 1
