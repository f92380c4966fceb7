"""Evidence bundle v2 on real PostgreSQL: a bundle over a log with an erased conversation and a
retention-shredded one carries, for every erased payload, the signed system-log record that
covers it (its bytes, a tlog-proof, the system log's checkpoint) and the witness cosignatures
the database holds for its checkpoint; both verifiers check them.

Tampering is done as a ledger holding its own signing key would do it: a file is changed and
the manifest re-hashed and signed again, so only the v2 checks themselves can catch it (a change
without re-signing is caught by the manifest's file digests, as for any file). One byte of an
erasure record, of a cosignature, of the system log's checkpoint: each is a failure, exit 1;
a record removed leaves each payload it covered failed at its seq.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from ledger.core.canonical import canonicalize
from ledger.core.cosignature import Cosigner
from ledger.core.note import parse_note, sign_note
from ledger.services.privacy.retention import run_retention
from ledger.settings import Settings
from ledger.storage.anchorings import insert_cosignature
from ledger.storage.checkpoints import latest_checkpoint
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import KeyRing, active_key_id
from ledger.storage.logs import get_log
from tests.conftest import now as clock
from tests.test_ingest_api import auth
from tests.test_privacy import Ledger, said_by
from tests.test_retention import DAY, append_at
from tests.test_verify_bundle import (
    assert_cannot_run,
    assert_fails,
    assert_verified,
    change_one_byte,
    run_both,
)

__all__ = ["run_both"]  # fixture
V2 = "handoff-ledger/evidence-bundle/v2"
WITNESS = Cosigner("witness.example", bytes(range(32)))


@pytest.fixture
def keys(settings: Settings) -> KeyRing:
    return KeyRing.from_master(settings.master_key_bytes)


@pytest.fixture
def exported(
    client: Any, new_log: Any, token: Any, engine: Engine, keys: KeyRing, tmp_path: Path
) -> dict[str, Any]:
    """A bundle of a whole log: conversation b (seqs 0-2) erased by two admins, conversation
    old (seq 5, 40 days old under a 30-day period) shredded by retention, a kept; its checkpoint
    cosigned by a witness. Returns the paths and the keys file (the log's and its system log's
    keys)."""
    led = Ledger(client, token, new_log())
    r = led.post(*[said_by("cust-b", "b", n) for n in range(3)])
    assert r.status_code == 201, r.text
    r = led.post(*[said_by("cust-a", "a", n) for n in range(2)])
    assert r.status_code == 201, r.text
    append_at(engine, keys, led.log, clock() - 40 * DAY, ("old", "cust-o", 0))
    led.approved(led.erase(conversation="b"))
    with unit_of_work(engine) as conn:
        from ledger.services.admin.credentials import authenticate
        from ledger.services.privacy.approve import approve
        from ledger.services.privacy.retention import request_retention_change

        first, second = authenticate(conn, led.admin1), authenticate(conn, led.admin2)
        asked = request_retention_change(
            conn, keys, get_log(conn, led.log), 30, legal_basis="minimisation",
            reference="RET-9", requester=first, now=clock(),
        )  # fmt: skip
    with unit_of_work(engine) as conn:
        approve(conn, keys, get_log(conn, led.log), asked.id, approver=second, now=clock())
    run_retention(engine, keys, now=clock(), actor={"kind": "system", "id": "t"}, log_ids=[led.log])
    with unit_of_work(engine) as conn:  # the witness cosigns the checkpoint the bundle is read at
        cp = latest_checkpoint(conn, led.log)
        text = parse_note(cp.note).text
        line = WITNESS.cosign(text, 1_700_000_000)
        insert_cosignature(
            conn,
            led.log,
            witness=WITNESS.verifier.verifier_key(),
            size=cp.size,
            root=cp.root,
            line=line,
            timestamp=1_700_000_000,
        )
    r = client.post(
        f"/v1/logs/{led.log}/exports",
        json={"profile": "soc2-population"},
        headers=auth(led.auditor),
    )
    assert r.status_code == 200, r.text
    bundle = tmp_path / "v2.zip"
    bundle.write_bytes(r.content)
    keys_file = tmp_path / "keys"
    keys_file.write_text(
        client.get(f"/v1/logs/{led.log}/verifier-key").text
        + client.get(f"/v1/logs/{led.log}.system/verifier-key").text
    )
    return {"bundle": bundle, "keys": keys_file, "log": led.log, "engine": engine, "ring": keys}


def args(exported: dict[str, Any]) -> list[str]:
    return ["--verifier-keys-file", str(exported["keys"])]


def test_a_v2_bundle_carries_and_verifies_its_erasure_records_and_cosignatures(
    exported: dict[str, Any], run_both: Any
) -> None:
    with zipfile.ZipFile(exported["bundle"]) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("manifest.json"))
        records = [json.loads(x) for x in z.read("erasures/records.jsonl").splitlines()]
    assert manifest["format"] == V2
    assert manifest["erasures"]["records"] == 2 == len(records)
    assert {"erasures/checkpoint", "erasures/verifier-keys", "witnesses.json"} <= names
    assert {f"erasures/proofs/{r['seq']}.tlog-proof" for r in records} <= names
    results = run_both(exported["bundle"], *args(exported))
    assert_verified(results)
    assert "witness.example" in results[0][1]
    assert "witness.example" in results[1][1]

    for tool in (0, 1):  # the same counts from both tools' --json
        report = json_report(run_both, exported, tool)
        assert report["erasures"] == {"by_erasure": 3, "by_retention": 1, "records": 2}
        assert [w["checkpoint"] for w in report["witnesses"]] == ["checkpoint"]


def json_report(run_both: Any, exported: dict[str, Any], tool: int) -> dict[str, Any]:
    code, out = run_both(exported["bundle"], *args(exported), "--json")[tool]
    assert code == 0, out
    report: dict[str, Any] = json.loads(out[out.index("{") :])
    return report


def test_without_the_system_logs_key_it_cannot_run(
    exported: dict[str, Any], run_both: Any, tmp_path: Path
) -> None:
    only_log = tmp_path / "log.keys"
    only_log.write_text(exported["keys"].read_text().splitlines()[0] + "\n")
    assert_cannot_run(
        run_both(exported["bundle"], "--verifier-keys-file", str(only_log)), ".system"
    )


# --- tampering, the manifest signed again ---------------------------------------------------------


def tampered(
    exported: dict[str, Any], tmp_path: Path, edit: Callable[[dict[str, bytes]], None]
) -> Path:
    """The bundle with ``edit`` applied to its files, re-hashed and re-signed with the log's
    own key."""
    with zipfile.ZipFile(exported["bundle"]) as z:
        files = {n: z.read(n) for n in z.namelist()}
    edit(files)
    manifest = json.loads(files["manifest.json"])
    manifest["files"] = {
        n: hashlib.sha256(d).hexdigest()
        for n, d in sorted(files.items())
        if n not in ("manifest.json", "manifest.sig")
    }
    files["manifest.json"] = canonicalize(manifest)
    digest = hashlib.sha256(files["manifest.json"]).hexdigest()
    ring: KeyRing = exported["ring"]
    with unit_of_work(exported["engine"]) as conn:
        log = get_log(conn, exported["log"])
        key_id = active_key_id(conn, log.id)
        assert key_id is not None
        signer = ring.signers.get(conn, log.id, key_id)
    files["manifest.sig"] = sign_note(f"{V2}\n{log.origin}\n{digest}\n", [signer]).encode()
    path = tmp_path / "tampered.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def erased_seqs(exported: dict[str, Any]) -> list[int]:
    with zipfile.ZipFile(exported["bundle"]) as z:
        lines = [json.loads(x) for x in z.read("entries.jsonl").splitlines()]
    return [line["seq"] for line in lines if line["payload_status"] == "erased"]


def edit_record_payload(files: dict[str, bytes]) -> None:
    """One byte of the first record's payload (the record itself, not its framing)."""
    lines = files["erasures/records.jsonl"].splitlines()
    first = json.loads(lines[0])
    payload = base64.b64decode(first["payload_b64"])
    first["payload_b64"] = base64.b64encode(change_one_byte(payload)).decode()
    lines[0] = canonicalize(first)
    files["erasures/records.jsonl"] = b"\n".join(lines) + b"\n"


