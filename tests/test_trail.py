"""GET /v1/logs/{log}/conversations/{id}/trail on real PostgreSQL: the sections an auditor reads,
the ledger's own timings, proofs that verify against the served checkpoint, the back-link check
against a superuser's edits, and who may read (and that the read is logged first)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from ledger.core.merkle import verify_inclusion
from tests.conftest import make_event
from tests.test_ingest_api import auth, open_latest, system_entries
from tests.test_verify_tamper import tamper

CONVERSATION = "c-2f9e1a"


def trail_url(log_id: str, conversation: str = CONVERSATION) -> str:
    return f"/v1/logs/{log_id}/conversations/{conversation}/trail"


def post(client: Any, log_id: str, writer: str, events: list[dict[str, Any]]) -> None:
    r = client.post(f"/v1/logs/{log_id}/events", json={"events": events}, headers=auth(writer))
    assert r.status_code == 201, r.text


def read(client: Any, token: Any, log_id: str, conversation: str = CONVERSATION) -> dict[str, Any]:
    r = client.get(trail_url(log_id, conversation), headers=auth(token(log_id, "auditor")))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_trail_of_the_example_conversation(
    client: Any, token: Any, example_log: str, example_batch: dict[str, Any]
) -> None:
    body = read(client, token, example_log)
    assert body["conversation"] == CONVERSATION
    assert body["tree_size"] == 16
    assert [e["seq"] for e in body["entries"]] == list(range(16))
    assert [e["payload"] for e in body["entries"]] == [e["data"] for e in example_batch["events"]]
    assert {e["payload_status"] for e in body["entries"]} == {"verified"}
    assert body["back_links"] == {
        "status": "intact",
        "entries": 16,
        "first_seq": 0,
        "last_seq": 15,
        "problems": [],
    }
    s = body["summary"]

    o = s["overview"]
    assert (o["channel"], o["customer"]["id"], o["resolution"]) == ("chat", "cust-91b7", "resolved")
    assert o["started_at"] == "2026-11-20T09:14:00.000000Z"
    assert o["ended_at"] == "2026-11-20T09:14:15.000000Z"
    assert o["handed_off"] is True
    assert o["taken_over_by"] == [{"kind": "human_agent", "id": "agent-17"}]

    assert [(u["seq"], u["speaker"], u["author"]["id"], u["time"]) for u in s["transcript"]] == [
        (1, "customer", "cust-91b7", "2026-11-20T09:14:01.000000Z"),
        (6, "ai", "support-bot-3", "2026-11-20T09:14:06.000000Z"),
    ]
    assert s["transcript"][0]["text"] == "I was charged twice for my annual plan. Card ending 0004."
    assert s["transcript"][1]["model"] == "model-x"

    assert [(t["tool_call_id"], t["tool"], t["status"]) for t in s["tools"]] == [
        ("tc-1", "billing.list_charges", "succeeded")
    ]
    [access] = s["data_access"]
    assert (access["classification"], access["purpose"], access["fields"]) == (
        "pci",
        "duplicate charge investigation",
        ["amount", "status", "card_last4"],
    )
    assert s["disclosures"] == []

    [redaction] = s["redactions"]
    assert redaction["by"] == "writer"
    assert (redaction["event_seq"], redaction["path"], redaction["entity_type"]) == (
        1,
        "/content/parts/0/content",
        "CREDIT_CARD",
    )

    [esc] = s["escalations"]
    assert esc["escalation_id"] == "esc-1"
    assert esc["trigger_types"] == ["uncertainty_threshold", "policy_trigger"]
    assert esc["explanation"].startswith("Refund above the AI's limit")
    assert esc["evidence_seqs"] == [3]

    assert [(p["seq"], p["score"], p["label"]) for p in s["sentiment"]] == [(8, -0.6, "frustrated")]
    [identity] = s["identity"]
    assert (identity["method"], identity["result"], identity["verified_claims"]) == (
        "otp_email",
        "verified",
        ["email", "account_id"],
    )

    [suggestion] = s["suggested_actions"]
    assert suggestion["action"]["name"] == "refund_duplicate_charge"
    assert (suggestion["proposed_seq"], suggestion["decision"], suggestion["decided_seq"]) == (
        10,
        "accepted",
        14,
    )
    assert suggestion["decided_by"] == {"kind": "human_agent", "id": "agent-17"}

    [handoff] = s["handoffs"]
    assert handoff["target"] == {"queue": "billing-specialists"}
    assert (handoff["requested_seq"], handoff["accepted_seq"], handoff["productive_seq"]) == (
        11,
        12,
        13,
    )
    assert handoff["accepted_by"] == {"kind": "human_agent", "id": "agent-17"}
    assert handoff["productive_action"]["kind"] == "refund"

    # The ledger's own arithmetic on the entry times: 09:14:12 - 09:14:11, 09:14:13 - 09:14:11.
    assert s["derived"]["handoffs"] == [
        {
            "handoff_id": "h-1",
            "time_to_accept_seconds": 1.0,
            "time_to_productive_takeover_seconds": 2.0,
            "context_package_named": {"identity": True, "sentiment": True, "tools": True},
        }
    ]
    assert s["derived"]["trigger_mix"] == {"uncertainty_threshold": 1, "policy_trigger": 1}
    assert s["derived"]["duration_seconds"] == 15.0
    assert s["withheld"] == []


def test_inclusion_proofs_verify_against_the_returned_checkpoint(
    client: Any, new_log: Any, token: Any, example_batch: dict[str, Any]
) -> None:
    log_id = new_log()
    writer = token(log_id, "writer")
    # Other conversations before, between and after, so the proofs have real shape.
    post(client, log_id, writer, [make_event("other", n) for n in range(7)])
    events = example_batch["events"]
    for start in range(0, 16, 5):
        post(client, log_id, writer, events[start : start + 5])
        post(client, log_id, writer, [make_event("other", 100 + start)])
    post(client, log_id, writer, [make_event("other", n) for n in range(200, 230)])

    body = read(client, token, log_id)
    checkpoint = open_latest(client, log_id, body["checkpoint"])
    assert checkpoint.size == body["tree_size"] == 7 + 16 + 4 + 30
    assert len(body["entries"]) == 16
    for e in body["entries"]:
        leaf = hashlib.sha256(b"\x00" + base64.b64decode(e["entry_b64"])).digest()
        assert base64.b64encode(leaf).decode() == e["leaf_hash"]
        proof = e["inclusion_proof"]
        assert (proof["leaf_index"], proof["tree_size"]) == (e["seq"], checkpoint.size)
        verify_inclusion(
            leaf,
            e["seq"],
            checkpoint.size,
            [base64.b64decode(h) for h in proof["hashes"]],
            checkpoint.root_hash,
        )
    assert body["back_links"]["status"] == "intact"


def test_who_may_read_a_trail(client: Any, new_log: Any, token: Any, example_log: str) -> None:
    url = trail_url(example_log)
    assert client.get(url).status_code == 401
    assert client.get(url, headers=auth(token(example_log, "writer"))).status_code == 403
    other = new_log()
    assert client.get(url, headers=auth(token(other, "auditor"))).status_code == 403
    assert client.get(url, headers=auth(token(example_log, "admin"))).status_code == 200
    missing = client.get(
        trail_url(example_log, "c-nope"), headers=auth(token(example_log, "auditor"))
    )
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert "c-nope" in missing.json()["detail"]
    assert (
        client.get(
            trail_url("no-such-log"), headers=auth(token(example_log, "auditor"))
        ).status_code
        == 404
    )


def test_the_read_is_in_the_tenants_system_log(client: Any, token: Any, example_log: str) -> None:
    """PCI DSS 10.2.1.3: recorded, durably, before the trail is served."""
    read(client, token, example_log)
    reads = [
        e
        for e in system_entries(client, token, example_log)
        if e["entry"]["event"]["type"] == "ledger.trail.read.v1"
    ]
    assert len(reads) == 1
    payload = reads[0]["payload"]
    assert payload["conversation"] == CONVERSATION
    assert payload["log"] == example_log
    assert payload["actor"]["role"] == "auditor"
    assert payload["path"] == trail_url(example_log)
    assert reads[0]["entry"]["event"]["conversation"] == "access"


def test_erased_payloads_are_withheld_and_timings_survive(
    client: Any, token: Any, example_log: str, db_url: str
) -> None:
    """Crypto-shredding the conversation's data key: the sections lose the content, the
    ledger's timings (from the hashed entry headers) and the back-links stay."""
    import psycopg

    from tests.test_verify_tamper import _libpq

    with psycopg.connect(_libpq(db_url)) as conn:
        conn.execute(
            "UPDATE data_keys SET wrapped = NULL, destroyed_at = now()"
            " WHERE log_id = %s AND scope = %s",
            (example_log, f"conversation:{CONVERSATION}"),
        )
    body = read(client, token, example_log)
    assert {e["payload_status"] for e in body["entries"]} == {"erased"}
    s = body["summary"]
    assert len(s["withheld"]) == 16
    assert s["transcript"] == []
    assert s["derived"]["handoffs"][0]["time_to_accept_seconds"] == 1.0
    assert s["derived"]["handoffs"][0]["time_to_productive_takeover_seconds"] == 2.0
    assert s["derived"]["handoffs"][0]["context_package_named"] is None
    assert s["overview"]["taken_over_by"] == [{"kind": "human_agent", "id": "agent-17"}]
    assert body["back_links"]["status"] == "intact"


