"""Integrity verification: recompute everything in the database from the entries' stored bytes.

For each log, in one streaming pass over entries (server-side cursor, constant memory apart from
one small dict per conversation):

- seq is contiguous from 0; the leaf hash is SHA-256(0x00 || stored bytes); the entry names its
  own log origin and seq; ``prev`` is the previous leaf hash; ``conversation_prev`` is the
  conversation's previous seq; the indexed columns agree with the hashed bytes;
- the payload opens under its data key and matches the entry's salted commitment (an erased
  payload, whose data key was destroyed, is reported as erased, not as tampering);
- every stored checkpoint's root equals the recomputed root at its size, and its signature
  verifies under the log's key of that key id (consecutive checkpoints are then consistent:
  they are all prefixes of one recomputed tree);
- the stored perfect tree nodes used for proofs equal the recomputed ones;
- the head row agrees with the recomputed size, root and last leaf.

The first failure per log is reported precisely (log, seq, what, expected vs found).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, CursorResult, text

from ledger.core.checkpoint import open_checkpoint
from ledger.core.commitment import commitment_matches
from ledger.core.entry import GENESIS_PREV
from ledger.core.merkle import frontier_append, frontier_root, leaf_hash
from ledger.core.sealing import payload_aad, unseal_payload
from ledger.core.signing import NoteVerifier
from ledger.errors import CryptoError, IntegrityFailure
from ledger.storage.keystore import DataKeyStore
from ledger.storage.rows import LogInfo

Progress = Callable[[str, int, int], None]


@dataclass
class LogReport:
    log: str
    entries: int = 0
    checkpoints: int = 0
    erased_payloads: int = 0
    failure: IntegrityFailure | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "log": self.log,
            "intact": self.failure is None,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "erased_payloads": self.erased_payloads,
        }
        if self.failure is not None:
            f = self.failure
            out["failure"] = {"seq": f.seq, "what": f.what, "expected": f.expected,
                              "found": f.found, "message": str(f)}
        return out


@dataclass
class VerifyReport:
    logs: list[LogReport] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return all(r.failure is None for r in self.logs)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def verify_log(
    conn: Connection, log: LogInfo, data_keys: DataKeyStore, progress: Progress | None = None
) -> LogReport:
    report = LogReport(log.id)
    try:
        _LogVerifier(conn, log, data_keys, report).run(progress)
    except IntegrityFailure as failure:
        report.failure = failure
    return report


class _LogVerifier:
    """One pass over one log; raises the first IntegrityFailure it meets."""

    def __init__(self, conn: Connection, log: LogInfo, data_keys: DataKeyStore,
                 report: LogReport) -> None:
        self.conn = conn
        self.log = log
        self.data_keys = data_keys
        self.report = report
        self.fail = _failer(log.id)
        self.checkpoints = list(conn.execute(
            text("SELECT size, root, note, key_id FROM checkpoints WHERE log_id = :log"
                 " ORDER BY size"),
            {"log": log.id},
        ))
        self.cp_index = 0
        self.verifiers = _verifiers(conn, log)
        self.stored_nodes = _stored_nodes(conn, log.id)
        self.seen_nodes = 0
        self.frontier: list[bytes] = []
        self.prev = bytes(GENESIS_PREV)
        self.conv_last: dict[str, int] = {}
        self.keys: dict[int, bytes | None] = {}
        self.size = 0

    def run(self, progress: Progress | None) -> None:
        head = self.conn.execute(
            text("SELECT size, root, last_leaf FROM log_heads WHERE log_id = :log"),
            {"log": self.log.id},
        ).one_or_none()
        if head is None:
            raise self.fail("log has no head row")
        self.check_checkpoints()
        with _stream_entries(self.conn, self.log.id) as rows:
            for row in rows:
                self.check_entry(row)
                if progress is not None and self.size % 10_000 == 0:
                    progress(self.log.id, self.size, int(head[0]))
        root = frontier_root(self.frontier, self.size)
        if self.cp_index < len(self.checkpoints):
            beyond = self.checkpoints[self.cp_index][0]
            raise self.fail(f"checkpoint at size {beyond} is beyond the log ({self.size} entries)",
                            expected=f"size <= {self.size}", found=str(beyond))
        if self.seen_nodes != len(self.stored_nodes):
            raise self.fail(f"{len(self.stored_nodes) - self.seen_nodes} stored tree node(s)"
                            " belong to no entry")
        if int(head[0]) != self.size or bytes(head[1]) != root or bytes(head[2]) != self.prev:
            raise self.fail("head row disagrees with the recomputed log",
                            expected=f"size {self.size} root {_b64(root)}",
                            found=f"size {head[0]} root {_b64(bytes(head[1]))}")
        if progress is not None:
            progress(self.log.id, self.size, int(head[0]))

    def check_entry(self, row: Any) -> None:
        """One entry row: seq, leaf hash, stored bytes, indexed columns, payload key + blob."""
        seq, stored_leaf, raw_entry, source, event_id, conversation, key_id, sealed = row
        fail = self.fail
        if seq != self.size:
            raise fail("sequence gap or reorder", seq=self.size, expected=str(self.size),
                       found=str(seq))
        entry_bytes = bytes(raw_entry)
        leaf = leaf_hash(entry_bytes)
        if leaf != bytes(stored_leaf):
            raise fail("leaf hash does not match the stored entry bytes", seq=seq,
                       expected=_b64(leaf), found=_b64(bytes(stored_leaf)))
        try:
            entry = orjson.loads(entry_bytes)
            header_ok = (
                entry["seq"] == seq
                and entry["origin"] == self.log.origin
                and entry["event"]["source"] == source
                and entry["event"]["id"] == event_id
                and entry["event"]["conversation"] == conversation
            )
            entry_prev = entry["prev"]
            entry_conv_prev = entry["conversation_prev"]
            commitment = base64.b64decode(entry["payload"]["commitment"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise fail(f"entry bytes are not a well-formed entry: {exc}", seq=seq) from exc
        if not header_ok:
            raise fail("entry header disagrees with its seq, origin or indexed columns", seq=seq)
        if entry_prev != _b64(self.prev):
            raise fail("hash chain broken: prev is not the previous leaf hash", seq=seq,
                       expected=_b64(self.prev), found=str(entry_prev))
        if entry_conv_prev != self.conv_last.get(conversation):
            raise fail("conversation back-link broken", seq=seq,
                       expected=str(self.conv_last.get(conversation)), found=str(entry_conv_prev))
        _check_payload(self.conn, log=self.log, data_keys=self.data_keys, keys=self.keys,
                       report=self.report, seq=seq, key_id=key_id, sealed=sealed,
                       commitment=commitment)
        self.conv_last[conversation] = seq
        self.prev = leaf
        self.frontier, nodes = frontier_append(self.frontier, seq, leaf)
        for level, idx, digest in nodes:
            stored = self.stored_nodes.get((level, idx))
            if stored is None:
                raise fail(f"tree node ({level}, {idx}) is missing", seq=seq)
            if stored != digest:
                raise fail(f"tree node ({level}, {idx}) differs from the recomputed node",
                           seq=seq, expected=_b64(digest), found=_b64(stored))
            self.seen_nodes += 1
        self.size = seq + 1
        self.report.entries = self.size
        self.check_checkpoints()

    def check_checkpoints(self) -> None:
        """Every stored checkpoint of the current size: root, signature, signed fields."""
        root = frontier_root(self.frontier, self.size)
        while (self.cp_index < len(self.checkpoints)
               and self.checkpoints[self.cp_index][0] == self.size):
            cp_size, cp_root, note, key_id = self.checkpoints[self.cp_index]
            if bytes(cp_root) != root:
                raise self.fail(f"checkpoint at size {cp_size}: root differs from the"
                                " recomputed tree", expected=_b64(root),
                                found=_b64(bytes(cp_root)))
            verifier = self.verifiers.get(bytes(key_id))
            if verifier is None:
                raise self.fail(f"checkpoint at size {cp_size} names unknown key"
                                f" {bytes(key_id).hex()}")
            try:
                cp = open_checkpoint(note, [verifier])
            except CryptoError as exc:
                raise self.fail(f"checkpoint at size {cp_size} does not verify: {exc}") from exc
            if cp.size != cp_size or cp.root_hash != root or cp.origin != self.log.origin:
                raise self.fail(f"checkpoint at size {cp_size}: signed note disagrees with"
                                " its row", expected=f"{self.log.origin} {cp_size} {_b64(root)}",
                                found=f"{cp.origin} {cp.size} {_b64(cp.root_hash)}")
            self.report.checkpoints += 1
            self.cp_index += 1


def _check_payload(
    conn: Connection,
    *,
    log: LogInfo,
    data_keys: DataKeyStore,
    keys: dict[int, bytes | None],
    report: LogReport,
    seq: int,
    key_id: int | None,
    sealed: bytes | None,
    commitment: bytes,
) -> None:
    fail = _failer(log.id)
    if key_id is None or sealed is None:
        raise fail("payload is missing", seq=seq)
    if key_id not in keys:
        keys[key_id] = data_keys.key_by_id(conn, log.id, key_id)
    key = keys[key_id]
    if key is None:
        report.erased_payloads += 1
        return
    try:
        salt, canonical_data = unseal_payload(key, bytes(sealed), payload_aad(log.id, seq))
    except CryptoError as exc:
        raise fail(f"payload does not decrypt: {exc}", seq=seq) from exc
    if not commitment_matches(commitment, salt, canonical_data):
        raise fail("payload does not match the entry's commitment", seq=seq)


def _stream_entries(conn: Connection, log_id: str) -> CursorResult[Any]:
    return conn.execution_options(stream_results=True, yield_per=2000).execute(
        text(
            "SELECT e.seq, e.leaf_hash, e.entry, e.source, e.event_id, e.conversation_id,"
            " p.data_key_id, p.sealed FROM entries e"
            " LEFT JOIN payloads p ON p.log_id = e.log_id AND p.seq = e.seq"
            " WHERE e.log_id = :log ORDER BY e.seq"
        ),
        {"log": log_id},
    )


def _stored_nodes(conn: Connection, log_id: str) -> dict[tuple[int, int], bytes]:
    rows = conn.execute(
        text("SELECT level, idx, hash FROM tree_nodes WHERE log_id = :log"), {"log": log_id}
    )
    return {(int(level), int(idx)): bytes(h) for level, idx, h in rows}


def _verifiers(conn: Connection, log: LogInfo) -> dict[bytes, NoteVerifier]:
    out: dict[bytes, NoteVerifier] = {}
    for key_id, vkey in conn.execute(
        text("SELECT key_id, verifier_key FROM signing_keys WHERE log_id = :log"),
        {"log": log.id},
    ):
        try:
            verifier = NoteVerifier.from_verifier_key(vkey)
        except CryptoError as exc:
            raise IntegrityFailure(f"stored verifier key is malformed: {exc}", log=log.id) from exc
        if verifier.key_id != bytes(key_id) or verifier.name != log.origin:
            raise IntegrityFailure("stored verifier key does not match its key id or origin",
                                   log=log.id, expected=bytes(key_id).hex(),
                                   found=verifier.key_id.hex())
        out[bytes(key_id)] = verifier
    return out


def _failer(log_id: str) -> Callable[..., IntegrityFailure]:
    def make(
        what: str,
        *,
        seq: int | None = None,
        expected: str | None = None,
        found: str | None = None,
        what_prefix: str = "",
    ) -> IntegrityFailure:
        return IntegrityFailure(what_prefix + what, log=log_id, seq=seq, expected=expected,
                                found=found)

    return make
