"""``ledger.client`` against a real server on a socket: sign, post, retry with the same bytes,
receipts, inclusion proofs against the signed checkpoint, C2SP tlog-proof files, and
``ledger demo --url`` writing through it."""

from __future__ import annotations

import http.server
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from ledger.client import LedgerClient, generate_signing_key, save_signing_key
from ledger.core.checkpoint import open_checkpoint
from ledger.core.merkle import leaf_hash, verify_inclusion
from ledger.core.signing import NoteVerifier
from ledger.core.tlog_proof import parse_tlog_proof
from ledger.errors import EventInvalid, InclusionProofInvalid, StoreUnavailable, Unauthenticated
from tests import test_verify_incremental, test_writer_signatures
from tests.conftest import make_event
from tests.test_writer_signatures import Writer, entries

# Fixtures of the modules they are defined in, used here too.
live_server = test_verify_incremental.live_server
writer = test_writer_signatures.writer
keyring = test_writer_signatures.keyring


@pytest.fixture
def signing_writer(writer: Any) -> Writer:
    w: Writer = writer(policy="required")
    return w


def test_sign_post_and_check_the_receipts_inclusion_proof(
    live_server: str, signing_writer: Writer, token: Any, engine: Engine, tmp_path: Path
) -> None:
    w = signing_writer
    with LedgerClient(live_server, w.log, token=w.token, signing_key=w.key) as client:
        assert client.origin == w.origin
        result = client.append([make_event("c-1", n) for n in range(3)])
        assert result.created
        assert [r.seq for r in result.receipts] == [0, 1, 2]
        stored = entries(engine, w.log)
        assert all("writer_signature" in e for e in stored)
        verifier_key = client.verifier_keys()[0]
        auditor = token(w.log, "auditor")
        for receipt in result.receipts:
            proof = client.inclusion_proof(receipt, result.checkpoint, token=auditor)
            opened = client.check_receipt(
                receipt, proof, result.checkpoint, verifier_key=verifier_key
            )
            assert opened.size == 3
        # A receipt whose leaf hash is not the one in the tree fails the check.
        forged = type(receipt)(receipt.event_id, receipt.seq, bytes(32))
        with pytest.raises(InclusionProofInvalid):
            client.check_receipt(forged, proof, result.checkpoint, verifier_key=verifier_key)
        # The receipt as a C2SP tlog-proof file, checked back with nothing but the file.
        path = tmp_path / "event.tlog-proof"
        client.save_tlog_proof(proof, result.checkpoint, str(path))
    index, hashes, note = parse_tlog_proof(path.read_text())
    checkpoint = open_checkpoint(note, [NoteVerifier.from_verifier_key(verifier_key)])
    import base64

    entry_bytes = base64.b64decode(
        urllib.request.urlopen(
            urllib.request.Request(
                f"{live_server}/v1/logs/{w.log}/entries/{index}",
                headers={"Authorization": f"Bearer {auditor}"},
            )
        )
        .read()
        .split(b'"entry_b64":"')[1]
        .split(b'"')[0]
    )
    verify_inclusion(leaf_hash(entry_bytes), index, checkpoint.size, hashes, checkpoint.root_hash)


def test_refusals_are_the_ledgers_own_errors(live_server: str, signing_writer: Writer) -> None:
    w = signing_writer
    with (
        LedgerClient(live_server, w.log, token=w.token) as unsigned,
        pytest.raises(EventInvalid) as refused,
    ):
        unsigned.append([make_event("c-1", 0)])  # the log requires signatures
    assert refused.value.pointer == "/events/0/writersignature"
    assert "requires writer signatures" in refused.value.detail
    with LedgerClient(live_server, w.log, token="hlt_nope", signing_key=w.key) as client:
        client._origin = w.origin  # the checkpoint is public; skip fetching it
        with pytest.raises(Unauthenticated):
            client.append([make_event("c-1", 0)])


class _LosingProxy(http.server.BaseHTTPRequestHandler):
    """Forwards to the ledger; the first POST is forwarded and committed, but its answer is
    lost (the connection is dropped), as when a network fails mid-reply; the second POST is
    answered 503 without being forwarded."""

    upstream = ""
    posts = 0

    def do_GET(self) -> None:
        self._forward(None)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).posts += 1
        if type(self).posts == 2:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._forward(body, drop=type(self).posts == 1)

    def _forward(self, body: bytes | None, *, drop: bool = False) -> None:
        request = urllib.request.Request(
            self.upstream + self.path,
            data=body,
            method=self.command,
            headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
        )
        try:
            with urllib.request.urlopen(request) as answer:
                status, payload = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        if drop:
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def losing_proxy(live_server: str) -> Iterator[str]:
    handler = type("Proxy", (_LosingProxy,), {"upstream": live_server, "posts": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_lost_answer_and_a_503_are_retried_with_the_same_bytes_and_nothing_doubles(
    losing_proxy: str, signing_writer: Writer, engine: Engine
) -> None:
    w = signing_writer
    with LedgerClient(losing_proxy, w.log, token=w.token, signing_key=w.key, backoff=0.01) as c:
        result = c.append([make_event("c-1", n) for n in range(4)])
    # The first post committed; its answer was lost; the 503 was answered by the proxy; the
    # third post is the same bytes, answered with the original receipts.
    assert not result.created
    assert [r.seq for r in result.receipts] == [0, 1, 2, 3]
    assert len(entries(engine, w.log)) == 4


def test_an_unreachable_ledger_is_store_unavailable_after_the_retries() -> None:
    client = LedgerClient("http://127.0.0.1:9", "demo", token="t", retries=1, backoff=0.01)
    with pytest.raises(StoreUnavailable):
        client.checkpoint()


def test_demo_over_http_writes_signed_events_through_the_client(
    live_server: str, signing_writer: Writer, ledger_cli: Any, engine: Engine, tmp_path: Path
) -> None:
    w = signing_writer
    key_file = tmp_path / "w.pem"
    save_signing_key(w.key, str(key_file))
    code, _, err = ledger_cli(
        "demo",
        "--log",
        w.log,
        "--conversations",
        "3",
        "--url",
        live_server,
        "--token",
        w.token,
        "--signing-key",
        str(key_file),
    )
    assert code == 0, err
    stored = entries(engine, w.log)
    assert stored
    assert all(e["writer_signature"].count(".") == 2 for e in stored)
    # The same seed again is a retry: nothing new.
    code, _, err = ledger_cli(
        "demo",
        "--log",
        w.log,
        "--conversations",
        "3",
        "--url",
        live_server,
        "--token",
        w.token,
        "--signing-key",
        str(key_file),
    )
    assert code == 0, err
    assert "0 events appended" in err
    assert len(entries(engine, w.log)) == len(stored)
    other = generate_signing_key()
    other_file = tmp_path / "other.pem"
    save_signing_key(other, str(other_file))
    code, _, err = ledger_cli(
        "demo",
        "--log",
        w.log,
        "--conversations",
        "1",
        "--seed",
        "9",
        "--url",
        live_server,
        "--token",
        w.token,
        "--signing-key",
        str(other_file),
    )
    assert code == 2
    assert "unknown writer key" in err
