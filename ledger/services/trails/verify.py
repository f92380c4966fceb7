"""Offline verification of a saved conversation trail: no database, no server, no trust in either.

Input: the JSON body of ``GET /v1/logs/{log}/conversations/{id}/trail`` saved to a file, and the
log's verifier keys *from the auditor* (fetched earlier from ``/verifier-key``, or an anchor),
never from the file. Everything that can be recomputed is recomputed; the file's ``back_links``
and ``summary`` sections are not read at all. The checks, each failure a :class:`Finding` that
names the seq, the check and what was expected vs found:

1. ``checkpoint``: the note opens (C2SP signed note, Ed25519) under one of the auditor's keys
   named after the trail's origin, and its size is the trail's ``tree_size``;
2. per entry: ``leaf_hash`` = SHA-256(0x00 || entry bytes) (RFC 6962 §2.1) and equals the one
   given; ``entry_bytes`` parse as one JSON object (UTF-8, no duplicate key) whose seq, origin and
   event.conversation are the entry's and the trail's; ``inclusion``: the RFC 9162 §2.1.3.2 audit
   path of the *recomputed* leaf leads to the checkpoint's root;
3. ``order`` and ``back_link``, read from the entry bytes: seqs strictly increase, the first entry
   names no predecessor (``conversation_prev`` null) and each next one names the one before;
4. ``payload``: where bytes and salt are given, SHA-256(salt || bytes) is the entry's commitment
   and the JSON ``payload`` shown is those bytes. Erased or missing payloads are counted, not
   failed (erasure is legitimate); the server's own ``mismatch`` / ``undecryptable`` are warnings.
5. ``writer_signature``: an entry that carries one is signed (detached JWS, EdDSA) over the
   statement rebuilt from its own bytes, by a key whose kid (its RFC 7638 thumbprint, inside the
   signed entry) names it, registered for the entry's writer credential and not revoked before
   the entry was received (``ledger.core.writer_signature``). The keys and their revocation
   times are the ones the tenant's system log records (``writer_key_records``: each record's
   entry bytes, payload and inclusion proof to the system log's checkpoint, which must open
   under the auditor's key for the system log; a record that does not check out is a
   ``writer_key`` finding and its key is not used). The file's ``writer_keys`` restates them for
   reading and is not read here.

The checkpoint may be signed by a later key than the one the auditor pinned: the trail's
``rotations`` (the log's key rotation statements, oldest first) let a key the auditor trusts
certify its successor (``ledger.core.rotation``: signed by the old key and the new one). A
statement that rotates a trusted key but does not verify is a ``rotation`` finding; one that
rotates a key the auditor does not trust certifies nothing (it is history before their pin).

Pure: bytes and keys in, a :class:`TrailReport` out. Only what stops the run raises: a file
that is not a trail (:class:`TrailFileMalformed`), no key (``ConfigurationError``), a key that
does not parse (``NoteFormatError``).
``ops/verify_trail_standalone.py`` performs checks 1-4 with the standard library and PyNaCl
only; the tests run both on the same files.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ledger.core.checkpoint import Checkpoint, open_checkpoint
from ledger.core.commitment import COMMITMENT_ALG, SALT_SIZE, payload_commitment
from ledger.core.merkle import leaf_hash, verify_inclusion
from ledger.core.note import parse_note
from ledger.core.rotation import open_rotation, parse_rotation
from ledger.core.signing import NoteVerifier
from ledger.core.writer_signature import (
    KEY_RECORD_TYPES,
    KEYS_STREAM,
    WriterKey,
    WriterKeyring,
    jws_kid,
    writer_keys_from_records,
)
from ledger.errors import (
    ConfigurationError,
    CryptoError,
    TrailFileMalformed,
)

# The names of the checks, shared with ops/verify_trail_standalone.py.
CHECKPOINT = "checkpoint"
LEAF_HASH = "leaf_hash"
ENTRY_BYTES = "entry_bytes"
INCLUSION = "inclusion"
ORDER = "order"
BACK_LINK = "back_link"
PAYLOAD = "payload"
WRITER_SIGNATURE = "writer_signature"
WRITER_KEY = "writer_key"
ROTATION = "rotation"

WITHHELD_STATUSES = ("erased", "missing")
"""Payload statuses that withhold content legitimately (crypto-shredding, never stored)."""


Shown = str | int | None
"""How an expected or found value is shown: a seq, a hash in base64, a name."""


class _Fail(Protocol):
    def __call__(
        self, check: str, message: str, expected: Shown = None, found: Shown = None
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Finding:
    """One failed check (or a warning) of a trail or an evidence bundle: where (the bundle's
    ``file``, the ``seq``), which check, what was expected and found."""

    check: str
    message: str
    seq: int | None = None
    expected: Shown = None
    found: Shown = None
    file: str | None = None
    """The bundle's file it is about (a trail is one file: None)."""

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file is not None else ""
        where += f"seq {self.seq}: " if self.seq is not None else ""
        text = f"{where}{self.check}: {self.message}"
        if self.expected is not None or self.found is not None:
            text += f" (expected {_null(self.expected)}, found {_null(self.found)})"
        return text

    def as_json(self) -> dict[str, Any]:
        where: dict[str, Any] = {} if self.file is None else {"file": self.file}
        return {
            **where,
            "seq": self.seq,
            "check": self.check,
            "message": self.message,
            "expected": self.expected,
            "found": self.found,
        }


