"""Offline evidence-bundle verification: ``ledger verify-bundle`` and
``ops/verify_bundle_standalone.py`` on the same files (docs/evidence-bundle.md).

The bundles are written here, by a small writer of the document's format over a log made of
pure data (entries built with ``build_entry``, an Ed25519 key from ``NoteSigner.generate``), so
the verifiers are tested against the document, not against the ledger's own producer. A valid
range, entries and sample bundle verify under both tools (exit 0); each kind of tampering makes
both exit 1 and name the file and the check; a file that is not a bundle makes both exit 2.
A time window's bundle is proven complete at both ends by its neighbours' received_at (and a
window exported for real verifies); a pci-dss-10 bundle carries no payload.
Also here: the ``handoff-ledger/sample/v1`` algorithm and c2sp.org/tlog-proof round trips.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core.canonical import canonicalize
from ledger.core.checkpoint import Checkpoint, sign_checkpoint
from ledger.core.commitment import payload_commitment
from ledger.core.entry import GENESIS_PREV, EventHeader, build_entry
from ledger.core.merkle import (
    consistency_proof,
    frontier_extend,
    inclusion_proof,
    leaf_hash,
    range_nodes,
    root_from_leaf_hashes,
)
from ledger.core.note import sign_note
from ledger.core.rotation import sign_rotation
from ledger.core.sampling import sample_seqs
from ledger.core.signing import NoteSigner
from ledger.core.tlog_proof import format_tlog_proof, parse_tlog_proof
from ledger.core.types import RootHash
from ledger.errors import BundleMalformed, NoteFormatError
from ledger.services.exports.verify import verify_bundle

ROOT = Path(__file__).resolve().parents[1]
STANDALONE = ROOT / "ops" / "verify_bundle_standalone.py"
ORIGIN = "ledger.test/bundle-log"
FORMAT = "handoff-ledger/evidence-bundle/v1"
CONVERSATIONS = ("c-alpha", "c-beta", "c-gamma")
SEED = "auditor-2026-q4"

Results = list[tuple[int, str]]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- a log of pure data --------------------------------------------------------------------------


@dataclass
class Log:
    signer: NoteSigner
    entries: list[bytes] = field(default_factory=list)
    leaves: list[bytes] = field(default_factory=list)
    payloads: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)
    """seq -> (salt, canonical payload bytes), for the payloads the bundle carries."""
    statuses: dict[int, str] = field(default_factory=dict)
    conversation: dict[int, str] = field(default_factory=dict)
    nodes: dict[tuple[int, int], bytes] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.entries)

    def root(self, size: int) -> bytes:
        return root_from_leaf_hashes(self.leaves[:size])

    def checkpoint(self, size: int, signer: NoteSigner | None = None) -> str:
        body = Checkpoint(ORIGIN, size, RootHash(self.root(size)))
        return sign_checkpoint(body, signer or self.signer)


def received(seq: int) -> str:
    """When the ledger received seq (in a log of ``make_log``): one second after seq - 1."""
    return f"2026-11-20T09:{seq // 60:02d}:{seq % 60:02d}.000000Z"


def make_log(
    size: int = 48,
    signer: NoteSigner | None = None,
    received_at: Callable[[int], str] = received,
) -> Log:
    """Entries of three interleaved conversations (irregularly, so back-links skip seqs); every
    fifth payload erased, the rest carried and verifiable."""
    log = Log(signer or NoteSigner.generate(ORIGIN))
    prev = GENESIS_PREV
    last: dict[str, int] = {}
    for seq in range(size):
        conversation = CONVERSATIONS[(seq * seq + seq // 3) % 3]
        header = EventHeader(
            event_id=f"evt-{seq}",
            source="urn:bot:test",
            type="handoff.message.created.v1",
            time="2026-11-20T09:14:01.000Z",
            conversation_id=conversation,
            actor={"kind": "customer", "id": "cust-1"},
            outcome="success",
            resource=None,
        )
        data = canonicalize({"message_id": f"m-{seq}", "text": f"hello {seq} \u00e9\u20ac"})
        salt = hashlib.sha256(b"salt %d" % seq).digest()
        entry = build_entry(
            origin=ORIGIN,
            seq=seq,
            prev=prev,
            received_at=received_at(seq),
            header=header,
            writer={"kind": "credential", "id": "cred-writer-1", "role": "writer"},
            commitment=payload_commitment(salt, data),
            conversation_prev=last.get(conversation),
        )
        raw = canonicalize(entry)
        log.entries.append(raw)
        prev = leaf_hash(raw)
        log.leaves.append(prev)
        log.conversation[seq] = conversation
        last[conversation] = seq
        if seq % 5 == 3:
            log.statuses[seq] = "erased"
        else:
            log.statuses[seq] = "verified"
            log.payloads[seq] = (salt, data)
    _, completed = frontier_extend([], 0, log.leaves)
    log.nodes = {(0, i): h for i, h in enumerate(log.leaves)}
    log.nodes.update({(level, index): h for level, index, h in completed})
    return log


def entry_line(log: Log, seq: int) -> bytes:
    salt, data = log.payloads.get(seq, (None, None))
    return (
        canonicalize(
            {
                "seq": seq,
                "leaf_hash": b64(log.leaves[seq]),
                "entry_b64": b64(log.entries[seq]),
                "payload_status": log.statuses[seq],
                "payload_b64": None if data is None else b64(data),
                "payload_salt": None if salt is None else b64(salt),
            }
        )
        + b"\n"
    )


# --- a writer of the document's format -----------------------------------------------------------


@dataclass
class Bundle:
    """What was written, for the tests to tamper with."""

    path: Path
    files: dict[str, bytes]
    manifest: dict[str, Any]
    seqs: list[int]


def write_bundle(
    path: Path,
    log: Log,
    *,
    selection: str = "range",
    start: int = 0,
    end: int | None = None,
    tree_size: int | None = None,
    conversations: tuple[str, ...] = ("c-alpha", "c-gamma"),
    sample_size: int = 6,
    since: int | None = None,
    since_signer: NoteSigner | None = None,
    rotation_from: NoteSigner | None = None,
    reports: bool = False,
    edit_lines: Callable[[list[bytes]], list[bytes]] | None = None,
    edit_sample: Callable[[list[int]], list[int]] | None = None,
    edit_manifest: Callable[[dict[str, Any]], None] | None = None,
    checkpoint: str | None = None,
    manifest_signer: NoteSigner | None = None,
) -> Bundle:
    """A bundle of ``log`` read at ``tree_size``, exactly as docs/evidence-bundle.md says, with
    hooks that let a test lie *before* the manifest is signed (a dishonest exporter holding the
    log's key): what the proofs, not the hashes, must catch."""
    size = log.size if tree_size is None else tree_size
    end = size if end is None else end
    note = checkpoint or log.checkpoint(size)
    root = log.root(size)
    if selection == "range":
        seqs = list(range(start, end))
    elif selection == "entries":
        seqs = [s for s in range(size) if log.conversation[s] in conversations]
    else:
        drawn = sample_seqs(root, SEED, start, end, sample_size)
        if edit_sample is not None:
            drawn = edit_sample(drawn)
        seqs = sorted({start, end - 1, *drawn})
    lines = [entry_line(log, s) for s in seqs]
    if edit_lines is not None:
        lines = edit_lines(lines)
    parsed = [json.loads(line) for line in lines if line.strip()]
    line_seqs = [p["seq"] for p in parsed]
    files: dict[str, bytes] = {"checkpoint": note.encode()}
    keys = [log.signer.verifier_key()]
    if rotation_from is not None:
        statement = sign_rotation(rotation_from, log.signer, "2026-10-01T00:00:00Z")
        files["rotations/0.note"] = statement.encode()
        keys.append(rotation_from.verifier_key())
    files["verifier-keys"] = "".join(k + "\n" for k in keys).encode()
    files["entries.jsonl"] = b"".join(lines)
    if selection == "range":
        proof = {
            "start": start,
            "end": end,
            "tree_size": size,
            "left": [b64(log.nodes[n]) for n in range_nodes(0, start)],
            "consistency": [b64(h) for h in consistency_proof(end, size, log.nodes)],
        }
        files["proofs/range.json"] = canonicalize(proof)
    else:
        for s in line_seqs:
            files[f"proofs/{s}.tlog-proof"] = format_tlog_proof(
                s, inclusion_proof(s, size, log.nodes), note
            ).encode()
    if since is not None:
        files["consistency.json"] = canonicalize(
            {
                "from": log.checkpoint(since, since_signer),
                "from_size": since,
                "to_size": size,
                "hashes": [b64(h) for h in consistency_proof(since, size, log.nodes)],
            }
        )
    if reports:
        rows = "seq,type\n" + "".join(f"{s},handoff.message.created.v1\n" for s in line_seqs)
        files["reports/rows.csv"] = rows.encode()
    first = parsed[0] if parsed else None
    last = parsed[-1] if parsed else None
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "log": "bundle-log",
        "origin": ORIGIN,
        "profile": "soc2-population",
        "query": {"from_seq": start, "seed": SEED} if selection != "entries" else {},
        "generated_at": "2026-11-21T10:00:00.000000Z",
        "generated_by": {"kind": "credential", "id": "cred-auditor-1"},
        "tree_size": size,
        "root": b64(root),
        "selection": selection,
        "range": None if selection == "entries" else {"start": start, "end": end},
        "count": len(lines),
        "first": None if first is None else {"seq": first["seq"], "leaf_hash": first["leaf_hash"]},
        "last": None if last is None else {"seq": last["seq"], "leaf_hash": last["leaf_hash"]},
        "sample": {"algorithm": "handoff-ledger/sample/v1", "size": sample_size, "seed": SEED}
        if selection == "sample"
        else None,
        "conversations": list(conversations) if selection == "entries" else None,
        "files": {n: hashlib.sha256(d).hexdigest() for n, d in sorted(files.items())},
    }
    if edit_manifest is not None:
        edit_manifest(manifest)
    files["manifest.json"] = canonicalize(manifest)
    digest = hashlib.sha256(files["manifest.json"]).hexdigest()
    files["manifest.sig"] = sign_note(
        f"{FORMAT}\n{ORIGIN}\n{digest}\n", [manifest_signer or log.signer]
    ).encode()
    write_zip(path, files)
    return Bundle(path, files, manifest, line_seqs)


