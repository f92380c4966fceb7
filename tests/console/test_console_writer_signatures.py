"""The console's trail verifier on writer-signed trails (issue 18's signatures): the page checks
each entry's writer signature from the entry bytes, as ``ops/verify_trail_standalone.py`` does,
against the writer keys and revocation times the tenant's system log's signed records prove
(``writer_key_records``, under the auditor's pin for that log; never the unsigned
``writer_keys``), and names the seq of what does not verify."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from sqlalchemy import Engine

from ledger.client import generate_signing_key
from tests import test_verify_trail, test_writer_signatures, test_writer_signatures_offline
from tests.console import test_console_browser
from tests.test_writer_signatures import signed

# Fixtures of the modules they are defined in, used here too.
server = test_console_browser.server
world = test_console_browser.world
browser = test_console_browser.browser
page = test_console_browser.page
run_both = test_verify_trail.run_both
writer = test_writer_signatures.writer
keyring = test_writer_signatures.keyring
signed_trail = test_writer_signatures_offline.signed_trail

VERIFY = (
    "async ([trail, keys]) => { const v = await import('/console/static/verify.js');"
    " const parsed = []; for (const k of keys) parsed.push(await v.parseVerifierKey(k));"
    " const r = await v.verifyTrail(trail, parsed);"
    " return {status: r.status, failures: r.failures}; }"
)


def test_a_signed_trail_verifies_and_a_swapped_writer_key_fails_at_its_seq(
    page: Any, signed_trail: Any
) -> None:
    _, body, keys = signed_trail
    page.goto("/console/")
    good = page.evaluate(VERIFY, [body, keys])
    assert good == {"status": "verified", "failures": []}
    # The unsigned `writer_keys` list is only for reading: another key there changes nothing.
    unread = copy.deepcopy(body)
    unread["writer_keys"][0]["public_key"] = generate_signing_key().public_key_b64url
    assert page.evaluate(VERIFY, [unread, keys]) == {"status": "verified", "failures": []}
    # The key record's payload naming another key: the record fails (its commitment), naming
    # its system-log seq, and each entry the key signed fails at its own seq.
    bad = copy.deepcopy(body)
    record = bad["writer_key_records"]["records"][0]
    payload = json.loads(base64.b64decode(record["payload_b64"]))
    payload["public_key"] = generate_signing_key().public_key_b64url
    record["payload_b64"] = base64.b64encode(json.dumps(payload).encode()).decode()
    result = page.evaluate(VERIFY, [bad, keys])
    assert result["status"] == "failed"
    failed = {(f["seq"], f["check"]) for f in result["failures"]}
    assert failed == {(None, "writer_key")} | {
        (e["seq"], "writer_signature") for e in body["entries"]
    }
    assert f"system log seq {record['seq']}: " in result["failures"][0]["message"]
    # Without the auditor's key for the system log, the records prove nothing.
    own = [k for k in keys if not k.startswith(body["writer_key_records"]["origin"] + "+")]
    result = page.evaluate(VERIFY, [body, own])
    assert result["status"] == "failed"
    assert "none of your keys is for it" in result["failures"][0]["message"]


# --- the trail view: writer keys only from the system log's signed records ---------------------


def _trail_page(page: Any, token: Any, w: Any, conversation: str) -> str:
    test_console_browser.sign_in(
        page, token(w.log, "auditor"), f"/console/logs/{w.log}/conversations/{conversation}"
    )
    return test_console_browser.wait_verdict(page)


def _failures(page: Any) -> str:
    return page.text_content("#trail .banner") or ""


def test_the_trail_view_takes_writer_keys_from_the_system_logs_records(
    page: Any, signed_trail: Any, token: Any
) -> None:
    """Verified with both pins (the log's, the system log's) on first use; the keys panel shows
    the system log's pin the writer keys are proven under."""
    w, body, _ = signed_trail
    assert _trail_page(page, token, w, "c-1") == "verified", _failures(page)
    system_origin = body["writer_key_records"]["origin"]
    assert system_origin.endswith(".system")
    assert system_origin in (page.text_content("#keys-system") or "")
    pinned = page.evaluate("JSON.parse(localStorage.getItem('handoff-ledger.pinned-keys'))")
    assert set(pinned) == {w.origin, system_origin}
    test_console_browser.shot(page, "trail-writer-signed")


