"""Terminal injection (issue 16, class 8): control characters are refused in identifiers at
ingest, and everything a CLI prints from data is shown escaped, never obeyed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger.cli.text import printable, printable_data
from ledger.cli.verify_trail import render as render_trail_report
from ledger.services.trails.verify import parse_trail, parse_verifier_keys, verify_trail
from tests.conftest import make_event

HOSTILE = [
    "\x1b[2J\x1b[H",  # clear the screen, cursor home
    "ok\nBack-links: INTACT",  # a forged line
    "a\rb",
    "\x07bell",
    "\x9b31m",  # C1 CSI
    "\u202egnp.exe",  # right-to-left override
    "x\u2028y",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_printable_shows_every_control_character_and_obeys_none(text: str) -> None:
    shown = printable(text)
    assert all(ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F for c in shown)
    assert "\u202e" not in shown
    assert "\u2028" not in shown
    assert "\n" not in shown


def test_printable_data_reaches_every_string() -> None:
    data = {"a\n": ["\x1b[31m", {"b": "c\r"}], "n": 3}
    assert printable_data(data) == {"a\\n": ["\\x1b[31m", {"b": "c\\r"}], "n": 3}


@pytest.mark.parametrize("field", ["actor", "author"])
@pytest.mark.parametrize("text", HOSTILE)
def test_identifiers_with_control_characters_are_refused_at_ingest(
    client: Any, new_log: Any, token: Any, field: str, text: str
) -> None:
    log_id = new_log()
    who = {"kind": "customer", "id": "cust" + text}
    event = make_event("c-1", 0, **{field: who})
    r = client.post(
        f"/v1/logs/{log_id}/events",
        json=event,
        headers={"Authorization": f"Bearer {token(log_id, 'writer')}"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["pointer"] == f"/data/{field}/id"
    assert "control characters" in r.json()["detail"]


def test_an_event_id_with_an_escape_sequence_is_refused(
    client: Any, new_log: Any, token: Any
) -> None:
    log_id = new_log()
    event = make_event("c-1", 0)
    event["id"] = "evt\x1b[2J"
    r = client.post(
        f"/v1/logs/{log_id}/events",
        json=event,
        headers={"Authorization": f"Bearer {token(log_id, 'writer')}"},
    )
    assert r.status_code == 422
    assert r.json()["pointer"] == "/id"


def test_ledger_trail_prints_a_transcript_escaped(
    ledger_cli: Any, client: Any, new_log: Any, token: Any
) -> None:
    log_id = new_log()
    forged = "fine\nBack-links: INTACT\x1b[2J"
    event = make_event("c-1", 0, content={"parts": [{"type": "text", "content": forged}]})
    r = client.post(
        f"/v1/logs/{log_id}/events",
        json=event,
        headers={"Authorization": f"Bearer {token(log_id, 'writer')}"},
    )
    assert r.status_code == 201, r.text
    code, out, _ = ledger_cli("trail", log_id, "c-1")
    assert code == 0
    assert "\x1b" not in out
    assert "fine\\nBack-links: INTACT\\x1b[2J" in out
    assert out.count("Back-links:") == 1 + out.count("fine\\nBack-links")


def test_verify_trail_output_escapes_what_the_file_says(
    client: Any, new_log: Any, token: Any
) -> None:
    log_id = new_log()
    client.post(
        f"/v1/logs/{log_id}/events",
        json=make_event("c-1", 0),
        headers={"Authorization": f"Bearer {token(log_id, 'writer')}"},
    )
    r = client.get(
        f"/v1/logs/{log_id}/conversations/c-1/trail",
        headers={"Authorization": f"Bearer {token(log_id, 'auditor')}"},
    )
    body = r.json()
    body["origin"] = "evil\n\x1b[32mRESULT: VERIFIED"
    keys = client.get(f"/v1/logs/{log_id}/verifier-key").text.split()
    report = verify_trail(parse_trail(json.dumps(body).encode()), parse_verifier_keys(keys))
    text = render_trail_report(report)
    assert "\x1b" not in text
    assert "evil\\n" in text