# --- the back-link check against a superuser's edits ----------------------------------------------


@pytest.fixture
def interleaved(client: Any, new_log: Any, token: Any) -> str:
    """Conversations a and b alternating: a at even seqs 0..10, b at odd seqs 1..11."""
    log_id: str = new_log()
    post(
        client,
        log_id,
        token(log_id, "writer"),
        [make_event(conv, n) for n in range(6) for conv in ("a", "b")],
    )
    return log_id


def problems(body: dict[str, Any]) -> list[tuple[int, str, Any, Any]]:
    return [
        (p["seq"], p["what"], p["expected"], p["found"]) for p in body["back_links"]["problems"]
    ]


def test_back_links_find_a_deleted_entry(
    client: Any, token: Any, interleaved: str, db_url: str
) -> None:
    tamper(db_url, "entries", "DELETE FROM entries WHERE log_id = %s AND seq = 4", interleaved)
    body = read(client, token, interleaved, "a")
    assert [e["seq"] for e in body["entries"]] == [0, 2, 6, 8, 10]
    assert body["back_links"]["status"] == "broken"
    assert problems(body) == [(6, "conversation_prev", 2, 4)]
    message = body["back_links"]["problems"][0]["message"]
    assert message.startswith("seq 6: conversation_prev is 4, but the previous entry")
    assert "entry 4 is missing from the trail" in message


