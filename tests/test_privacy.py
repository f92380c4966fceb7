"""Erasure by crypto-shredding, legal holds and the two-person rule, end to end on real
PostgreSQL (GDPR Art. 17, NIST AU-9(5)).

A conversation in the middle of a log is erased through HTTP by two admins; afterwards the log
still verifies in full, the trail is served with erased payloads (each naming its erasure) and
verifies offline with both verifiers, an evidence bundle verifies, and a new append to the
conversation is refused, also by a second server instance that had its key cached. Each bad
request is refused with a precise 4xx and changes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine

from ledger.settings import Settings
from ledger.storage.db import unit_of_work
from tests.conftest import make_event
from tests.test_ingest_api import auth, system_entries
from tests.test_verify_tamper import _libpq

TRAIL_STANDALONE = Path(__file__).resolve().parents[1] / "ops" / "verify_trail_standalone.py"
PROBLEM = "urn:handoff-ledger:problem:"


def said_by(customer: str, conversation: str, n: int) -> dict[str, Any]:
    who = {"kind": "customer", "id": customer}
    return make_event(conversation, n, actor=who, author=who)


class Ledger:
    """One log, its writer, auditor and two admins, over one app instance."""

    def __init__(self, client: Any, token: Any, log_id: str) -> None:
        self.client = client
        self.log = log_id
        self.writer = token(log_id, "writer")
        self.auditor = token(log_id, "auditor")
        self.admin1 = token(log_id, "admin")
        self.admin2 = token(log_id, "admin")
        self._token = token

    def post(self, *events: dict[str, Any], client: Any = None) -> Any:
        return (client or self.client).post(
            f"/v1/logs/{self.log}/events", json={"events": list(events)}, headers=auth(self.writer)
        )

    def request(self, what: str, admin: str, **body: Any) -> Any:
        return self.client.post(f"/v1/logs/{self.log}/{what}", json=body, headers=auth(admin))

    def erase(self, admin: str | None = None, **body: Any) -> Any:
        body.setdefault("legal_basis", "GDPR Art. 17(1)(a)")
        body.setdefault("reference", "DSR-1")
        return self.request("erasures", admin or self.admin1, **body)

    def hold(self, admin: str | None = None, **body: Any) -> Any:
        if "reason" not in body:
            body.setdefault("legal_basis", "litigation hold")
        body.setdefault("reference", "CASE-7")
        return self.request("holds", admin or self.admin1, **body)

    def release(self, hold_id: int, admin: str | None = None) -> Any:
        return self.request(
            f"holds/{hold_id}/release",
            admin or self.admin1,
            reason="case closed",
            reference="CASE-7",
        )

    def approve(self, request_id: int, admin: str | None = None) -> Any:
        return self.client.post(
            f"/v1/logs/{self.log}/privacy-requests/{request_id}/approve",
            headers=auth(admin or self.admin2),
        )

    def approved(self, response: Any) -> dict[str, Any]:
        """Approve the request just made (as the other admin)."""
        assert response.status_code == 202, response.text
        r = self.approve(response.json()["id"])
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def trail(self, conversation: str) -> dict[str, Any]:
        r = self.client.get(
            f"/v1/logs/{self.log}/conversations/{conversation}/trail", headers=auth(self.auditor)
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def entries(self) -> list[dict[str, Any]]:
        r = self.client.get(f"/v1/logs/{self.log}/entries", headers=auth(self.auditor))
        assert r.status_code == 200, r.text
        found: list[dict[str, Any]] = r.json()["entries"]
        return found

    def requests(self, status: str | None = None) -> list[dict[str, Any]]:
        query = f"?status={status}" if status else ""
        r = self.client.get(
            f"/v1/logs/{self.log}/privacy-requests{query}", headers=auth(self.admin1)
        )
        assert r.status_code == 200, r.text
        found: list[dict[str, Any]] = r.json()["requests"]
        return found

    def privacy_events(self) -> list[dict[str, Any]]:
        return [
            e
            for e in system_entries(self.client, self._token, self.log)
            if e["entry"]["event"]["conversation"] == "erasure"
        ]


def refused(r: Any, status: int, problem: str, *needles: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == PROBLEM + problem, r.json()
    for needle in needles:
        assert needle in r.json()["detail"], r.json()


@pytest.fixture
def ledger(client: Any, new_log: Any, token: Any) -> Ledger:
    """Conversation b (customer cust-b) in the middle of a and c, interleaved:
    a at 0-2, b at 3-5, a at 6, c (also cust-b) at 7-8, b at 9, a at 10."""
    led = Ledger(client, token, new_log())
    for batch in (
        [said_by("cust-a", "a", n) for n in range(3)],
        [said_by("cust-b", "b", n) for n in range(3)],
        [said_by("cust-a", "a", 3)],
        [said_by("cust-b", "c", n) for n in range(2)],
        [said_by("cust-b", "b", 3)],
        [said_by("cust-a", "a", 4)],
    ):
        r = led.post(*batch)
        assert r.status_code == 201, r.text
    return led


@pytest.fixture
def second_app(settings: Settings, engine: Engine) -> Iterator[Any]:
    """Another server instance on the same database, with caches of its own."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


