"""Trails and bundles carry writer keys as the tenant's system log records them (issue 18): each
``ledger.writer_key.added.v1`` / ``revoked.v1`` record's entry bytes, payload and inclusion proof
to the system log's signed checkpoint. The verifiers (``ledger verify-trail``,
``ops/verify_trail_standalone.py``, ``ledger verify-bundle``, ``ops/verify_bundle_standalone.py``)
take each key and its revocation time from those records, never from the ``writer_keys`` table
(the ledger's word) nor from the file's own key list.

Tampering: a revocation taken out of the table (ingest then takes the revoked key again), one
byte of a key record, a key record dropped from a bundle (its manifest signed again by the
log's own key): each verifier names the seq of every entry the key signed wrongly.
"""

from __future__ import annotations

import base64
import copy
import json
import zipfile
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine

from ledger.services.admin.writer_keys import revoke_writer_key
from ledger.settings import Settings
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import KeyRing
from ledger.storage.logs import get_log
from ledger.storage.writer_keys import writer_key_by_kid
from tests import test_verify_bundle, test_verify_trail, test_writer_signatures
from tests.conftest import TEST_ACTOR, now
from tests.test_bundle_v2 import tampered
from tests.test_trail import read
from tests.test_verify_tamper import _libpq
from tests.test_verify_trail import key_args
from tests.test_writer_signatures import Writer, post, signed
from tests.test_writer_signatures_offline import all_keys, export_and_verify

run_both = test_verify_trail.run_both
writer = test_writer_signatures.writer
keyring = test_writer_signatures.keyring
bundle_both = test_verify_bundle.run_both


def unrevoke_and_append(
    engine: Engine, db_url: str, settings: Settings, keyring: KeyRing, w: Writer
) -> int:
    """Revoke the writer's key (recorded in the system log), then, as someone who can switch
    the triggers off, take the revocation out of ``writer_keys`` and have the sequencer store a
    statement the revoked key signed: its seq."""
    from ledger.domain import AppendRequest, Principal
    from ledger.storage.keystore import DataKeyStore, SignerCache
    from ledger.storage.sequencer import append_batch
    from tests.test_writer_signatures import _prepared_signed

    with unit_of_work(engine) as conn:
        revoke_writer_key(conn, keyring, log_id=w.log, kid=w.key.kid, actor=TEST_ACTOR, now=now())
    with psycopg.connect(_libpq(db_url)) as conn:
        conn.execute("ALTER TABLE writer_keys DISABLE TRIGGER writer_keys_revoke_only")
        conn.execute("UPDATE writer_keys SET revoked_at = NULL WHERE kid = %s", (w.key.kid,))
        conn.execute("ALTER TABLE writer_keys ENABLE ALWAYS TRIGGER writer_keys_revoke_only")
    with unit_of_work(engine) as conn:
        record = writer_key_by_kid(conn, w.log, w.key.kid)
        assert record is not None
        assert record.revoked_at is None  # the table no longer says
        outcome = append_batch(
            conn,
            get_log(conn, w.log),
            [
                AppendRequest(
                    [_prepared_signed(w, record.id, forged=False)],
                    Principal(w.credential, w.log, "writer", "bot"),
                )
            ],
            signers=SignerCache(settings.master_key_bytes),
            data_keys=DataKeyStore(settings.master_key_bytes),
            now=now(),
        )
    result = outcome.results[0]
    assert not isinstance(result, Exception), result
    return result.receipts[0].seq


@pytest.fixture
def signed_log(client: Any, engine: Engine, writer: Any) -> tuple[Writer, list[str]]:
    """A log with three signed entries of conversation c-f (seqs 0-2), and all keys."""
    w = writer()
    assert post(client, w, *(signed(w, n, conversation="c-f") for n in range(3))).status_code == 201
    return w, all_keys(client, engine, w.log)