@dataclass(frozen=True, slots=True)
class SavedEntry:
    """One element of the trail's ``entries``, as the file states it (nothing checked yet)."""

    seq: int
    leaf_hash: str
    entry_b64: str
    entry: Any
    """The file's parsed copy of the entry; ``_ABSENT`` if the file has none."""
    payload: Any
    payload_status: str | None
    payload_b64: str | None
    payload_salt: str | None
    leaf_index: int
    proof_tree_size: int
    proof: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SavedTrail:
    log: str | None
    origin: str
    conversation: str
    tree_size: int
    checkpoint: str
    entries: tuple[SavedEntry, ...]
    writer_key_records: Any = None
    """The file's ``writer_key_records`` (unchecked JSON): the system log's records of the keys
    that signed its entries, with their proofs."""
    rotations: tuple[str, ...] = ()
    """The log's key rotation statements (signed notes), oldest first."""


@dataclass
class TrailReport:
    """What was checked and found. ``intact`` when there is no failure; warnings do not fail."""

    log: str | None
    origin: str
    conversation: str
    entries: int
    first_seq: int | None
    last_seq: int | None
    checkpoint_size: int | None = None
    """None when the checkpoint did not open under the auditor's keys (nothing is anchored)."""
    checkpoint_root: str | None = None
    signed_by: list[str] = field(default_factory=list)
    certified_keys: list[str] = field(default_factory=list)
    """Keys trusted because a key the auditor trusts certified them (``rotations``)."""
    payloads_verified: list[int] = field(default_factory=list)
    withheld: dict[str, list[int]] = field(default_factory=dict)
    failures: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    writer_signed: dict[str, list[int]] = field(default_factory=dict)
    """kid -> the seqs whose writer signature by that key verified."""

    @property
    def intact(self) -> bool:
        return not self.failures

    def proven(self) -> list[str]:
        if not self.intact:
            return []
        return [
            f"each of the {self.entries} entries is, byte for byte, the leaf at its seq in the "
            f"log {self.origin!r} of {self.checkpoint_size} entries whose checkpoint is signed "
            f"by your key {', '.join(self.signed_by)}",
            f"the conversation {self.conversation!r} is gap-free from its first entry "
            f"(seq {self.first_seq}, which names no predecessor) to seq {self.last_seq}: "
            "each entry names the one before it, and every named entry is here",
            f"{len(self.payloads_verified)} payloads are the exact data committed in their entries",
            *(
                f"{len(seqs)} entries (seqs {_seq_list(seqs)}) are statements signed by the "
                f"writer key {kid} (the RFC 7638 thumbprint of the key that verified them)"
                for kid, seqs in self.writer_signed.items()
            ),
        ]

    def not_proven(self) -> list[str]:
        within = (
            ""
            if self.checkpoint_size is None
            else f" (even within this checkpoint's {self.checkpoint_size} entries)"
        )
        return [
            f"that the conversation has no entry after seq {self.last_seq}: back-links point "
            f"backwards, so entries appended after it{within} would simply not be in this "
            "file; the trail is complete only up to its last entry",
            "that this checkpoint is consistent with checkpoints you hold from elsewhere "
            "(compare it with an anchor or witness, or ask for a consistency proof)",
            "the content of erased or missing payloads, and the file's `summary` and "
            "`back_links` sections (derived by the server, not read here)",
            "that a writer key belongs to the writer it names: compare each kid with the keys "
            "the writer publishes; and any revocation recorded after the system log's "
            "checkpoint the trail carries",
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "intact" if self.intact else "tampered",
            "intact": self.intact,
            "log": self.log,
            "origin": self.origin,
            "conversation": self.conversation,
            "entries": self.entries,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "checkpoint": {
                "size": self.checkpoint_size,
                "root": self.checkpoint_root,
                "signed_by": self.signed_by,
                "certified_keys": self.certified_keys,
            },
            "payloads": {
                "verified": len(self.payloads_verified),
                "withheld": {k: {"count": len(v), "seqs": v} for k, v in self.withheld.items()},
            },
            "writer_signatures": {
                "verified": sum(len(s) for s in self.writer_signed.values()),
                "keys": dict(self.writer_signed),
            },
            "failures": [f.as_json() for f in self.failures],
            "warnings": [w.as_json() for w in self.warnings],
            "proven": self.proven(),
            "not_proven": self.not_proven(),
        }


