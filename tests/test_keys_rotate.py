"""`ledger keys rotate`: new checkpoints under the new key, old ones still verify under the old
key, the rotation is an event (PCI DSS 10.2.1.7) and a statement signed by the old key, so a
verifier that pinned the old key follows it; a key changed without one is caught."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from ledger.core.checkpoint import open_checkpoint
from ledger.core.note import parse_note
from ledger.core.rotation import (
    ROTATION_HEADER,
    open_rotation,
    parse_rotation,
    sign_rotation,
)
from ledger.core.signing import NoteSigner, NoteVerifier
from ledger.errors import NoteFormatError, SignatureInvalid
from ledger.storage.db import unit_of_work
from tests.test_verify_tamper import Cli, tamper, verify


@pytest.fixture
def cli(ledger_cli: Cli, verifier_env: dict[str, Path]) -> Cli:
    return ledger_cli


@pytest.fixture
def rotated(cli: Cli, new_log: Any, append_direct: Any) -> tuple[str, str, str]:
    """A log verified at 10 entries, rotated, then 10 more: ``(log, old key, new key)``."""
    log_id: str = new_log()
    append_direct(log_id, 10, batch=5)
    assert verify(cli, log_id)[0] == 0
    old = cli("keys", "list", "--log", log_id)[1].strip()
    code, out, err = cli("keys", "rotate", "--log", log_id)
    assert code == 0, err
    append_direct(log_id, 10, batch=5)
    return log_id, old, out.strip()


def _checkpoints(engine: Engine, log_id: str) -> list[tuple[int, str]]:
    with unit_of_work(engine) as conn:
        rows = conn.exec_driver_sql(
            "SELECT size, note FROM checkpoints WHERE log_id = %(log)s ORDER BY size",
            {"log": log_id},
        )
        return [(int(r[0]), r[1]) for r in rows]


def test_new_checkpoints_use_the_new_key_old_ones_verify_under_the_old(
    rotated: tuple[str, str, str], engine: Engine, client: Any
) -> None:
    log_id, old, new = rotated
    old_v, new_v = NoteVerifier.from_verifier_key(old), NoteVerifier.from_verifier_key(new)
    for size, note in _checkpoints(engine, log_id):
        open_checkpoint(note, [old_v] if size <= 10 else [new_v])
        with pytest.raises(SignatureInvalid):
            open_checkpoint(note, [new_v] if size <= 10 else [old_v])
    assert client.get(f"/v1/logs/{log_id}/verifier-key").text.splitlines() == [new, old]


def test_the_rotation_is_an_event_and_a_statement_signed_by_both_keys(
    rotated: tuple[str, str, str], engine: Engine, client: Any, token: Any
) -> None:
    log_id, old, new = rotated
    with unit_of_work(engine) as conn:
        statement = conn.exec_driver_sql(
            "SELECT statement FROM key_rotations WHERE log_id = %(log)s", {"log": log_id}
        ).scalar_one()
    rotation = open_rotation(statement, NoteVerifier.from_verifier_key(old))
    assert rotation.new.verifier_key() == new
    assert parse_note(statement).text.startswith(f"{ROTATION_HEADER}\norigin ledger.test/")

    auditor = {"Authorization": f"Bearer {token(log_id + '.system', 'auditor')}"}
    entries = client.get(f"/v1/logs/{log_id}.system/entries", headers=auditor).json()["entries"]
    rotated_events = [e for e in entries if e["entry"]["event"]["type"] == "ledger.key.rotated.v1"]
    assert len(rotated_events) == 1
    payload = rotated_events[0]["payload"]
    assert (payload["old_key"], payload["new_key"], payload["statement"]) == (old, new, statement)
    assert payload["actor"]["id"].startswith("cli:")


def test_a_verifier_that_pinned_the_old_key_follows_the_rotation(
    cli: Cli, rotated: tuple[str, str, str], verifier_env: dict[str, Path]
) -> None:
    log_id, old, new = rotated
    code, report = verify(cli, log_id)
    assert code == 0, report
    assert (report["mode"], report["from_size"], report["to_size"]) == ("incremental", 10, 20)
    state = json.loads((verifier_env["state"] / f"{log_id}.json").read_text())
    assert state["keys"] == [old, new]
    assert verify(cli, log_id, "--full")[0] == 0


def test_a_key_added_without_a_rotation_statement_is_caught(
    cli: Cli, rotated: tuple[str, str, str], db_url: str
) -> None:
    log_id, _, _ = rotated
    tamper(db_url, "key_rotations", "DELETE FROM key_rotations WHERE log_id = %s", log_id)
    code, report = verify(cli, log_id)
    assert code == 1
    assert "neither pinned nor certified by a signed rotation" in report["failure"]["message"]


def test_a_checkpoint_signed_after_its_key_was_retired_fails(
    cli: Cli, new_log: Any, append_direct: Any, db_url: str
) -> None:
    log_id = new_log()
    append_direct(log_id, 5)
    # Retiring is the one change the table allows (even to the application role): here, to a
    # moment before the key's last signature.
    tamper(
        db_url,
        "signing_keys",
        "UPDATE signing_keys SET retired_at = created_at WHERE log_id = %s",
        log_id,
    )
    code, report = verify(cli, log_id, "--full")
    assert code == 1
    assert "was signed after its key" in report["failure"]["message"]


def test_generate_is_only_for_a_log_without_an_active_key(
    cli: Cli, new_log: Any, db_url: str
) -> None:
    log_id = new_log()
    code, _, err = cli("keys", "generate", "--log", log_id)
    assert code == 2
    assert f"ledger keys rotate --log {log_id}" in err
    tamper(
        db_url,
        "signing_keys",
        "UPDATE signing_keys SET retired_at = now() WHERE log_id = %s",
        log_id,
    )
    code, out, _ = cli("keys", "generate", "--log", log_id)
    assert code == 0
    assert out.startswith(f"ledger.test/{log_id}+")


def test_rotate_without_an_active_key_points_to_generate(
    cli: Cli, new_log: Any, db_url: str
) -> None:
    log_id = new_log()
    tamper(
        db_url,
        "signing_keys",
        "UPDATE signing_keys SET retired_at = now() WHERE log_id = %s",
        log_id,
    )
    code, _, err = cli("keys", "rotate", "--log", log_id)
    assert code == 2
    assert "ledger keys generate" in err


def test_rotation_statement_format() -> None:
    old, new = NoteSigner.generate("example.org/log"), NoteSigner.generate("example.org/log")
    note = sign_rotation(old, new, "2026-11-27T10:00:00.000000Z")
    text = parse_note(note).text
    assert text == (
        f"{ROTATION_HEADER}\norigin example.org/log\nold {old.verifier_key()}\n"
        f"new {new.verifier_key()}\ntime 2026-11-27T10:00:00.000000Z\n"
    )
    assert parse_rotation(text).new == new.verifier()
    with pytest.raises(NoteFormatError):  # rotates another key
        open_rotation(note, new.verifier())
    other = NoteSigner.generate("example.org/log")
    forged = sign_rotation(other, new, "2026-11-27T10:00:00.000000Z").replace(
        other.verifier_key(), old.verifier_key()
    )
    with pytest.raises(SignatureInvalid):  # names the old key, but the old key did not sign
        open_rotation(forged, old.verifier())
    with pytest.raises(NoteFormatError):  # never parses as a checkpoint
        open_checkpoint(note, [old.verifier()])