def edit_record_entry(files: dict[str, bytes]) -> None:
    """One byte of the second record's entry bytes (leaf hash recomputed to match)."""
    lines = files["erasures/records.jsonl"].splitlines()
    second = json.loads(lines[1])
    entry = change_one_byte(base64.b64decode(second["entry_b64"]))
    second["entry_b64"] = base64.b64encode(entry).decode()
    second["leaf_hash"] = base64.b64encode(hashlib.sha256(b"\x00" + entry).digest()).decode()
    lines[1] = canonicalize(second)
    files["erasures/records.jsonl"] = b"\n".join(lines) + b"\n"


def edit_cosignature(files: dict[str, bytes]) -> None:
    witnesses = json.loads(files["witnesses.json"])
    line = witnesses["cosignatures"][0]["cosignature"]
    name, sig = line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 0x01  # one bit of the Ed25519 signature
    witnesses["cosignatures"][0]["cosignature"] = f"{name} {base64.b64encode(raw).decode()}\n"
    files["witnesses.json"] = canonicalize(witnesses)


def edit_system_checkpoint(files: dict[str, bytes]) -> None:
    files["erasures/checkpoint"] = change_one_byte(files["erasures/checkpoint"])


def drop_records(files: dict[str, bytes]) -> None:
    files["erasures/records.jsonl"] = b""
    for name in [n for n in files if n.startswith("erasures/proofs/")]:
        del files[name]
    manifest = json.loads(files["manifest.json"])
    manifest["erasures"]["records"] = 0
    files["manifest.json"] = canonicalize(manifest)