def write_zip(path: Path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)


def resign(log: Log, files: dict[str, bytes]) -> None:
    """Re-hash every file into the manifest and sign it again with the log's key."""
    manifest = json.loads(files["manifest.json"])
    manifest["files"] = {
        n: hashlib.sha256(d).hexdigest()
        for n, d in sorted(files.items())
        if n not in ("manifest.json", "manifest.sig")
    }
    files["manifest.json"] = canonicalize(manifest)
    digest = hashlib.sha256(files["manifest.json"]).hexdigest()
    files["manifest.sig"] = sign_note(f"{FORMAT}\n{ORIGIN}\n{digest}\n", [log.signer]).encode()


def change_one_byte(data: bytes) -> bytes:
    """One character in the middle of ``data`` replaced by another of its class (a digit by a
    digit, a letter by a letter), so the file still looks like what it was."""
    raw = bytearray(data)
    at = len(raw) // 2
    while not (raw[at] < 0x80 and chr(raw[at]).isalnum()):
        at += 1
    ch = chr(raw[at])
    if ch.isdigit():
        raw[at] = ord("0") + (int(ch) + 1) % 10
    else:
        base = ord("a") if ch.islower() else ord("A")
        raw[at] = base + (raw[at] - base + 1) % 26
    return bytes(raw)


# --- running both tools --------------------------------------------------------------------------


@pytest.fixture
def log() -> Log:
    return make_log()