def data_key(db_url: str, log_id: str, conversation: str) -> tuple[bytes | None, int | None]:
    with psycopg.connect(_libpq(db_url)) as conn:
        row = conn.execute(
            "SELECT wrapped, erasure_request_id FROM data_keys WHERE log_id = %s AND scope = %s",
            (log_id, f"conversation:{conversation}"),
        ).fetchone()
    assert row is not None
    return row[0], row[1]


# --- erasure, end to end -------------------------------------------------------------------------


def test_erasure_in_the_middle_of_a_log(
    ledger: Ledger,
    second_app: Any,
    ledger_cli: Any,
    verifier_env: dict[str, Path],
    tmp_path: Path,
    db_url: str,
) -> None:
    # The second instance appends to b, so b's data key is in its cache.
    r = ledger.post(said_by("cust-b", "b", 10), client=second_app)
    assert r.status_code == 201, r.text
    assert ledger.trail("b")["entries"][-1]["payload_status"] == "verified"

    asked = ledger.erase(conversation="b", legal_basis="GDPR Art. 17(1)(a)", reference="DSR-42")
    assert asked.status_code == 202, asked.text
    request = asked.json()
    assert request["status"] == "pending"
    assert request["scope"] == {"kind": "conversation", "id": "b"}
    assert ledger.trail("b")["entries"][0]["payload_status"] == "verified"  # not yet

    done = ledger.approved(asked)
    assert done["request"]["status"] == "approved"
    assert done["request"]["approved_by"] != done["request"]["requested_by"]
    erasure = done["erasure"]
    assert erasure["conversations"] == ["b"]
    assert len(erasure["destroyed_keys"]) == 1
    assert erasure["seqs"] == [[3, 5], [9, 9], [11, 11]]
    assert erasure["entries"] == 5
    assert data_key(db_url, ledger.log, "b") == (None, request["id"])

    # Appends to b are refused by both instances (the second had the key cached); others go on.
    for client in (second_app, ledger.client):
        refused(ledger.post(said_by("cust-b", "b", 20), client=client), 409, "conversation-erased")
    r = ledger.post(said_by("cust-a", "a", 20), client=second_app)
    assert r.status_code == 201, r.text

    # Reads show the erasure.
    trail = ledger.trail("b")
    assert [e["seq"] for e in trail["entries"]] == [3, 4, 5, 9, 11]
    assert {e["payload_status"] for e in trail["entries"]} == {"erased"}
    assert trail["back_links"]["status"] == "intact"
    expected = {
        "by": "erasure",
        "request": request["id"],
        "legal_basis": "GDPR Art. 17(1)(a)",
        "reference": "DSR-42",
        "erased_at": done["request"]["approved_at"],
    }
    assert all(e["erasure"] == expected for e in trail["entries"])
    assert all(e["payload"] is None and e["payload_b64"] is None for e in trail["entries"])
    page = ledger.entries()
    assert [e["seq"] for e in page if e["payload_status"] == "erased"] == [3, 4, 5, 9, 11]
    assert all(("erasure" in e) == (e["payload_status"] == "erased") for e in page)
    assert ledger.trail("a")["entries"][0]["payload_status"] == "verified"

    # The log verifies in full.
    code, out, err = ledger_cli("verify", "--log", ledger.log, "--full", "--json")
    report = json.loads(out)["logs"][0]
    assert code == 0, out + err
    assert report["intact"] is True
    assert report["erased_payloads"] == 5

    # The trail verifies offline, with both verifiers.
    keys = tmp_path / "keys"
    keys.write_text(ledger.client.get(f"/v1/logs/{ledger.log}/verifier-key").text)
    saved = tmp_path / "trail.json"
    saved.write_text(json.dumps(trail))
    code, out, err = ledger_cli("verify-trail", str(saved), "--verifier-keys-file", str(keys))
    assert code == 0, out + err
    assert "payloads erased: 5" in out
    script = subprocess.run(
        [
            sys.executable,
            "-I",
            str(TRAIL_STANDALONE),
            str(saved),
            "--verifier-keys-file",
            str(keys),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert script.returncode == 0, script.stdout + script.stderr
    assert "5 erased/missing" in script.stdout

    # An evidence bundle of the whole log verifies.
    r = ledger.client.post(
        f"/v1/logs/{ledger.log}/exports",
        json={"profile": "soc2-population"},
        headers=auth(ledger.auditor),
    )
    assert r.status_code == 200, r.text
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(r.content)
    # Its erased payloads are covered by the erasure record, which is checked in the system
    # log's checkpoint: the auditor holds that log's key too.
    with keys.open("a") as also:
        also.write(ledger.client.get(f"/v1/logs/{ledger.log}.system/verifier-key").text)
    code, out, err = ledger_cli(
        "verify-bundle", str(bundle), "--verifier-keys-file", str(keys), "--json"
    )
    assert code == 0, out + err
    assert json.loads(out)["erasures"] == {"by_erasure": 5, "by_retention": 0, "records": 1}

    # Every step is in the system log, stream erasure.
    events = {e["entry"]["event"]["type"]: e for e in ledger.privacy_events()}
    assert set(events) == {
        "ledger.privacy.requested.v1",
        "ledger.privacy.approved.v1",
        "ledger.erasure.executed.v1",
    }
    executed = events["ledger.erasure.executed.v1"]
    assert executed["entry"]["resource"] == {"type": "privacy_request", "id": str(request["id"])}
    record = executed["payload"]
    assert record["scope"] == {"kind": "conversation", "id": "b"}
    assert (record["legal_basis"], record["reference"]) == ("GDPR Art. 17(1)(a)", "DSR-42")
    assert record["requested_by"] == request["requested_by"]
    assert record["approved_by"] == done["request"]["approved_by"]
    assert record["seqs"] == erasure["seqs"]
    assert record["destroyed_keys"] == erasure["destroyed_keys"]
    assert record["actor"]["id"] == f"credential:{done['request']['approved_by']}"
    assert ledger.requests("approved")[0]["id"] == request["id"]


def test_erasing_a_data_subject_takes_every_conversation_of_theirs(
    ledger: Ledger, db_url: str
) -> None:
    done = ledger.approved(ledger.erase(subject="cust-b"))
    assert done["erasure"]["conversations"] == ["b", "c"]
    assert done["erasure"]["seqs"] == [[3, 5], [7, 9]]
    assert len(done["erasure"]["destroyed_keys"]) == 2
    assert {e["payload_status"] for e in ledger.trail("c")["entries"]} == {"erased"}
    assert data_key(db_url, ledger.log, "a")[0] is not None
    refused(ledger.erase(conversation="c"), 409, "conversation-erased", "erased already")


# --- legal holds ---------------------------------------------------------------------------------


def test_a_hold_stops_erasure_until_it_is_released(ledger: Ledger, db_url: str) -> None:
    pending = ledger.erase(conversation="c")  # asked before the hold
    assert pending.status_code == 202, pending.text
    hold = ledger.approved(ledger.hold(subject="cust-b", reason="litigation hold"))
    hold_id = hold["request"]["id"]
    r = ledger.client.get(f"/v1/logs/{ledger.log}/holds", headers=auth(ledger.admin2))
    assert [h["id"] for h in r.json()["holds"]] == [hold_id]

    # At request time and at approval time: 409 naming the hold; nothing changes.
    refused(ledger.erase(conversation="b"), 409, "hold-active", f"hold {hold_id}", "CASE-7")
    refused(ledger.erase(subject="cust-b"), 409, "hold-active", f"hold {hold_id}")
    refused(ledger.approve(pending.json()["id"]), 409, "hold-active", f"hold {hold_id}")
    assert data_key(db_url, ledger.log, "c")[0] is not None
    assert ledger.requests("pending")[0]["id"] == pending.json()["id"]
    ok = ledger.erase(conversation="a")  # not covered
    assert ok.status_code == 202, ok.text

    # Releasing: two admins as well; then the pending erasure goes through.
    release = ledger.release(hold_id)
    assert release.status_code == 202, release.text
    assert release.json()["hold_id"] == hold_id
    refused(ledger.approve(pending.json()["id"]), 409, "hold-active")  # release not approved
    assert (
        ledger.approved(release)["done"] == f"hold {hold_id} on data subject 'cust-b' is released"
    )
    r = ledger.client.get(f"/v1/logs/{ledger.log}/holds", headers=auth(ledger.admin2))
    assert r.json()["holds"] == []
    assert ledger.approved(pending)["erasure"]["conversations"] == ["c"]

    types = [e["entry"]["event"]["type"] for e in ledger.privacy_events()]
    assert "ledger.hold.placed.v1" in types
    assert "ledger.hold.released.v1" in types
    assert types.count("ledger.privacy.refused.v1") == 4


def test_releasing_a_hold_that_is_not_in_force(ledger: Ledger) -> None:
    refused(ledger.release(999_999), 404, "not-found", "no active hold 999999")
    pending = ledger.hold(conversation="a")
    refused(ledger.release(pending.json()["id"]), 404, "not-found")  # not approved yet
    ledger.approved(pending)
    ledger.approved(ledger.release(pending.json()["id"]))
    refused(ledger.release(pending.json()["id"]), 404, "not-found")  # released already


# --- refusals: precise, recorded, nothing changed ------------------------------------------------


def test_unknown_scopes_are_refused_at_request_time(ledger: Ledger) -> None:
    refused(ledger.erase(conversation="nope"), 404, "not-found", "conversation 'nope'")
    refused(ledger.erase(subject="nobody"), 404, "not-found", "data subject 'nobody'")
    refused(ledger.hold(conversation="nope"), 404, "not-found")
    assert ledger.requests() == []
    refusals = [
        e["payload"]
        for e in ledger.privacy_events()
        if e["entry"]["event"]["type"] == "ledger.privacy.refused.v1"
    ]
    assert [r["attempt"] for r in refusals] == ["request erase", "request erase", "request hold"]
    assert refusals[0]["outcome"] == "failure"


def test_the_two_person_rule(ledger: Ledger, db_url: str) -> None:
    asked = ledger.erase(conversation="b", admin=ledger.admin1)
    refused(
        ledger.approve(asked.json()["id"], admin=ledger.admin1),
        403,
        "two-person-rule",
        "another admin approves it",
    )
    assert data_key(db_url, ledger.log, "b")[0] is not None
    assert ledger.requests("pending")[0]["id"] == asked.json()["id"]
    [event] = [
        e
        for e in ledger.privacy_events()
        if e["entry"]["event"]["type"] == "ledger.privacy.refused.v1"
    ]
    assert event["payload"]["error"] == "TwoPersonRule"
    assert event["entry"]["outcome"] == "failure"

    # And the database refuses it too, whatever the application does.
    with (
        psycopg.connect(_libpq(db_url)) as conn,
        pytest.raises(psycopg.errors.CheckViolation, match="approved by its requester"),
    ):
        conn.execute(
            "INSERT INTO privacy_approvals (request_id, approved_by, approved_at)"
            " VALUES (%s, %s, now())",
            (asked.json()["id"], asked.json()["requested_by"]),
        )


def test_approving_twice(ledger: Ledger) -> None:
    asked = ledger.erase(conversation="b")
    ledger.approved(asked)
    refused(ledger.approve(asked.json()["id"]), 409, "request-not-pending", "approved already")
    refused(ledger.approve(asked.json()["id"], admin=ledger.admin1), 403, "two-person-rule")
    refused(ledger.approve(424_242), 404, "not-found", "no privacy request 424242")


def test_an_expired_request_cannot_be_approved(
    ledger: Ledger, engine: Engine, settings: Settings
) -> None:
    from ledger.errors import RequestNotPending
    from ledger.services.admin.credentials import authenticate
    from ledger.services.privacy.approve import approve
    from ledger.storage.keystore import KeyRing
    from ledger.storage.logs import get_log

    asked = ledger.erase(conversation="b")
    expires = datetime.fromisoformat(asked.json()["expires_at"])
    assert expires - datetime.fromisoformat(asked.json()["requested_at"]) == timedelta(hours=24)
    keys = KeyRing.from_master(settings.master_key_bytes)
    with unit_of_work(engine) as conn:
        admin2 = authenticate(conn, ledger.admin2)
        log = get_log(conn, ledger.log)
        with pytest.raises(RequestNotPending, match="expired unapproved"):
            approve(
                conn, keys, log, asked.json()["id"], approver=admin2, now=expires + timedelta(1)
            )
    later = datetime.now(UTC) + timedelta(hours=25)
    with unit_of_work(engine) as conn:
        from ledger.services.privacy.requests import list_requests

        assert [r.id for r in list_requests(conn, log, status="expired", now=later)] == [
            asked.json()["id"]
        ]
    assert ledger.requests("pending")[0]["id"] == asked.json()["id"]  # not yet expired now


@pytest.mark.parametrize("role", ["writer", "auditor", "verifier"])
def test_only_admins(ledger: Ledger, token: Any, role: str) -> None:
    other = token(ledger.log, role)
    refused(ledger.erase(other, conversation="b"), 403, "forbidden", "admin")
    asked = ledger.erase(conversation="b")
    refused(ledger.approve(asked.json()["id"], admin=other), 403, "forbidden")
    r = ledger.client.get(f"/v1/logs/{ledger.log}/privacy-requests", headers=auth(other))
    refused(r, 403, "forbidden")
    assert ledger.requests("approved") == []


def test_bad_bodies(ledger: Ledger) -> None:
    refused(ledger.erase("hlt_not-a-token", conversation="b"), 401, "unauthenticated")
    refused(ledger.erase(conversation="b", subject="cust-b"), 422, "invalid-request", "exactly one")
    refused(ledger.erase(), 422, "invalid-request")
    refused(ledger.erase(conversation="b", legal_basis=""), 422, "invalid-request")
    refused(ledger.erase(conversation="b", colour="red"), 422, "invalid-request")
    r = ledger.client.get(
        f"/v1/logs/{ledger.log}/privacy-requests?status=later", headers=auth(ledger.admin1)
    )
    refused(r, 400, "invalid-request", "status must be one of")
    assert ledger.requests() == []


def test_a_system_log_is_not_erasable(ledger: Ledger, token: Any) -> None:
    system = f"{ledger.log}.system"
    r = ledger.client.post(
        f"/v1/logs/{system}/erasures",
        json={"conversation": "access", "legal_basis": "x", "reference": "y"},
        headers=auth(token(system, "admin")),
    )
    refused(r, 400, "invalid-request", "written by the ledger itself")


# --- the command line ---------------------------------------------------------------------------


def test_the_cli_keeps_the_two_person_rule(
    ledger: Ledger, ledger_cli: Any, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    code, out, err = ledger_cli(
        "erase", "--log", ledger.log, "--conversation", "b", "--legal-basis", "GDPR Art. 17",
        "--reference", "DSR-9", "--token", ledger.admin1,
    )  # fmt: skip
    assert code == 0, err
    request_id = json.loads(out)["id"]
    assert f"ledger approve {request_id}" in err

    monkeypatch.delenv("LEDGER_TOKEN", raising=False)
    code, _, err = ledger_cli("approve", str(request_id), "--log", ledger.log)
    assert code == 2
    assert "LEDGER_TOKEN" in err
    code, _, err = ledger_cli("approve", str(request_id), "--log", ledger.log, "--token", "hlt_x")
    assert code == 2
    assert "invalid or revoked token" in err
    code, _, err = ledger_cli(
        "approve", str(request_id), "--log", ledger.log, "--token", ledger.auditor
    )
    assert code == 2
    assert "admin" in err
    code, _, err = ledger_cli(
        "approve", str(request_id), "--log", ledger.log, "--token", ledger.admin1
    )
    assert code == 2
    assert "another admin approves it" in err
    assert data_key(db_url, ledger.log, "b")[0] is not None

    monkeypatch.setenv("LEDGER_TOKEN", ledger.admin2)
    code, out, err = ledger_cli("approve", str(request_id), "--log", ledger.log)
    assert code == 0, err
    assert json.loads(out)["erasure"]["entries"] == 4
    assert data_key(db_url, ledger.log, "b")[0] is None

    code, out, _ = ledger_cli("privacy-requests", "--log", ledger.log, "--json")
    assert [(r["id"], r["status"]) for r in json.loads(out)] == [(request_id, "approved")]


def test_cli_holds(ledger: Ledger, ledger_cli: Any) -> None:
    code, out, err = ledger_cli(
        "holds", "place", "--log", ledger.log, "--subject", "cust-a", "--legal-basis", "audit",
        "--reference", "AUD-1", "--token", ledger.admin1,
    )  # fmt: skip
    assert code == 0, err
    hold_id = json.loads(out)["id"]
    code, out, err = ledger_cli("holds", "list", "--log", ledger.log, "--json")
    assert (code, json.loads(out)) == (0, [])
    code, _, err = ledger_cli(
        "approve", str(hold_id), "--log", ledger.log, "--token", ledger.admin2
    )
    assert code == 0, err
    code, out, _ = ledger_cli("holds", "list", "--log", ledger.log, "--json")
    assert [h["id"] for h in json.loads(out)] == [hold_id]
    code, _, err = ledger_cli(
        "erase", "--log", ledger.log, "--conversation", "a", "--legal-basis", "GDPR Art. 17",
        "--reference", "DSR-10", "--token", ledger.admin1,
    )  # fmt: skip
    assert code == 2
    assert f"hold {hold_id}" in err
    code, out, err = ledger_cli(
        "holds", "release", str(hold_id), "--log", ledger.log, "--legal-basis", "audit done",
        "--reference", "AUD-1", "--token", ledger.admin2,
    )  # fmt: skip
    assert code == 0, err
    release_id = json.loads(out)["id"]
    code, _, err = ledger_cli(
        "approve", str(release_id), "--log", ledger.log, "--token", ledger.admin1
    )
    assert code == 0, err
    code, out, _ = ledger_cli("holds", "list", "--log", ledger.log, "--json")
    assert json.loads(out) == []


# --- the application role's grants ---------------------------------------------------------------


def test_the_application_role_may_erase(ledger: Ledger, db_url: str, settings: Settings) -> None:
    """What an erasure writes (requests, approvals, data keys, the log's lock, the system log) is
    within ``ledger_app``'s grants (INSERT and SELECT; UPDATE on data keys and heads)."""
    from ledger.services.admin.credentials import authenticate
    from ledger.services.privacy.approve import approve
    from ledger.services.privacy.requests import request_erasure
    from ledger.services.privacy.scopes import Scope
    from ledger.storage.db import make_engine
    from ledger.storage.keystore import KeyRing
    from ledger.storage.logs import get_log, log_directory

    app_engine = make_engine(db_url, role="ledger_app", pool_size=1)
    keys = KeyRing.from_master(settings.master_key_bytes)
    try:
        with unit_of_work(app_engine) as conn:  # as the server: the tenant first
            tenant = log_directory(conn, ledger.log).tenant
        with unit_of_work(app_engine, tenant=tenant) as conn:
            log = get_log(conn, ledger.log)
            admin1, admin2 = authenticate(conn, ledger.admin1), authenticate(conn, ledger.admin2)
            asked = request_erasure(
                conn,
                keys,
                log,
                Scope.of(conversation="b"),
                legal_basis="GDPR Art. 17",
                reference="DSR-7",
                requester=admin1,
                now=datetime.now(UTC),
            )
        with unit_of_work(app_engine, tenant=tenant) as conn:
            done = approve(conn, keys, log, asked.id, approver=admin2, now=datetime.now(UTC))
    finally:
        app_engine.dispose()
    assert done.erasure is not None
    assert done.erasure.entries == 4
    assert data_key(db_url, ledger.log, "b") == (None, asked.id)


# --- the tables are append-only ------------------------------------------------------------------


@pytest.mark.parametrize("table", ["privacy_requests", "privacy_approvals"])
def test_privacy_tables_are_append_only(ledger: Ledger, db_url: str, table: str) -> None:
    ledger.approved(ledger.hold(conversation="a"))
    column = "requested_at" if table == "privacy_requests" else "approved_at"
    with psycopg.connect(_libpq(db_url), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        for statement in (f"UPDATE {table} SET {column} = now()", f"DELETE FROM {table}"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(f"TRUNCATE {table} CASCADE")
        grants = conn.execute(
            "SELECT grantee, string_agg(privilege_type, ',' ORDER BY privilege_type)"
            " FROM information_schema.role_table_grants WHERE table_name = %s"
            " AND grantee IN ('ledger_app', 'ledger_readonly') GROUP BY grantee ORDER BY 1",
            (table,),
        ).fetchall()
    assert grants == [("ledger_app", "INSERT,SELECT"), ("ledger_readonly", "SELECT")]


def test_retention_is_changed_over_http_by_two_admins(ledger: Ledger) -> None:
    """`POST /retention` is `ledger retention set` over HTTP: a pending request that only
    another admin's approval puts in force; a bad period or the same period changes nothing."""
    path = f"/v1/logs/{ledger.log}/retention"
    before = ledger.client.get(path, headers=auth(ledger.admin1))
    assert before.status_code == 200, before.text
    assert before.json()["days"] == 2192  # hipaa, the default

    body = {"retention": "pci-dss", "legal_basis": "PCI DSS 10.5.1", "reference": "CHG-9"}
    for bad in ("0d", "12 months", "99999d"):
        r = ledger.request("retention", ledger.admin1, **{**body, "retention": bad})
        refused(r, 400, "invalid-request", "retention")
    r = ledger.request("retention", ledger.admin1, **{**body, "retention": "hipaa"})
    refused(r, 400, "invalid-request", "already")

    pending = ledger.request("retention", ledger.admin1, **body)
    assert pending.status_code == 202, pending.text
    refused(ledger.approve(pending.json()["id"], ledger.admin1), 403, "two-person-rule")
    assert ledger.client.get(path, headers=auth(ledger.admin1)).json()["days"] == 2192

    ledger.approved(pending)
    after = ledger.client.get(path, headers=auth(ledger.admin2)).json()
    assert after == {"log": ledger.log, "days": 366, "set_by": f"request {pending.json()['id']}"}
