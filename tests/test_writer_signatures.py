"""Writer signatures (issue 18): keys, policy, ingest's refusals, and `ledger verify`'s re-check.

Events are signed as a writer signs them, with ``ledger.client.sign_event`` (the private key
stays in the test); each refusal is a 422 naming the event and its reason, with nothing stored.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.signing
import orjson
import pytest
from sqlalchemy import Engine

from ledger.cli import build_parser
from ledger.client import WriterSigningKey, generate_signing_key, sign_event, statement_for
from ledger.core.canonical import canonicalize
from ledger.core.commitment import new_salt, payload_commitment
from ledger.core.entry import EventHeader
from ledger.core.writer_signature import (
    WriterKey,
    WriterKeyring,
    b64url,
    key_thumbprint,
    parse_jws,
    sign_statement,
    statement_bytes,
)
from ledger.domain import AppendRequest, PreparedEvent, Principal
from ledger.errors import WriterSignatureInvalid
from ledger.services.admin.credentials import create_credential
from ledger.services.admin.writer_keys import (
    add_writer_key,
    parse_public_key,
    revoke_writer_key,
    set_signature_policy,
)
from ledger.settings import Settings
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import DataKeyStore, KeyRing, SignerCache
from ledger.storage.logs import get_log
from ledger.storage.sequencer import append_batch
from tests.conftest import TEST_ACTOR, make_event, now


@dataclass
class Writer:
    log: str
    origin: str
    credential: int
    token: str
    key: WriterSigningKey


@pytest.fixture
def keyring(settings: Settings) -> KeyRing:
    return KeyRing.from_master(settings.master_key_bytes)


@pytest.fixture
def writer(engine: Engine, keyring: KeyRing, new_log: Any) -> Any:
    """``writer(log_id=None, policy=None)``: a writer credential with a registered key."""

    def make(log_id: str | None = None, policy: str | None = None) -> Writer:
        log_id = log_id or new_log()
        key = generate_signing_key()
        with unit_of_work(engine) as conn:
            cred = create_credential(
                conn,
                keyring,
                log_id=log_id,
                role="writer",
                label="bot",
                actor=TEST_ACTOR,
                now=now(),
            )
            add_writer_key(
                conn,
                keyring,
                log_id=log_id,
                credential_id=cred.id,
                public_key=key.public_key_b64url,
                actor=TEST_ACTOR,
                now=now(),
            )
            if policy is not None:
                set_signature_policy(
                    conn, keyring, log_id=log_id, policy=policy, actor=TEST_ACTOR, now=now()
                )
            origin = get_log(conn, log_id).origin
        return Writer(log_id, origin, cred.id, cred.token, key)

    return make


def post(client: Any, w: Writer, *events: dict[str, Any]) -> Any:
    return client.post(
        f"/v1/logs/{w.log}/events",
        content=orjson.dumps({"events": list(events)}),
        headers={"Authorization": f"Bearer {w.token}", "Content-Type": "application/json"},
    )


def size(client: Any, log_id: str) -> int:
    return int(client.get(f"/v1/logs/{log_id}/checkpoint").text.split("\n")[1])


def entries(engine: Engine, log_id: str) -> list[dict[str, Any]]:
    from sqlalchemy import text

    with unit_of_work(engine) as conn:
        rows = conn.execute(
            text("SELECT entry FROM entries WHERE log_id = :log ORDER BY seq"), {"log": log_id}
        )
        return [json.loads(bytes(r[0])) for r in rows]


def signed(w: Writer, n: int = 0, conversation: str = "c-1", **data: Any) -> dict[str, Any]:
    return sign_event(make_event(conversation, n, **data), origin=w.origin, key=w.key)


def reheader(jws: str, header: dict[str, Any]) -> str:
    """The JWS with another protected header (its signature left as it was)."""
    return b64url(orjson.dumps(header)) + ".." + jws.split("..")[1]


# --- the signed statement and the JWS --------------------------------------------------------


def test_a_signed_batch_is_stored_with_its_jws_and_verifies_from_the_entry_alone(
    client: Any, engine: Engine, writer: Any
) -> None:
    w = writer(policy="required")
    events = [signed(w, n, conversation=f"c-{n % 2}") for n in range(4)]
    r = post(client, w, *events)
    assert r.status_code == 201, r.text
    stored = entries(engine, w.log)
    assert [e["writer_signature"] for e in stored] == [e["writersignature"] for e in events]
    ring = WriterKeyring(
        [WriterKey(w.key.kid, w.credential, w.key.public_key, "2000-01-01T00:00:00.000000Z")]
    )
    for entry, event in zip(stored, events, strict=True):
        assert ring.check_entry(entry) is None
        salt = base64.urlsafe_b64decode(event["datasalt"] + "=")
        # What the writer signed is exactly what the entry lets anyone rebuild.
        assert statement_for(event, origin=w.origin, salt=salt) == statement_bytes(entry)
        assert entry["writer"]["credential"] == w.credential
    # A retry of the same signed bytes is answered with the same receipts, nothing added.
    again = post(client, w, *events)
    assert again.status_code == 200
    assert again.json()["receipts"] == r.json()["receipts"]
    assert size(client, w.log) == 4


def test_the_statement_uses_the_time_as_the_ledger_normalises_it(
    client: Any, engine: Engine, writer: Any
) -> None:
    w = writer()
    event = make_event("c-9", 1)
    event["time"] = "2026-11-20T10:14:01.5+01:00"
    # Trace context is kept in the entry's event object, so it is part of what is signed.
    event["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = post(client, w, sign_event(event, origin=w.origin, key=w.key))
    assert r.status_code == 201, r.text
    stored = entries(engine, w.log)[0]
    assert stored["event"]["time"] == "2026-11-20T09:14:01.500000Z"
    assert stored["event"]["traceparent"] == event["traceparent"]


def test_one_byte_of_the_statement_changed_fails_the_signature() -> None:
    key = generate_signing_key()
    ring = WriterKeyring([WriterKey(key.kid, 7, key.public_key, "2026-01-01T00:00:00.000000Z")])
    salt = new_salt()
    statement_entry = {
        "actor": {"kind": "ai", "id": "bot"},
        "event": {"id": "e-1", "time": "2026-11-20T09:14:01.000000Z"},
        "origin": "ledger.test/x",
        "outcome": "success",
        "payload": {
            "alg": "sha256-salted",
            "commitment": base64.b64encode(payload_commitment(salt, b"{}")).decode(),
        },
        "writer": {"credential": 7},
        "received_at": "2026-11-20T09:14:02.000000Z",
    }
    statement_entry["writer_signature"] = sign_statement(statement_bytes(statement_entry), key.key)
    assert ring.check_entry(statement_entry) is None
    commitment = statement_entry["payload"]["commitment"]
    flipped = ("B" if commitment[0] == "A" else "A") + commitment[1:]
    tampered = {**statement_entry, "payload": {"alg": "sha256-salted", "commitment": flipped}}
    assert "does not verify" in (ring.check_entry(tampered) or "")
    other_writer = {**statement_entry, "writer": {"credential": 8}}
    assert "belongs to credential 7" in (ring.check_entry(other_writer) or "")
    revoked = WriterKeyring(
        [
            WriterKey(
                key.kid,
                7,
                key.public_key,
                "2026-01-01T00:00:00.000000Z",
                revoked_at="2026-11-20T09:14:02.000000Z",
            )
        ]
    )
    assert "revoked" in (revoked.check_entry(statement_entry) or "")
    # A key list that swaps in another public key under the same kid is caught by the kid.
    other = generate_signing_key()
    swapped = WriterKeyring(
        [WriterKey(key.kid, 7, other.public_key, "2026-01-01T00:00:00.000000Z")]
    )
    assert "is not the key it names" in (swapped.check_entry(statement_entry) or "")


def test_kid_is_the_rfc_7638_thumbprint() -> None:
    # RFC 8037 Appendix A.3: the thumbprint of its example Ed25519 public key.
    x = base64.urlsafe_b64decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
    assert key_thumbprint(x) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_rfc_8037_jws_example_verifies_with_our_signature_check() -> None:
    """RFC 8037 Appendix A.4 signs "Example of Ed25519 signing" with an encoded payload; our
    verifier takes only unencoded ones, so check the same key and signature primitive by hand."""
    seed = base64.urlsafe_b64decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
    key = nacl.signing.SigningKey(seed)
    signing_input = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
    expected = (
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    )
    assert b64url(key.sign(signing_input).signature) == expected


@pytest.mark.parametrize(
    ("jws", "reason"),
    [
        ("", "compact JWS"),
        ("a.b.c", "detached"),
        ("!!..AAAA", "base64url"),
        (b64url(b"[1]") + "..AA", "not a JSON object"),
        (b64url(b'{"alg":"none","b64":false,"crit":["b64"],"kid":"k"}') + "..", 'alg "none"'),
        (b64url(b'{"alg":"ES256","b64":false,"crit":["b64"],"kid":"k"}') + "..AA", "EdDSA"),
        (b64url(b'{"alg":"EdDSA","kid":"k"}') + "..AA", "b64"),
        (b64url(b'{"alg":"EdDSA","b64":false,"crit":["b64"]}') + "..AA", "kid"),
        (
            b64url(b'{"alg":"EdDSA","b64":false,"crit":["b64"],"kid":"k","jku":"x"}') + "..AA",
            "unknown header",
        ),
        (  # free text would stay in the entry for ever, erasure or not
            b64url(b'{"alg":"EdDSA","b64":false,"crit":["b64"],"kid":"k","typ":"c 4111"}') + "..AA",
            "unknown header",
        ),
        (b64url(b'{"alg":"EdDSA","b64":false,"crit":["b64"],"kid":"k"}') + "..AAAA", "64 bytes"),
    ],
)
def test_malformed_jws_is_refused_with_its_reason(jws: str, reason: str) -> None:
    with pytest.raises(WriterSignatureInvalid, match=reason):
        parse_jws(jws)


def test_public_keys_are_read_in_every_documented_form_and_nothing_else() -> None:
    key = generate_signing_key()
    raw = key.public_key
    assert parse_public_key(b64url(raw)) == raw
    assert parse_public_key(base64.b64encode(raw).decode()) == raw
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    pem = (
        Ed25519PublicKey.from_public_bytes(raw)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert parse_public_key(pem) == raw
    for bad in ("", "abc", b64url(raw[:31]), "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END"):
        with pytest.raises(WriterSignatureInvalid):
            parse_public_key(bad)


# --- ingest's refusals: 422 naming the event and the reason, nothing stored ------------------


def _tampered_data(w: Writer, other: Writer) -> dict[str, Any]:
    event = signed(w, 1)
    event["data"] = {**event["data"], "message_id": "m-999"}
    return event


def _other_writers_key(w: Writer, other: Writer) -> dict[str, Any]:
    return sign_event(make_event("c-1", 1), origin=w.origin, key=other.key)


def _unknown_key(w: Writer, other: Writer) -> dict[str, Any]:
    return sign_event(make_event("c-1", 1), origin=w.origin, key=generate_signing_key())


def _alg_hs256(w: Writer, other: Writer) -> dict[str, Any]:
    event = signed(w, 1)
    event["writersignature"] = reheader(
        event["writersignature"],
        {"alg": "HS256", "b64": False, "crit": ["b64"], "kid": w.key.kid},
    )
    return event


def _alg_none(w: Writer, other: Writer) -> dict[str, Any]:
    event = signed(w, 1)
    header = {"alg": "none", "b64": False, "crit": ["b64"], "kid": w.key.kid}
    event["writersignature"] = b64url(orjson.dumps(header)) + ".."
    return event


def _malformed(w: Writer, other: Writer) -> dict[str, Any]:
    event = signed(w, 1)
    event["writersignature"] = event["writersignature"].replace("..", ".x.")
    return event


def _no_salt(w: Writer, other: Writer) -> dict[str, Any]:
    event = signed(w, 1)
    del event["datasalt"]
    return event


def _other_origin(w: Writer, other: Writer) -> dict[str, Any]:
    return sign_event(make_event("c-1", 1), origin=other.origin, key=w.key)


def _unsigned_on_required(w: Writer, other: Writer) -> dict[str, Any]:
    return make_event("c-1", 1)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (_tampered_data, "does not verify"),
        (_other_writers_key, "belongs to another writer"),
        (_unknown_key, "unknown writer key"),
        (_alg_hs256, "alg must be"),
        (_alg_none, 'alg "none" is refused'),
        (_malformed, "detached"),
        (_no_salt, "carries the salt"),
        (_other_origin, "does not verify"),
        (_unsigned_on_required, "requires writer signatures"),
    ],
)
def test_a_bad_event_in_a_signed_batch_is_refused_whole(
    client: Any, writer: Any, bad: Any, reason: str
) -> None:
    w = writer(policy="required")
    other = writer()
    # another writer of the same log, with its own key
    other_same_log = writer(log_id=w.log)
    if bad is _other_writers_key:
        other = other_same_log
    before = size(client, w.log)
    r = post(client, w, signed(w, 0), bad(w, other), signed(w, 2))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert reason in problem["detail"]
    assert "'c-1-evt-1'" in problem["detail"]  # names the event
    assert problem["pointer"].startswith("/events/1/")
    assert size(client, w.log) == before


def test_a_signature_on_a_log_whose_policy_is_off_is_refused(client: Any, writer: Any) -> None:
    w = writer(policy="off")
    r = post(client, w, signed(w, 0))
    assert r.status_code == 422
    assert "policy is off" in r.json()["detail"]
    assert post(client, w, make_event("c-1", 0)).status_code == 201


def test_optional_policy_takes_both_and_a_salt_alone_is_refused(client: Any, writer: Any) -> None:
    w = writer()  # default policy: optional
    assert post(client, w, signed(w, 0), make_event("c-1", 1)).status_code == 201
    lone_salt = {**make_event("c-1", 2), "datasalt": b64url(new_salt())}
    r = post(client, w, lone_salt)
    assert r.status_code == 422
    assert "only taken with" in r.json()["detail"]


def test_a_masked_signed_event_is_refused(client: Any, new_log: Any, writer: Any) -> None:
    w = writer(log_id=new_log(card_policy="mask"))
    event = make_event("c-1", 0)
    event["data"]["content"] = {"parts": [{"type": "text", "content": "card 4111 1111 1111 1111"}]}
    r = post(client, w, sign_event(event, origin=w.origin, key=w.key))
    assert r.status_code == 422
    assert "mask it before signing" in r.json()["detail"]


def test_a_revoked_key_signs_nothing_received_after_and_what_it_signed_stays_valid(
    client: Any,
    engine: Engine,
    keyring: KeyRing,
    writer: Any,
    ledger_cli: Any,
    verifier_env: Any,
) -> None:
    w = writer(policy="required")
    assert post(client, w, signed(w, 0)).status_code == 201
    with unit_of_work(engine) as conn:
        record = revoke_writer_key(
            conn, keyring, log_id=w.log, kid=w.key.kid, actor=TEST_ACTOR, now=now()
        )
    assert record.revoked_at is not None
    r = post(client, w, signed(w, 1))
    assert r.status_code == 422
    assert "revoked" in r.json()["detail"]
    assert size(client, w.log) == 1
    # The entry signed before the revocation still checks out, for `ledger verify` too.
    code, out, err = ledger_cli("verify", "--log", w.log, "--full", "--json")
    assert code == 0, (out, err)


def test_a_key_revoked_while_a_request_waits_is_refused_under_the_lock(
    engine: Engine, keyring: KeyRing, settings: Settings, writer: Any
) -> None:
    """Ingest checked the key; the revocation commits before the batch takes the log's lock:
    the sequencer refuses the request (the verifiers would otherwise flag the entry)."""
    w = writer()
    with unit_of_work(engine) as conn:
        log = get_log(conn, w.log)
        from ledger.storage.writer_keys import writer_key_by_kid

        record = writer_key_by_kid(conn, w.log, w.key.kid)
    assert record is not None
    event = _prepared_signed(w, record.id, forged=False)
    with unit_of_work(engine) as conn:
        revoke_writer_key(conn, keyring, log_id=w.log, kid=w.key.kid, actor=TEST_ACTOR, now=now())
    with unit_of_work(engine) as conn:
        outcome = append_batch(
            conn,
            log,
            [AppendRequest([event], Principal(w.credential, w.log, "writer", "bot"))],
            signers=SignerCache(settings.master_key_bytes),
            data_keys=DataKeyStore(settings.master_key_bytes),
            now=now(),
        )
    assert outcome.appended == 0
    assert "revoked" in str(outcome.results[0])


def test_keys_and_policy_changes_are_system_log_events_and_keys_are_never_deleted(
    engine: Engine, keyring: KeyRing, writer: Any, db_url: str
) -> None:
    import psycopg
    from sqlalchemy import text

    w = writer(policy="required")
    with unit_of_work(engine) as conn:
        revoke_writer_key(conn, keyring, log_id=w.log, kid=w.key.kid, actor=TEST_ACTOR, now=now())
        log = get_log(conn, w.log)
        types = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT event_type FROM entries WHERE log_id = :s AND conversation_id = 'keys'"
                    " ORDER BY seq"
                ),
                {"s": f"{log.tenant}.system"},
            )
        ]
    assert types[-3:] == [
        "ledger.writer_key.added.v1",
        "ledger.log.signatures.changed.v1",
        "ledger.writer_key.revoked.v1",
    ]
    from tests.test_verify_tamper import _libpq

    with psycopg.connect(_libpq(db_url)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM writer_keys WHERE log_id = %s", (w.log,))
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE writer_keys SET revoked_at = NULL WHERE log_id = %s", (w.log,))


# --- the ledger itself cannot forge a writer's statement ------------------------------------


def _prepared_signed(w: Writer, key_row: int | None, *, forged: bool) -> PreparedEvent:
    """A signed event straight for the sequencer; ``forged``: the signature is over other
    data than the stored payload (what only an insider writing past ingest could store)."""
    data = canonicalize({"text": "refund promised", "actor": {"kind": "ai", "id": "bot"}})
    salt = new_salt()
    header = EventHeader(
        event_id="forged-1" if forged else "direct-1",
        source="urn:bot:test",
        type="handoff.message.created.v1",
        time="2026-11-20T09:14:01.000000Z",
        conversation_id="c-f",
        actor={"kind": "ai", "id": "bot"},
        outcome="success",
        resource=None,
    )
    from ledger.core.entry import writer_known_fields

    signed_data = canonicalize({"text": "no refund", "actor": {"kind": "ai", "id": "bot"}})
    commitment = payload_commitment(salt, signed_data if forged else data)
    statement = statement_bytes(
        writer_known_fields(origin=w.origin, header=header, commitment=commitment)
    )
    return PreparedEvent(
        header=header,
        scope="conversation:c-f",
        salt=salt,
        canonical_data=data,
        commitment=payload_commitment(salt, data),
        request_digest=hashlib.sha256(data).digest(),
        writer_signature=sign_statement(statement, w.key.key),
        writer_key_id=key_row,
    )


def append_forged(engine: Engine, settings: Settings, w: Writer) -> int:
    """An entry whose hashes, tree and checkpoint are all the ledger's own and consistent, but
    whose writer signature is over another payload: its seq."""
    with unit_of_work(engine) as conn:
        log = get_log(conn, w.log)
        outcome = append_batch(
            conn,
            log,
            [
                AppendRequest(
                    [_prepared_signed(w, None, forged=True)],
                    Principal(w.credential, w.log, "writer", "bot"),
                )
            ],
            signers=SignerCache(settings.master_key_bytes),
            data_keys=DataKeyStore(settings.master_key_bytes),
            now=now(),
        )
    result = outcome.results[0]
    assert not isinstance(result, Exception)
    return result.receipts[0].seq


def test_ledger_verify_names_the_seq_of_a_statement_the_writer_did_not_sign(
    client: Any,
    engine: Engine,
    settings: Settings,
    writer: Any,
    ledger_cli: Any,
    verifier_env: Any,
) -> None:
    w = writer()
    assert post(client, w, signed(w, 0), signed(w, 1)).status_code == 201
    seq = append_forged(engine, settings, w)
    code, out, _err = ledger_cli("verify", "--log", w.log, "--full", "--json")
    assert code == 1
    report = json.loads(out)
    failure = json.dumps(report)
    assert f'"seq": {seq}' in failure
    assert "writer signature" in failure
    assert "does not verify" in failure


def test_erasure_leaves_the_signature_verifiable(
    client: Any,
    engine: Engine,
    writer: Any,
    ledger_cli: Any,
    verifier_env: Any,
    keyring: KeyRing,
) -> None:
    w = writer(policy="required")
    assert post(client, w, signed(w, 0, conversation="c-gone"), signed(w, 1)).status_code == 201
    admins = []
    with unit_of_work(engine) as conn:
        for label in ("a", "b"):
            cred = create_credential(
                conn,
                keyring,
                log_id=w.log,
                role="admin",
                label=label,
                actor=TEST_ACTOR,
                now=now(),
            )
            admins.append(cred)
    code, out, err = ledger_cli(
        "erase",
        "--log",
        w.log,
        "--conversation",
        "c-gone",
        "--legal-basis",
        "GDPR Art. 17",
        "--reference",
        "t-1",
        "--token",
        admins[0].token,
    )
    assert code == 0, err
    request_id = str(json.loads(out)["id"])
    code, out, err = ledger_cli("approve", request_id, "--log", w.log, "--token", admins[1].token)
    assert code == 0, (out, err)
    code, out, err = ledger_cli("verify", "--log", w.log, "--full", "--json")
    assert code == 0, (out, err)
    stored = entries(engine, w.log)
    ring = WriterKeyring(
        [WriterKey(w.key.kid, w.credential, w.key.public_key, "2000-01-01T00:00:00.000000Z")]
    )
    assert all(ring.check_entry(e) is None for e in stored)


def test_the_cli_adds_lists_and_revokes_keys(
    ledger_cli: Any, new_log: Any, engine: Engine, keyring: KeyRing, tmp_path: Path
) -> None:
    log_id = new_log()
    with unit_of_work(engine) as conn:
        cred = create_credential(
            conn, keyring, log_id=log_id, role="writer", label="bot", actor=TEST_ACTOR, now=now()
        )
    key_file = tmp_path / "writer.pem"
    code, public_key, _ = ledger_cli("writers", "keygen", "-o", str(key_file))
    assert code == 0
    assert key_file.stat().st_mode & 0o777 == 0o600
    code, kid, _ = ledger_cli(
        "writers",
        "keys",
        "add",
        "--log",
        log_id,
        "--credential",
        str(cred.id),
        "--public-key",
        public_key.strip(),
    )
    assert code == 0
    kid = kid.strip()
    from ledger.client import load_signing_key

    assert load_signing_key(str(key_file)).kid == kid
    code, _, err = ledger_cli(
        "writers",
        "keys",
        "add",
        "--log",
        log_id,
        "--credential",
        str(cred.id),
        "--public-key",
        public_key.strip(),
    )
    assert code == 2
    assert "already registered" in err
    code, listing, _ = ledger_cli("writers", "keys", "list", "--log", log_id)
    assert listing.split("\t")[:2] == [kid, str(cred.id)]
    assert listing.strip().endswith("active")
    assert ledger_cli("writers", "keys", "revoke", "--log", log_id, "--", kid)[0] == 0
    code, listing, _ = ledger_cli("writers", "keys", "list", "--log", log_id, "--json")
    assert json.loads(listing)["keys"][0]["status"] == "revoked"
    code, _, err = ledger_cli("writers", "keys", "revoke", "--log", log_id, "--", kid)
    assert code == 2
    assert "no active writer key" in err
    # A kid beginning with "-" (one in 64) reaches the command after "--", as the help says.
    parsed = build_parser().parse_args(["writers", "keys", "revoke", "--log", log_id, "--", "-Xy"])
    assert parsed.kid == "-Xy"
    assert ledger_cli("writers", "policy", "--log", log_id, "required")[0] == 0
    assert ledger_cli("writers", "policy", "--log", log_id)[1].strip() == "required"
    code, _, err = ledger_cli(
        "writers",
        "keys",
        "add",
        "--log",
        log_id,
        "--credential",
        "999999",
        "--public-key",
        generate_signing_key().public_key_b64url,
    )
    assert code == 2
    assert "no credential" in err


def test_a_large_batch_checked_off_the_event_loop_is_refused_whole_for_one_bad_signature(
    client: Any, writer: Any
) -> None:
    """From OFFLOAD_SIGNATURES signed events the Ed25519 checks run on a pool thread: the same
    answer, naming the event, nothing stored; and a good one is stored."""
    from ledger.services.ingest.append import OFFLOAD_SIGNATURES

    w = writer(policy="required")
    events = [signed(w, n, conversation=f"c-{n % 3}") for n in range(OFFLOAD_SIGNATURES + 4)]
    bad = 7
    events[bad]["data"] = {**events[bad]["data"], "message_id": "m-other"}
    r = post(client, w, *events)
    assert r.status_code == 422, r.text
    assert r.json()["pointer"] == f"/events/{bad}/writersignature"
    assert f"'c-{bad % 3}-evt-{bad}'" in r.json()["detail"]
    assert "does not verify" in r.json()["detail"]
    assert size(client, w.log) == 0
    events[bad] = signed(w, bad, conversation=f"c-{bad % 3}")
    assert post(client, w, *events).status_code == 201
    assert size(client, w.log) == OFFLOAD_SIGNATURES + 4


def test_admins_manage_writer_keys_over_http(
    client: Any, engine: Engine, keyring: KeyRing, new_log: Any, token: Any
) -> None:
    log_id = new_log()
    admin = {"Authorization": f"Bearer {token(log_id, 'admin')}"}
    with unit_of_work(engine) as conn:
        cred = create_credential(
            conn, keyring, log_id=log_id, role="writer", label="bot", actor=TEST_ACTOR, now=now()
        )
    key = generate_signing_key()
    url = f"/v1/logs/{log_id}/writer-keys"
    body = {"credential": cred.id, "public_key": key.public_key_b64url}
    r = client.post(url, json=body, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["kid"] == key.kid
    assert r.json()["status"] == "active"
    assert client.post(url, json=body, headers=admin).status_code == 409
    bad = {"credential": cred.id, "public_key": "not a key"}
    r = client.post(url, json=bad, headers=admin)
    assert r.status_code == 422
    assert r.json()["type"].endswith(":writer-signature-invalid")
    r = client.post(f"{url}/{key.kid}/revoke", headers=admin)
    assert r.status_code == 200
    assert r.json()["revoked_at"] is not None
    listed = client.get(url, headers=admin).json()["keys"]
    assert [(k["kid"], k["status"]) for k in listed] == [(key.kid, "revoked")]
    assert client.post(f"{url}/{key.kid}/revoke", headers=admin).status_code == 404
    # A writer may not register keys, not even its own.
    writer_headers = {"Authorization": f"Bearer {cred.token}"}
    assert client.post(url, json=body, headers=writer_headers).status_code == 403


def test_ledger_verify_holds_entries_to_the_recorded_key_history_not_the_table(
    client: Any,
    engine: Engine,
    keyring: KeyRing,
    writer: Any,
    db_url: str,
    ledger_cli: Any,
    verifier_env: Any,
) -> None:
    """Someone who can switch the triggers off un-revokes a key in ``writer_keys``: ingest
    takes its signatures again, but the system log recorded the revocation, and `ledger verify`
    names the first entry received after it."""
    import psycopg

    from tests.test_verify_tamper import _libpq

    w = writer(policy="required")
    assert post(client, w, signed(w, 0)).status_code == 201
    with unit_of_work(engine) as conn:
        revoke_writer_key(conn, keyring, log_id=w.log, kid=w.key.kid, actor=TEST_ACTOR, now=now())
    with psycopg.connect(_libpq(db_url)) as conn:
        conn.execute("ALTER TABLE writer_keys DISABLE TRIGGER writer_keys_revoke_only")
        conn.execute("UPDATE writer_keys SET revoked_at = NULL WHERE kid = %s", (w.key.kid,))
        conn.execute("ALTER TABLE writer_keys ENABLE ALWAYS TRIGGER writer_keys_revoke_only")
    import time

    time.sleep(5.1)  # past the server's key cache
    r = post(client, w, signed(w, 1))
    assert r.status_code == 201, r.text  # ingest reads the table: fooled
    seq = r.json()["receipts"][0]["seq"]
    code, out, _ = ledger_cli("verify", "--log", w.log, "--full", "--json")
    assert code == 1
    failure = json.dumps(json.loads(out))
    assert f'"seq": {seq}' in failure
    assert "revoked" in failure