def test_a_trail_carries_the_key_records_with_their_proofs(
    client: Any, token: Any, signed_log: Any, run_both: Any
) -> None:
    w, keys = signed_log
    body = read(client, token, w.log, "c-f")
    carried = body["writer_key_records"]
    assert carried["origin"].endswith(".system") or "system" in carried["origin"]
    [record] = carried["records"]
    entry = json.loads(base64.b64decode(record["entry_b64"]))
    assert entry["event"]["type"] == "ledger.writer_key.added.v1"
    assert json.loads(base64.b64decode(record["payload_b64"]))["kid"] == w.key.kid
    # writer_keys restates the records (the console reads it), as before
    assert [(k["kid"], k["revoked_at"]) for k in body["writer_keys"]] == [(w.key.kid, None)]
    for code, out in run_both(body, *key_args(keys)):
        assert code == 0, out


def test_the_files_key_list_is_not_what_the_verifiers_trust(
    client: Any, token: Any, signed_log: Any, run_both: Any
) -> None:
    """An edited ``writer_keys`` changes nothing: the verifiers read the records."""
    w, keys = signed_log
    body = read(client, token, w.log, "c-f")
    edited = copy.deepcopy(body)
    edited["writer_keys"][0]["revoked_at"] = "2000-01-01T00:00:00.000000Z"
    for code, out in run_both(edited, *key_args(keys)):
        assert code == 0, out


def test_without_the_system_logs_key_a_signed_trail_cannot_be_checked(
    client: Any, token: Any, signed_log: Any, run_both: Any
) -> None:
    w, keys = signed_log
    body = read(client, token, w.log, "c-f")
    own = [k for k in keys if k.startswith(body["origin"] + "+")]
    for code, out in run_both(body, *key_args(own)):
        assert code == 2, out
        assert "system" in out


def test_a_revocation_taken_out_of_the_table_is_named_at_the_seq_by_every_verifier(
    client: Any,
    engine: Engine,
    db_url: str,
    settings: Settings,
    keyring: KeyRing,
    token: Any,
    signed_log: Any,
    run_both: Any,
    ledger_cli: Any,
    tmp_path: Path,
) -> None:
    w, keys = signed_log
    seq = unrevoke_and_append(engine, db_url, settings, keyring, w)
    body = read(client, token, w.log, "c-f")
    # The trail states the revocation the system log recorded, not the table's null.
    assert body["writer_keys"][0]["revoked_at"] is not None
    assert [r["seq"] for r in body["writer_key_records"]["records"]] == sorted(
        r["seq"] for r in body["writer_key_records"]["records"]
    )
    for code, out in run_both(body, *key_args(keys)):
        assert code == 1, out
        assert f"seq {seq}: writer_signature" in out, out
        assert "revoked" in out
        assert "seq 0: writer_signature" not in out  # signed before the revocation: valid
    for code, out in export_and_verify(ledger_cli, w.log, keys, tmp_path, "unrevoked"):
        assert code == 1, out
        assert f"seq {seq}: writer_signature" in out, out
        assert "revoked" in out, out


def _records(files: dict[str, bytes]) -> list[dict[str, Any]]:
    return [json.loads(x) for x in files["erasures/writer-keys.jsonl"].splitlines()]


def _put(files: dict[str, bytes], records: list[dict[str, Any]]) -> None:
    from ledger.core.canonical import canonicalize

    files["erasures/writer-keys.jsonl"] = b"".join(canonicalize(r) + b"\n" for r in records)


