"""Writer signatures checked where outsiders check: saved trails under ``ledger verify-trail`` and
``ops/verify_trail_standalone.py`` (and evidence bundles, below), on the same files, good and
tampered. The trail carries the writer keys its entries need, with their history."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from ledger.client import generate_signing_key
from ledger.settings import Settings
from tests import test_verify_trail, test_writer_signatures
from tests.test_trail import read
from tests.test_verify_tamper import tamper
from tests.test_verify_trail import assert_fails, key_args
from tests.test_writer_signatures import Writer, append_forged, post, signed

# Fixtures of the modules they are defined in, used here too.
run_both = test_verify_trail.run_both
writer = test_writer_signatures.writer
keyring = test_writer_signatures.keyring


def all_keys(client: Any, engine: Engine, log_id: str) -> list[str]:
    """The log's verifier keys and its tenant's system log's: the writer keys are proven by
    the system log's records, so a signed trail or bundle needs both."""
    from ledger.storage.db import unit_of_work
    from ledger.storage.logs import get_log

    with unit_of_work(engine) as conn:
        tenant = get_log(conn, log_id).tenant
    return [
        *client.get(f"/v1/logs/{log_id}/verifier-key").text.splitlines(),
        *client.get(f"/v1/logs/{tenant}.system/verifier-key").text.splitlines(),
    ]


@pytest.fixture
def signed_trail(
    client: Any, engine: Engine, token: Any, writer: Any
) -> tuple[Writer, dict[str, Any], list[str]]:
    w = writer(policy="required")
    events = [signed(w, n, conversation="c-1" if n % 3 else "other") for n in range(12)]
    for start in range(0, len(events), 4):
        assert post(client, w, *events[start : start + 4]).status_code == 201
    return w, read(client, token, w.log, "c-1"), all_keys(client, engine, w.log)


def test_a_signed_trail_carries_its_keys_and_verifies_under_both_tools(
    signed_trail: Any, run_both: Any
) -> None:
    w, body, keys = signed_trail
    assert [k["kid"] for k in body["writer_keys"]] == [w.key.kid]
    assert body["writer_keys"][0]["revoked_at"] is None
    results = run_both(body, *key_args(keys))
    for code, out in results:
        assert code == 0, out
    assert "writer signatures verified: 8 by key " + w.key.kid in results[0][1]
    assert "8 writer signatures verified" in results[1][1]


def test_a_statement_the_writer_did_not_sign_is_named_by_its_seq(
    client: Any, engine: Engine, settings: Settings, token: Any, writer: Any, run_both: Any
) -> None:
    """The ledger itself (an insider holding its keys) stores a statement over other data: every
    hash, proof and checkpoint is consistent; only the writer's signature gives it away."""
    w = writer()
    assert post(client, w, signed(w, 0, conversation="c-f")).status_code == 201
    seq = append_forged(engine, settings, w)
    keys = all_keys(client, engine, w.log)
    body = read(client, token, w.log, "c-f")
    assert_fails(run_both(body, *key_args(keys)), f"seq {seq}: writer_signature", "does not verify")