@pytest.fixture
def run_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Results]:
    """``run_both(path, *args)`` -> [(exit code, stdout + stderr)] of ``ledger verify-bundle``
    and of the stand-alone script, on the same file."""
    from ledger.cli import main

    def run(path: Path, *args: str) -> Results:
        capsys.readouterr()
        code = main(["verify-bundle", str(path), *args])
        out, err = capsys.readouterr()
        script = subprocess.run(
            [sys.executable, "-I", str(STANDALONE), str(path), *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )
        return [(code, out + err), (script.returncode, script.stdout + script.stderr)]

    return run


def key_args(*signers: NoteSigner) -> list[str]:
    return [arg for s in signers for arg in ("--verifier-key", s.verifier_key())]


def assert_verified(results: Results) -> None:
    for (code, out), tool in zip(results, ("ledger verify-bundle", "standalone"), strict=True):
        assert code == 0, f"{tool}: exit {code}\n{out}"
        assert "VERIFIED" in out, f"{tool}:\n{out}"


def assert_fails(results: Results, *needles: str) -> None:
    for (code, out), tool in zip(results, ("ledger verify-bundle", "standalone"), strict=True):
        assert code == 1, f"{tool}: exit {code}\n{out}"
        assert "FAILED" in out, f"{tool}:\n{out}"
        for needle in needles:
            assert needle in out, f"{tool}: {needle!r} not in\n{out}"


def assert_cannot_run(results: Results, *needles: str) -> None:
    for (code, out), tool in zip(results, ("ledger verify-bundle", "standalone"), strict=True):
        assert code == 2, f"{tool}: exit {code}\n{out}"
        assert "cannot verify" in out, f"{tool}:\n{out}"
        assert "Traceback" not in out, f"{tool}:\n{out}"
        for needle in needles:
            assert needle in out, f"{tool}: {needle!r} not in\n{out}"


# --- valid bundles verify ------------------------------------------------------------------------


def test_a_range_bundle_verifies(log: Log, tmp_path: Path, run_both: Any) -> None:
    bundle = write_bundle(tmp_path / "range.zip", log, start=5, end=29, tree_size=40)
    results = run_both(bundle.path, *key_args(log.signer))
    assert_verified(results)
    out = results[0][1]
    assert "RESULT: VERIFIED" in out
    assert "range: seq [5, 29)" in out
    assert "entries checked: 24 (seq 5..28)" in out
    assert "every entry of seq [5, 29)" in out
    erased = sum(1 for s in range(5, 29) if log.statuses[s] == "erased")
    assert f"payloads verified: {24 - erased}" in out
    assert f"payloads erased: {erased}" in out
    assert "24 entries" in results[1][1]


@pytest.mark.parametrize(("start", "end", "size"), [(0, 48, 48), (0, 1, 48), (47, 48, 48)])
def test_range_edges(log: Log, tmp_path: Path, start: int, end: int, size: int) -> None:
    """From the first leaf (no left), to the checkpoint's end (no consistency proof)."""
    bundle = write_bundle(tmp_path / "r.zip", log, start=start, end=end, tree_size=size)
    report = verify_bundle(bundle.path, [log.signer.verifier()])
    assert report.intact, [str(f) for f in report.failures]
    assert report.entries == end - start


def test_an_entries_bundle_verifies(log: Log, tmp_path: Path, run_both: Any) -> None:
    bundle = write_bundle(tmp_path / "entries.zip", log, selection="entries")
    seqs = [s for s in range(48) if log.conversation[s] in ("c-alpha", "c-gamma")]
    assert seqs != list(range(seqs[0], seqs[0] + len(seqs)))  # interleaved with c-beta
    results = run_both(bundle.path, *key_args(log.signer))
    assert_verified(results)
    out = results[0][1]
    assert "conversations (2): c-alpha, c-gamma" in out
    assert f"entries checked: {len(seqs)}" in out
    assert "gap-free" in out
    assert "no entry after its last one here" in out


def test_a_sample_bundle_verifies(log: Log, tmp_path: Path, run_both: Any) -> None:
    bundle = write_bundle(tmp_path / "sample.zip", log, selection="sample", start=4, end=44)
    drawn = sample_seqs(log.root(48), SEED, 4, 44, 6)
    assert bundle.seqs == sorted({4, 43, *drawn})
    results = run_both(bundle.path, *key_args(log.signer))
    assert_verified(results)
    assert "sample: 6 seqs" in results[0][1]
    assert "neither the ledger nor the auditor chose them" in results[0][1]


def test_a_full_bundle_with_rotation_consistency_and_reports(tmp_path: Path, run_both: Any) -> None:
    """The auditor pinned the log's old key: the rotation statement certifies the new one,
    which signed the manifest and the checkpoint; the earlier checkpoint is the old key's."""
    old = NoteSigner.generate(ORIGIN)
    log = make_log(signer=NoteSigner.generate(ORIGIN))
    bundle = write_full(tmp_path / "full.zip", log, old)
    results = run_both(bundle.path, *key_args(old))
    assert_verified(results)
    out = results[0][1]
    assert f"key certified by a rotation statement: {log.signer.verifier_key()}" in out
    assert "consistency: from the checkpoint of size 20 to 48" in out
    assert "extends, unchanged" in out
    # without the rotation statement, the old key alone opens nothing
    del bundle.files["rotations/0.note"]
    bundle.files["verifier-keys"] = (log.signer.verifier_key() + "\n").encode()
    resign(log, bundle.files)
    write_zip(bundle.path, bundle.files)
    assert_fails(run_both(bundle.path, *key_args(old)), "manifest.sig: manifest_sig:")


def write_full(path: Path, log: Log, old: NoteSigner) -> Bundle:
    return write_bundle(
        path,
        log,
        start=10,
        end=30,
        tree_size=48,
        since=20,
        since_signer=old,
        rotation_from=old,
        reports=True,
    )


def test_keys_from_a_file_and_the_json_report(log: Log, tmp_path: Path, run_both: Any) -> None:
    bundle = write_bundle(tmp_path / "b.zip", log, start=3, end=9)
    keys = tmp_path / "keys.txt"
    keys.write_text("# from /verifier-key, 2026-11-20\n" + log.signer.verifier_key() + "\n")
    assert [code for code, _ in run_both(bundle.path, "--verifier-keys-file", str(keys))] == [
        0,
        0,
    ]
    results = run_both(bundle.path, *key_args(log.signer), "--json")
    for code, out in results:
        report = json.loads(out)
        assert code == 0
        assert (report["status"], report["intact"]) == ("verified", True)
        assert report["origin"] == ORIGIN
        assert report["selection"] == "range"
        assert report["entries"]["count"] == 6
        assert report["failures"] == []
    package = json.loads(results[0][1])
    assert package["range"] == [3, 9]
    assert package["checkpoint"]["signed_by"] == [log.signer.verifier_key()]
    assert any("every entry of seq [3, 9)" in p for p in package["proven"])


def test_the_parallel_path_finds_what_one_process_finds(log: Log, tmp_path: Path) -> None:
    """The process pool (big bundles) and one process give the same report, intact or not."""
    if threading.active_count() > 1:
        pytest.skip("the pool forks only from a process running one thread")
    bundle = write_bundle(tmp_path / "p.zip", log, start=2, end=46)
    keys = [log.signer.verifier()]
    one = verify_bundle(bundle.path, keys, jobs=1).as_json()
    assert one["intact"]
    lines = bundle.files["entries.jsonl"].splitlines(keepends=True)
    del lines[7]
    bundle.files["entries.jsonl"] = b"".join(lines)
    write_zip(bundle.path, bundle.files)
    one = verify_bundle(bundle.path, keys, jobs=1).as_json()
    two = verify_bundle(bundle.path, keys, jobs=2).as_json()
    assert not one["intact"]
    assert one == two


def test_progress_is_shown_on_a_terminal_only(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledger.cli import main
    from ledger.cli import verify_bundle as command

    bundle = write_bundle(tmp_path / "b.zip", log, start=2, end=40)
    monkeypatch.setattr(command, "PROGRESS_MIN_BYTES", 0)
    assert main(["verify-bundle", str(bundle.path), *key_args(log.signer)]) == 0
    assert "%" not in capsys.readouterr().err  # not a terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["verify-bundle", str(bundle.path), *key_args(log.signer)]) == 0
    assert "entries.jsonl 100%" in capsys.readouterr().err
    assert main(["verify-bundle", str(bundle.path), *key_args(log.signer), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["intact"]
    assert "%" not in err


# --- tampering: both tools exit 1 ----------------------------------------------------------------


FULL_FILES = [
    "manifest.json",
    "manifest.sig",
    "checkpoint",
    "verifier-keys",
    "rotations/0.note",
    "entries.jsonl",
    "proofs/range.json",
    "consistency.json",
    "reports/rows.csv",
]


@pytest.mark.parametrize("name", [*FULL_FILES, "tlog-proof"])
def test_one_byte_changed_in_a_file(tmp_path: Path, run_both: Any, name: str) -> None:
    old = NoteSigner.generate(ORIGIN)
    log = make_log(signer=NoteSigner.generate(ORIGIN))
    if name == "tlog-proof":
        bundle = write_bundle(tmp_path / "e.zip", log, selection="entries")
        name = f"proofs/{bundle.seqs[len(bundle.seqs) // 2]}.tlog-proof"
        keys = key_args(log.signer)
    else:
        bundle = write_full(tmp_path / "full.zip", log, old)
        keys = key_args(old)
    assert sorted(bundle.files) == sorted({*FULL_FILES, "manifest.json"}) or "tlog" in name
    bundle.files[name] = change_one_byte(bundle.files[name])
    write_zip(bundle.path, bundle.files)
    assert_fails(run_both(bundle.path, *keys), f"{name}: ")


def _drop(at: int) -> Callable[[list[bytes]], list[bytes]]:
    return lambda lines: lines[:at] + lines[at + 1 :]


def test_an_entry_dropped_and_the_manifest_resigned(
    log: Log, tmp_path: Path, run_both: Any
) -> None:
    """The exporter holds the log's key and signs a bundle without seq 12: the range proof."""
    bundle = write_bundle(tmp_path / "b.zip", log, start=5, end=30, edit_lines=_drop(7))
    assert 12 not in bundle.seqs
    assert_fails(
        run_both(bundle.path, *key_args(log.signer)), "entries.jsonl: seq 13: range:", "range"
    )


def test_an_entry_dropped_from_the_file(log: Log, tmp_path: Path, run_both: Any) -> None:
    """Without the key: the file's hash, the count, the range."""
    bundle = write_bundle(tmp_path / "b.zip", log, start=5, end=30)
    lines = bundle.files["entries.jsonl"].splitlines(keepends=True)
    bundle.files["entries.jsonl"] = b"".join(lines[:7] + lines[8:])
    write_zip(bundle.path, bundle.files)
    assert_fails(run_both(bundle.path, *key_args(log.signer)), "entries.jsonl: files:", "count")


def test_two_entries_swapped(log: Log, tmp_path: Path, run_both: Any) -> None:
    def swap(lines: list[bytes]) -> list[bytes]:
        lines[3], lines[4] = lines[4], lines[3]
        return lines

    bundle = write_bundle(tmp_path / "b.zip", log, start=5, end=30, edit_lines=swap)
    assert_fails(
        run_both(bundle.path, *key_args(log.signer)),
        "entries.jsonl: seq 8: order:",
        "range_proof",
    )


def test_two_entries_swapped_in_a_conversation(log: Log, tmp_path: Path, run_both: Any) -> None:
    """Two successive entries of one conversation trade places (and proofs): order, back-links."""
    seqs = [s for s in range(48) if log.conversation[s] in ("c-alpha", "c-gamma")]
    i = 3
    j = next(
        k for k in range(i + 1, len(seqs)) if log.conversation[seqs[k]] == log.conversation[seqs[i]]
    )

    def swap(lines: list[bytes]) -> list[bytes]:
        lines[i], lines[j] = lines[j], lines[i]
        return lines

    bundle = write_bundle(tmp_path / "e.zip", log, selection="entries", edit_lines=swap)
    assert_fails(run_both(bundle.path, *key_args(log.signer)), "order", "back_link")


def test_the_checkpoint_swapped_for_an_older_one(log: Log, tmp_path: Path, run_both: Any) -> None:
    """A real, signed, smaller checkpoint in place of the bundle's (hashes and manifest re-signed
    to match, so only what the checkpoint says can give it away)."""
    bundle = write_bundle(tmp_path / "b.zip", log, start=5, end=20, tree_size=40)
    bundle.files["checkpoint"] = log.checkpoint(30).encode()
    resign(log, bundle.files)
    write_zip(bundle.path, bundle.files)
    assert_fails(
        run_both(bundle.path, *key_args(log.signer)),
        "manifest.json: checkpoint:",
        "range_proof",
    )


def test_an_entries_bundle_with_an_older_checkpoint(
    log: Log, tmp_path: Path, run_both: Any
) -> None:
    bundle = write_bundle(tmp_path / "e.zip", log, selection="entries", tree_size=40)
    bundle.files["checkpoint"] = log.checkpoint(30).encode()
    resign(log, bundle.files)
    write_zip(bundle.path, bundle.files)
    assert_fails(run_both(bundle.path, *key_args(log.signer)), "checkpoint", "inclusion")


def test_manifest_sig_by_another_key(log: Log, tmp_path: Path, run_both: Any) -> None:
    """Same name, same text, another key."""
    bundle = write_bundle(
        tmp_path / "b.zip", log, start=1, end=9, manifest_signer=NoteSigner.generate(ORIGIN)
    )
    assert_fails(run_both(bundle.path, *key_args(log.signer)), "manifest.sig: manifest_sig:")


def test_the_wrong_key_for_the_log(log: Log, tmp_path: Path, run_both: Any) -> None:
    bundle = write_bundle(tmp_path / "b.zip", log, start=1, end=9)
    assert_fails(run_both(bundle.path, *key_args(NoteSigner.generate(ORIGIN))), "manifest_sig")


def test_the_sample_altered(log: Log, tmp_path: Path, run_both: Any) -> None:
    """One drawn seq replaced by another the exporter preferred (signed, with a valid proof)."""

    def replace(drawn: list[int]) -> list[int]:
        other = next(s for s in range(5, 44) if s not in drawn)
        return sorted([*drawn[:2], other, *drawn[3:]])

    drawn = sample_seqs(log.root(48), SEED, 4, 44, 6)
    bundle = write_bundle(
        tmp_path / "s.zip", log, selection="sample", start=4, end=44, edit_sample=replace
    )
    assert_fails(run_both(bundle.path, *key_args(log.signer)), f"seq {drawn[2]}: sample:")


def test_the_sample_seed_changed(log: Log, tmp_path: Path, run_both: Any) -> None:
    def reseed(manifest: dict[str, Any]) -> None:
        manifest["sample"]["seed"] = "another seed"

    bundle = write_bundle(
        tmp_path / "s.zip", log, selection="sample", start=4, end=44, edit_manifest=reseed
    )
    assert_fails(run_both(bundle.path, *key_args(log.signer)), "sample")


def test_a_conversation_chain_with_a_gap(log: Log, tmp_path: Path, run_both: Any) -> None:
    """An entry of a conversation left out of a signed entries bundle: the next one names it."""
    full = [s for s in range(48) if log.conversation[s] in ("c-alpha", "c-gamma")]
    bundle = write_bundle(tmp_path / "e.zip", log, selection="entries", edit_lines=_drop(6))
    missing = full[6]
    after = next(s for s in full[7:] if log.conversation[s] == log.conversation[missing])
    assert_fails(
        run_both(bundle.path, *key_args(log.signer)), f"seq {after}: back_link:", str(missing)
    )


def test_an_entry_of_another_conversation(log: Log, tmp_path: Path, run_both: Any) -> None:
    def only(manifest: dict[str, Any]) -> None:
        manifest["conversations"] = ["c-alpha"]

    bundle = write_bundle(tmp_path / "e.zip", log, selection="entries", edit_manifest=only)
    assert_fails(run_both(bundle.path, *key_args(log.signer)), "conversations")


def test_a_payload_changed(log: Log, tmp_path: Path, run_both: Any) -> None:
    def change(lines: list[bytes]) -> list[bytes]:
        line = json.loads(lines[1])
        line["payload_b64"] = b64(canonicalize({"message_id": "m-x", "text": "not said"}))
        lines[1] = canonicalize(line) + b"\n"
        return lines

    bundle = write_bundle(tmp_path / "b.zip", log, start=5, end=9, edit_lines=change)
    assert_fails(
        run_both(bundle.path, *key_args(log.signer)),
        "entries.jsonl: seq 6: payload:",
        "commitment",
    )


def test_a_line_that_is_not_canonical(log: Log, tmp_path: Path, run_both: Any) -> None:
    def spaced(lines: list[bytes]) -> list[bytes]:
        lines[2] = json.dumps(json.loads(lines[2])).encode() + b"\n"
        return lines

    bundle = write_bundle(tmp_path / "b.zip", log, start=5, end=9, edit_lines=spaced)
    assert_fails(run_both(bundle.path, *key_args(log.signer)), "line 3", "canonical")


def _line_edit(what: str) -> Callable[[list[bytes]], list[bytes]]:
    """One line of a range bundle's entries.jsonl made wrong in one way (before signing)."""

    def edit(lines: list[bytes]) -> list[bytes]:
        line = json.loads(lines[2])
        raw = base64.b64decode(line["entry_b64"])
        if what == "entry-not-base64":
            line["entry_b64"] = "not base64!"
        elif what == "entry-not-json":
            raw = b"not json"
        elif what == "entry-of-another-seq":
            line["seq"] += 100
        elif what == "unknown-status":
            line["payload_status"] = "maybe"
        elif what == "payload-without-salt":
            line["payload_salt"] = None
        elif what == "verified-without-payload":
            line["payload_b64"] = line["payload_salt"] = None
        elif what == "bad-commitment":
            entry = json.loads(raw)
            entry["payload"]["commitment"] = "!!"
            raw = canonicalize(entry)
        elif what == "empty-line":
            return [*lines[:2], b"\n", *lines[2:]]
        elif what == "seq-twice":
            return [*lines[:3], lines[2], *lines[3:]]
        if what in ("entry-not-json", "bad-commitment"):
            line["entry_b64"] = b64(raw)
            line["leaf_hash"] = b64(leaf_hash(raw))
        lines[2] = canonicalize(line) + b"\n"
        return lines

    return edit


@pytest.mark.parametrize(
    ("what", "says"),
    [
        ("entry-not-base64", "entry_b64"),
        ("entry-not-json", "entry_bytes: the entry bytes are not a JSON object"),
        ("entry-of-another-seq", "entry_bytes: the entry bytes name another seq"),
        ("unknown-status", "payload: payload_status is not one of"),
        ("payload-without-salt", "payload: payload_b64 and payload_salt must come together"),
        ("verified-without-payload", "payload: payload_status is verified, but no payload"),
        ("bad-commitment", "payload: the payload cannot be checked"),
        ("empty-line", "line 3: an empty line"),
        ("seq-twice", "order"),
    ],
)
def test_a_bad_line(log: Log, tmp_path: Path, run_both: Any, what: str, says: str) -> None:
    """Each made by an exporter holding the key (hashes and signature good): the line checks."""
    bundle = write_bundle(tmp_path / "b.zip", log, start=5, end=12, edit_lines=_line_edit(what))
    assert_fails(run_both(bundle.path, *key_args(log.signer)), "entries.jsonl: ", says)


def test_a_file_added(log: Log, tmp_path: Path, run_both: Any) -> None:
    bundle = write_bundle(tmp_path / "b.zip", log, start=5, end=9)
    bundle.files["notes.txt"] = b"trust me\n"
    write_zip(bundle.path, bundle.files)
    assert_fails(run_both(bundle.path, *key_args(log.signer)), "notes.txt: files:")


def test_a_file_removed(log: Log, tmp_path: Path, run_both: Any) -> None:
    bundle = write_bundle(tmp_path / "b.zip", log, selection="entries")
    name = f"proofs/{bundle.seqs[3]}.tlog-proof"
    del bundle.files[name]
    write_zip(bundle.path, bundle.files)
    assert_fails(run_both(bundle.path, *key_args(log.signer)), f"{name}: files:")


# --- a time window is complete at both ends ------------------------------------------------------


def window(start: str | None, end: str | None) -> Callable[[dict[str, Any]], None]:
    """The manifest's query of a bundle exported for received_at in [start, end)."""

    def edit(manifest: dict[str, Any]) -> None:
        times = {"from_time": start, "to_time": end}
        manifest["query"] = {k: v for k, v in times.items() if v is not None}

    return edit


@pytest.mark.parametrize(
    ("start", "end", "first", "last"),
    [
        (received(10), received(30), 9, 31),  # a neighbour at each end
        (received(10), None, 9, 48),  # to the checkpoint's end: no neighbour after
        (None, received(30), 0, 31),  # from the log's start: no neighbour before
        (received(1), received(47), 0, 48),  # both neighbours are the log's first and last
        ("2026-11-20T10:00:10+01:00", "2026-11-20T04:00:30-05:00", 9, 31),  # instants
    ],
    ids=["both", "from-only", "to-only", "at-the-log's-ends", "offsets"],
)
def test_a_time_window_bundle_verifies(
    log: Log,
    tmp_path: Path,
    run_both: Any,
    start: str | None,
    end: str | None,
    first: int,
    last: int,
) -> None:
    """The window [start, end) as the exporter cuts it (select.py's ``_range``): its entries,
    and the one just before and just after it when they exist."""
    bundle = write_bundle(
        tmp_path / "w.zip", log, start=first, end=last, edit_manifest=window(start, end)
    )
    results = run_both(bundle.path, *key_args(log.signer))
    assert_verified(results)
    for _, out in results:
        assert "time window" in out
        assert "time_window:" not in out  # no failure, no warning
    assert "is complete at both ends" in results[0][1]
    assert "for you to read" not in results[0][1]
    report = json.loads(run_both(bundle.path, *key_args(log.signer), "--json")[1][1])
    assert report["time_window"] == {"from_time": start, "to_time": end}
    package = verify_bundle(bundle.path, [log.signer.verifier()])
    assert package.intact
    assert package.time_window == (start, end)


@pytest.mark.parametrize(
    ("first", "last", "seq", "says"),
    [
        (10, 31, 10, "the neighbour before the time window, was received at or after from_time"),
        (8, 31, 9, "the window's first, was received before from_time"),
        (9, 30, 29, "the neighbour after the time window, was received before to_time"),
        (9, 32, 30, "the window's last, was received at or after to_time"),
    ],
    ids=["cut-after-the-window's-start", "widened-before", "cut-before-its-end", "widened-after"],
)
def test_a_range_that_does_not_fit_its_window(
    log: Log, tmp_path: Path, run_both: Any, first: int, last: int, seq: int, says: str
) -> None:
    """Signed by an exporter holding the key, every proof good: only received_at tells that the
    range is not the window's (entries of it left out, or others added)."""
    bundle = write_bundle(
        tmp_path / "w.zip",
        log,
        start=first,
        end=last,
        edit_manifest=window(received(10), received(30)),
    )
    assert_fails(
        run_both(bundle.path, *key_args(log.signer)),
        f"entries.jsonl: seq {seq}: time_window:",
        says,
    )


def test_a_sample_of_a_window(log: Log, tmp_path: Path, run_both: Any) -> None:
    """A sample's population is the window's range: its first and last are checked (the seqs
    next to them only when drawn)."""
    edit = window(received(10), received(30))
    bundle = write_bundle(
        tmp_path / "s.zip", log, selection="sample", start=9, end=31, edit_manifest=edit
    )
    assert_verified(run_both(bundle.path, *key_args(log.signer)))
    bundle = write_bundle(
        tmp_path / "s.zip", log, selection="sample", start=10, end=31, edit_manifest=edit
    )
    assert_fails(run_both(bundle.path, *key_args(log.signer)), "seq 10: time_window:")


def test_clock_skew_inside_the_window_is_a_warning(tmp_path: Path, run_both: Any) -> None:
    """Seq 20 received (by another server process) before seq 19: inside the range, outside the
    window; not a failure, but shown."""
    skewed = make_log(received_at=lambda seq: received(5 if seq == 20 else seq))
    bundle = write_bundle(
        tmp_path / "w.zip",
        skewed,
        start=9,
        end=31,
        edit_manifest=window(received(10), received(30)),
    )
    results = run_both(bundle.path, *key_args(skewed.signer))
    assert_verified(results)
    for _, out in results:
        assert "seq 20: time_window: received at 2026-11-20T09:00:05.000000Z" in out
    report = verify_bundle(bundle.path, [skewed.signer.verifier()])
    assert [(w.seq, w.check) for w in report.warnings] == [(20, "time_window")]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"from_time": "yesterday"}, "manifest.json: time_window: query.from_time"),
        ({"to_time": "2026-11-20T09:00:30"}, "manifest.json: time_window: query.to_time"),
    ],
    ids=["not-a-time", "no-offset"],
)
def test_a_window_that_is_not_a_time(
    log: Log, tmp_path: Path, run_both: Any, query: dict[str, str], says: str
) -> None:
    def edit(manifest: dict[str, Any]) -> None:
        manifest["query"] = query

    bundle = write_bundle(tmp_path / "w.zip", log, start=9, end=31, edit_manifest=edit)
    assert_fails(run_both(bundle.path, *key_args(log.signer)), says)


