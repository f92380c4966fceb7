"""`ledger trail LOG CONVERSATION`: the auditor's sections on a terminal, the API body with
--json, the read recorded in the tenant's system log by the operator's name."""

from __future__ import annotations

import getpass
import json
import socket
from typing import Any

from tests.test_ingest_api import system_entries
from tests.test_trail import CONVERSATION, read


def test_terminal_view(ledger_cli: Any, example_log: str) -> None:
    code, out, _ = ledger_cli("trail", example_log, CONVERSATION)
    assert code == 0
    for heading in (
        "Back-links: INTACT",
        "Transcript",
        "Tools called",
        "Data accessed",
        "Redactions",
        "Escalation",
        "Sentiment",
        "Identity verification",
        "Suggested actions",
        "Handoffs",
        "Timings (derived by the ledger)",
        "Entries",
        "Checkpoint",
    ):
        assert f"\n{heading}" in out, heading
    assert "2026-11-20 09:14:01 [1] CUSTOMER cust-91b7: I was charged twice" in out
    assert "[6] AI support-bot-3:" in out
    assert "billing.list_charges (function) tc-1: succeeded" in out
    assert "PCI by support-bot-3; purpose: duplicate charge investigation" in out
    assert "CREDIT_CARD at /content/parts/0/content of seq 1: mask by writer" in out
    assert "uncertainty_threshold (0.62 < 0.75), policy_trigger (refunds-over-100)" in out
    assert "otp_email -> verified (email, account_id)" in out
    assert "sa-1 refund_duplicate_charge (confidence 0.9): ACCEPTED by agent-17" in out
    assert "h-1 to billing-specialists: requested 2026-11-20 09:14:11; accepted by agent-17" in out
    assert (
        "h-1: time to accept 1.0s, to productive takeover 2.0s; context package named "
        "identity yes, sentiment yes, tools yes"
    ) in out


def test_json_is_the_api_body(ledger_cli: Any, client: Any, token: Any, example_log: str) -> None:
    code, out, _ = ledger_cli("trail", example_log, CONVERSATION, "--json")
    assert code == 0
    body = json.loads(out)
    api = read(client, token, example_log)
    assert body == api


def test_the_cli_read_is_logged_and_unknown_conversation_fails(
    ledger_cli: Any, client: Any, token: Any, example_log: str
) -> None:
    assert ledger_cli("trail", example_log, CONVERSATION)[0] == 0
    code, _, err = ledger_cli("trail", example_log, "c-nope")
    assert code == 2
    assert "c-nope" in err
    reads = [
        e
        for e in system_entries(client, token, example_log)
        if e["entry"]["event"]["type"] == "ledger.trail.read.v1"
    ]
    assert [r["payload"]["conversation"] for r in reads] == [CONVERSATION, "c-nope"]
    assert reads[0]["payload"]["actor"] == {
        "kind": "system",
        "id": f"cli:{getpass.getuser()}@{socket.gethostname()}",
    }
    assert reads[0]["payload"]["client"] == "cli"


def test_a_broken_chain_exits_1(
    ledger_cli: Any, client: Any, new_log: Any, token: Any, db_url: str
) -> None:
    from tests.conftest import make_event
    from tests.test_verify_tamper import tamper

    log_id = new_log()
    client.post(
        f"/v1/logs/{log_id}/events",
        json={"events": [make_event(c, n) for n in range(3) for c in ("a", "b")]},
        headers={"Authorization": f"Bearer {token(log_id, 'writer')}"},
    )
    tamper(db_url, "entries", "DELETE FROM entries WHERE log_id = %s AND seq = 2", log_id)
    code, out, _ = ledger_cli("trail", log_id, "a")
    assert code == 1
    assert "Back-links: BROKEN" in out
    assert "! seq 4: conversation_prev is 2" in out
