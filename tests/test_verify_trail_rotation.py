"""Offline trail verification across a signing-key rotation: ``ledger verify-trail`` and
``ops/verify_trail_standalone.py`` follow the trail's ``rotations`` as the console does. An
auditor who pinned the old key accepts a checkpoint signed only by the new key, because the old
key certified it; one byte of the statement changed and it certifies nothing (both tools exit 1,
naming the rotation check and the checkpoint); without the statement the new key is unknown."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import Engine

from ledger.settings import Settings
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import KeyRing
from tests.conftest import TEST_ACTOR, make_event, now
from tests.test_trail import post, read
from tests.test_verify_trail import assert_fails, key_args, run_both

__all__ = ["run_both"]  # the fixture, used here


@pytest.fixture
def rotated(
    client: Any, engine: Engine, settings: Settings, new_log: Any, token: Any
) -> tuple[dict[str, Any], list[str], Any]:
    """A trail whose checkpoint only the log's new key signed, the old key the auditor pinned
    before the rotation, and the rotation."""
    from ledger.services.admin.signing_keys import rotate_signing_key
    from ledger.storage.logs import get_log

    log_id = new_log()
    writer = token(log_id, "writer")
    post(client, log_id, writer, [make_event("c-rot", 0), make_event("c-rot", 1)])
    pinned = client.get(f"/v1/logs/{log_id}/verifier-key").text.splitlines()
    assert len(pinned) == 1
    with unit_of_work(engine) as conn:
        rotation = rotate_signing_key(
            conn,
            KeyRing.from_master(settings.master_key_bytes),
            get_log(conn, log_id),
            now=now(),
            actor=TEST_ACTOR,
        )
    post(client, log_id, writer, [make_event("c-rot", 2)])
    body = read(client, token, log_id, "c-rot")
    assert len(body["rotations"]) == 1
    assert f"+{rotation.old.key_id.hex()}+" not in body["checkpoint"].split("\n\n")[1]
    return body, pinned, rotation


def test_a_key_the_pinned_key_certified_is_followed(rotated: Any, run_both: Any) -> None:
    body, pinned, rotation = rotated
    (code, out), (script_code, script_out) = run_both(body, *key_args(pinned))
    assert code == 0, out
    assert f"key certified by a rotation from a key you trust: {rotation.new.verifier_key()}" in out
    assert f"signed by {rotation.new.verifier_key()}" in out
    assert script_code == 0, script_out
    assert "3 entries checked" in script_out


def test_the_json_report_names_the_certified_key(
    rotated: Any, ledger_cli: Any, tmp_path: Any
) -> None:
    body, pinned, rotation = rotated
    path = tmp_path / "trail.json"
    path.write_text(json.dumps(body))
    code, out, _ = ledger_cli("verify-trail", str(path), "--json", *key_args(pinned))
    assert code == 0, out
    assert json.loads(out)["checkpoint"]["certified_keys"] == [rotation.new.verifier_key()]


@pytest.mark.parametrize("line", ["origin", "old", "new", "time", "signature"])
def test_one_byte_of_the_statement_changed_fails(rotated: Any, run_both: Any, line: str) -> None:
    body, pinned, _ = rotated
    note = body["rotations"][0]
    at = note.index("\n\n\u2014 ") + 40 if line == "signature" else note.index(f"\n{line} ") + 30
    body["rotations"][0] = note[:at] + ("A" if note[at] != "A" else "B") + note[at + 1 :]
    assert_fails(run_both(body, *key_args(pinned)), "rotation: rotations/0:", "checkpoint:")


def test_without_the_statement_the_new_key_is_unknown(rotated: Any, run_both: Any) -> None:
    body, pinned, _ = rotated
    body["rotations"] = []
    assert_fails(run_both(body, *key_args(pinned)), "checkpoint:")


def test_a_statement_rotating_a_key_you_do_not_trust_certifies_nothing(
    rotated: Any, run_both: Any
) -> None:
    """Pinning the NEW key: the statement is history before the pin, not an error."""
    body, _, rotation = rotated
    results = run_both(body, *key_args([rotation.new.verifier_key()]))
    assert [code for code, _ in results] == [0, 0], results


def test_rotations_that_are_not_a_list_of_notes_cannot_be_checked(
    rotated: Any, run_both: Any
) -> None:
    body, pinned, _ = rotated
    body["rotations"] = "not a list"
    assert [code for code, _ in run_both(body, *key_args(pinned))] == [2, 2]