def test_back_links_find_an_entry_moved_between_conversations(
    client: Any, token: Any, interleaved: str, db_url: str
) -> None:
    tamper(
        db_url,
        "entries",
        "UPDATE entries SET conversation_id = 'b' WHERE log_id = %s AND seq = 0",
        interleaved,
    )
    a = read(client, token, interleaved, "a")
    assert problems(a) == [(2, "conversation_prev", None, 0)]
    assert "entry 0 is missing from the trail" in a["back_links"]["problems"][0]["message"]
    b = read(client, token, interleaved, "b")
    assert problems(b) == [(0, "conversation", "b", "a"), (1, "conversation_prev", 0, None)]


def test_back_links_find_an_edited_link(
    client: Any, token: Any, interleaved: str, db_url: str
) -> None:
    tamper(
        db_url,
        "entries",
        "UPDATE entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'),"
        " '\"conversation_prev\":3', '\"conversation_prev\":null'), 'UTF8')"
        " WHERE log_id = %s AND seq = 5",
        interleaved,
    )
    body = read(client, token, interleaved, "b")
    found = problems(body)
    assert found[0][:2] == (5, "leaf_hash")
    assert found[1] == (5, "conversation_prev", 3, None)
    assert "claims to start the conversation" in body["back_links"]["problems"][1]["message"]