@pytest.mark.parametrize("edit", ["swap_key", "record_byte", "drop_key", "jws_byte"])
def test_an_edited_trail_fails_the_writer_signature(
    signed_trail: Any, run_both: Any, edit: str
) -> None:
    _, body, keys = signed_trail
    bad = copy.deepcopy(body)
    first = bad["entries"][0]
    seq = first["seq"]
    record = bad["writer_key_records"]["records"][0]
    if edit == "swap_key":  # the key record's payload names another key: its commitment fails
        payload = json.loads(base64.b64decode(record["payload_b64"]))
        payload["public_key"] = generate_signing_key().public_key_b64url
        record["payload_b64"] = base64.b64encode(json.dumps(payload).encode()).decode()
        needle = "writer key"
    elif edit == "record_byte":  # one byte of the key record's entry bytes: its leaf fails
        raw = bytearray(base64.b64decode(record["entry_b64"]))
        raw[len(raw) // 2] ^= 1
        record["entry_b64"] = base64.b64encode(bytes(raw)).decode()
        needle = "writer key"
    elif edit == "drop_key":
        bad["writer_key_records"]["records"] = []
        needle = "writer key"
    else:
        # One byte of the stored JWS changed (its bytes are in the entry, so the leaf too).
        entry = json.loads(base64.b64decode(first["entry_b64"]))
        jws = entry["writer_signature"]
        entry["writer_signature"] = jws[:-3] + ("A" if jws[-3] != "A" else "B") + jws[-2:]
        first["entry_b64"] = base64.b64encode(
            json.dumps(entry, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
        ).decode()
        first.pop("entry", None)
        needle = "leaf"
    assert_fails(run_both(bad, *key_args(keys)), f"seq {seq}", needle)


def test_one_byte_of_a_signed_entry_changed_in_the_database_is_named_by_its_seq(
    signed_trail: Any, client: Any, token: Any, db_url: str, run_both: Any
) -> None:
    w, body, keys = signed_trail
    seq = body["entries"][1]["seq"]
    # The commitment in the stored entry (what the writer signed) loses one byte's worth.
    tamper(
        db_url,
        "entries",
        "UPDATE entries SET entry = overlay(entry placing 'X'::bytea from"
        ' position(\'"commitment":"\'::bytea in entry) + 14 for 1)'
        " WHERE log_id = %s AND seq = %s",
        w.log,
        seq,
    )
    tampered = read(client, token, w.log, "c-1")
    assert_fails(run_both(tampered, *key_args(keys)), f"seq {seq}")


def test_after_erasure_the_signatures_still_verify_offline(
    client: Any,
    engine: Engine,
    keyring: Any,
    token: Any,
    writer: Any,
    run_both: Any,
    ledger_cli: Any,
    tmp_path: Path,
) -> None:
    from ledger.services.admin.credentials import create_credential
    from ledger.storage.db import unit_of_work
    from tests.conftest import TEST_ACTOR, now

    w = writer(policy="required")
    assert (
        post(client, w, *(signed(w, n, conversation="c-gone") for n in range(3))).status_code == 201
    )
    with unit_of_work(engine) as conn:
        admins = [
            create_credential(
                conn, keyring, log_id=w.log, role="admin", label=label, actor=TEST_ACTOR, now=now()
            )
            for label in ("a", "b")
        ]
    code, out, err = ledger_cli(
        "erase",
        "--log",
        w.log,
        "--conversation",
        "c-gone",
        "--legal-basis",
        "GDPR Art. 17",
        "--reference",
        "t-2",
        "--token",
        admins[0].token,
    )
    assert code == 0, err
    request_id = str(json.loads(out)["id"])
    assert ledger_cli("approve", request_id, "--log", w.log, "--token", admins[1].token)[0] == 0
    keys = all_keys(client, engine, w.log)
    body = read(client, token, w.log, "c-gone")
    assert {e["payload_status"] for e in body["entries"]} == {"erased"}
    for code, out in run_both(body, *key_args(keys)):
        assert code == 0, out
        assert "3 by key" in out or "3 writer signatures verified" in out


# --- evidence bundles ------------------------------------------------------------------------

BUNDLE_STANDALONE = Path(__file__).resolve().parents[1] / "ops" / "verify_bundle_standalone.py"


def export_and_verify(
    ledger_cli: Any, log_id: str, keys: list[str], tmp_path: Path, name: str
) -> list[tuple[int, str]]:
    """Export the whole log as a bundle; ``ledger verify-bundle`` and the standalone script."""
    import subprocess
    import sys

    path = tmp_path / f"{name}.zip"
    code, out, err = ledger_cli(
        "export",
        "--log",
        log_id,
        "--profile",
        "soc2-population",
        "--format",
        "bundle",
        "-o",
        str(path),
    )
    assert code == 0, err
    code, out, err = ledger_cli("verify-bundle", str(path), *key_args(keys))
    script = subprocess.run(
        [sys.executable, "-I", str(BUNDLE_STANDALONE), str(path), *key_args(keys)],
        capture_output=True,
        text=True,
        check=False,
    )
    return [(code, out + err), (script.returncode, script.stdout + script.stderr)]


def test_a_bundle_carries_the_writer_keys_and_both_verifiers_check_the_signatures(
    client: Any,
    engine: Engine,
    settings: Settings,
    writer: Any,
    ledger_cli: Any,
    tmp_path: Path,
) -> None:
    import zipfile

    w = writer()
    assert post(client, w, *(signed(w, n) for n in range(5))).status_code == 201
    keys = all_keys(client, engine, w.log)
    good = export_and_verify(ledger_cli, w.log, keys, tmp_path, "good")
    for tool, (code, out) in enumerate(good):
        assert code == 0, out
        assert "writer_signature" not in out, out
        assert "writer signatures verified: 5" in out or tool == 1, out
    with zipfile.ZipFile(tmp_path / "good.zip") as z:
        carried = json.loads(z.read("writer-keys.json"))["keys"]
        records = z.read("erasures/writer-keys.jsonl").splitlines()
        manifest = json.loads(z.read("manifest.json"))
    assert [k["kid"] for k in carried] == [w.key.kid]
    assert len(records) == 1 == manifest["erasures"]["writer_key_records"]
    assert manifest["erasures"]["records"] == 0
    # The ledger itself stores a statement the writer did not sign: named by its seq.
    seq = append_forged(engine, settings, w)
    bad = export_and_verify(ledger_cli, w.log, keys, tmp_path, "forged")
    for code, out in bad:
        assert code == 1, out
        assert str(seq) in out
        assert "writer_signature" in out
        assert "does not verify" in out


# --- the console's browser verifier (api/console/static/writer_signature.js), under node ------

CONSOLE_MODULE = (
    Path(__file__).resolve().parents[1] / "api" / "console" / "static" / "writer_signature.js"
)
NODE_RUNNER = """
import { writerSignatureProblem } from %s;
import { readFileSync } from "node:fs";
const trail = JSON.parse(readFileSync(process.argv[1], "utf8"));
const out = {};
for (const e of trail.entries) {
  const entry = JSON.parse(Buffer.from(e.entry_b64, "base64").toString("utf8"));
  if (!("writer_signature" in entry)) continue;
  out[e.seq] = await writerSignatureProblem(entry, trail.writer_keys);
}
console.log(JSON.stringify(out));
"""


def browser_problems(body: dict[str, Any], tmp_path: Path) -> dict[str, str | None]:
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the browser module is not run here")
    path = tmp_path / "trail-for-node.json"
    path.write_text(json.dumps(body))
    runner = NODE_RUNNER % json.dumps(CONSOLE_MODULE.as_uri())
    done = subprocess.run(
        [node, "--input-type=module", "-e", runner, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, str | None] = json.loads(done.stdout)
    return result


def test_the_console_module_checks_writer_signatures_as_the_python_verifiers_do(
    client: Any, engine: Engine, settings: Settings, token: Any, writer: Any, tmp_path: Path
) -> None:
    w = writer()
    assert post(client, w, *(signed(w, n, conversation="c-f") for n in range(3))).status_code == 201
    good = read(client, token, w.log, "c-f")
    assert browser_problems(good, tmp_path) == {"0": None, "1": None, "2": None}
    seq = append_forged(engine, settings, w)
    forged = read(client, token, w.log, "c-f")
    problems = browser_problems(forged, tmp_path)
    assert [k for k, v in problems.items() if v is not None] == [str(seq)]
    assert "does not verify" in str(problems[str(seq)])
    revoked = copy.deepcopy(good)
    revoked["writer_keys"][0]["revoked_at"] = "2000-01-01T00:00:00.000000Z"
    assert all("revoked" in str(v) for v in browser_problems(revoked, tmp_path).values())
