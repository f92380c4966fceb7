"""Writing an evidence bundle (``docs/evidence-bundle.md``, version 2): one zip an auditor checks
offline with ``ledger verify-bundle`` or ``ops/verify_bundle_standalone.py``. Version 2 adds
the signed records of erased payloads and the witness cosignatures (``evidence``).

Streamed: entries go from the database to the zip a chunk at a time, each file hashed as it is
written; only the seqs of a selection (for its tlog-proofs) are kept in memory. Before the
manifest is signed, the bundle's own proof is checked against the checkpoint: the ledger never
signs a bundle that would not verify.
"""

from __future__ import annotations

import binascii
import hashlib
import queue
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import orjson
from sqlalchemy import Connection

from ledger.core.canonical import MAX_SAFE_INTEGER, canonicalize
from ledger.core.entry import b64, format_time
from ledger.core.merkle import (
    frontier_extend,
    frontier_root,
    range_nodes,
    verify_consistency,
)
from ledger.core.note import sign_note
from ledger.core.sampling import SAMPLE_ALGORITHM
from ledger.core.tlog_proof import format_tlog_proof
from ledger.domain import LogInfo
from ledger.errors import ConsistencyProofInvalid, IntegrityFailure
from ledger.services.exports.evidence import (
    WITNESSES_FILE,
    erasure_evidence,
    witness_cosignatures,
)
from ledger.services.exports.model import ExportContext
from ledger.services.exports.select import Carried, ExportPlan
from ledger.storage import proofs
from ledger.storage.keystore import KeyRing, active_key_id, rotation_statements, verifier_keys

BUNDLE_FORMAT = "handoff-ledger/evidence-bundle/v2"
PROOF_BATCH = 1000
WRITER_KEYS_FILE = "writer-keys.json"
"""The log's writer keys with their history (``docs/evidence-bundle.md``, writer signatures)."""
Progress = Callable[[int], None]


@dataclass(frozen=True)
class WrittenBundle:
    manifest_sha256: str
    count: int


