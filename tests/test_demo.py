"""The sample generator: every event passes the catalogue, every kind of conversation appears,
the same seed gives the same events, and `ledger demo` / `ledger serve --demo` write them
through the real ingest path so their trails read like real ones."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest

from ledger.events import GuardPolicy, validate_event
from ledger.services.demo.conversations import KINDS, generate, interleave
from ledger.settings import Settings
from tests.test_ingest_api import auth

KEY = b"\x01" * 32
PAN = re.compile(r"\d(?:[ -]?\d){12,18}")


def test_every_event_validates_under_both_card_policies() -> None:
    for raw_cards, policy in ((False, "reject"), (True, "mask")):
        conversations = generate(300, seed=11, raw_cards=raw_cards)
        masked = 0
        for c in conversations:
            for event in c.events:
                v = validate_event(event, policy=GuardPolicy(cards=policy), fingerprint_key=KEY)
                assert v.conversation_id == c.id
                masked += len(v.redactions)
        # Only a log that masks receives card numbers as typed; its guard masks each one.
        assert (masked > 0) is raw_cards


def test_every_kind_appears_and_reads_like_its_kind() -> None:
    conversations = generate(len(KINDS), seed=3)
    assert [c.kind for c in conversations] == list(KINDS)
    big = Counter(c.kind for c in generate(300, seed=3))
    assert set(big) == set(KINDS)
    assert big["resolved_by_ai"] > big["phi_disclosure"] > 0
    for c in generate(60, seed=5):
        types = [e["type"].removeprefix("handoff.").removesuffix(".v1") for e in c.events]
        triggers = {
            t["type"]
            for e in c.events
            if e["type"] == "handoff.escalation.triggered.v1"
            for t in e["data"]["triggers"]
        }
        assert types[0] == "conversation.started"
        assert types[-1] == "conversation.ended"
        if c.kind == "resolved_by_ai":
            assert "handoff.requested" not in types
            assert c.events[-1]["data"]["resolution"] == "resolved_by_ai"
            continue
        for step in (
            "escalation.triggered",
            "suggested_action.proposed",
            "handoff.requested",
            "handoff.accepted",
            "takeover.productive",
            "suggested_action.resolved",
        ):
            assert step in types, (c.kind, step)
        assert (
            types.index("handoff.requested")
            < types.index("handoff.accepted")
            < types.index("takeover.productive")
        )
        expected = {
            "sentiment_shift": "sentiment_shift",
            "explicit_request": "explicit_request",
            "repeated_failure": "repeated_failure",
            "card_number": "policy_trigger",
            "phi_disclosure": "policy_trigger",
        }[c.kind]
        assert expected in triggers
        if c.kind == "repeated_failure":
            assert [
                e["data"]["status"] for e in c.events if e["type"].endswith("tool.call.v1")
            ] == ["timeout", "failed"]
        if c.kind == "card_number":  # the writer masked it and said so
            assert "redaction.applied" in types
        if c.kind == "phi_disclosure":
            disclosed = [e["data"] for e in c.events if e["data"].get("disclosure") is True]
            assert disclosed[0]["classification"] == "phi"
            assert disclosed[0]["recipient"]["name"]
    writer_masked = [
        e
        for c in generate(60, seed=5)
        for e in c.events
        if e["type"] == "handoff.message.created.v1"
    ]
    assert not any(
        PAN.search(p["content"]) for e in writer_masked for p in e["data"]["content"]["parts"]
    )


def test_same_seed_same_events() -> None:
    assert generate(25, seed=9) == generate(25, seed=9)
    assert generate(25, seed=9) != generate(25, seed=10)
    events = interleave(generate(25, seed=9))
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    assert len({(e["source"], e["id"]) for e in events}) == len(events)


def test_ledger_demo_writes_trails(ledger_cli: Any, new_log: Any, client: Any, token: Any) -> None:
    log_id = new_log(card_policy="mask")
    code, out, err = ledger_cli("demo", "--log", log_id, "--conversations", "24", "--seed", "4")
    assert code == 0, err
    examples = dict(line.split("\t") for line in out.splitlines())
    assert set(examples) == set(KINDS)
    total = sum(len(c.events) for c in generate(24, seed=4, raw_cards=True))
    assert f"{total} events appended" in err
    # The same seed again is a retry of the same events: nothing new.
    code, _, err = ledger_cli("demo", "--log", log_id, "--conversations", "24", "--seed", "4")
    assert code == 0
    assert "0 events appended" in err

    auditor = auth(token(log_id, "auditor"))
    for kind, conversation in examples.items():
        r = client.get(f"/v1/logs/{log_id}/conversations/{conversation}/trail", headers=auditor)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["back_links"]["status"] == "intact"
        s = body["summary"]
        if kind == "resolved_by_ai":
            assert s["handoffs"] == []
            continue
        [timing] = s["derived"]["handoffs"]
        assert 0 < timing["time_to_accept_seconds"] < timing["time_to_productive_takeover_seconds"]
        assert s["suggested_actions"][0]["decision"] in ("accepted", "modified", "rejected")
        if kind == "sentiment_shift":
            assert s["derived"]["sentiment_change"] < 0
        if kind == "phi_disclosure":
            assert s["disclosures"][0]["purpose"]


def test_masking_by_the_guard_shows_in_the_trail(
    ledger_cli: Any, new_log: Any, client: Any, token: Any
) -> None:
    log_id = new_log(card_policy="mask")
    assert ledger_cli("demo", "--log", log_id, "--conversations", "60", "--seed", "2")[0] == 0
    guard_masked = [
        c
        for c in generate(60, seed=2, raw_cards=True)
        if c.kind == "card_number"
        and not any(e["type"].endswith("redaction.applied.v1") for e in c.events)
    ]
    assert guard_masked
    r = client.get(
        f"/v1/logs/{log_id}/conversations/{guard_masked[0].id}/trail",
        headers=auth(token(log_id, "auditor")),
    )
    body = r.json()
    [redaction] = [x for x in body["summary"]["redactions"] if x["by"] == "ledger"]
    assert redaction["operator"] == "mask"
    assert redaction["fingerprint"].startswith("hmac-sha256:")
    [text] = [
        u["text"] for u in body["summary"]["transcript"] if u["seq"] == redaction["event_seq"]
    ]
    assert redaction["path"] == "/content/parts/0/content"
    assert "*" * 4 in text
    assert not PAN.search(text)


def test_serve_demo_fills_an_empty_demo_log(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    client: Any,
    token: Any,
    example_batch: dict[str, Any],
) -> None:
    """And its sample conversation is the same on every start (issue 16, class 12), even after
    a writer adds a handed-off conversation of its own (as the README suggests)."""
    from ledger.cli.common import dispose_engines
    from ledger.cli.serve import DEMO_CONVERSATIONS, _demo_setup
    from ledger.storage.db import make_engine, unit_of_work
    from ledger.storage.logs import log_size

    trail = re.compile(
        r"curl -s -H \"Authorization: Bearer \$AUDITOR\" "
        r"http://127.0.0.1:8080/v1/logs/demo/conversations/(\S+)/trail"
    )
    try:
        _demo_setup(settings, 8080)
        first = trail.findall(capsys.readouterr().err)
        r = client.post(
            "/v1/logs/demo/events",
            json=example_batch,
            headers={"Authorization": f"Bearer {token('demo', 'writer')}"},
        )
        assert r.status_code in (200, 201), r.text
        _demo_setup(settings, 8080)  # a second start leaves the filled log alone
        second = trail.findall(capsys.readouterr().err)
    finally:
        dispose_engines()
    assert len(first) == 1
    assert second == first
    added = example_batch["events"][0]["subject"].removeprefix("conversations/")
    assert first[0] != added
    eng = make_engine(settings.database_url or "", pool_size=1)
    try:
        with unit_of_work(eng) as conn:
            size = log_size(conn, "demo")
    finally:
        eng.dispose()
    expected = sum(len(c.events) for c in generate(DEMO_CONVERSATIONS, seed=1, raw_cards=True))
    assert size == expected + len(example_batch["events"])
