"""Offline trail verification: ``ledger verify-trail`` and ``ops/verify_trail_standalone.py`` on
the same files. A real trail from the API verifies under both; each kind of tampering makes both
exit 1 and name the seq and the check; no key or a file that is not a trail makes both exit 2.
"""

from __future__ import annotations

import ast
import base64
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger.core.canonical import canonicalize
from ledger.core.checkpoint import parse_checkpoint, sign_checkpoint
from ledger.core.note import parse_note
from ledger.core.signing import NoteSigner
from tests.conftest import make_event
from tests.test_trail import CONVERSATION, post, read

STANDALONE = Path(__file__).resolve().parents[1] / "ops" / "verify_trail_standalone.py"
MIDDLE = 5
"""The index in ``entries`` that the tampering tests change."""

Runner = Callable[..., tuple[int, str]]


@pytest.fixture
def trail(
    client: Any, new_log: Any, token: Any, example_batch: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The example conversation interleaved with others (so seqs and back-links have gaps and
    proofs have real shape), as the API serves it; and the log's verifier keys."""
    log_id = new_log()
    writer = token(log_id, "writer")
    post(client, log_id, writer, [make_event("other", n) for n in range(7)])
    events = example_batch["events"]
    for start in range(0, len(events), 5):
        post(client, log_id, writer, events[start : start + 5])
        post(client, log_id, writer, [make_event("other", 100 + start)])
    post(client, log_id, writer, [make_event("other", n) for n in range(200, 230)])
    keys = client.get(f"/v1/logs/{log_id}/verifier-key").text.splitlines()
    return read(client, token, log_id), keys


@pytest.fixture
def run_both(ledger_cli: Any, tmp_path: Path) -> Runner:
    """``run_both(body_or_path, *args)`` -> [(exit code, stdout + stderr)] of the ledger command
    and of the stand-alone script, on the same file."""

    def run(body: Any, *args: str) -> list[tuple[int, str]]:
        if isinstance(body, Path):
            path = body
        else:
            path = tmp_path / f"trail-{len(list(tmp_path.iterdir()))}.json"
            path.write_text(body if isinstance(body, str) else json.dumps(body))
        code, out, err = ledger_cli("verify-trail", str(path), *args)
        script = subprocess.run(
            [sys.executable, "-I", str(STANDALONE), str(path), *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )
        return [(code, out + err), (script.returncode, script.stdout + script.stderr)]

    return run


def key_args(keys: list[str]) -> list[str]:
    return [arg for k in keys for arg in ("--verifier-key", k)]


def assert_fails(results: list[tuple[int, str]], *needles: str) -> None:
    for (code, out), tool in zip(results, ("ledger verify-trail", "standalone"), strict=True):
        assert code == 1, f"{tool}: exit {code}\n{out}"
        for needle in needles:
            assert needle in out, f"{tool}: {needle!r} not in\n{out}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- an intact trail ------------------------------------------------------------------------------


def test_a_real_trail_verifies_under_both_tools(trail: Any, run_both: Runner) -> None:
    body, keys = trail
    seqs = [e["seq"] for e in body["entries"]]
    assert len(seqs) == 16
    assert seqs != list(range(seqs[0], seqs[0] + 16))  # interleaved: the back-links skip seqs
    (code, out), (script_code, script_out) = run_both(body, *key_args(keys))
    assert code == 0, out
    assert "RESULT: VERIFIED" in out
    assert f"entries checked: 16 (seq {seqs[0]}..{seqs[-1]}); payloads verified: 16" in out
    assert f"checkpoint: size {body['tree_size']}" in out
    assert "that the conversation has no entry after seq" in out  # says what is not proven
    assert script_code == 0, script_out
    assert "VERIFIED" in script_out
    assert "16 payloads verified" in script_out


def test_no_database_is_touched(
    trail: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ledger.cli import main

    body, keys = trail
    path = tmp_path / "trail.json"
    path.write_text(json.dumps(body))
    monkeypatch.setenv("LEDGER_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/nothing")
    assert main(["verify-trail", str(path), *key_args(keys)]) == 0
    assert "RESULT: VERIFIED" in capsys.readouterr().out


def test_keys_from_a_file_and_json_report(trail: Any, run_both: Runner, tmp_path: Path) -> None:
    body, keys = trail
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# fetched from /verifier-key on 2026-11-20\n" + "\n".join(keys) + "\n")
    results = run_both(body, "--verifier-keys-file", str(keys_file))
    assert [code for code, _ in results] == [0, 0]

    (code, out), _ = run_both(body, *key_args(keys), "--json")
    report = json.loads(out)
    assert code == 0
    assert (report["status"], report["intact"]) == ("intact", True)
    assert report["origin"] == body["origin"]
    assert report["conversation"] == CONVERSATION
    assert report["entries"] == 16
    assert report["checkpoint"]["size"] == body["tree_size"]
    assert report["checkpoint"]["signed_by"] == [keys[0]]
    assert report["payloads"] == {"verified": 16, "withheld": {}}
    assert report["failures"] == report["warnings"] == []
    assert any("gap-free" in p for p in report["proven"])
    assert any(
        f"no entry after seq {body['entries'][-1]['seq']}" in p for p in report["not_proven"]
    )


def test_erased_payloads_are_reported_not_failed(
    trail: Any, run_both: Runner, db_url: str, client: Any, token: Any
) -> None:
    """Crypto-shredding leaves every hash and proof valid: the trail still verifies, and says
    how many payloads are gone and which."""
    import psycopg

    from tests.test_verify_tamper import _libpq

    body, keys = trail
    with psycopg.connect(_libpq(db_url)) as conn:
        conn.execute(
            "UPDATE data_keys SET wrapped = NULL, destroyed_at = now()"
            " WHERE log_id = %s AND scope = %s",
            (body["log"], f"conversation:{CONVERSATION}"),
        )
    erased = read(client, token, body["log"])
    assert {e["payload_status"] for e in erased["entries"]} == {"erased"}
    (code, out), (script_code, script_out) = run_both(erased, *key_args(keys))
    seqs = ", ".join(str(e["seq"]) for e in body["entries"])
    assert code == 0, out
    assert f"payloads erased: 16 (seq {seqs})" in out
    assert "payloads verified: 0" in out
    assert script_code == 0, script_out
    assert "16 erased/missing" in script_out


def test_the_server_own_mismatch_is_a_warning(trail: Any, run_both: Runner) -> None:
    """A payload the server itself reports as not matching its commitment: a warning about the
    server's storage, the payload not counted as verified; the entries still prove out."""
    body, keys = trail
    e = body["entries"][MIDDLE]
    e["payload_status"] = "mismatch"
    e["payload"]["tampered"] = True
    e["payload_b64"] = b64(canonicalize(e["payload"]))
    results = run_both(body, *key_args(keys))
    for code, out in results:
        assert code == 0, out
        assert f"seq {e['seq']}: payload:" in out
        assert "warning" in out.lower()
    assert "payloads verified: 15" in results[0][1]
    assert "15 payloads verified" in results[1][1]


# --- tampering: both tools exit 1 and name seq and check ------------------------------------------


@pytest.mark.parametrize("rehash", [False, True], ids=["bytes", "bytes-and-leaf-hash"])
def test_a_changed_byte_in_an_entry(trail: Any, run_both: Runner, rehash: bool) -> None:
    """One byte of the entry (its event type); with ``rehash`` the leaf hash is recomputed to
    match, and the inclusion proof still gives it away."""
    body, keys = trail
    e = body["entries"][MIDDLE]
    raw = bytearray(base64.b64decode(e["entry_b64"]))
    at = raw.index(b'"type":"handoff.') + len(b'"type":"')
    raw[at] = ord("H")
    e["entry_b64"] = b64(bytes(raw))
    if rehash:
        import hashlib

        e["leaf_hash"] = b64(hashlib.sha256(b"\x00" + bytes(raw)).digest())
        assert_fails(run_both(body, *key_args(keys)), f"seq {e['seq']}: inclusion")
    else:
        assert_fails(
            run_both(body, *key_args(keys)),
            f"seq {e['seq']}: leaf_hash",
            f"seq {e['seq']}: inclusion",
        )


def test_a_changed_leaf_hash(trail: Any, run_both: Runner) -> None:
    body, keys = trail
    e = body["entries"][MIDDLE]
    e["leaf_hash"] = b64(bytes(32))
    assert_fails(
        run_both(body, *key_args(keys)),
        f"seq {e['seq']}: leaf_hash",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    )


def test_a_changed_proof_hash(trail: Any, run_both: Runner) -> None:
    body, keys = trail
    e = body["entries"][MIDDLE]
    first = bytearray(base64.b64decode(e["inclusion_proof"]["hashes"][0]))
    first[0] ^= 1
    e["inclusion_proof"]["hashes"][0] = b64(bytes(first))
    assert_fails(run_both(body, *key_args(keys)), f"seq {e['seq']}: inclusion")


def test_an_entry_removed_from_the_middle(trail: Any, run_both: Runner) -> None:
    body, keys = trail
    removed = body["entries"].pop(MIDDLE)
    after = body["entries"][MIDDLE]
    results = run_both(body, *key_args(keys))
    assert_fails(results, f"seq {after['seq']}: back_link")
    assert f"entry {removed['seq']} is missing" in results[0][1]
    assert f"found {removed['seq']}" in results[1][1]


def test_entries_reordered(trail: Any, run_both: Runner) -> None:
    body, keys = trail
    entries = body["entries"]
    entries[MIDDLE], entries[MIDDLE + 1] = entries[MIDDLE + 1], entries[MIDDLE]
    assert_fails(
        run_both(body, *key_args(keys)),
        f"seq {entries[MIDDLE + 1]['seq']}: order",
        f"seq {entries[MIDDLE]['seq']}: back_link",
    )


@pytest.mark.parametrize("what", ["payload_b64", "payload"])
def test_a_changed_payload(trail: Any, run_both: Runner, what: str) -> None:
    """The committed bytes (their commitment no longer matches), or the JSON shown beside them."""
    body, keys = trail
    e = body["entries"][MIDDLE]
    changed = {**e["payload"], "outcome": "failure"}
    assert changed != e["payload"]
    if what == "payload_b64":
        e["payload_b64"] = b64(canonicalize(changed))
        e["payload"] = changed
        needle = "is not the entry's commitment"
    else:
        e["payload"] = changed
        needle = "not the committed payload bytes"
    assert_fails(run_both(body, *key_args(keys)), f"seq {e['seq']}: payload", needle)


def test_a_checkpoint_signed_by_another_key(trail: Any, run_both: Runner) -> None:
    """Same text, signed by a key of the same name that is not the log's."""
    body, keys = trail
    checkpoint = parse_checkpoint(parse_note(body["checkpoint"]).text)
    body["checkpoint"] = sign_checkpoint(checkpoint, NoteSigner.generate(body["origin"]))
    assert_fails(run_both(body, *key_args(keys)), "checkpoint: ", "no signature by")


def test_the_wrong_verifier_key(trail: Any, run_both: Runner) -> None:
    body, _ = trail
    stranger = NoteSigner.generate(body["origin"]).verifier_key()
    assert_fails(run_both(body, "--verifier-key", stranger), "checkpoint: ")
    other_log = NoteSigner.generate("ledger.test/another-log").verifier_key()
    assert_fails(run_both(body, "--verifier-key", other_log), "checkpoint: ")


@pytest.mark.parametrize("line", [1, 2], ids=["size", "root"])
def test_the_checkpoint_size_or_root_edited(trail: Any, run_both: Runner, line: int) -> None:
    body, keys = trail
    lines = body["checkpoint"].split("\n")
    lines[line] = str(int(lines[line]) - 1) if line == 1 else b64(bytes(32))
    body["checkpoint"] = "\n".join(lines)
    assert_fails(run_both(body, *key_args(keys)), "checkpoint: ", "does not verify")


def test_the_tree_size_edited(trail: Any, run_both: Runner) -> None:
    body, keys = trail
    body["tree_size"] -= 1
    assert_fails(run_both(body, *key_args(keys)), "checkpoint: ", f"found {body['tree_size']}")


def test_an_entry_of_another_conversation(trail: Any, run_both: Runner) -> None:
    """The trail's conversation renamed: every entry's bytes name the real one."""
    body, keys = trail
    body["conversation"] = "c-other"
    assert_fails(run_both(body, *key_args(keys)), f"seq {body['entries'][0]['seq']}: entry_bytes")


# --- cannot run: exit 2 ---------------------------------------------------------------------------


def test_no_verifier_key(trail: Any, run_both: Runner) -> None:
    body, _ = trail
    for code, out in run_both(body):
        assert code == 2, out
        assert "no verifier key given" in out


def test_an_unparsable_verifier_key(trail: Any, run_both: Runner) -> None:
    body, _ = trail
    for code, out in run_both(body, "--verifier-key", "not-a-key"):
        assert code == 2, out
        assert "cannot verify" in out


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"origin": "x"}',
        '{"origin": "o", "conversation": "c", "tree_size": 1, "checkpoint": "", "entries": []}',
    ],
    ids=["not-json", "array", "missing-fields", "no-entries"],
)
def test_a_malformed_file(trail: Any, run_both: Runner, content: str) -> None:
    _, keys = trail
    for code, out in run_both(content, *key_args(keys)):
        assert code == 2, out
        assert "cannot verify" in out


def test_a_wrongly_typed_field(trail: Any, run_both: Runner) -> None:
    body, keys = trail
    body["entries"][MIDDLE]["inclusion_proof"]["leaf_index"] = "7"
    results = run_both(body, *key_args(keys))
    assert [code for code, _ in results] == [2, 2]
    assert f"/entries/{MIDDLE}/inclusion_proof/leaf_index: expected an integer" in results[0][1]


def test_an_unreadable_file(run_both: Runner, tmp_path: Path) -> None:
    key = NoteSigner.generate("ledger.test/x").verifier_key()
    for code, out in run_both(tmp_path / "missing.json", "--verifier-key", key):
        assert code == 2, out
        assert "cannot verify" in out


# --- the stand-alone script stays stand-alone ----------------------------------------------------


def test_the_standalone_script_imports_only_the_standard_library_and_pynacl() -> None:
    tree = ast.parse(STANDALONE.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported - set(sys.stdlib_module_names) == {"nacl"}
