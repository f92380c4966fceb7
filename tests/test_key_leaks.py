"""Keys never leak (issue 14.8): a full run of the ledger, and a scan of everything it said.

A real server (``ledger serve --demo``, logging at DEBUG, stdout and stderr captured) takes
events, serves entries, trails, proofs, checkpoints and ``/metrics``, exports an evidence
bundle; two admins erase a conversation; the CLI verifies, rotates the master key, retires the
old one, and fails on a wrong key. Every log line, response body, CLI output, the bundle (and
each file in it) is then searched for every key the run used — both master keys, every data
key (those erased too, read before the erasure), every signing key's private half and seed,
the card guard's fingerprint key — raw, hex, and base64 / base64url at every alignment (so a
key inside a longer base64 blob is found too). One hit fails the test, naming where.

``test_the_scanner_finds_each_encoding`` proves the scanner finds what it looks for; during
development a deliberate leak (a data key logged at DEBUG by the sequencer) made the full run
fail, naming the server log.
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from ledger.core.signing import NoteSigner
from ledger.keys.provider import local_key_id
from ledger.keys.ring import MasterKeyRing
from ledger.storage.db import make_engine, unit_of_work
from ledger.storage.keystore import FINGERPRINT_SECRET, wrap_context
from tests.conftest import EXAMPLE, free_port, migrated_database
from tests.servers import serving

ROOT = Path(__file__).resolve().parents[1]
B64 = base64.b64encode


# --- the scanner --------------------------------------------------------------------------------


def _base64_middles(secret: bytes) -> set[str]:
    """The base64 characters that depend on ``secret`` alone, at each of the three alignments
    it can have inside a longer encoded blob, in both alphabets, padded or not."""
    out = set()
    n = len(secret)
    for k in range(3):
        encoded = B64(b"\x00" * k + secret + b"\x00" * 2).decode()
        first = -(-k * 4 // 3)  # the first character made only of the secret's bits
        last = (k + n) * 4 // 3  # past the last one
        middle = encoded[first:last]
        out.add(middle)
        out.add(middle.replace("+", "-").replace("/", "_"))
    return out


def needles(secret: bytes) -> tuple[list[bytes], list[str]]:
    """What to look for: raw bytes, and text (hex in either case, base64 forms)."""
    texts = {secret.hex(), secret.hex().upper(), *_base64_middles(secret)}
    return [secret], sorted(texts)


@dataclass
class Scanner:
    secrets: dict[str, bytes] = field(default_factory=dict)
    """What must never appear, by what it is (``data key 12``, ``master key (old)``)."""

    def add(self, name: str, value: bytes) -> None:
        assert len(value) >= 16, name
        self.secrets[name] = value

    def find(self, corpus: Iterable[tuple[str, bytes]]) -> list[str]:
        """Every (place, secret, form) found."""
        prepared = [(name, *needles(value)) for name, value in self.secrets.items()]
        hits = []
        for place, blob in corpus:
            as_text = blob.decode("latin-1")
            for name, raws, texts in prepared:
                if any(raw in blob for raw in raws):
                    hits.append(f"{place}: {name} (raw bytes)")
                form = next((t for t in texts if t in as_text), None)
                if form is not None:
                    hits.append(f"{place}: {name} ({form[:12]}…)")
        return hits


def test_the_scanner_finds_each_encoding() -> None:
    key = secrets.token_bytes(32)
    scanner = Scanner({"the key": key})
    for i, blob in enumerate(
        [
            b"raw " + key + b" bytes",
            f"hex {key.hex()}".encode(),
            f"HEX {key.hex().upper()}".encode(),
            f'{{"k": "{B64(key).decode()}"}}'.encode(),
            base64.urlsafe_b64encode(key).rstrip(b"="),
            *(B64(secrets.token_bytes(k) + key + secrets.token_bytes(5)) for k in range(3)),
            *(
                base64.urlsafe_b64encode(secrets.token_bytes(k) + key).rstrip(b"=")
                for k in range(3)
            ),
        ]
    ):
        assert scanner.find([(f"blob {i}", blob)]), f"blob {i} not flagged"
    other = secrets.token_bytes(4096)
    assert scanner.find([("noise", other + B64(other) + other.hex().encode())]) == []


# --- the run ------------------------------------------------------------------------------------


BOOT = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                    format="%(asctime)s %(levelname)s %(name)s %(message)s")
from ledger.cli import main
sys.exit(main(["serve", "--demo", "--port", sys.argv[1]]))
"""