# --- reading the file ----------------------------------------------------------------------------


_ABSENT: Any = object()


def strict_json(raw: bytes) -> Any:
    """UTF-8 JSON with no duplicate key and no NaN/Infinity. Raises ValueError.

    A duplicate key would let two readers of the same hashed bytes see two different entries.
    """

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in items:
            if key in obj:
                raise ValueError(f"duplicate key {key!r}")
            obj[key] = value
        return obj

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(raw.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant)


def parse_trail(data: bytes) -> SavedTrail:
    """The saved trail's fields, type-checked. Raises TrailFileMalformed naming the JSON path."""
    try:
        doc = strict_json(data)
    except ValueError as exc:
        raise TrailFileMalformed(f"the file is not JSON: {exc}") from exc
    top = _obj(doc, "")
    entries = _get(top, "entries", list, "")
    if not entries:
        raise TrailFileMalformed("/entries: the trail has no entries (the API never serves one)")
    log = top.get("log")
    rotations = top.get("rotations", [])
    if not isinstance(rotations, list) or not all(isinstance(r, str) for r in rotations):
        raise TrailFileMalformed("/rotations: not a list of signed notes")
    return SavedTrail(
        log=log if isinstance(log, str) else None,
        origin=_get(top, "origin", str, ""),
        conversation=_get(top, "conversation", str, ""),
        tree_size=_get(top, "tree_size", int, ""),
        checkpoint=_get(top, "checkpoint", str, ""),
        entries=tuple(_entry(e, f"/entries/{i}") for i, e in enumerate(entries)),
        writer_key_records=top.get("writer_key_records"),
        rotations=tuple(rotations),
    )