def test_one_byte_of_a_key_record_in_the_response_fails_naming_the_system_seq(
    page: Any, signed_trail: Any, token: Any
) -> None:
    w, body, _ = signed_trail
    record = body["writer_key_records"]["records"][0]

    def altered(route: Any) -> None:
        served = route.fetch().json()
        first = served["writer_key_records"]["records"][0]
        raw = bytearray(base64.b64decode(first["entry_b64"]))
        raw[len(raw) // 2] ^= 1
        first["entry_b64"] = base64.b64encode(bytes(raw)).decode()
        route.fulfill(json=served)

    page.route(f"**/v1/logs/{w.log}/conversations/c-1/trail", altered)
    assert _trail_page(page, token, w, "c-1") == "failed"
    shown = _failures(page)
    assert f"writer_key: system log seq {record['seq']}:" in shown
    # Its key is left out: every entry it signed fails, each at its own seq.
    failed = page.get_attribute("#trail", "data-failed-seqs") or ""
    assert {int(s) for s in failed.split(",")} == {e["seq"] for e in body["entries"]}
    assert shown.count("writer_signature: no writer key") == len(body["entries"])
    test_console_browser.shot(page, "trail-writer-key-record-altered")


def test_an_entry_signed_after_its_keys_revocation_fails_at_its_seq(
    page: Any, client: Any, engine: Engine, keyring: Any, settings: Any, token: Any, writer: Any
) -> None:
    """The revocation comes from its system-log record: what the key signed before it still
    verifies; an entry stored past ingest afterwards (an insider's) fails, naming its seq."""
    from ledger.services.admin.writer_keys import revoke_writer_key
    from ledger.storage.db import unit_of_work
    from tests.conftest import TEST_ACTOR, now

    w = writer(policy="required")
    assert (
        test_writer_signatures.post(client, w, signed(w, 0, conversation="c-f")).status_code == 201
    )
    with unit_of_work(engine) as conn:
        revoke_writer_key(conn, keyring, log_id=w.log, kid=w.key.kid, actor=TEST_ACTOR, now=now())
    late = _append_past_ingest(engine, settings, w)
    assert _trail_page(page, token, w, "c-f") == "failed"
    assert page.get_attribute("#trail", "data-failed-seqs") == str(late)
    assert f"seq {late}: writer_signature: key {w.key.kid} was revoked at" in _failures(page)

    shot = test_console_browser.shot(page, "trail-signed-after-revocation")
    assert shot.exists()

    # The revocation taken out of the unsigned `writer_keys` list the response also carries:
    # the page does not read it, so the late entry still fails.
    def without_revocation(route: Any) -> None:
        served = route.fetch().json()
        assert served["writer_keys"][0]["revoked_at"] is not None
        for key in served["writer_keys"]:
            key["revoked_at"] = None
        route.fulfill(json=served)

    page.route(f"**/v1/logs/{w.log}/conversations/c-f/trail", without_revocation)
    page.goto(f"/console/logs/{w.log}/conversations/c-f")
    assert test_console_browser.wait_verdict(page) == "failed"
    assert page.get_attribute("#trail", "data-failed-seqs") == str(late)


def _append_past_ingest(engine: Engine, settings: Any, w: Any) -> int:
    """An entry of conversation c-f properly signed by the writer's key, appended straight to the
    sequencer with no key row (as only an insider writing past ingest could): its seq."""
    from ledger.domain import AppendRequest, Principal
    from ledger.storage.db import unit_of_work
    from ledger.storage.keystore import DataKeyStore, SignerCache
    from ledger.storage.logs import get_log
    from ledger.storage.sequencer import append_batch
    from tests.conftest import now

    event = test_writer_signatures._prepared_signed(w, None, forged=False)
    with unit_of_work(engine) as conn:
        outcome = append_batch(
            conn,
            get_log(conn, w.log),
            [AppendRequest([event], Principal(w.credential, w.log, "writer", "bot"))],
            signers=SignerCache(settings.master_key_bytes),
            data_keys=DataKeyStore(settings.master_key_bytes),
            now=now(),
        )
    result = outcome.results[0]
    assert not isinstance(result, Exception), result
    return result.receipts[0].seq