@dataclass
class Run:
    db_url: str
    tmp: Path
    old: bytes
    new: bytes
    new_file: Path
    corpus: list[tuple[str, bytes]] = field(default_factory=list)
    data_keys: dict[int, bytes] = field(default_factory=dict)
    wrong: list[bytes] = field(default_factory=list)
    """Keys given where they do not fit: the refusal must not echo them either."""

    def keep(self, place: str, blob: bytes | str) -> None:
        self.corpus.append((place, blob.encode() if isinstance(blob, str) else blob))

    def env(self, **keys: str) -> dict[str, str]:
        base = {
            "LEDGER_DATABASE_URL": self.db_url,
            "LEDGER_ORIGIN_PREFIX": "ledger.test",
            "LEDGER_DATA_DIR": str(self.tmp / "data"),
            "LEDGER_VERIFIER_STATE_DIR": str(self.tmp / "verifier"),
            "LEDGER_ANCHOR_DIR": str(self.tmp / "anchors"),
            "LEDGER_MASTER_KEY_REFRESH_SECONDS": "0.2",
            "LEDGER_MASTER_KEY": B64(self.old).decode(),
            "LEDGER_EXTRA_KEY_PROVIDERS": f"file:{self.new_file}",
        }
        base.update(keys)
        return {k: v for k, v in base.items() if v}

    def cli(self, *argv: str, expect: int | None = 0, **keys: str) -> tuple[int, str, str]:
        """A ``ledger`` command in its own process, logging at DEBUG; all it says is kept."""
        boot = (
            "import logging, sys; logging.basicConfig(level=logging.DEBUG);"
            " from ledger.cli import main; sys.exit(main(sys.argv[1:]))"
        )
        done = subprocess.run(
            [sys.executable, "-c", boot, *argv],
            cwd=ROOT,
            env={**os.environ, **self.env(**keys)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        self.keep(f"ledger {' '.join(argv)} (stdout)", done.stdout)
        self.keep(f"ledger {' '.join(argv)} (stderr)", done.stderr)
        if expect is not None:
            assert done.returncode == expect, done.stdout + done.stderr
        return done.returncode, done.stdout, done.stderr

    def collect_keys(self) -> None:
        """Every data key there is now, unwrapped (erased ones are gone from the database, so
        this runs before the erasure too)."""
        ring = MasterKeyRing.local(self.old)
        ring.add(MasterKeyRing.local(self.new).provider(local_key_id(self.new)))
        engine = make_engine(self.db_url, pool_size=1)
        try:
            with unit_of_work(engine) as conn:
                rows = conn.execute(
                    text(
                        "SELECT id, log_id, scope, master_key_id, wrapped FROM data_keys"
                        " WHERE wrapped IS NOT NULL"
                    )
                ).all()
        finally:
            engine.dispose()
        for key_id, log_id, scope, master_key_id, wrapped in rows:
            self.data_keys[key_id] = ring.unwrap(
                master_key_id, bytes(wrapped), context=wrap_context("data_keys", log_id, scope)
            )


@pytest.fixture
def run(admin_url: str, tmp_path: Path) -> Iterator[Run]:
    new_file = tmp_path / "new.key"
    new = secrets.token_bytes(32)
    new_file.write_text(B64(new).decode())
    with migrated_database(admin_url, "ledger_test_leaks") as url:
        yield Run(url, tmp_path, secrets.token_bytes(32), new, new_file)


def _tokens_said(server_log: Path) -> dict[str, str]:
    """The demo's writer and auditor tokens and a conversation of it, as the server printed."""
    said = server_log.read_text()
    tokens = {
        role: said.split(f"export {role.upper()}=", 1)[1].split()[0]
        for role in ("writer", "auditor")
    }
    tokens["conversation"] = said.split("ledger trail demo ", 1)[1].split()[0]
    return tokens


@pytest.mark.slow
def test_no_key_appears_anywhere_in_a_full_run(run: Run) -> None:
    port = free_port()
    server_log = run.tmp / "server.log"
    boot = [sys.executable, "-c", BOOT, str(port)]
    with serving(boot, port, run.env(), log=server_log, timeout=120, stop_timeout=30) as url:
        _exercise(run, url, _tokens_said(server_log))
    run.keep("server log (DEBUG)", (run.tmp / "server.log").read_bytes())
    for path in sorted((run.tmp / "anchors").rglob("*")):
        if path.is_file():
            run.keep(f"anchor {path.name}", path.read_bytes())

    scanner = Scanner()
    scanner.add("master key (old)", run.old)
    scanner.add("master key (new)", run.new)
    for n, key in enumerate(run.wrong):
        scanner.add(f"wrong key {n}", key)
    for key_id, key in run.data_keys.items():
        scanner.add(f"data key {key_id}", key)
    engine = make_engine(run.db_url, pool_size=1)
    ring = MasterKeyRing.local(run.new)
    try:
        with unit_of_work(engine) as conn:
            signing = conn.execute(
                text("SELECT log_id, key_id, master_key_id, sealed_private FROM signing_keys")
            ).all()
            secret = conn.execute(
                text("SELECT master_key_id, wrapped FROM wrapped_secrets WHERE name = :n"),
                {"n": FINGERPRINT_SECRET},
            ).one()
    finally:
        engine.dispose()
    for log_id, key_id, master_key_id, sealed in signing:
        private = ring.unwrap(
            master_key_id, bytes(sealed), context=wrap_context("signing_keys", log_id, key_id)
        ).decode()
        signer = NoteSigner.from_private_key_string(private)
        seed = signer._seed
        scanner.add(f"signing key {log_id} {bytes(key_id).hex()} (seed)", seed)
        scanner.add(f"signing key {log_id} {bytes(key_id).hex()} (0x01 || seed)", b"\x01" + seed)
        scanner.add(f"signing key {log_id} (private key string)", private.split("+", 4)[4].encode())
    scanner.add(
        "card fingerprint key",
        ring.unwrap(
            secret[0],
            bytes(secret[1]),
            context=wrap_context("wrapped_secrets", "", FINGERPRINT_SECRET),
        ),
    )
    assert len(run.data_keys) > 100  # the demo's conversations, the example's, the system's
    assert len(signing) >= 3  # demo (rotated once) and demo.system
    places = len(run.corpus)
    size = sum(len(blob) for _, blob in run.corpus)
    assert places > 40
    assert size > 1_000_000
    print(f"\nscanned {places} outputs, {size:,} bytes, for {len(scanner.secrets)} secrets")
    hits = scanner.find(run.corpus)
    assert hits == [], "key material found:\n" + "\n".join(hits[:50])


def _exercise(run: Run, url: str, tokens: dict[str, str]) -> None:
    writer = {"Authorization": f"Bearer {tokens['writer']}"}
    auditor = {"Authorization": f"Bearer {tokens['auditor']}"}
    example = json.loads(EXAMPLE.read_text())
    conversation = example["events"][0]["subject"].split("/", 1)[1]

    with httpx.Client(base_url=url, timeout=120) as http:

        def call(method: str, path: str, **kw: Any) -> httpx.Response:
            r = http.request(method, path, **kw)
            run.keep(f"{method} {path} -> {r.status_code}", r.content)
            return r

        def reads(tag: str) -> None:
            assert call("GET", "/v1/logs/demo/checkpoint").status_code == 200
            assert call("GET", "/v1/logs/demo/verifier-key").status_code == 200
            r = call("GET", "/v1/logs/demo/entries?start=0&end=1000", headers=auditor)
            assert r.status_code == 200, r.text
            assert call("GET", "/v1/logs/demo/entries/3", headers=auditor).status_code == 200
            r = call("GET", "/v1/logs/demo/proofs/inclusion?seq=3&tree_size=20", headers=auditor)
            assert r.status_code == 200, r.text
            r = call("GET", "/v1/logs/demo/proofs/consistency?first=5&second=20", headers=auditor)
            assert r.status_code == 200, r.text
            r = call("GET", f"/v1/logs/demo/conversations/{conversation}/trail", headers=auditor)
            assert r.status_code == 200, f"{tag}: {r.text}"
            assert call("GET", "/metrics").status_code == 200
            r = call(
                "POST",
                "/v1/logs/demo/exports",
                json={"profile": "soc2-population"},
                headers=auditor,
            )
            assert r.status_code in (200, 201), r.text
            with zipfile.ZipFile(io.BytesIO(r.content)) as bundle:
                for member in bundle.namelist():
                    run.keep(f"bundle ({tag}) {member}", bundle.read(member))

        r = call("POST", "/v1/logs/demo/events", json=example, headers=writer)
        assert r.status_code in (200, 201), r.text
        reads("before rotation")
        # Refusals and errors, whose bodies must not echo anything either.
        assert call("GET", "/v1/logs/demo/entries?start=0&end=5").status_code == 401
        bad = {"Authorization": "Bearer hlt_not-a-token"}
        assert call("GET", "/v1/logs/demo/entries?start=0&end=5", headers=bad).status_code == 401
        assert call("POST", "/v1/logs/demo/events", content=b"{", headers=writer).status_code == 400
        assert call("GET", "/v1/logs/nope/checkpoint").status_code == 404
        run.collect_keys()

        admins = []
        for _ in range(2):
            admin = run.cli("credentials", "create", "--log", "demo", "--role", "admin")[1]
            admins.append({"Authorization": f"Bearer {admin.strip()}"})
        r = call(
            "POST",
            "/v1/logs/demo/erasures",
            json={
                "conversation": conversation,
                "legal_basis": "GDPR Art. 17",
                "reference": "DSR-1",
            },
            headers=admins[0],
        )
        assert r.status_code == 202, r.text
        r = call(
            "POST", f"/v1/logs/demo/privacy-requests/{r.json()['id']}/approve", headers=admins[1]
        )
        assert r.status_code == 200, r.text

        run.cli("verify", "--full", "--json")
        run.cli("keys", "list", "--log", "demo")
        run.cli("keys", "masters")
        run.cli("logs", "list")
        run.cli("trail", "demo", conversation)
        run.cli("trail", "demo", tokens["conversation"], "--json")
        for fmt in ("jsonl", "html"):
            out = run.tmp / f"export.{fmt}"
            run.cli(
                "export",
                "--log",
                "demo",
                "--profile",
                "pci-dss-10",
                "--format",
                fmt,
                "-o",
                str(out),
            )
            run.keep(f"ledger export --format {fmt} (file)", out.read_bytes())
        run.cli("keys", "rotate", "--log", "demo")
        run.cli("keys", "rotate-master", "--to", f"file:{run.new_file}", "--batch", "50")
        run.collect_keys()
        r = call(
            "POST",
            "/v1/logs/demo/events",
            json={"events": [{**e, "id": e["id"] + "-after"} for e in example["events"][:3]]},
            headers=writer,
        )
        reads("after rotation")
        new_only = {
            "LEDGER_MASTER_KEY": B64(run.new).decode(),
            "LEDGER_EXTRA_KEY_PROVIDERS": "",
        }
        run.cli("keys", "retire-master", local_key_id(run.old), **new_only)
        run.cli("keys", "masters", **new_only)
        run.cli("verify", "--full", "--json", **new_only)
        # The system log's own payloads: key rotations, master-key rotation and retirement.
        out = run.tmp / "system.jsonl"
        run.cli(
            "export",
            "--log",
            "demo.system",
            "--profile",
            "soc2-population",
            "--format",
            "jsonl",
            "-o",
            str(out),
            **new_only,
        )
        run.keep("ledger export demo.system (file)", out.read_bytes())
        assert b"ledger.master_key.retired.v1" in out.read_bytes()
        run.collect_keys()

        # Wrong keys, on every path that opens a key: they fail, and say nothing of a key.
        wrong = secrets.token_bytes(32)
        run.wrong += [wrong, run.new[:31]]  # a wrong key, a truncated one (below)
        code, _, _ = run.cli(
            "verify",
            "--log",
            "demo",
            "--full",
            expect=None,
            LEDGER_MASTER_KEY=B64(wrong).decode(),
            LEDGER_EXTRA_KEY_PROVIDERS="",
        )
        assert code in (1, 2)
        third = run.tmp / "third.key"
        third.write_text(B64(secrets.token_bytes(32)).decode())
        run.cli(
            "keys",
            "rotate-master",
            "--to",
            f"file:{third}",
            expect=2,
            LEDGER_MASTER_KEY=B64(wrong).decode(),
            LEDGER_EXTRA_KEY_PROVIDERS="",
        )
        run.cli(
            "logs",
            "list",
            expect=None,
            LEDGER_MASTER_KEY=B64(run.new[:31]).decode(),
        )
        run.cli(
            "keys",
            "masters",
            expect=2,
            LEDGER_KEY_PROVIDER="env:LEDGER_TEST_LEAKED",
            LEDGER_TEST_LEAKED=run.new.hex(),
        )