def _entry(value: Any, path: str) -> SavedEntry:
    e = _obj(value, path)
    proof = _obj(e.get("inclusion_proof"), f"{path}/inclusion_proof")
    hashes = _get(proof, "hashes", list, f"{path}/inclusion_proof")
    for i, h in enumerate(hashes):
        if not isinstance(h, str):
            raise TrailFileMalformed(f"{path}/inclusion_proof/hashes/{i}: not a string")
    status = _optional(e, "payload_status", path)
    return SavedEntry(
        seq=_get(e, "seq", int, path),
        leaf_hash=_get(e, "leaf_hash", str, path),
        entry_b64=_get(e, "entry_b64", str, path),
        entry=e.get("entry", _ABSENT),
        payload=e.get("payload"),
        payload_status=status,
        payload_b64=_optional(e, "payload_b64", path),
        payload_salt=_optional(e, "payload_salt", path),
        leaf_index=_get(proof, "leaf_index", int, f"{path}/inclusion_proof"),
        proof_tree_size=_get(proof, "tree_size", int, f"{path}/inclusion_proof"),
        proof=tuple(hashes),
    )


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TrailFileMalformed(f"{path or '/'}: expected an object, found {_kind(value)}")
    return value


def _get(obj: dict[str, Any], key: str, kind: type, path: str) -> Any:
    if key not in obj:
        raise TrailFileMalformed(f"{path}/{key}: missing")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TrailFileMalformed(f"{path}/{key}: expected {_kind(kind())}, found {_kind(value)}")
    return value


