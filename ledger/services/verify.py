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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, text

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
        _verify_log(conn, log, data_keys, report, progress)
    except IntegrityFailure as failure:
        report.failure = failure
    return report


def _verify_log(
    conn: Connection,
    log: LogInfo,
    data_keys: DataKeyStore,
    report: LogReport,
    progress: Progress | None,
) -> None:
    fail = _failer(log.id)
    head = conn.execute(
        text("SELECT size, root, last_leaf FROM log_heads WHERE log_id = :log"), {"log": log.id}
    ).one_or_none()
    if head is None:
        raise fail("log has no head row")
    total = int(head[0])
    verifiers = _verifiers(conn, log)
    checkpoints = list(
        conn.execute(
            text("SELECT size, root, note, key_id FROM checkpoints WHERE log_id = :log"
                 " ORDER BY size"),
            {"log": log.id},
        )
    )
    cp_index = 0
    frontier: list[bytes] = []
    emitted: dict[tuple[int, int], bytes] = {}
    stored_nodes = _stored_nodes(conn, log.id)
    prev = bytes(GENESIS_PREV)
    conv_last: dict[str, int] = {}
    keys: dict[int, bytes | None] = {}
    expected_seq = 0

    def check_checkpoints_at(size: int, root: bytes) -> None:
        nonlocal cp_index
        while cp_index < len(checkpoints) and checkpoints[cp_index][0] == size:
            cp_size, cp_root, note, key_id = checkpoints[cp_index]
            if bytes(cp_root) != root:
                raise fail("checkpoint root differs from the recomputed tree", seq=None,
                           expected=_b64(root), found=_b64(bytes(cp_root)),
                           what_prefix=f"checkpoint at size {cp_size}: ")
            verifier = verifiers.get(bytes(key_id))
            if verifier is None:
                raise fail(f"checkpoint at size {cp_size} names unknown key {bytes(key_id).hex()}")
            try:
                cp = open_checkpoint(note, [verifier])
            except CryptoError as exc:
                raise fail(f"checkpoint at size {cp_size} does not verify: {exc}") from exc
            if cp.size != cp_size or cp.root_hash != root or cp.origin != log.origin:
                raise fail(f"checkpoint at size {cp_size}: signed note disagrees with its row",
                           expected=f"{log.origin} {cp_size} {_b64(root)}",
                           found=f"{cp.origin} {cp.size} {_b64(cp.root_hash)}")
            report.checkpoints += 1
            cp_index += 1

    check_checkpoints_at(0, frontier_root([], 0))
    for seq, stored_leaf, raw_entry, source, event_id, conversation, key_id, sealed in (
        _stream_entries(conn, log.id)
    ):
        if seq != expected_seq:
            raise fail("sequence gap or reorder", seq=expected_seq, expected=str(expected_seq),
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
                and entry["origin"] == log.origin
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
        if entry_prev != _b64(prev):
            raise fail("hash chain broken: prev is not the previous leaf hash", seq=seq,
                       expected=_b64(prev), found=str(entry_prev))
        if entry_conv_prev != conv_last.get(conversation):
            raise fail("conversation back-link broken", seq=seq,
                       expected=str(conv_last.get(conversation)), found=str(entry_conv_prev))
        _check_payload(conn, log=log, data_keys=data_keys, keys=keys, report=report, seq=seq,
                       key_id=key_id, sealed=sealed, commitment=commitment)

        conv_last[conversation] = seq
        prev = leaf
        frontier, nodes = frontier_append(frontier, seq, leaf)
        for level, idx, digest in nodes:
            stored = stored_nodes.get((level, idx))
            if stored is None:
                raise fail(f"tree node ({level}, {idx}) is missing", seq=seq)
            if stored != digest:
                raise fail(f"tree node ({level}, {idx}) differs from the recomputed node",
                           seq=seq, expected=_b64(digest), found=_b64(stored))
            emitted[(level, idx)] = digest
        expected_seq = seq + 1
        report.entries = expected_seq
        if cp_index < len(checkpoints) and checkpoints[cp_index][0] == expected_seq:
            check_checkpoints_at(expected_seq, frontier_root(frontier, expected_seq))
        if progress is not None and expected_seq % 10_000 == 0:
            progress(log.id, expected_seq, total)

    size = expected_seq
    root = frontier_root(frontier, size)
    if cp_index < len(checkpoints):
        raise fail(f"checkpoint at size {checkpoints[cp_index][0]} is beyond the log "
                   f"({size} entries)", expected=f"size <= {size}",
                   found=str(checkpoints[cp_index][0]))
    extra = set(stored_nodes) - set(emitted)
    if extra:
        raise fail(f"{len(extra)} stored tree node(s) belong to no entry, e.g. {min(extra)}")
    if int(head[0]) != size or bytes(head[1]) != root or bytes(head[2]) != prev:
        raise fail("head row disagrees with the recomputed log",
                   expected=f"size {size} root {_b64(root)}",
                   found=f"size {head[0]} root {_b64(bytes(head[1]))}")
    if progress is not None:
        progress(log.id, size, total)


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


def _stream_entries(conn: Connection, log_id: str) -> Iterator[Any]:
    result = conn.execution_options(stream_results=True, yield_per=2000).execute(
        text(
            "SELECT e.seq, e.leaf_hash, e.entry, e.source, e.event_id, e.conversation_id,"
            " p.data_key_id, p.sealed FROM entries e"
            " LEFT JOIN payloads p ON p.log_id = e.log_id AND p.seq = e.seq"
            " WHERE e.log_id = :log ORDER BY e.seq"
        ),
        {"log": log_id},
    )
    yield from result


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