class _Hashed:
    """A zip member being written, hashed as it goes."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.sha256.update(data)
        self._stream.write(data)


class WriteBehind:
    """Writes handed to ``sink`` on a second thread, in order. SHA-256, the zip's CRC-32 and
    deflate, and the file write itself, release the GIL on large buffers: they run on another
    core while this thread builds the next chunk. ``write`` raises the sink's first error."""

    DEPTH = 2
    """Chunks queued at most (each a few MB): bounded memory, and the producer waits."""

    def __init__(self, sink: Callable[[bytes], object]) -> None:
        self._sink = sink
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=self.DEPTH)
        self._error: BaseException | None = None
        self._abandoned = False
        self._thread = threading.Thread(target=self._run, name="export-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._error is None and not self._abandoned:
                try:
                    self._sink(data)
                except BaseException as exc:  # handed to the producer, which re-raises it
                    self._error = exc

    def write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(data)

    def close(self) -> None:
        """Wait until everything is written; raise the sink's error, if any."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        """The producer failed: drop what is queued, wait for the thread to end."""
        self._abandoned = True
        self._queue.put(None)
        self._thread.join()


class _Zip:
    def __init__(self, path: Path) -> None:
        # Level 1: the bulk is base64 and hashes, which compress little; higher levels cost
        # several times the CPU for a few percent.
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
        self.files: dict[str, str] = {}

    def write(self, name: str, chunks: Iterable[bytes]) -> None:
        """A member streamed from ``chunks``, hashed, checksummed and deflated on a second
        thread (:class:`WriteBehind`) while the chunks are made."""
        with self.zip.open(name, "w", force_zip64=True) as member:
            hashed = _Hashed(member)
            behind = WriteBehind(hashed.write)
            iterator = iter(chunks)
            try:
                for chunk in iterator:
                    behind.write(chunk)
            except BaseException:
                _close(iterator)
                behind.abandon()
                raise
            behind.close()
        self.files[name] = hashed.sha256.hexdigest()

    def write_bytes(self, name: str, data: bytes) -> None:
        with self.zip.open(name, "w", force_zip64=True) as member:
            hashed = _Hashed(member)
            hashed.write(data)
        self.files[name] = hashed.sha256.hexdigest()


def write_bundle(
    path: Path,
    conn: Connection,
    log: LogInfo,
    *,
    ctx: ExportContext,
    plan: ExportPlan,
    entries: Iterable[list[Carried]],
    keys: KeyRing,
    reports: dict[str, Callable[[], Iterator[bytes]]],
    progress: Progress | None = None,
) -> WrittenBundle:
    """Write the bundle of ``plan`` to ``path``. ``entries`` are the plan's entries in seq
    order, in chunks; ``reports`` maps a file name under ``reports/`` to a renderer of its bytes."""
    out = _Zip(path)
    try:
        out.write_bytes("checkpoint", ctx.checkpoint.encode())
        out.write_bytes(
            "verifier-keys", "".join(k + "\n" for k in verifier_keys(conn, log.id)).encode()
        )
        for i, statement in enumerate(rotation_statements(conn, log.id)):
            out.write_bytes(f"rotations/{i}.note", statement.encode())
        fold = _Fold.at(conn, log, plan.start) if plan.selection == "range" else None
        lines = _EntryLines(entries, progress, fold)
        out.write("entries.jsonl", lines)
        if fold is not None:
            out.write_bytes("proofs/range.json", _range_proof(conn, log, plan, fold))
        else:
            for seq, text in _tlog_proofs(conn, log, ctx, lines.seqs):
                out.write_bytes(f"proofs/{seq}.tlog-proof", text.encode())
        if plan.since is not None:
            out.write_bytes("consistency.json", _consistency(conn, log, plan))
        # v2: the records of erased payloads and the log's writer-key records (issue 18), proven
        # in the system log, and the witnesses' cosignatures. writer-keys.json restates the keys
        # the records state, for reading: the verifiers check signatures against the records.
        evidence = erasure_evidence(conn, log, keys, lines.erased)
        if evidence is not None:
            for name, data in evidence.files():
                out.write_bytes(name, data)
            if evidence.key_records:
                writer_keys = [key.as_json() for key in evidence.writer_keys()]
                out.write_bytes(WRITER_KEYS_FILE, canonicalize({"keys": writer_keys}))
        cosigned = witness_cosignatures(conn, log, ctx.tree_size, evidence)
        if cosigned is not None:
            out.write_bytes(WITNESSES_FILE, cosigned)
        for name, render in reports.items():
            out.write(f"reports/{name}", render())
        described = _manifest(ctx, plan, lines, out.files)
        described["erasures"] = None if evidence is None else evidence.manifest()
        manifest = canonicalize(described)
        out.write_bytes("manifest.json", manifest)
        digest = hashlib.sha256(manifest).hexdigest()
        out.write_bytes("manifest.sig", _sign_manifest(conn, log, keys, digest).encode())
    finally:
        out.zip.close()
    return WrittenBundle(digest, lines.count)


class _Fold:
    """The range's leaves folded into the tree's frontier as they stream (constant memory)."""

    BATCH = 5000

    def __init__(self, left: list[bytes], start: int) -> None:
        self.left = left
        self.frontier = list(left)
        self.size = start
        self._pending: list[bytes] = []

    @classmethod
    def at(cls, conn: Connection, log: LogInfo, start: int) -> _Fold:
        """Starting from the stored perfect subtrees that tile ``[0, start)``."""
        tiles = range_nodes(0, start)
        nodes = proofs.fetch_nodes(conn, log.id, tiles)
        return cls([nodes[t] for t in tiles], start)

    def extend(self, leaves: Iterable[bytes]) -> None:
        self._pending.extend(leaves)
        if len(self._pending) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        self.frontier, _ = frontier_extend(self.frontier, self.size, self._pending)
        self.size += len(self._pending)
        self._pending = []


_STATUSES: Final = {
    status: status.encode("ascii")
    for status in ("verified", "erased", "missing", "undecryptable", "mismatch", "withheld")
}
# The canonical (RFC 8785) line, keys in sorted order, for values canonical JSON writes as they
# are: base64 (ASCII, nothing to escape), a known status, and a seq within +-(2**53 - 1).
_LINE_WITH_PAYLOAD: Final = (
    b'{"entry_b64":"%s","leaf_hash":"%s","payload_b64":"%s","payload_salt":"%s",'
    b'"payload_status":"%s","seq":%d}\n'
)
_LINE_WITHOUT_PAYLOAD: Final = (
    b'{"entry_b64":"%s","leaf_hash":"%s","payload_b64":null,"payload_salt":null,'
    b'"payload_status":"%s","seq":%d}\n'
)


def entry_line(e: Carried) -> bytes:
    """The ``entries.jsonl`` line of ``e``: ``canonicalize`` of its object, and ``\\n``."""
    seq, leaf_hash, entry_bytes, status, data, salt = e
    line = {
        "seq": seq,
        "leaf_hash": b64(leaf_hash),
        "entry_b64": b64(entry_bytes),
        "payload_status": status,
        "payload_b64": None if data is None else b64(data),
        "payload_salt": None if salt is None else b64(salt),
    }
    return canonicalize(line) + b"\n"


def entry_lines(chunk: Iterable[Carried]) -> bytes:
    """The lines of ``chunk``, joined: byte for byte ``entry_line`` of each, built straight
    from the template when every value is one canonical JSON writes verbatim (always, for
    what the ledger stores), else by ``entry_line``."""
    b2a, statuses = binascii.b2a_base64, _STATUSES
    lines: list[bytes] = []
    append = lines.append
    for e in chunk:
        seq, leaf_hash, entry_bytes, status, data, salt = e
        known = statuses.get(status)
        if (
            known is None
            or type(seq) is not int
            or not -MAX_SAFE_INTEGER <= seq <= MAX_SAFE_INTEGER
        ):
            append(entry_line(e))
        elif data is not None and salt is not None:
            append(
                _LINE_WITH_PAYLOAD
                % (
                    b2a(entry_bytes, newline=False),
                    b2a(leaf_hash, newline=False),
                    b2a(data, newline=False),
                    b2a(salt, newline=False),
                    known,
                    seq,
                )
            )
        elif data is None and salt is None:
            append(
                _LINE_WITHOUT_PAYLOAD
                % (b2a(entry_bytes, newline=False), b2a(leaf_hash, newline=False), known, seq)
            )
        else:
            append(entry_line(e))
    return b"".join(lines)


class _EntryLines:
    """``entries.jsonl`` as it streams, a chunk of lines at a time, remembering what the
    manifest and the proofs need."""

    def __init__(
        self, chunks: Iterable[list[Carried]], progress: Progress | None, fold: _Fold | None
    ) -> None:
        self._chunks = chunks
        self._progress = progress
        self._fold = fold
        self.count = 0
        self.first: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None
        self.seqs: list[int] = []
        """A selection's seqs, for its tlog-proofs (a range needs none: it is folded)."""
        self.erased: list[tuple[int, str]] = []
        """``(seq, conversation)`` of the erased payloads, for their records (v2)."""

    def __iter__(self) -> Iterator[bytes]:
        previous = -1
        try:
            for chunk in self._chunks:
                if not chunk:
                    continue
                seqs = [e[0] for e in chunk]
                for seq in seqs:
                    if seq <= previous:
                        raise IntegrityFailure("entries read out of seq order", seq=seq)
                    previous = seq
                yield entry_lines(chunk)
                self.erased.extend(_erased(chunk))
                self.first = self.first or _end(chunk[0])
                self.last = _end(chunk[-1])
                if self._fold is None:
                    self.seqs.extend(seqs)
                else:
                    self._fold.extend([e[1] for e in chunk])
                before, self.count = self.count, self.count + len(chunk)
                if self._progress is not None and self.count // 10_000 > before // 10_000:
                    self._progress(self.count)
        finally:
            _close(self._chunks)  # stopped early: the reader lets go of the connection now
        if self._fold is not None:
            self._fold.flush()


def _erased(chunk: list[Carried]) -> Iterator[tuple[int, str]]:
    """``(seq, conversation)`` of the chunk's erased payloads (a few, or none: only those
    entries' bytes are parsed)."""
    for seq, _leaf, entry_bytes, status, _data, _salt in chunk:
        if status == "erased":
            event = orjson.loads(entry_bytes).get("event") or {}
            yield seq, str(event.get("conversation"))


def _end(e: Carried) -> dict[str, Any]:
    """The manifest's ``first`` or ``last``."""
    return {"seq": e[0], "leaf_hash": b64(e[1])}


def _close(iterable: object) -> None:
    close = getattr(iterable, "close", None)
    if callable(close):
        close()


def _range_proof(conn: Connection, log: LogInfo, plan: ExportPlan, fold: _Fold) -> bytes:
    size = plan.checkpoint.size
    if fold.size != plan.end:
        raise IntegrityFailure(
            f"the range [{plan.start}, {plan.end}) read {fold.size - plan.start} entries",
            log=log.id,
        )
    consistency = proofs.consistency_proof(conn, log.id, plan.end, size)
    try:
        verify_consistency(
            plan.end,
            size,
            consistency,
            frontier_root(fold.frontier, plan.end),
            plan.checkpoint.root,
        )
    except ConsistencyProofInvalid as exc:
        raise IntegrityFailure(
            f"the range's proof does not lead to the checkpoint's root: {exc}", log=log.id
        ) from exc
    return canonicalize(
        {
            "start": plan.start,
            "end": plan.end,
            "tree_size": size,
            "left": [b64(h) for h in fold.left],
            "consistency": [b64(h) for h in consistency],
        }
    )


def _tlog_proofs(
    conn: Connection, log: LogInfo, ctx: ExportContext, seqs: list[int]
) -> Iterator[tuple[int, str]]:
    for offset in range(0, len(seqs), PROOF_BATCH):
        batch = seqs[offset : offset + PROOF_BATCH]
        for seq, path in zip(
            batch, proofs.inclusion_proofs(conn, log.id, batch, ctx.tree_size), strict=True
        ):
            yield seq, format_tlog_proof(seq, path, ctx.checkpoint)


def _consistency(conn: Connection, log: LogInfo, plan: ExportPlan) -> bytes:
    assert plan.since is not None
    hashes = proofs.consistency_proof(conn, log.id, plan.since.size, plan.checkpoint.size)
    return canonicalize(
        {
            "from": plan.since.note,
            "from_size": plan.since.size,
            "to_size": plan.checkpoint.size,
            "hashes": [b64(h) for h in hashes],
        }
    )


def _manifest(
    ctx: ExportContext, plan: ExportPlan, lines: _EntryLines, files: dict[str, str]
) -> dict[str, Any]:
    return {
        "format": BUNDLE_FORMAT,
        "log": ctx.log,
        "origin": ctx.origin,
        "profile": ctx.profile,
        "query": ctx.query,
        "generated_at": format_time(ctx.generated_at),
        "generated_by": ctx.generated_by,
        "tree_size": ctx.tree_size,
        "root": b64(ctx.root),
        "selection": plan.selection,
        "range": {"start": plan.start, "end": plan.end} if plan.selection != "entries" else None,
        "count": lines.count,
        "first": lines.first,
        "last": lines.last,
        "sample": {
            "algorithm": SAMPLE_ALGORITHM,
            "size": len(plan.sample),
            "seed": str(ctx.query.get("seed", "")),
        }
        if plan.selection == "sample"
        else None,
        "conversations": plan.conversations if plan.selection == "entries" else None,
        "files": dict(sorted(files.items())),
    }


def _sign_manifest(conn: Connection, log: LogInfo, keys: KeyRing, digest: str) -> str:
    key_id = active_key_id(conn, log.id)
    if key_id is None:
        raise IntegrityFailure("log has no active signing key to sign the manifest", log=log.id)
    signer = keys.signers.get(conn, log.id, key_id)
    return sign_note(f"{BUNDLE_FORMAT}\n{log.origin}\n{digest}\n", [signer])