def _optional(obj: dict[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise TrailFileMalformed(f"{path}/{key}: expected a string or null, found {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    for kind, name in (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        (list, "an array"),
        (dict, "an object"),
    ):
        if isinstance(value, kind):
            return name
    return "null"


def parse_verifier_keys(keys: Sequence[str]) -> list[NoteVerifier]:
    """The auditor's verifier keys (``name+hexid+base64``). Raises ConfigurationError for none,
    NoteFormatError for one that does not parse."""
    if not keys:
        raise ConfigurationError(
            "no verifier key given: pass the log's key(s) as fetched from "
            "GET /v1/logs/{log}/verifier-key or an anchor, never from the trail file"
        )
    return [NoteVerifier.from_verifier_key(k) for k in keys]


# --- the checks ----------------------------------------------------------------------------------


def verify_trail(trail: SavedTrail, verifiers: Sequence[NoteVerifier]) -> TrailReport:
    """Run checks 1-4 on ``trail`` with the auditor's ``verifiers``; collect every finding."""
    if not verifiers:
        raise ConfigurationError("no verifier key given")
    report = TrailReport(
        log=trail.log,
        origin=trail.origin,
        conversation=trail.conversation,
        entries=len(trail.entries),
        first_seq=None,
        last_seq=None,
    )
    checkpoint = _check_checkpoint(trail, verifiers, report)
    writer_keys = WriterKeyring(recorded_writer_keys(trail, verifiers, report.failures))
    previous: int | None = None
    for saved in trail.entries:
        seq = _check_entry(trail, saved, checkpoint, previous, report, writer_keys=writer_keys)
        if report.first_seq is None:
            report.first_seq = seq
        report.last_seq = seq
        previous = seq
    return report


def recorded_writer_keys(
    trail: SavedTrail, verifiers: Sequence[NoteVerifier], failures: list[Finding]
) -> list[WriterKey]:
    """The writer keys and revocation times as the trail's ``writer_key_records`` prove them:
    each record's leaf hash, its entry bytes (a ``ledger.writer_key.*`` event of the system
    log's ``keys`` stream at that seq), its payload against the entry's commitment and of this
    log, its inclusion in the system log's checkpoint opened under one of ``verifiers`` named
    after the system log. A record that fails is a ``writer_key`` finding and is left out (the
    entries its key signed then fail, each naming its seq). ``ConfigurationError`` when the
    trail carries records but no key of yours is for their system log."""
    carried = trail.writer_key_records
    if carried is None:
        return []

    def fail(message: str, expected: Shown = None, found: Shown = None) -> None:
        failures.append(Finding(WRITER_KEY, message, None, expected, found))

    if not isinstance(carried, dict) or not isinstance(carried.get("records"), list):
        fail("writer_key_records is not {origin, tree_size, checkpoint, records}")
        return []
    origin = carried.get("origin")
    own = [v for v in verifiers if v.name == origin]
    if not isinstance(origin, str) or not own:
        raise ConfigurationError(
            f"the trail's writer keys are proven in the system log {origin!r}: pass its "
            "verifier key too (GET /v1/logs/{tenant}.system/verifier-key, from where you trust)"
        )
    try:
        checkpoint = open_checkpoint(str(carried.get("checkpoint")), own)
    except CryptoError as exc:
        fail(f"the system log's checkpoint does not open under your key(s) for {origin!r}: {exc}")
        return []
    opened: list[tuple[int, str, dict[str, Any]]] = []
    previous = -1
    for i, record in enumerate(carried["records"]):
        try:
            seq, kind, payload = _key_record(record, checkpoint, trail.log)
        except ValueError as exc:
            where = record.get("seq") if isinstance(record, dict) else None
            fail(f"writer_key_records/records/{i} (system log seq {_show(where)}): {exc}")
            continue
        if seq <= previous:
            fail(f"system log seq {seq} follows seq {previous}: records must be in seq order")
            continue
        previous = seq
        opened.append((seq, kind, payload))
    keys, problems = writer_keys_from_records(opened)
    for seq, problem in problems:
        fail(f"system log seq {seq}: {problem}")
    return keys


def _key_record(
    record: Any, checkpoint: Checkpoint, log: str | None
) -> tuple[int, str, dict[str, Any]]:
    """One record checked as an entry of the system log; raises ValueError saying why not."""
    if not isinstance(record, dict) or not _is_int(record.get("seq")):
        raise ValueError("not {seq, leaf_hash, entry_b64, payload_b64, payload_salt, hashes}")
    seq = record["seq"]
    raw = _b64decode(record.get("entry_b64"), "entry_b64")
    leaf = leaf_hash(raw)
    if _b64(leaf) != record.get("leaf_hash"):
        raise ValueError("SHA-256(0x00 || entry bytes) is not the leaf hash given")
    entry = strict_json(raw)
    event = entry.get("event") if isinstance(entry, dict) else None
    if (
        not isinstance(event, dict)
        or entry.get("seq") != seq
        or entry.get("origin") != checkpoint.origin
        or event.get("type") not in KEY_RECORD_TYPES
        or event.get("conversation") != KEYS_STREAM
    ):
        raise ValueError("the entry bytes are not a writer key record of the system log at seq")
    salt = _b64decode(record.get("payload_salt"), "payload_salt")
    data = _b64decode(record.get("payload_b64"), "payload_b64")
    committed = entry.get("payload")
    commitment = _b64decode(
        committed.get("commitment") if isinstance(committed, dict) else None, "commitment"
    )
    if payload_commitment(salt, data) != commitment:
        raise ValueError("SHA-256(salt || payload bytes) is not the entry's commitment")
    payload = strict_json(data)
    if not isinstance(payload, dict) or payload.get("log") != log:
        raise ValueError(f"the record is not of the log {log!r}")
    hashes = record.get("hashes")
    if not isinstance(hashes, list):
        raise ValueError("hashes: not a list")  # noqa: TRY004 (a finding, not a bug)
    path = [_b64decode(h, f"proof hash {i}") for i, h in enumerate(hashes)]
    try:
        verify_inclusion(leaf, seq, checkpoint.size, path, checkpoint.root_hash)
    except CryptoError as exc:
        raise ValueError(f"not proven in the system log's checkpoint: {exc}") from exc
    return seq, str(event["type"]), payload


def _check_checkpoint(
    trail: SavedTrail, verifiers: Sequence[NoteVerifier], report: TrailReport
) -> Checkpoint | None:
    fail = report.failures.append
    own = _certified_keys(trail, [v for v in verifiers if v.name == trail.origin], report)
    if not own:
        names = ", ".join(sorted({v.name for v in verifiers}))
        fail(
            Finding(
                CHECKPOINT,
                f"none of your verifier keys is named after the trail's "
                f"origin {trail.origin!r} (yours: {names}); inclusion proofs not checked",
            )
        )
        return None
    try:
        checkpoint = open_checkpoint(trail.checkpoint, own)
    except CryptoError as exc:
        fail(
            Finding(
                CHECKPOINT,
                f"the checkpoint does not open under your key(s) for "
                f"{trail.origin!r}: {exc}; inclusion proofs not checked",
            )
        )
        return None
    report.signed_by = [v.verifier_key() for v in own if _opens(trail.checkpoint, v)]
    report.checkpoint_size = checkpoint.size
    report.checkpoint_root = _b64(checkpoint.root_hash)
    if checkpoint.origin != trail.origin:  # open_checkpoint: signed by a key named its origin
        fail(
            Finding(
                CHECKPOINT,
                "the checkpoint is of another log",
                expected=trail.origin,
                found=checkpoint.origin,
            )
        )
    if checkpoint.size != trail.tree_size:
        fail(
            Finding(
                CHECKPOINT,
                "the trail's tree_size is not the signed checkpoint's size",
                expected=checkpoint.size,
                found=trail.tree_size,
            )
        )
    return checkpoint


def _certified_keys(
    trail: SavedTrail, trusted: list[NoteVerifier], report: TrailReport
) -> list[NoteVerifier]:
    """``trusted`` (the auditor's keys for the trail's origin), plus each key a trusted key
    certified by one of the trail's rotation statements, oldest first; never a key the
    statements alone name."""
    for i, note in enumerate(trail.rotations):
        where = f"rotations/{i}: "
        try:
            rotation = parse_rotation(parse_note(note).text)
        except CryptoError as exc:
            report.failures.append(Finding(ROTATION, f"{where}not a key rotation statement: {exc}"))
            continue
        if rotation.origin != trail.origin:
            report.failures.append(
                Finding(
                    ROTATION,
                    f"{where}rotates a key of another log",
                    expected=trail.origin,
                    found=rotation.origin,
                )
            )
            continue
        if rotation.old not in trusted:
            continue  # history before the key you trust: it certifies nothing for you
        try:
            open_rotation(note, rotation.old)
        except CryptoError as exc:
            report.failures.append(Finding(ROTATION, f"{where}does not certify its new key: {exc}"))
            continue
        if rotation.new not in trusted:
            trusted.append(rotation.new)
            report.certified_keys.append(rotation.new.verifier_key())
    return trusted


def _opens(note: str, verifier: NoteVerifier) -> bool:
    try:
        open_checkpoint(note, [verifier])
    except CryptoError:
        return False
    return True


def _check_entry(
    trail: SavedTrail,
    saved: SavedEntry,
    checkpoint: Checkpoint | None,
    previous: int | None,
    report: TrailReport,
    *,
    writer_keys: WriterKeyring,
) -> int:
    """Checks 2-5 on one entry; returns its seq as the signed bytes state it (else the file's)."""

    def fail(check: str, message: str, expected: Shown = None, found: Shown = None) -> None:
        report.failures.append(Finding(check, message, saved.seq, expected, found))

    # 2. bytes, leaf hash, content, inclusion
    try:
        raw = _b64decode(saved.entry_b64, "entry_b64")
    except ValueError as exc:
        fail(ENTRY_BYTES, str(exc))
        return saved.seq
    leaf = leaf_hash(raw)
    if _b64(leaf) != saved.leaf_hash:
        fail(
            LEAF_HASH,
            "SHA-256(0x00 || entry bytes) is not the leaf hash given",
            _b64(leaf),
            saved.leaf_hash,
        )
    try:
        entry = strict_json(raw)
    except ValueError as exc:
        entry = None
        fail(ENTRY_BYTES, f"the entry bytes are not JSON: {exc}")
    seq = saved.seq
    if entry is not None and not isinstance(entry, dict):
        fail(ENTRY_BYTES, "the entry bytes are not a JSON object")
        entry = None
    if entry is not None:
        seq = _check_content(trail, saved, entry, fail)
    if saved.leaf_index != seq:
        fail(INCLUSION, "the proof's leaf_index is not the entry's seq", seq, saved.leaf_index)
    if checkpoint is not None:
        if saved.proof_tree_size != checkpoint.size:
            fail(
                INCLUSION,
                "the proof's tree_size is not the checkpoint's size",
                checkpoint.size,
                saved.proof_tree_size,
            )
        _check_inclusion(leaf, seq, saved.proof, checkpoint, fail)

    # 3. order and back-link, from the signed bytes
    if previous is not None and seq <= previous:
        fail(
            ORDER,
            f"seq {seq} follows seq {previous}: seqs must strictly increase",
            f"> {previous}",
            seq,
        )
    if entry is not None:
        check_back_link(entry, previous, fail)
        # 4. payload
        _check_payload(saved, entry, report, fail)
        # 5. the writer's signature
        if "writer_signature" in entry:
            reason = writer_keys.check_entry(entry)
            if reason is None:
                kid = jws_kid(entry["writer_signature"]) or ""
                report.writer_signed.setdefault(kid, []).append(seq)
            else:
                fail(WRITER_SIGNATURE, reason)
    return seq


def _seq_list(seqs: Sequence[int]) -> str:
    shown = ", ".join(str(s) for s in seqs[:10])
    return shown + (f", … ({len(seqs) - 10} more)" if len(seqs) > 10 else "")


def _check_content(trail: SavedTrail, saved: SavedEntry, entry: dict[str, Any], fail: _Fail) -> int:
    named: Any = entry.get("seq")
    seq: int = named if _is_int(named) else saved.seq
    if not _is_int(named) or named != saved.seq:
        fail(ENTRY_BYTES, "the entry bytes name another seq", saved.seq, _show(named))
    if entry.get("origin") != trail.origin:
        fail(
            ENTRY_BYTES,
            "the entry bytes name another log origin",
            trail.origin,
            _show(entry.get("origin")),
        )
    event = entry.get("event")
    conversation = event.get("conversation") if isinstance(event, dict) else None
    if conversation != trail.conversation:
        fail(
            ENTRY_BYTES,
            "the entry belongs to another conversation",
            trail.conversation,
            _show(conversation),
        )
    if saved.entry is not _ABSENT and not same_json(saved.entry, entry):
        fail(ENTRY_BYTES, "the file's `entry` is not what the entry bytes say")
    return seq


def _check_inclusion(
    leaf: bytes, seq: int, proof: Sequence[str], checkpoint: Checkpoint, fail: _Fail
) -> None:
    try:
        hashes = [_b64decode(h, f"proof hash {i}") for i, h in enumerate(proof)]
    except ValueError as exc:
        fail(INCLUSION, str(exc))
        return
    try:
        verify_inclusion(leaf, seq, checkpoint.size, hashes, checkpoint.root_hash)
    except CryptoError as exc:
        fail(INCLUSION, f"the entry is not proven in the signed checkpoint: {exc}")


def check_back_link(
    entry: Mapping[str, Any], previous: int | None, fail: _Fail, *, where: str = "the trail"
) -> None:
    """The back-link chain of one conversation, one entry at a time: ``entry`` (parsed from its
    signed bytes) must name ``previous`` as its ``conversation_prev``, the seq of the entry
    before it in ``where`` (None for the first, which names no predecessor). Reports through
    ``fail(BACK_LINK, ...)``. Shared with the evidence-bundle verifier, whose ``entries``
    selection holds whole conversations (``ledger.services.exports.verify``)."""
    found = entry.get("conversation_prev", _ABSENT)
    if found is _ABSENT:
        fail(BACK_LINK, "the entry bytes have no conversation_prev", previous, "absent")
    elif found != previous or (found is not None and not _is_int(found)):
        if previous is None:
            why = (
                f"the first entry of {where} names conversation_prev {_show(found)}: "
                f"the conversation's earlier entries are missing from {where}"
            )
        elif found is None:
            why = (
                f"conversation_prev is null, but the previous entry of {where} is seq "
                f"{previous}: this entry claims to start the conversation"
            )
        else:
            why = (
                f"conversation_prev is {_show(found)}, but the previous entry of {where} "
                f"is seq {previous}: entry {_show(found)} is missing here or the entries "
                "are out of order"
            )
        fail(BACK_LINK, why, previous, _show(found))


def _check_payload(
    saved: SavedEntry, entry: dict[str, Any], report: TrailReport, fail: _Fail
) -> None:
    status = saved.payload_status

    def warn(message: str) -> None:
        report.warnings.append(Finding(PAYLOAD, message, saved.seq))

    if saved.payload_b64 is None or saved.payload_salt is None:
        if saved.payload_b64 is not None or saved.payload_salt is not None:
            fail(PAYLOAD, "payload_b64 and payload_salt must come together")
        elif saved.payload is not None:
            fail(
                PAYLOAD,
                "a payload is shown without its bytes and salt, so it cannot be "
                "checked against the entry's commitment",
            )
        elif status in WITHHELD_STATUSES:
            report.withheld.setdefault(status, []).append(saved.seq)
        elif status == "verified":
            fail(PAYLOAD, "payload_status is verified, but no payload bytes and salt are given")
        else:
            warn(f"the server could not read this payload (payload_status {status!r})")
        return
    try:
        commitment, salt, data = _payload_inputs(entry, saved.payload_salt, saved.payload_b64)
    except ValueError as exc:
        fail(PAYLOAD, str(exc))
        return
    computed = payload_commitment(salt, data)
    if computed != commitment:
        if status == "mismatch":
            warn(
                "the server reports this payload does not match its commitment, and it does "
                "not: its content is not proven"
            )
        else:
            fail(
                PAYLOAD,
                "SHA-256(salt || payload bytes) is not the entry's commitment",
                _b64(commitment),
                _b64(computed),
            )
        return
    try:
        parsed = strict_json(data)
    except ValueError as exc:
        fail(PAYLOAD, f"the committed payload bytes are not JSON: {exc}")
        return
    if not same_json(saved.payload, parsed):
        fail(PAYLOAD, "the `payload` shown is not the committed payload bytes")
        return
    if status != "verified":
        warn(f"payload_status is {status!r}, but the payload checks against its commitment")
    report.payloads_verified.append(saved.seq)


def _payload_inputs(entry: dict[str, Any], salt64: str, data64: str) -> tuple[bytes, bytes, bytes]:
    """The entry's commitment, the salt and the payload bytes, decoded. Raises ValueError."""
    committed = entry.get("payload")
    if not isinstance(committed, dict) or committed.get("alg") != COMMITMENT_ALG:
        raise ValueError(f"the entry's payload commitment is not {COMMITMENT_ALG}")
    commitment = _b64decode(committed.get("commitment"), "the entry's payload commitment")
    salt = _b64decode(salt64, "payload_salt")
    if len(salt) != SALT_SIZE:
        raise ValueError(f"payload_salt is {len(salt)} bytes, not {SALT_SIZE}")
    return commitment, salt, _b64decode(data64, "payload_b64")


# --- helpers -------------------------------------------------------------------------------------


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values, types included (``true`` is not ``1``, ``1`` is not ``1.0``)."""

    def dump(v: Any) -> str:
        return json.dumps(v, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    return dump(a) == dump(b)


def _b64decode(text: Any, what: str) -> bytes:
    """Canonical standard base64 (one text form per byte string). Raises ValueError."""
    if not isinstance(text, str):
        raise ValueError(f"{what} is not a base64 string")  # noqa: TRY004 (a finding, not a bug)
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeError, binascii.Error) as exc:
        raise ValueError(f"{what} is not valid base64") from exc
    if _b64(raw) != text:
        raise ValueError(f"{what} is not canonical base64")
    return raw


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _is_int(value: Any) -> bool:
    """A JSON integer: not ``true`` (a bool is an int in Python), not ``5.0``."""
    return type(value) is int


def _null(value: Shown) -> str | int:
    return "null" if value is None else value


def _show(value: Any) -> Shown:
    if (
        value is None
        or isinstance(value, str)
        or (isinstance(value, int) and not isinstance(value, bool))
    ):
        return value
    return json.dumps(value)[:80]