def test_a_received_at_that_is_not_a_time(tmp_path: Path, run_both: Any) -> None:
    odd = make_log(received_at=lambda seq: "soon" if seq == 15 else received(seq))
    bundle = write_bundle(
        tmp_path / "w.zip", odd, start=9, end=31, edit_manifest=window(received(10), None)
    )
    assert_fails(run_both(bundle.path, *key_args(odd.signer)), "seq 15: time_window:")


# --- pci-dss-10 carries no payload ---------------------------------------------------------------


def withheld(lines: list[bytes]) -> list[bytes]:
    """Every line as a pci-dss-10 bundle carries it: payload_status withheld, no payload."""
    out = []
    for line in lines:
        obj = json.loads(line)
        obj.update(payload_status="withheld", payload_b64=None, payload_salt=None)
        out.append(canonicalize(obj) + b"\n")
    return out


def pci(manifest: dict[str, Any]) -> None:
    manifest["profile"] = "pci-dss-10"


def test_a_pci_bundle_without_payloads_verifies(log: Log, tmp_path: Path, run_both: Any) -> None:
    bundle = write_bundle(tmp_path / "p.zip", log, edit_lines=withheld, edit_manifest=pci)
    results = run_both(bundle.path, *key_args(log.signer))
    assert_verified(results)
    assert "payloads withheld: 48" in results[0][1]


