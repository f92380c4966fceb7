"""`ledger verify` finds every edit a superuser makes behind the triggers (PCI 10.3.2/10.3.4,
HIPAA 164.312(c)(2)), and stays quiet about appends."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from ledger.cli import main
from ledger.settings import Settings
from ledger.storage.db import sqlalchemy_url
from tests.conftest import MASTER_KEY, make_event

TRIGGERS = {
    "entries": "entries_no_update_delete",
    "payloads": "payloads_no_update_delete",
    "checkpoints": "checkpoints_no_update_delete",
    "tree_nodes": "tree_nodes_no_update_delete",
    "signing_keys": "signing_keys_retire_only",
}


def _libpq(url: str) -> str:
    return make_url(sqlalchemy_url(url)).set(drivername="postgresql").render_as_string(
        hide_password=False)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, settings: Settings, capsys: pytest.CaptureFixture[str]
        ) -> Callable[..., tuple[int, str, str]]:
    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("LEDGER_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("LEDGER_ORIGIN_PREFIX", "ledger.test")

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def filled(client: Any, new_log: Any, token: Any) -> str:
    log_id: str = new_log()
    w = {"Authorization": f"Bearer {token(log_id, 'writer')}"}
    for batch in range(4):
        events = [make_event(f"conv-{k % 3}", batch * 10 + k) for k in range(5)]
        r = client.post(f"/v1/logs/{log_id}/events", json={"events": events}, headers=w)
        assert r.status_code == 201
    return log_id


def tamper(db_url: str, table: str, sql: str, *params: Any) -> None:
    """Edit as a superuser with the table's append-only trigger switched off for the moment."""
    trigger = TRIGGERS[table]
    with psycopg.connect(_libpq(db_url)) as conn:
        conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
        conn.execute(sql, params)
        conn.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger}")


def verify_json(
    cli: Callable[..., tuple[int, str, str]], log_id: str
) -> tuple[int, dict[str, Any]]:
    code, out, _ = cli("verify", "--log", log_id, "--full", "--json")
    report: dict[str, Any] = json.loads(out)["logs"][0]
    return code, report


def test_intact_log_verifies_and_appends_do_not_alert(cli: Any, filled: str, client: Any,
                                                      token: Any) -> None:
    code, report = verify_json(cli, filled)
    assert code == 0
    assert report["intact"] is True
    assert report["entries"] == 20
    w = {"Authorization": f"Bearer {token(filled, 'writer')}"}
    events = [make_event("conv-new", 100 + k) for k in range(300)]
    assert client.post(f"/v1/logs/{filled}/events", json={"events": events},
                       headers=w).status_code == 201
    code, report = verify_json(cli, filled)
    assert code == 0
    assert report["entries"] == 320


CASES: list[tuple[str, str, str, str]] = [
    ("payload byte", "payloads",
     "UPDATE payloads SET sealed = set_byte(sealed, 20, get_byte(sealed, 20) # 1)"
     " WHERE log_id = %s AND seq = 7", "payload does not decrypt"),
    ("entry header field", "entries",
     "UPDATE entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'),"
     " '\"outcome\":\"success\"', '\"outcome\":\"failure\"'), 'UTF8')"
     " WHERE log_id = %s AND seq = 3", "leaf hash does not match"),
    ("entry deleted in the middle", "entries",
     "DELETE FROM entries WHERE log_id = %s AND seq = 9", "sequence gap"),
    ("checkpoint signature", "checkpoints",
     "UPDATE checkpoints SET note = regexp_replace(note, '— (\\S+) (.)', '— \\1 A')"
     " WHERE log_id = %s AND size = 10", "does not verify"),
    ("payload deleted", "payloads",
     "DELETE FROM payloads WHERE log_id = %s AND seq = 12", "payload is missing"),
    ("tree node", "tree_nodes",
     "UPDATE tree_nodes SET hash = sha256(hash) WHERE log_id = %s AND level = 2 AND idx = 1",
     "tree node (2, 1)"),
]


@pytest.mark.parametrize(("name", "table", "sql", "message"), CASES, ids=[c[0] for c in CASES])
def test_tampering_is_found(cli: Any, filled: str, db_url: str, name: str, table: str, sql: str,
                            message: str) -> None:
    tamper(db_url, table, sql, filled)
    code, report = verify_json(cli, filled)
    assert code == 1, name
    assert report["intact"] is False
    assert message in report["failure"]["message"]


def test_human_output_names_log_and_seq(cli: Any, filled: str, db_url: str) -> None:
    tamper(db_url, "entries",
           "UPDATE entries SET leaf_hash = sha256(leaf_hash) WHERE log_id = %s AND seq = 5",
           filled)
    code, out, _ = cli("verify", "--log", filled)
    assert code == 1
    assert f"log {filled} seq 5: leaf hash does not match" in out


def test_verify_cannot_run_exits_2(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("LEDGER_MASTER_KEY", MASTER_KEY)
    assert main(["verify", "--json"]) == 2
    assert "database unavailable" in capsys.readouterr().err


def test_credentials_create_prints_only_the_token(cli: Any, new_log: Any) -> None:
    log_id = new_log()
    code, out, err = cli("credentials", "create", "--log", log_id, "--role", "auditor")
    assert code == 0
    assert out.startswith("hlt_")
    assert out.count("\n") == 1
    assert "shown once" in err


def test_keys_generate_retires_but_keeps_the_old_key(cli: Any, filled: str, client: Any,
                                                     token: Any) -> None:
    old = client.get(f"/v1/logs/{filled}/verifier-key").text.splitlines()
    code, out, _ = cli("keys", "generate", "--log", filled)
    assert code == 0
    keys = client.get(f"/v1/logs/{filled}/verifier-key").text.splitlines()
    assert keys == [out.strip(), *old]
    code, report = verify_json(cli, filled)
    assert code == 0, report