def no_erasures_section(files: dict[str, bytes]) -> None:
    for name in [n for n in files if n.startswith("erasures/")]:
        del files[name]
    files["witnesses.json"] = canonicalize(
        {
            "cosignatures": [
                c
                for c in json.loads(files["witnesses.json"])["cosignatures"]
                if c["checkpoint"] == "checkpoint"
            ]
        }
    )
    manifest = json.loads(files["manifest.json"])
    manifest["erasures"] = None
    files["manifest.json"] = canonicalize(manifest)


def test_one_byte_of_an_erasure_records_payload(
    exported: dict[str, Any], tmp_path: Path, run_both: Any
) -> None:
    results = run_both(tampered(exported, tmp_path, edit_record_payload), *args(exported))
    assert_fails(results, "erasure", "commitment", "erased payload without a valid erasure record")


def test_one_byte_of_an_erasure_records_entry(
    exported: dict[str, Any], tmp_path: Path, run_both: Any
) -> None:
    results = run_both(tampered(exported, tmp_path, edit_record_entry), *args(exported))
    assert_fails(results, "erasure", "erased payload without a valid erasure record")


def test_a_forged_cosignature(exported: dict[str, Any], tmp_path: Path, run_both: Any) -> None:
    results = run_both(tampered(exported, tmp_path, edit_cosignature), *args(exported))
    assert_fails(results, "witnesses.json", "witness", "cosignature 0")


def test_one_byte_of_the_system_logs_checkpoint(
    exported: dict[str, Any], tmp_path: Path, run_both: Any
) -> None:
    results = run_both(tampered(exported, tmp_path, edit_system_checkpoint), *args(exported))
    assert_fails(results, "erasures/checkpoint", "erased payload without a valid erasure record")


@pytest.mark.parametrize("edit", [drop_records, no_erasures_section])
def test_erased_payloads_without_their_records_fail_at_their_seqs(
    exported: dict[str, Any], tmp_path: Path, run_both: Any, edit: Callable[..., None]
) -> None:
    seqs = erased_seqs(exported)
    assert len(seqs) == 4
    results = run_both(tampered(exported, tmp_path, edit), *args(exported))
    assert_fails(results, *[f"seq {s}: erasure" for s in seqs])


def test_the_events_checkpoint_changed_breaks_its_cosignature_too(
    exported: dict[str, Any], tmp_path: Path, run_both: Any
) -> None:
    def edit(files: dict[str, bytes]) -> None:
        files["checkpoint"] = change_one_byte(files["checkpoint"])

    assert_fails(run_both(tampered(exported, tmp_path, edit), *args(exported)), "checkpoint")


def test_a_v1_bundle_still_verifies(
    exported: dict[str, Any], tmp_path: Path, run_both: Any
) -> None:
    """Written as version 1 was (no erasures/, no witnesses.json, no erasures field): still
    verified, the erased payloads' records named as not proven."""

    def as_v1(files: dict[str, bytes]) -> None:
        no_erasures_section(files)
        del files["witnesses.json"]
        manifest = json.loads(files["manifest.json"])
        del manifest["erasures"]
        manifest["format"] = "handoff-ledger/evidence-bundle/v1"
        files["manifest.json"] = canonicalize(manifest)

    path = tampered(exported, tmp_path, as_v1)
    with zipfile.ZipFile(path) as z:  # re-sign as v1
        files = {n: z.read(n) for n in z.namelist()}
    sig = files["manifest.sig"].decode().replace(V2, "handoff-ledger/evidence-bundle/v1", 1)
    ring: KeyRing = exported["ring"]
    with unit_of_work(exported["engine"]) as conn:
        log = get_log(conn, exported["log"])
        key_id = active_key_id(conn, log.id)
        assert key_id is not None
        signer = ring.signers.get(conn, log.id, key_id)
    files["manifest.sig"] = sign_note(parse_note(sig).text, [signer]).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    results = run_both(path, *args(exported))
    assert_verified(results)


def test_cosignatures_under_the_witness_keys_you_trust(
    exported: dict[str, Any], tmp_path: Path, run_both: Any
) -> None:
    """A ledger that forges a 'witness' of its own (its key and its cosignature, both in the
    bundle) passes the signature check alone; naming the real witness's key catches it."""
    real = ["--witness-key", WITNESS.verifier.verifier_key()]
    assert_verified(run_both(exported["bundle"], *args(exported), *real))

    impostor = Cosigner("witness.example", bytes(32))

    def forge(files: dict[str, bytes]) -> None:
        witnesses = json.loads(files["witnesses.json"])
        text = parse_note(files["checkpoint"].decode()).text
        witnesses["cosignatures"][0] = {
            "checkpoint": "checkpoint",
            "witness_key": impostor.verifier.verifier_key(),
            "cosignature": impostor.cosign(text, 1_700_000_001),
        }
        files["witnesses.json"] = canonicalize(witnesses)

    forged = tampered(exported, tmp_path, forge)
    assert_verified(run_both(forged, *args(exported)))  # checks out under the key it names
    assert_fails(run_both(forged, *args(exported), *real), "witness", "did not name")