@pytest.mark.parametrize(
    ("seq", "change"),
    [
        (4, {}),
        (3, {}),
        (4, {"payload_status": "withheld"}),
        (4, {"payload_status": "withheld", "payload_b64": None}),
    ],
    ids=["verified-payload", "erased", "withheld-with-payload", "withheld-with-salt"],
)
def test_a_pci_bundle_carrying_a_payload_fails(
    log: Log, tmp_path: Path, run_both: Any, seq: int, change: dict[str, Any]
) -> None:
    """Card data is never in a pci-dss-10 bundle: a line that is not withheld, or that carries a
    payload or a salt, fails (even when the payload checks against its commitment)."""
    assert (log.statuses[3], log.statuses[4]) == ("erased", "verified")

    def edit(lines: list[bytes]) -> list[bytes]:
        lines = withheld(lines)
        lines[seq] = canonicalize(json.loads(entry_line(log, seq)) | change) + b"\n"
        return lines

    bundle = write_bundle(tmp_path / "p.zip", log, end=10, edit_lines=edit, edit_manifest=pci)
    assert_fails(
        run_both(bundle.path, *key_args(log.signer)), f"entries.jsonl: seq {seq}: ", "pci-dss-10"
    )


# --- exported for real ---------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["soc2-population", "pci-dss-10"])
def test_a_time_window_exported_for_real(
    client: Any, new_log: Any, token: Any, tmp_path: Path, run_both: Any, profile: str
) -> None:
    """Three batches (each its own received_at); the window is the middle one: the bundle holds
    it and its two neighbours, and both verifiers prove it complete at both ends."""
    from tests.conftest import make_event

    log_id = new_log()
    writer = {"Authorization": f"Bearer {token(log_id, 'writer')}"}
    for batch in range(3):
        events = [make_event(f"c-{batch}", n) for n in range(4)]
        r = client.post(f"/v1/logs/{log_id}/events", json={"events": events}, headers=writer)
        assert r.status_code == 201, r.text
    auditor = {"Authorization": f"Bearer {token(log_id, 'auditor')}"}
    entries = client.get(f"/v1/logs/{log_id}/entries", headers=auditor).json()["entries"]
    times = [e["entry"]["received_at"] for e in entries]
    assert times == sorted(times)
    assert times[3] < times[4]
    assert times[7] < times[8]
    query = {"profile": profile, "from_time": times[4], "to_time": times[8]}
    r = client.post(f"/v1/logs/{log_id}/exports", json=query, headers=auditor)
    assert r.status_code == 200, r.text
    path = tmp_path / "window.zip"
    path.write_bytes(r.content)
    with zipfile.ZipFile(path) as z:
        manifest = json.loads(z.read("manifest.json"))
        lines = [json.loads(x) for x in z.read("entries.jsonl").splitlines()]
    assert manifest["range"] == {"start": 3, "end": 9}
    assert [line["seq"] for line in lines] == list(range(3, 9))
    if profile == "pci-dss-10":
        assert {line["payload_status"] for line in lines} == {"withheld"}
    keys = client.get(f"/v1/logs/{log_id}/verifier-key").text.split()
    results = run_both(path, *[a for k in keys for a in ("--verifier-key", k)])
    assert_verified(results)
    assert "is complete at both ends" in results[0][1]


