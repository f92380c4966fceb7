"""The C2SP tlog-witness sink: ``add-checkpoint`` with a consistency proof from the size the
witness last cosigned, cosignatures verified and stored; plus the cosignature/v1 known answers
(../shared/vectors/notes, from FiloSottile/sunlight test data)."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from ledger.core.checkpoint import open_checkpoint
from ledger.core.cosignature import Cosigner, CosignerVerifier, open_cosignatures
from ledger.core.merkle import EMPTY_ROOT, verify_consistency
from ledger.core.note import parse_note
from ledger.core.signing import NoteVerifier
from ledger.errors import CryptoError, SignatureInvalid
from ledger.storage.db import unit_of_work
from tests.test_verify_tamper import Cli


def _vectors() -> list[dict[str, Any]]:
    env = os.environ.get("LEDGER_VECTORS_DIR")
    base = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "vectors"
    data: dict[str, Any] = json.loads((base / "notes" / "signed-notes.json").read_text())
    cases: list[dict[str, Any]] = data["cosignatureV1"]
    return cases


@pytest.mark.parametrize("case", _vectors(), ids=lambda c: c["cosignerName"])
def test_cosignature_known_answers(case: dict[str, Any]) -> None:
    witness = Cosigner(case["cosignerName"], bytes.fromhex(case["seedHex"]))
    assert witness.verifier.verifier_key() == case["vkey"]
    assert witness.cosign(case["checkpointBody"], case["timestamp"]) == case["signatureLine"] + "\n"
    parsed = CosignerVerifier.from_verifier_key(case["vkey"])
    note = case["checkpointBody"] + "\n" + case["signatureLine"] + "\n"
    [sig] = parse_note(note).signatures
    assert parsed.verify(sig, case["checkpointBody"]).timestamp == case["timestamp"]
    with pytest.raises(SignatureInvalid):
        parsed.verify(sig, case["checkpointBody"].replace("300", "301"))


class FakeWitness:
    """A tlog-witness on 127.0.0.1 that knows the test logs' keys and checks everything the
    specification says a witness must."""

    def __init__(self) -> None:
        self.cosigner = Cosigner("witness.test/w1", b"\x05" * 32)
        self.log_keys: dict[str, list[NoteVerifier]] = {}
        self.state: dict[str, tuple[int, bytes]] = {}
        self.requests: list[str] = []
        witness = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                witness.requests.append(body)
                status, ctype, answer = witness.add_checkpoint(body)
                data = answer.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/witness"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def add_checkpoint(self, body: str) -> tuple[int, str, str]:
        head, _, note = body.partition("\n\n")
        old_line, *proof_lines = head.split("\n")
        old = int(old_line.removeprefix("old "))
        origin = note.split("\n", 1)[0]
        if origin not in self.log_keys:
            return 404, "text/plain", "unknown log\n"
        try:
            cp = open_checkpoint(note, self.log_keys[origin])
        except CryptoError:
            return 403, "text/plain", "bad signature\n"
        size, root = self.state.get(origin, (0, EMPTY_ROOT))
        if old != size:
            return 409, "text/x.tlog.size", f"{size}\n"
        try:
            verify_consistency(
                old, cp.size, [base64.b64decode(p) for p in proof_lines], root, cp.root_hash
            )
        except CryptoError:
            return 422, "text/plain", "inconsistent\n"
        self.state[origin] = (cp.size, cp.root_hash)
        return 200, "text/plain", self.cosigner.cosign(parse_note(note).text, 1_767_139_200)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def witness(
    monkeypatch: pytest.MonkeyPatch, verifier_env: dict[str, Path]
) -> Iterator[FakeWitness]:
    w = FakeWitness()
    monkeypatch.delenv("LEDGER_ANCHOR_DIR")
    monkeypatch.setenv("LEDGER_ANCHOR_WITNESS_URL", w.url)
    monkeypatch.setenv("LEDGER_ANCHOR_WITNESS_KEY", w.cosigner.verifier.verifier_key())
    yield w
    w.close()


@pytest.fixture
def witnessed_log(witness: FakeWitness, new_log: Any, client: Any) -> str:
    log_id: str = new_log()
    keys = client.get(f"/v1/logs/{log_id}/verifier-key").text.split()
    witness.log_keys[f"ledger.test/{log_id}"] = [NoteVerifier.from_verifier_key(k) for k in keys]
    return log_id


def cosignatures(engine: Engine, log_id: str) -> list[tuple[int, str]]:
    with unit_of_work(engine) as conn:
        rows = conn.exec_driver_sql(
            "SELECT size, cosignature FROM witness_cosignatures WHERE log_id = %(log)s"
            " ORDER BY size",
            {"log": log_id},
        )
        return [(int(r[0]), r[1]) for r in rows]


def test_checkpoints_are_cosigned_with_consistency_proofs(
    ledger_cli: Cli,
    witness: FakeWitness,
    witnessed_log: str,
    append_direct: Any,
    engine: Engine,
) -> None:
    append_direct(witnessed_log, 5)
    assert ledger_cli("anchor", "--log", witnessed_log)[0] == 0
    assert witness.requests[-1].startswith("old 0\n\n")
    append_direct(witnessed_log, 6)
    assert ledger_cli("anchor", "--log", witnessed_log)[0] == 0
    head = witness.requests[-1].split("\n\n")[0].split("\n")
    assert head[0] == "old 5"
    assert len(head) > 1  # the proof from 5 to 11

    stored = cosignatures(engine, witnessed_log)
    assert [size for size, _ in stored] == [5, 11]
    with unit_of_work(engine) as conn:
        note = conn.exec_driver_sql(
            "SELECT note FROM checkpoints WHERE log_id = %(log)s AND size = 11",
            {"log": witnessed_log},
        ).scalar_one()
    [cosig] = open_cosignatures(note, stored[1][1], witness.cosigner.verifier)
    assert cosig.timestamp == 1_767_139_200


def test_a_witness_ahead_of_our_records_is_caught_up(
    ledger_cli: Cli,
    witness: FakeWitness,
    witnessed_log: str,
    append_direct: Any,
    engine: Engine,
) -> None:
    append_direct(witnessed_log, 4)
    with unit_of_work(engine) as conn:
        root = conn.exec_driver_sql(
            "SELECT root FROM checkpoints WHERE log_id = %(log)s AND size = 4",
            {"log": witnessed_log},
        ).scalar_one()
    witness.state[f"ledger.test/{witnessed_log}"] = (4, bytes(root))
    append_direct(witnessed_log, 3)
    assert ledger_cli("anchor", "--log", witnessed_log)[0] == 0
    assert [r.split("\n", 1)[0] for r in witness.requests] == ["old 0", "old 4"]
    assert [size for size, _ in cosignatures(engine, witnessed_log)] == [7]


def test_a_witness_that_saw_another_history_refuses(
    ledger_cli: Cli,
    witness: FakeWitness,
    witnessed_log: str,
    append_direct: Any,
) -> None:
    append_direct(witnessed_log, 6)
    witness.state[f"ledger.test/{witnessed_log}"] = (4, bytes(32))  # a forked view at 4
    code, out, _ = ledger_cli("anchor", "--log", witnessed_log)
    assert code == 2
    assert "answered 422" in out


def test_a_cosignature_by_another_key_is_not_accepted(
    ledger_cli: Cli,
    witness: FakeWitness,
    witnessed_log: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = Cosigner("witness.test/w1", b"\x06" * 32)
    monkeypatch.setenv("LEDGER_ANCHOR_WITNESS_KEY", other.verifier.verifier_key())
    code, out, _ = ledger_cli("anchor", "--log", witnessed_log)
    assert code == 2
    assert "bad cosignature" in out