@pytest.mark.parametrize("edit", ["payload_byte", "entry_byte", "dropped"])
def test_a_key_record_changed_in_a_bundle_fails_every_entry_its_key_signed(
    engine: Engine,
    keyring: KeyRing,
    signed_log: Any,
    ledger_cli: Any,
    tmp_path: Path,
    bundle_both: Any,
    edit: str,
) -> None:
    """The ledger itself (holding the log's key, so the manifest is signed again) changes one
    byte of the key record, or leaves it out: each verifier names the seqs of the signed entries
    (and, where the record is there, its seq in the system log)."""
    w, keys = signed_log
    good = export_and_verify(ledger_cli, w.log, keys, tmp_path, "good")
    for code, out in good:
        assert code == 0, out
    with zipfile.ZipFile(tmp_path / "good.zip") as z:
        [record] = _records({"erasures/writer-keys.jsonl": z.read("erasures/writer-keys.jsonl")})

    def change(files: dict[str, bytes]) -> None:
        records = _records(files)
        if edit == "dropped":
            records = []
            del files[f"erasures/proofs/{record['seq']}.tlog-proof"]
            manifest = json.loads(files["manifest.json"])
            manifest["erasures"]["writer_key_records"] = 0
            from ledger.core.canonical import canonicalize

            files["manifest.json"] = canonicalize(manifest)
        else:
            field = "payload_b64" if edit == "payload_byte" else "entry_b64"
            raw = bytearray(base64.b64decode(records[0][field]))
            raw[len(raw) // 2] ^= 1
            records[0][field] = base64.b64encode(bytes(raw)).decode()
        _put(files, records)

    path = tampered(
        {"bundle": tmp_path / "good.zip", "engine": engine, "log": w.log, "ring": keyring},
        tmp_path,
        change,
    )
    for code, out in bundle_both(path, *key_args(keys)):
        assert code == 1, out
        for seq in (0, 1, 2):
            assert f"seq {seq}: writer_signature" in out, out
        assert "writer_signature" in out, out
        if edit != "dropped":
            assert f"system log seq {record['seq']})" in out, out
            assert "writer_key" in out, out


# --- a revocation the sequencer finds under the lock: the pointer names the event -------------


@pytest.mark.parametrize("as_batch", [True, False])
def test_a_revocation_refused_under_the_lock_points_at_the_event_as_posted(
    client: Any, engine: Engine, keyring: KeyRing, writer: Any, as_batch: bool
) -> None:
    """Ingest takes the key from the server's short cache (it was just used); the revocation
    commits meanwhile, and the sequencer refuses under the log's lock. A one-event batch
    (``{"events": [e]}``) is pointed at as ``/events/0/…``, a single event at ``/…``."""
    import orjson

    w = writer()
    assert post(client, w, signed(w, 0)).status_code == 201  # the key is in the server's cache
    with unit_of_work(engine) as conn:
        revoke_writer_key(conn, keyring, log_id=w.log, kid=w.key.kid, actor=TEST_ACTOR, now=now())
    event = signed(w, 1)
    r = client.post(
        f"/v1/logs/{w.log}/events",
        content=orjson.dumps({"events": [event]} if as_batch else event),
        headers={"Authorization": f"Bearer {w.token}", "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    problem = r.json()
    assert "the writer key was revoked" in problem["detail"]  # the sequencer's, not ingest's
    expected = "/events/0/writersignature" if as_batch else "/writersignature"
    assert problem["pointer"] == expected, problem


# --- the signature policy over HTTP (admins), recorded as the CLI's is ------------------------


def test_an_admin_sets_the_signature_policy_over_http_and_the_system_log_records_it(
    client: Any, engine: Engine, keyring: KeyRing, new_log: Any
) -> None:
    from sqlalchemy import text

    from ledger.services.admin.credentials import create_credential

    log_id = new_log()
    with unit_of_work(engine) as conn:
        admin = create_credential(
            conn, keyring, log_id=log_id, role="admin", label="a", actor=TEST_ACTOR, now=now()
        )
    url, auth = f"/v1/logs/{log_id}/signature-policy", {"Authorization": f"Bearer {admin.token}"}
    assert client.get(url, headers=auth).json() == {
        "log": log_id,
        "signatures": "optional",
        "previous": None,
    }
    r = client.put(url, json={"signatures": "required"}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == {"log": log_id, "signatures": "required", "previous": "optional"}
    assert client.get(url, headers=auth).json()["signatures"] == "required"
    bad = client.put(url, json={"signatures": "sometimes"}, headers=auth)
    assert bad.status_code == 422
    assert client.get(url, headers=auth).json()["signatures"] == "required"  # unchanged
    with unit_of_work(engine) as conn:
        tenant = get_log(conn, log_id).tenant
        changes = conn.execute(
            text(
                "SELECT count(*) FROM entries WHERE log_id = :s AND conversation_id = 'keys'"
                " AND event_type = 'ledger.log.signatures.changed.v1'"
            ),
            {"s": f"{tenant}.system"},
        ).scalar_one()
    assert changes == 1


# --- `ledger verify` holds unsigned entries to the policy the system log records ---------------


def _append_unsigned(engine: Engine, settings: Settings, w: Writer, n: int, *, at: Any) -> int:
    """An unsigned event stored past ingest (as a server that missed the policy change
    would), received at ``at``: its seq."""
    from ledger.domain import AppendRequest, Principal
    from ledger.events import GuardPolicy, validate_event
    from ledger.services.ingest.prepare import prepare
    from ledger.storage.keystore import DataKeyStore, SignerCache
    from ledger.storage.sequencer import append_batch
    from tests.conftest import make_event

    event = prepare(
        validate_event(
            make_event("c-u", n), policy=GuardPolicy(cards="reject"), fingerprint_key=b"k" * 32
        )
    )
    with unit_of_work(engine) as conn:
        outcome = append_batch(
            conn,
            get_log(conn, w.log),
            [AppendRequest([event], Principal(w.credential, w.log, "writer", "bot"))],
            signers=SignerCache(settings.master_key_bytes),
            data_keys=DataKeyStore(settings.master_key_bytes),
            now=at,
        )
    result = outcome.results[0]
    assert not isinstance(result, Exception), result
    return result.receipts[0].seq


def test_ledger_verify_names_an_unsigned_entry_received_while_signatures_were_required(
    engine: Engine, settings: Settings, writer: Any, ledger_cli: Any, verifier_env: Any
) -> None:
    from datetime import timedelta

    w = writer(policy="required")
    # Within the grace (servers apply a policy within 30 s, a queued batch may wait): accepted.
    _append_unsigned(engine, settings, w, 0, at=now() + timedelta(seconds=5))
    code, out, err = ledger_cli("verify", "--log", w.log, "--full", "--json")
    assert code == 0, out + err
    late = _append_unsigned(engine, settings, w, 1, at=now() + timedelta(seconds=120))
    code, out, _ = ledger_cli("verify", "--log", w.log, "--full", "--json")
    assert code == 1, out
    failure = json.dumps(json.loads(out))
    assert f'"seq": {late}' in failure
    assert "policy was required" in failure


# --- the writer attributes: one exact shape each, not scanned by the card guard -----------------


def _envelope(**extra: Any) -> dict[str, Any]:
    from tests.conftest import make_event

    return {**make_event("c-1", 0), **extra}


SALT_WITH_A_CARD_NUMBER = "-4111111111111111-" + "A" * 25
"""A valid salt shape (43 base64url characters, 32 bytes) that holds a Luhn-valid test PAN: it
is 32 bytes the writer chose, not card data, and the guard no longer scans it."""


def test_a_salt_is_taken_by_its_shape_not_scanned_for_card_numbers() -> None:
    from ledger.events.envelope import parse_envelope
    from ledger.events.guard import find_pans

    assert find_pans(SALT_WITH_A_CARD_NUMBER, first=True)  # the guard would have refused it
    parsed = parse_envelope(_envelope(datasalt=SALT_WITH_A_CARD_NUMBER))
    assert parsed.attributes["datasalt"] == SALT_WITH_A_CARD_NUMBER


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("datasalt", "A" * 42),  # 31.5 bytes
        ("datasalt", "A" * 42 + "B"),  # spare bits set: not canonical
        ("datasalt", "A" * 43 + "="),  # padded
        ("datasalt", "A" * 42 + "+"),  # base64, not base64url
        ("datasalt", 12),
        ("writersignature", "eyJ.x.AA"),  # not detached
        ("writersignature", "eyJ..AA AA"),  # a space: free text
        ("writersignature", "eyJ..4111 1111 1111 1111"),
        ("writersignature", "e" * 1000 + ".." + "A" * 86),  # over 1024 characters
        ("writersignature", ["eyJ..AA"]),
    ],
)
def test_a_writer_attribute_of_any_other_shape_is_refused_at_it(name: str, value: Any) -> None:
    from ledger.errors import EventInvalid
    from ledger.events.envelope import parse_envelope

    with pytest.raises(EventInvalid) as refused:
        parse_envelope(_envelope(**{name: value}))
    assert refused.value.pointer == f"/{name}"
    assert "'c-1-evt-0'" in refused.value.detail