# --- cannot run: exit 2 --------------------------------------------------------------------------


def zip_of(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return path


def test_not_a_zip(log: Log, tmp_path: Path, run_both: Any) -> None:
    path = tmp_path / "b.zip"
    path.write_text('{"this": "is json"}\n')
    assert_cannot_run(run_both(path, *key_args(log.signer)), "not a zip")


def test_a_truncated_zip(log: Log, tmp_path: Path, run_both: Any) -> None:
    bundle = write_bundle(tmp_path / "b.zip", log, start=5, end=30)
    data = bundle.path.read_bytes()
    bundle.path.write_bytes(data[: len(data) // 2])
    assert_cannot_run(run_both(bundle.path, *key_args(log.signer)))


def test_a_missing_file(log: Log, tmp_path: Path, run_both: Any) -> None:
    assert_cannot_run(run_both(tmp_path / "nothing.zip", *key_args(log.signer)))


def test_no_manifest(log: Log, tmp_path: Path, run_both: Any) -> None:
    bundle = write_bundle(tmp_path / "b.zip", log, start=5, end=9)
    del bundle.files["manifest.json"]
    write_zip(bundle.path, bundle.files)
    assert_cannot_run(run_both(bundle.path, *key_args(log.signer)), "manifest.json")


def test_a_zip_bomb(log: Log, tmp_path: Path, run_both: Any) -> None:
    """16 MiB of zeros deflate to 16 KiB: refused from the zip's directory, nothing inflated."""
    bundle = write_bundle(tmp_path / "b.zip", log, start=5, end=9)
    bundle.files["entries.jsonl"] = bytes(16 << 20)
    write_zip(bundle.path, bundle.files)
    assert bundle.path.stat().st_size < 1 << 20
    assert_cannot_run(run_both(bundle.path, *key_args(log.signer)), "zip bomb")


def test_a_member_over_its_size_limit(log: Log, tmp_path: Path, run_both: Any) -> None:
    bundle = write_bundle(tmp_path / "b.zip", log, start=5, end=9)
    bundle.files["checkpoint"] = hashlib.sha256(b"x").hexdigest().encode() * (70_000)
    write_zip(bundle.path, bundle.files)
    assert_cannot_run(run_both(bundle.path, *key_args(log.signer)), "limit")


@pytest.mark.parametrize(
    "name",
    ["../evil.txt", "proofs/../../evil.txt", "/tmp/evil.txt", "proofs\\1.tlog-proof", "C:evil"],
    ids=["dotdot", "nested-dotdot", "absolute", "backslash", "drive"],
)
def test_an_unsafe_path(log: Log, tmp_path: Path, run_both: Any, name: str) -> None:
    bundle = write_bundle(tmp_path / "b.zip", log, start=5, end=9)
    path = zip_of(tmp_path / "evil.zip", {**bundle.files, name: b"pwned\n"})
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    assert_cannot_run(run_both(path, *key_args(log.signer)), "unsafe name")
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
    assert not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/evil.txt").exists()


def test_a_name_twice(log: Log, tmp_path: Path, run_both: Any) -> None:
    bundle = write_bundle(tmp_path / "b.zip", log, start=5, end=9)
    path = tmp_path / "twice.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in bundle.files.items():
            z.writestr(name, data)
        with pytest.warns(UserWarning, match="Duplicate name"):
            z.writestr("checkpoint", b"another\n")
    assert_cannot_run(run_both(path, *key_args(log.signer)), "twice")


def test_no_verifier_key(log: Log, tmp_path: Path, run_both: Any) -> None:
    bundle = write_bundle(tmp_path / "b.zip", log, start=5, end=9)
    assert_cannot_run(run_both(bundle.path), "no verifier key")


def test_only_a_key_of_another_log(log: Log, tmp_path: Path, run_both: Any) -> None:
    bundle = write_bundle(tmp_path / "b.zip", log, start=5, end=9)
    other = NoteSigner.generate("ledger.test/another-log")
    assert_cannot_run(run_both(bundle.path, *key_args(other)), "another-log")


def test_an_unparsable_key(log: Log, tmp_path: Path, run_both: Any) -> None:
    bundle = write_bundle(tmp_path / "b.zip", log, start=5, end=9)
    assert_cannot_run(run_both(bundle.path, "--verifier-key", "not-a-key"))


def test_the_package_raises_the_malformed_bundle_error(log: Log, tmp_path: Path) -> None:
    path = tmp_path / "b.zip"
    path.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(BundleMalformed):
        verify_bundle(path, [log.signer.verifier()])


# --- the sample algorithm and the tlog-proof format ----------------------------------------------


def _sample_reference(root: bytes, seed: str, start: int, end: int, k: int) -> list[int]:
    """docs/evidence-bundle.md's pseudo-code, line by line."""
    s = hashlib.sha256(b"handoff-ledger/sample/v1\n" + root + b"\n" + seed.encode()).digest()
    n = end - start
    limit = 2**64 - (2**64 % n)
    kept: list[int] = []
    i = 0
    while len(kept) < k:
        x = int.from_bytes(hashlib.sha256(s + i.to_bytes(8, "big")).digest()[:8], "big")
        if x < limit and start + x % n not in kept:
            kept.append(start + x % n)
        i += 1
    return sorted(kept)


@settings(max_examples=200, deadline=None)
@given(
    root=st.binary(min_size=32, max_size=32),
    seed=st.text(max_size=20),
    start=st.integers(0, 2**40),
    n=st.integers(1, 300),
    data=st.data(),
)
def test_sample_seqs_properties(
    root: bytes, seed: str, start: int, n: int, data: st.DataObject
) -> None:
    k = data.draw(st.integers(0, min(n, 40)))
    drawn = sample_seqs(root, seed, start, start + n, k)
    assert drawn == sorted(set(drawn))
    assert len(drawn) == k
    assert all(start <= s < start + n for s in drawn)
    assert drawn == sample_seqs(root, seed, start, start + n, k)  # a function of its inputs
    assert drawn == _sample_reference(root, seed, start, start + n, k)
    if k < n:  # a prefix of a longer draw: asking for more never changes the first ones
        longer = set(sample_seqs(root, seed, start, start + n, k + 1))
        assert set(drawn) < longer


def test_sample_seqs_vector_and_limits() -> None:
    root = bytes(range(32))
    assert sample_seqs(root, "", 0, 1, 1) == [0]
    assert sample_seqs(root, "", 10, 20, 10) == list(range(10, 20))
    assert sample_seqs(root, "seed", 0, 1000, 5) == _sample_reference(root, "seed", 0, 1000, 5)
    assert sample_seqs(root, "a", 0, 10**6, 8) != sample_seqs(root, "b", 0, 10**6, 8)
    for bad in [(0, 0, 0), (5, 4, 1), (0, 3, 4), (0, 3, -1)]:
        with pytest.raises(ValueError, match=r"sample|population|draw"):
            sample_seqs(root, "", *bad)
    with pytest.raises(ValueError, match="32"):
        sample_seqs(b"short", "", 0, 10, 1)


TLOG_EXAMPLE = """c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

\u2014 example.com/fancylog hI2DJw[...]1roloI=
\u2014 witness1.example mJirIklj[...]qY9v2B/5bg==
"""
"""The example of c2sp.org/tlog-proof (its signatures elided there, so not opened here)."""


def test_the_c2sp_tlog_proof_example() -> None:
    index, hashes, checkpoint = parse_tlog_proof(TLOG_EXAMPLE)
    assert index == 73894
    assert [b64(h) for h in hashes] == TLOG_EXAMPLE.split("\n")[3:8]
    assert checkpoint.startswith("example.com/fancylog\n109482\nsFodV/")
    assert checkpoint == TLOG_EXAMPLE.split("\n\n", 1)[1]
    extra = base64.b64decode("YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ")
    assert format_tlog_proof(index, hashes, checkpoint, extra=extra) == TLOG_EXAMPLE
    without = TLOG_EXAMPLE.replace(TLOG_EXAMPLE.split("\n")[1] + "\n", "")
    assert format_tlog_proof(index, hashes, checkpoint) == without
    assert parse_tlog_proof(without) == (index, hashes, checkpoint)


@settings(max_examples=100, deadline=None)
@given(
    index=st.integers(0, 2**64 - 1),
    hashes=st.lists(st.binary(min_size=32, max_size=32), max_size=64),
)
def test_tlog_proof_round_trip(index: int, hashes: list[bytes]) -> None:
    checkpoint = make_log(1).checkpoint(1) if index == 0 else "o\n1\n" + b64(bytes(32)) + "\n\n"
    text = format_tlog_proof(index, hashes, checkpoint)
    assert parse_tlog_proof(text) == (index, hashes, checkpoint)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "c2sp.org/tlog-proof@v2\nindex 1\n\ncp\n",
        "c2sp.org/tlog-proof@v1\nindex 01\n\ncp\n",
        "c2sp.org/tlog-proof@v1\nindex -1\n\ncp\n",
        "c2sp.org/tlog-proof@v1\nindex 18446744073709551616\n\ncp\n",
        "c2sp.org/tlog-proof@v1\nindex 1\n\n",
        "c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\ncp\n",
        "c2sp.org/tlog-proof@v1\nindex 1\n" + b64(bytes(32)) + "\ncp\n",
        "c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\ncp\n",
        "c2sp.org/tlog-proof@v1\nindex 1\n" + b64(bytes(32))[:-2] + "B=\n\ncp\n",
        "c2sp.org/tlog-proof@v1\r\nindex 1\n\ncp\n",
        "c2sp.org/tlog-proof@v1\nextra AA==\n",
    ],
)
def test_malformed_tlog_proofs(text: str) -> None:
    with pytest.raises(NoteFormatError):
        parse_tlog_proof(text)


_B64_TEXT = st.binary(max_size=40).map(b64)


@settings(max_examples=300, deadline=None)
@given(
    seq=st.one_of(st.integers(0, 2**53 - 1), st.integers(2**53, 2**60), st.integers(-5, -1)),
    entry=st.one_of(_B64_TEXT, st.text(max_size=8)),
    leaf=st.one_of(st.binary(min_size=32, max_size=32).map(b64), st.text(max_size=8)),
    status=st.one_of(st.sampled_from(["verified", "erased", "withheld"]), st.text(max_size=6)),
    payload=st.one_of(st.none(), _B64_TEXT, st.text(max_size=6)),
    salt=st.one_of(st.none(), _B64_TEXT),
    extra=st.booleans(),
    form=st.sampled_from(["canonical", "spaced", "unsorted"]),
)
def test_the_fast_line_form_is_exactly_the_canonical_one(
    seq: int,
    entry: str,
    leaf: str,
    status: str,
    payload: str | None,
    salt: str | None,
    extra: bool,
    form: str,
) -> None:
    """The verifier's shortcut for a line accepts only what canonicalize() would write, and
    every canonical line of base64 values (the fast path is a speed-up, never a loophole)."""
    from ledger.services.exports.verify import _fast_fields

    obj: dict[str, Any] = {
        "seq": seq,
        "leaf_hash": leaf,
        "entry_b64": entry,
        "payload_status": status,
        "payload_b64": payload,
        "payload_salt": salt,
    }
    if extra:
        obj["zz"] = 1
    if form == "canonical" and 0 <= seq < 2**53:
        line = canonicalize(obj)
    elif form == "spaced":
        line = json.dumps(obj, sort_keys=True).encode()
    else:
        line = json.dumps(dict(reversed(obj.items())), separators=(",", ":")).encode()
    fields = _fast_fields(line)
    if fields is not None:
        assert canonicalize(json.loads(line)) == line
        assert set(json.loads(line)) == set(obj)
        assert not extra
        assert fields[:2] == (seq, base64.b64decode(entry))
    values_ok = (
        all(_canonical_b64(v) for v in (entry, payload, salt) if v is not None)
        and _canonical_b64(leaf)
        and status in ("verified", "erased", "withheld")
    )
    if form == "canonical" and 0 <= seq < 2**53 and not extra and values_ok:
        assert fields is not None


def _canonical_b64(text: str) -> bool:
    try:
        return b64(base64.b64decode(text, validate=True)) == text
    except ValueError:
        return False


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


def test_the_standalone_script_samples_like_the_package() -> None:
    """Its copy of handoff-ledger/sample/v1 (it may not import the ledger) draws the same."""
    namespace: dict[str, Any] = {"__name__": "standalone"}
    exec(compile(STANDALONE.read_text(), str(STANDALONE), "exec"), namespace)
    for root, seed, start, end, k in [
        (bytes(32), "", 0, 10, 3),
        (bytes(range(32)), "s\u00e9ed", 5, 10**9, 50),
        (hashlib.sha256(b"r").digest(), "x", 100, 103, 3),
    ]:
        assert namespace["sample_seqs"](root, seed, start, end, k) == sample_seqs(
            root, seed, start, end, k
        )


def test_the_zip_is_read_in_memory(log: Log, tmp_path: Path, monkeypatch: Any) -> None:
    """Nothing is extracted: the verifier never calls extract / extractall."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the verifier extracted a member")

    monkeypatch.setattr(zipfile.ZipFile, "extract", refuse)
    monkeypatch.setattr(zipfile.ZipFile, "extractall", refuse)
    bundle = write_bundle(tmp_path / "b.zip", log, selection="entries")
    assert verify_bundle(bundle.path, [log.signer.verifier()]).intact
