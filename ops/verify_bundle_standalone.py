#!/usr/bin/env python3
"""Check a Handoff Ledger evidence bundle offline: Python 3.11+ and PyNaCl, nothing else.

    python3 verify_bundle_standalone.py BUNDLE.zip --verifier-key KEY... [--verifier-keys-file F]
                                                   [--json]

KEY is the log's verifier key (name+hexid+base64) as YOU got it (GET /v1/logs/{log}/verifier-key
earlier, or an anchor), never the bundle's. The bundle's format is docs/evidence-bundle.md ("the
doc"). This script makes the checks of its section "What verify-bundle checks", in that order,
one method each (check_1_zip ... check_8_witnesses), and names each failure as `ledger
verify-bundle` does: file, seq, check, expected and found. A bundle with erased payloads is
checked with your key for the tenant's system log too (in the same keys file): its checkpoint
proves the erasure records (check 8). It is written to be read; the
package's verifier makes the same checks, faster.

Exit 0: every check passed. 1: a check failed. 2: it could not run (not a zip, an unsafe zip, no
manifest.json, no key of yours for the bundle's log).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import math
import re
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import nacl.exceptions
import nacl.signing

T = TypeVar("T")
Key = tuple[str, bytes, bytes]  # a note verifier key: name, 4-byte key ID, Ed25519 public key
BAD = (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError)  # junk raises

FORMAT = "handoff-ledger/evidence-bundle/v2"
FORMATS = ("handoff-ledger/evidence-bundle/v1", FORMAT)  # v1: no erasure records, no witnesses
SAMPLE = "handoff-ledger/sample/v1"
PROFILES = ("soc2-population", "pci-dss-10", "hipaa-disclosures")
STATUSES = ("verified", "erased", "missing", "undecryptable", "mismatch", "withheld")
LINE_FIELDS = {"seq", "leaf_hash", "entry_b64", "payload_status", "payload_b64", "payload_salt"}
MAX_SAFE = 2**53 - 1  # RFC 8785 numbers are doubles: no exact form for a larger integer

# "Files": these names, and no other.
MANIFEST, SIG, CHECKPOINT, KEYS = "manifest.json", "manifest.sig", "checkpoint", "verifier-keys"
ENTRIES, RANGE, CONSISTENCY = "entries.jsonl", "proofs/range.json", "consistency.json"
REPORTS = {"reports/" + n for n in ("entries.jsonl", "rows.csv", "report.html", "ocsf.jsonl")}
WRITER_KEYS = "writer-keys.json"  # writer signatures: the log's writer keys and their history
ROTATION = re.compile(r"rotations/(0|[1-9][0-9]{0,8})\.note")
TLOG = re.compile(r"proofs/(0|[1-9][0-9]{0,18})\.tlog-proof")
# v2 ("Erasure records", "Witness cosignatures"): the tenant's system log's records, and proofs.
E_CHECKPOINT, E_KEYS, E_RECORDS = (
    "erasures/checkpoint",
    "erasures/verifier-keys",
    "erasures/records.jsonl",
)
E_WRITER_KEYS = "erasures/writer-keys.jsonl"  # the log's writer-key records (system log)
KEY_RECORDS = ("ledger.writer_key.added.v1", "ledger.writer_key.revoked.v1")
E_ROTATION = re.compile(r"erasures/rotations/(0|[1-9][0-9]{0,8})\.note")
E_TLOG = re.compile(r"erasures/proofs/(0|[1-9][0-9]{0,18})\.tlog-proof")
WITNESSES = "witnesses.json"
RECORDS = {
    "ledger.erasure.executed.v1": "by_erasure",
    "ledger.retention.executed.v1": "by_retention",
}

# Check 1's limits (the package's), on the sizes the zip declares, before a byte is inflated.
SMALL, MANIFEST_MAX, STREAMED, TOTAL = 1 << 20, 64 << 20, 64 << 30, 128 << 30
MAX_MEMBERS, MAX_RATIO, RATIO_FLOOR, MAX_LINE = 2_000_000, 100, 1 << 20, 16 << 20
MAX_FINDINGS = 1000  # failures (and warnings) kept for the report; all are counted

# Check 6 for a time window ("Selections", range): what it means when a rule does not hold.
FIRST = "the range's first entry, the neighbour before the time window, was received at or after "
FIRST += "from_time: entries of the window may be missing before it"
SECOND = "the range's second entry, the window's first, was received before from_time: the range "
SECOND += "does not start at the window's neighbour"
LAST = "the range's last entry, the neighbour after the time window, was received before "
LAST += "to_time: entries of the window may be missing after it"
LAST_BUT_ONE = "the range's last entry but one, the window's last, was received at or after "
LAST_BUT_ONE += "to_time: the range does not end at the window's neighbour"
OUTSIDE = "outside the time window, inside the range: received_at does not grow with seq here "
OUTSIDE += "(clock skew between server processes?)"


class CannotRun(Exception):
    """Not a bundle, or no key: nothing was checked (exit 2)."""


# --- encodings: base64, canonical JSON (RFC 8785), times (RFC 3339) ------------------------------


def b64(text: Any) -> bytes:
    """Standard base64 (RFC 4648 §4), canonical only: one text per byte string."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise ValueError(f"{str(text)[:20]!r} is not canonical base64")
    return raw


def enc(data: bytes) -> str:
    return base64.b64encode(data).decode()


def strict_json(raw: bytes) -> Any:
    """UTF-8 JSON without duplicate keys or NaN: signed bytes must have one reading only."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in items}) != len(items):
            raise ValueError("duplicate key in JSON object")
        return dict(items)

    return json.loads(raw.decode("utf-8"), object_pairs_hook=pairs, parse_constant=int)


def es_number(x: float) -> str:
    """ECMAScript Number::toString, how RFC 8785 §3.2.2.3 writes a number."""
    if not math.isfinite(x):
        raise ValueError("NaN and infinities have no JSON form")
    if x == 0:
        return "0"
    mantissa, _, exponent = repr(abs(x)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    n = len(whole) + int(exponent or 0) - (len(whole + frac) - len(digits))
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        text = digits[0] + ("." + digits[1:] if k > 1 else "") + f"e{'+' if e > 0 else '-'}{abs(e)}"
    return ("-" if x < 0 else "") + text


def canonical(value: Any) -> str:
    """RFC 8785: keys sorted by UTF-16 code units, no whitespace, ECMAScript numbers."""
    if value is None or type(value) is bool:
        return json.dumps(value)
    if type(value) is int and abs(value) <= MAX_SAFE:
        return str(value)
    if type(value) is float:
        return es_number(value)
    if type(value) is str:
        return json.dumps(value, ensure_ascii=False)
    if type(value) is list:
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if type(value) is dict:
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(canonical(k) + ":" + canonical(value[k]) for k in keys) + "}"
    raise ValueError(f"{value!r:.40} has no RFC 8785 form")


def b64url(text: Any) -> bytes:
    """Canonical base64url without padding (RFC 7515 section 2)."""
    if type(text) is not str or "=" in text:
        raise ValueError("not base64url without padding")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != text:
        raise ValueError("not canonical base64url")
    return raw


def writer_signature_problem(entry: dict[str, Any], writer_keys: list[Any]) -> str | None:
    """Why the entry's writer signature (a detached JWS, RFC 7515/7797, EdDSA per RFC 8037) does
    not check out, or None. The key is the one of writer-keys.json whose RFC 7638 thumbprint is
    the JWS kid, registered for the entry's writer credential, not revoked before the entry was
    received; the signed statement is RFC 8785 of the entry's actor, event, origin, outcome and
    payload, plus "format": "handoff-ledger/statement/v1"."""
    head, detached, sig = str(entry["writer_signature"]).split(".")
    header = strict_json(b64url(head))
    if type(header) is not dict or header.get("alg") != "EdDSA":
        return "the JWS header does not name alg EdDSA"
    if detached or header.get("b64") is not False or header.get("crit") != ["b64"]:
        return "not a detached JWS with an unencoded payload (b64 false, crit [b64])"
    if set(header) - {"alg", "b64", "crit", "kid"}:
        return "unknown JWS header parameters"
    kid = header.get("kid")
    key = next((k for k in writer_keys if type(k) is dict and k.get("kid") == kid), None)
    if key is None:
        return f"no writer key {kid!r} (version 2: proven in {E_WRITER_KEYS})"
    public_key = b64url(key["public_key"])
    jwk = '{"crv":"Ed25519","kty":"OKP","x":"' + key["public_key"] + '"}'
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(jwk.encode()).digest()).rstrip(b"=")
    if len(public_key) != 32 or thumbprint.decode() != kid:
        return f"writer key {kid!r} is not the key it names (RFC 7638 thumbprint)"
    if key.get("credential") != entry["writer"]["credential"]:
        return f"key {kid} belongs to credential {key.get('credential')}, not the entry's writer"
    revoked = key.get("revoked_at")
    if revoked is not None and not entry["received_at"] < revoked:
        return f"key {kid} was revoked at {revoked}, before the entry was received"
    statement = {k: entry[k] for k in ("actor", "event", "origin", "outcome", "payload")}
    statement["format"] = "handoff-ledger/statement/v1"
    try:
        nacl.signing.VerifyKey(public_key).verify(
            head.encode() + b"." + canonical(statement).encode(), b64url(sig)
        )
    except nacl.exceptions.BadSignatureError:
        return f"the signature by key {kid} does not verify over the statement"
    return None


def is_canonical(raw: bytes, value: Any) -> bool:
    try:
        return canonical(value).encode("utf-8") == raw
    except (ValueError, UnicodeEncodeError, RecursionError):  # UnicodeEncodeError: a lone surrogate
        return False


def instant(value: Any) -> datetime | None:
    """An RFC 3339 time with its offset (received_at, from_time, to_time) as an instant, read as
    the ledger reads an export's query; None if it is not one."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def show(value: Any) -> Any:
    """A value as a failure shows it: short."""
    return value if value is None or type(value) in (int, str) else json.dumps(value)[:200]


# --- keys and signed notes (c2sp.org/signed-note, c2sp.org/tlog-checkpoint) ----------------------


def parse_key(vkey: str) -> Key:
    name, hexid, data = vkey.split("+", 2)
    raw = b64(data)
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + raw[1:]).digest()[:4]
    if not name or any(c.isspace() for c in name) or len(raw) != 33 or raw[0] != 1:
        raise ValueError(f"{vkey[:60]!r} is not an Ed25519 note verifier key")
    if hexid.lower() != key_id.hex():
        raise ValueError(f"{vkey[:60]!r}: its key ID does not match its key")
    return name, key_id, raw[1:]


def key_text(key: Key) -> str:
    return f"{key[0]}+{key[1].hex()}+" + enc(b"\x01" + key[2])


def open_note(note: str, keys: list[Key]) -> tuple[str, list[Key]]:
    """(text, the keys of ``keys`` that signed it); ValueError if none did, or if a signature by
    one of them does not verify."""
    if any(c < " " and c != "\n" for c in note):
        raise ValueError("the note holds a control character")
    text, blank, block = note.rpartition("\n\n")
    if not blank or not block.endswith("\n") or block.count("\n") > 100:
        raise ValueError("not a signed note")
    text, signed = text + "\n", []
    for line in block[:-1].split("\n"):
        name, _, sig = line.removeprefix("\u2014 ").partition(" ")
        if not line.startswith("\u2014 ") or len(raw := b64(sig)) <= 4:
            raise ValueError(f"malformed signature line {line[:40]!r}")
        for key in keys:
            if key[:2] == (name, raw[:4]):
                try:
                    nacl.signing.VerifyKey(key[2]).verify(text.encode(), raw[4:])
                except nacl.exceptions.BadSignatureError:
                    raise ValueError(f"signature by {key_text(key)} does not verify") from None
                signed += [] if key in signed else [key]
    if not signed:
        raise ValueError("the note has no signature by your key(s)")
    return text, signed


def open_checkpoint(note: str, keys: list[Key], origin: str) -> tuple[int, bytes, list[Key]]:
    """(size, root, signers) of a checkpoint of ``origin`` signed by a key of that name."""
    text, signers = open_note(note, keys)
    lines = text[:-1].split("\n")  # origin, size, base64 root, extension lines
    if len(lines) < 3 or not re.fullmatch(r"0|[1-9][0-9]{0,19}", lines[1]) or int(lines[1]) >> 64:
        raise ValueError("the signed text is not a checkpoint")
    if lines[0] != origin:
        raise ValueError(f"a checkpoint of {lines[0]!r}, not of {origin!r}")
    if not any(k[0] == origin for k in signers) or len(root := b64(lines[2])) != 32:
        raise ValueError("not a checkpoint signed by the log's key")
    return int(lines[1]), root, [k for k in signers if k[0] == origin]


def open_rotation(note: str, trusted: list[Key], origin: str) -> tuple[Key, Key]:
    """(old, new) of a rotation statement (handoff-ledger/key-rotation/v1); when ``old`` is
    trusted, both keys must have signed it."""
    lines = (note.rpartition("\n\n")[0] + "\n").split("\n")
    fields = [line.partition(" ") for line in lines[1:5]]
    if (
        len(lines) != 6
        or lines[0] != "handoff-ledger/key-rotation/v1"
        or [f[0] for f in fields] != ["origin", "old", "new", "time"]
    ):
        raise ValueError("not a handoff-ledger/key-rotation/v1 statement")
    old, new = parse_key(fields[1][2]), parse_key(fields[2][2])
    if not fields[0][2] == old[0] == new[0] == origin or old == new:
        raise ValueError("not a rotation between two keys of this log")
    if old in trusted and len(open_note(note, [old, new])[1]) != 2:
        raise ValueError("not signed by both the old and the new key")
    return old, new


# --- Merkle trees (RFC 9162 §2.1), the sample, the tlog-proof ------------------------------------


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root an audit path leads to (ValueError if ill-shaped)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0 or len(p) != 32:
            raise ValueError("the proof is too long or holds a hash that is not 32 bytes")
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn:
        raise ValueError("the proof is too short")
    return r


def consistent(m: int, n: int, proof: list[bytes], root1: bytes, root2: bytes) -> bool:
    """RFC 9162 §2.1.4.2: whether the tree of m leaves with root1 is a prefix of the tree of n
    leaves with root2 (m = n: no proof and equal roots; m = 0: no proof, the empty root)."""
    if m == n or m == 0:
        return not proof and root1 == (root2 if m else hashlib.sha256().digest()) and m <= n
    if not 0 < m < n or not proof or any(len(p) != 32 for p in proof):
        return False
    path = [root1, *proof] if m & (m - 1) == 0 else list(proof)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == root1 and sr == root2


def fold(frontier: list[bytes], size: int, leaf: bytes) -> None:
    """Append a leaf to the tree of ``size`` leaves whose right frontier (its perfect subtrees,
    largest first) is ``frontier``, in place."""
    while size & 1:
        leaf, size = node(frontier.pop(), leaf), size >> 1
    frontier.append(leaf)


def frontier_root(frontier: list[bytes]) -> bytes:
    root = frontier[-1]
    for h in reversed(frontier[:-1]):
        root = node(h, root)
    return root


def sample_seqs(root: bytes, seed: str, start: int, end: int, k: int) -> list[int]:
    """handoff-ledger/sample/v1 (the doc's "sample"): k distinct seqs of [start, end)."""
    if not 0 <= k <= end - start or len(root) != 32:
        raise ValueError(f"cannot draw {k} seqs from [{start}, {end})")
    s = hashlib.sha256(b"handoff-ledger/sample/v1\n" + root + b"\n" + seed.encode()).digest()
    n = end - start
    limit = 2**64 - (2**64 % n)
    kept: set[int] = set()
    i = 0
    while len(kept) < k:
        x = int.from_bytes(hashlib.sha256(s + i.to_bytes(8, "big")).digest()[:8], "big")
        if x < limit:
            kept.add(start + x % n)
        i += 1
    return sorted(kept)


def parse_tlog_proof(text: str) -> tuple[int, list[bytes], str]:
    """(index, audit path, checkpoint) of a c2sp.org/tlog-proof ("proofs/<seq>.tlog-proof")."""
    lines = text.split("\n")
    at = 2 if len(lines) > 1 and lines[1].startswith("extra ") else 1
    if lines[0] != "c2sp.org/tlog-proof@v1" or len(lines) <= at:
        raise ValueError("not a c2sp.org/tlog-proof")
    if at == 2:
        b64(lines[1][len("extra ") :])
    index = lines[at].removeprefix("index ")
    if not lines[at].startswith("index ") or not re.fullmatch(r"0|[1-9][0-9]{0,19}", index):
        raise ValueError("no index line, or an index with a sign or leading zeroes")
    blank = lines.index("", at + 1)  # ValueError if there is none
    hashes = [b64(h) for h in lines[at + 1 : blank]]
    checkpoint = "\n".join(lines[blank + 1 :])
    if int(index) >= 2**64 or any(len(h) != 32 for h in hashes) or not checkpoint:
        raise ValueError("an index over 64 bits, a hash not of 32 bytes, or no checkpoint")
    return int(index), hashes, checkpoint


def cosigned(note: str, witness_key: str, line: str) -> str:
    """The witness's name if ``line`` ("— name base64(key ID || u64 time || signature)") is its
    cosignature/v1 over the checkpoint ``note`` (ValueError otherwise)."""
    name, hexid, data = witness_key.split("+", 2)
    raw = b64(data)
    key_id = hashlib.sha256(name.encode() + b"\n\x04" + raw[1:]).digest()[:4]
    if len(raw) != 33 or raw[0] != 4 or hexid != key_id.hex():
        raise ValueError("not an Ed25519 cosignature/v1 witness key")
    signer, _, sig64 = line.removesuffix("\n").removeprefix("\u2014 ").partition(" ")
    sig = b64(sig64)
    if not line.startswith("\u2014 ") or signer != name or sig[:4] != key_id or len(sig) != 76:
        raise ValueError("not a cosignature line of this witness")
    text = note.rpartition("\n\n")[0] + "\n"
    message = f"cosignature/v1\ntime {int.from_bytes(sig[4:12], 'big')}\n{text}".encode()
    try:
        nacl.signing.VerifyKey(raw[1:]).verify(message, sig[12:])
    except nacl.exceptions.BadSignatureError:
        raise ValueError("the signature does not verify") from None
    return witness_key


# --- check 1: the zip ----------------------------------------------------------------------------


def bundle_file(name: str) -> bool:
    fixed = {MANIFEST, SIG, CHECKPOINT, KEYS, ENTRIES, RANGE, CONSISTENCY, WRITER_KEYS, *REPORTS}
    fixed |= {E_CHECKPOINT, E_KEYS, E_RECORDS, E_WRITER_KEYS, WITNESSES}
    patterns = (ROTATION, TLOG, E_ROTATION, E_TLOG)
    return name in fixed or any(p.fullmatch(name) for p in patterns)


def unsafe(name: str) -> bool:
    """Not a relative, '/'-separated path (no '..', '.', '\\', ':', control character)."""
    parts = name.removesuffix("/").split("/")
    return (
        any(p in ("", ".", "..") for p in parts)
        or name.startswith("/")
        or bool(re.search(r"[\\:\x00-\x1f\x7f]", name))
    )


class Zip:
    """check_1_zip: every member's name and declared size are checked before a byte is inflated;
    members are then read in memory (entries.jsonl line by line), each hashed as it is read.
    Nothing is ever written to disk."""

    def __init__(self, path: str) -> None:
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise CannotRun(f"{path} is not a zip file (or is truncated): {exc}") from exc
        self.infos: dict[str, zipfile.ZipInfo] = {}
        self.digests: dict[str, str] = {}
        members = self.zf.infolist()
        if len(members) > MAX_MEMBERS or sum(i.file_size for i in members) > TOTAL:
            raise CannotRun(f"over {MAX_MEMBERS} members or {TOTAL} bytes: a zip bomb")
        for info in members:
            name, size = info.filename, info.file_size
            streamed = name == ENTRIES or name in REPORTS or not bundle_file(name)
            limit = MANIFEST_MAX if name == MANIFEST else STREAMED if streamed else SMALL
            for refused, why in (
                (unsafe(info.orig_filename), "has an unsafe name"),
                (name in self.infos, "is in the zip twice"),
                (info.flag_bits & 1, "is encrypted"),
                (size > limit, f"is {size} bytes, over its limit of {limit}"),
                (size > max(RATIO_FLOOR, MAX_RATIO * info.compress_size), "is a zip bomb"),
            ):
                if refused:
                    raise CannotRun(f"member {name[:80]!r} {why}")
            self.infos[name] = info

    def pieces(self, name: str, lines: bool = False) -> Iterator[bytes]:
        """The member's bytes in pieces of 1 MiB, or line by line (up to MAX_LINE each): never
        more than a piece in memory. zipfile stops at the declared size and checks the CRC; the
        SHA-256 is recorded at the end, for check 3. A zip that cannot be read cannot be checked."""
        digest, size = hashlib.sha256(), 0
        try:
            with self.zf.open(self.infos[name]) as f:
                while piece := f.readline(MAX_LINE + 1) if lines else f.read(1 << 20):
                    if len(piece) > MAX_LINE:
                        raise CannotRun(f"{name} has a line longer than {MAX_LINE} bytes")
                    digest.update(piece)
                    size += len(piece)
                    yield piece
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, ValueError) as exc:
            raise CannotRun(f"member {name!r} cannot be read: {exc}") from exc
        if size != self.infos[name].file_size:
            raise CannotRun(f"member {name!r} is shorter than it declares")
        self.digests[name] = digest.hexdigest()

    def read(self, name: str) -> bytes:
        return b"".join(self.pieces(name))

    def text(self, name: str) -> str:
        return self.read(name).decode("utf-8")  # UnicodeDecodeError is a ValueError

    def digest(self, name: str) -> str:
        if name not in self.digests:
            for _ in self.pieces(name):
                pass
        return self.digests[name]


def given_leaf(line: bytes) -> str:
    """The leaf_hash a line states (for the manifest's first and last), or ""."""
    try:
        value = json.loads(line)["leaf_hash"]
    except BAD:
        return ""
    return value if isinstance(value, str) else ""


# --- checks 2 to 7 -------------------------------------------------------------------------------


class Failed(Exception):
    """A check failed: (check, message, expected, found). What it was checking (a file, a line)
    has failed; the rest of that is not checked."""


def expect(ok: object, check: str, msg: str, exp: Any = None, got: Any = None) -> None:
    if not ok:
        raise Failed(check, msg, exp, got)


def must(attempt: Callable[[], T], check: str, msg: str) -> T:
    """attempt(), or the check fails with ``msg`` and the reason."""
    try:
        return attempt()
    except BAD as exc:
        raise Failed(check, f"{msg}: {exc}", None, None) from None


class Verify:
    """The checks on one bundle, in the doc's order. Each failure (or warning) names the file,
    the seq where there is one, the check, what was expected and what was found; the first
    MAX_FINDINGS are kept, all are counted."""

    def __init__(self, z: Zip, keys: list[Key]) -> None:
        self.z, self.keys, self.origin, self.size, self.root = z, keys, "", 0, b""
        self.fails: list[dict[str, Any]] = []
        self.warns: list[dict[str, Any]] = []
        self.nfails = self.nwarns = 0
        self.trusted: list[Key] = []
        self.certified: list[str] = []
        self.files: dict[str, str] = {}
        self.checkpoint = ""
        self.summary: dict[str, Any] = {"entries": 0, "verified": 0, "withheld": {}}
        # Check 6: what the manifest selected (check_6_selection), what the lines showed so far.
        self.population: tuple[int, int] | None = None  # the range, or a sample's population
        self.window: tuple[datetime | None, datetime | None] | None = None
        self.listed: list[str] | None = None  # the conversations of an entries selection
        self.frontier: list[bytes] | None = None  # a range's tree, folded up to the last line
        self.consistency: list[bytes] = []
        self.tlog: set[str] = set()  # the tlog-proofs no entry has claimed yet
        self.chains: dict[str, int | None] = {}  # conversation -> its last seq so far
        self.seen: list[int] = []  # the seqs of a sample
        self.writer_keys: list[Any] = []  # v2: as the system log's records prove them
        self.erased: list[tuple[int, Any]] = []  # (seq, conversation) of each erased payload
        self.system: tuple[str, int, bytes, str] | None = None  # check 8: origin, size, root, note
        self.section: Any = "unread"  # check 8: the manifest's erasures section, once read
        self.e_proofs: set[str] = set()  # check 8: the erasures/ tlog-proofs no record claimed
        self.witness_keys: set[str] = set()  # check 8: the witnesses' keys you trust (if given)

    def fail(
        self, file: str, check: str, msg: str, seq: Any = None, exp: Any = None, got: Any = None
    ) -> None:
        self.nfails += 1
        if len(self.fails) < MAX_FINDINGS:
            finding = {"file": file, "seq": seq, "check": check, "message": msg}
            self.fails.append({**finding, "expected": exp, "found": got})

    def record(self, file: str, failed: Failed, seq: int | None = None) -> None:
        check, msg, exp, got = failed.args
        self.fail(file, check, msg, seq, exp, got)

    def warn(self, check: str, msg: str, seq: int) -> None:
        self.nwarns += 1
        if len(self.warns) < MAX_FINDINGS:
            self.warns.append({"file": ENTRIES, "seq": seq, "check": check, "message": msg})

    def json_file(self, name: str, check: str) -> Any:
        """A file's JSON value, which must be canonical (RFC 8785)."""
        raw = self.z.read(name)
        value = must(lambda: strict_json(raw), check, "the file is not JSON")
        expect(is_canonical(raw, value), check, "the file is not canonical JSON (RFC 8785)")
        return value

    def run(self) -> None:
        if MANIFEST not in self.z.infos:
            raise CannotRun("not an evidence bundle: no manifest.json")
        try:
            m = self.json_file(MANIFEST, "manifest")
        except Failed as failed:
            self.record(MANIFEST, failed)
            m = None
        if not self.check_2_manifest_sig(m) or not self.check_2_manifest(m):
            self.check_3_files(None)
            return
        self.check_3_files(m["files"])
        self.check_4_checkpoint()
        v2 = m.get("format") != FORMATS[0]
        if v2:  # the writer keys the signatures of check 5 are checked against
            self.e_proofs = {n for n in self.z.infos if E_TLOG.fullmatch(n)}
            self.writer_keys = self.check_8_writer_keys(m)
        self.check_5_6_entries(m, v2)
        self.check_7_consistency()
        if v2:
            self.check_8_erasures(m)
            for name in sorted(self.e_proofs):
                self.fail(name, "erasure", "a tlog-proof for no record of erasures/")
            self.check_8_witnesses()

    # -- check 2: manifest.sig and manifest.json ("manifest.sig", "manifest.json")

    def check_2_manifest_sig(self, m: Any) -> bool:
        """manifest.sig is the note "format / origin / SHA-256 of manifest.json", signed by a key
        you trust that verifier-keys lists. False if the bundle names no log to check it for."""
        sig, lines = "", []
        try:
            expect(SIG in self.z.infos, "manifest_sig", "the bundle has no manifest.sig")
            sig = must(lambda: self.z.text(SIG), "manifest_sig", "the file is not UTF-8")
            lines = sig.rpartition("\n\n")[0].split("\n")
            what = f"its text is not the three lines {FORMAT} / origin / SHA-256"
            expect(len(lines) == 3 and lines[0] in FORMATS, "manifest_sig", what)
            what = "signs a bundle of another format version than the manifest's"
            got = m.get("format") if isinstance(m, dict) else None
            expect(lines[0] == got, "manifest_sig", what, show(got), lines[0])
        except Failed as failed:
            self.record(SIG, failed)
            sig, lines = "", []
        # The bundle's log: the manifest's origin or else the signature's, whichever you hold a
        # key for (if the two differ, that fails below).
        candidates = [m.get("origin") if isinstance(m, dict) else None, *lines[1:2]]
        named: list[str] = [o for o in candidates if isinstance(o, str) and o]
        if not named:
            self.fail(MANIFEST, "manifest", "no log origin to check the bundle against")
            return False
        self.origin = next((o for o in named if o in {k[0] for k in self.keys}), named[0])
        self.trust()
        listed = self.verifier_keys()
        digest = hashlib.sha256(self.z.read(MANIFEST)).hexdigest()
        try:
            if sig:
                what = "names another manifest.json: its SHA-256 is not the one signed"
                expect(lines[2] == digest, "manifest_sig", what, digest, lines[2][:64])
                what = "signs another log's origin"
                expect(lines[1] == self.origin, "manifest_sig", what, self.origin, lines[1])
                what = "does not open under your key(s)"
                _, signers = must(lambda: open_note(sig, self.trusted), "manifest_sig", what)
                self.summary["manifest_signed_by"] = [key_text(k) for k in signers]
                what = "signed by a key the bundle's verifier-keys does not list"
                expect(set(signers) & set(listed) or not listed, "manifest_sig", what)
        except Failed as failed:
            self.record(SIG, failed)
        return True

    def trust(self) -> None:
        self.trusted = self.keys_for(self.origin, ROTATION, "the bundle's log")

    def keys_for(self, origin: str, rotations: re.Pattern[str], what: str) -> list[Key]:
        """Your keys for ``origin``, then each key a trusted key certified by a rotation
        statement (rotations/<i>.note, oldest first); never a key the bundle alone names."""
        trusted = [k for k in self.keys if k[0] == origin]
        if not trusted:
            yours = ", ".join(sorted({k[0] for k in self.keys}))
            raise CannotRun(f"none of your keys ({yours}) is for {what} {origin!r}")
        numbered = {int(m[1]): n for n in self.z.infos if (m := rotations.fullmatch(n))}
        if sorted(numbered) != list(range(len(numbered))):
            where = rotations.pattern.split("(")[0]
            self.fail(where, "rotation", "not numbered 0, 1, 2, … without a gap")
        for i in sorted(numbered):
            try:
                old, new = open_rotation(self.z.text(numbered[i]), trusted, origin)
            except BAD as exc:
                self.fail(numbered[i], "rotation", f"not a rotation certifying its key: {exc}")
                continue
            if old in trusted and new not in trusted:
                trusted.append(new)
                self.certified.append(key_text(new))
        return trusted

    def verifier_keys(self) -> list[Key]:
        """The keys verifier-keys lists, each of the bundle's log."""
        keys: list[Key] = []
        try:
            expect(KEYS in self.z.infos, "verifier_keys", "the bundle has no verifier-keys file")
            text = must(lambda: self.z.text(KEYS), "verifier_keys", "the file is not UTF-8")
            for n, line in enumerate(text.splitlines(), start=1):
                key = must(lambda: parse_key(line), "verifier_keys", f"line {n}")  # noqa: B023
                expect(key[0] == self.origin, "verifier_keys", f"line {n}: a key of another log")
                keys.append(key)
            expect(keys, "verifier_keys", "the file lists no key")
        except Failed as failed:
            self.record(KEYS, failed)
        return keys

    def check_2_manifest(self, m: Any) -> bool:
        """The manifest's fields, each of its type; False if too broken to go on."""
        if not isinstance(m, dict):
            if m is not None:  # (None: not JSON, failed already)
                self.fail(MANIFEST, "manifest", "not a JSON object")
            return False
        size, files, root = m.get("tree_size"), m.get("files"), str(m.get("root"))
        root_hash = b64(root) if re.fullmatch(r"[A-Za-z0-9+/]{43}=", root) else b""
        hexes = isinstance(files, dict) and all(
            type(v) is str and re.fullmatch("[0-9a-f]{64}", v) for v in files.values()
        )
        for key, want, ok in (
            ("origin", self.origin, m.get("origin") == self.origin),
            ("format", FORMAT, m.get("format") in FORMATS),
            ("profile", "a profile", m.get("profile") in PROFILES),
            ("selection", "a selection", m.get("selection") in ("range", "entries", "sample")),
            ("log", "a string", isinstance(m.get("log"), str)),
            ("generated_at", "a string", isinstance(m.get("generated_at"), str)),
            ("query", "an object", isinstance(m.get("query"), dict)),
            ("generated_by", "an object", isinstance(m.get("generated_by"), dict)),
            ("files", "{path: hex SHA-256}", hexes),
            ("tree_size", "an integer >= 0", type(size) is int and size >= 0),
            ("root", "a base64 hash", len(root_hash) == 32),
        ):
            if not ok:
                self.fail(MANIFEST, "manifest", f"{key}: not {want}", None, want, show(m.get(key)))
        if type(size) is not int or size < 0 or len(root_hash) != 32 or not hexes:
            return False
        self.size, self.root = size, root_hash
        self.summary.update(
            {k: m.get(k) for k in ("log", "profile", "selection", "tree_size", "root")}
        )
        return True

    # -- check 3: every file's SHA-256 is the manifest's, none missing, none added ("Files")

    def check_3_files(self, files: dict[str, str] | None) -> None:
        names = [n for n in self.z.infos if n not in (MANIFEST, SIG)]
        for name in names:
            if not bundle_file(name):
                self.fail(name, "files", "not a file an evidence bundle may hold")
        self.files = files or {}
        for name in {MANIFEST, SIG} & set(self.files):
            self.fail(MANIFEST, "files", f"files names {name}, which it cannot hash")
        for name in sorted(set(self.files) - set(self.z.infos)):
            self.fail(name, "files", "named in the manifest, missing from the bundle")
        for name in names if files is not None else []:
            if name not in self.files:
                self.fail(name, "files", "in the bundle, not named in the manifest's files")
            elif name != ENTRIES and not TLOG.fullmatch(name):
                self.compare(name)  # entries.jsonl and the tlog-proofs: when check 6 reads them

    def compare(self, name: str) -> None:
        if name in self.files and self.z.digest(name) != self.files[name]:
            msg = "its SHA-256 is not the manifest's"
            self.fail(name, "files", msg, None, self.files[name], self.z.digest(name))

    # -- check 4: the checkpoint ("checkpoint")

    def check_4_checkpoint(self) -> None:
        """Signed by your key; its origin, size and root are the manifest's. The proofs are then
        checked against the signed size and root."""
        try:
            expect(CHECKPOINT in self.z.infos, "checkpoint", "the bundle has no checkpoint")
            text = must(lambda: self.z.text(CHECKPOINT), "checkpoint", "the file is not UTF-8")
            what = f"does not open under your key(s) for {self.origin!r}"
            size, root, signers = must(
                lambda: open_checkpoint(text, self.trusted, self.origin), "checkpoint", what
            )
        except Failed as failed:
            self.record(CHECKPOINT, failed)
            return
        self.checkpoint = text
        self.summary["checkpoint_signed_by"] = [key_text(k) for k in signers]
        if (size, root) != (self.size, self.root):
            msg = "the manifest's tree_size and root are not the signed checkpoint's"
            found, signed = [self.size, enc(self.root)], [size, enc(root)]
            self.fail(MANIFEST, "checkpoint", msg, None, signed, found)
        self.size, self.root = size, root

    # -- checks 5 and 6: entries.jsonl, line by line, and the selection's proof

    def check_5_6_entries(self, m: dict[str, Any], v2: bool) -> None:
        """entries.jsonl is read one line at a time, never whole: check 5 on each line, check 6
        as the lines go by, then what needs them all."""
        selection = m.get("selection")  # (not one of the three: failed in check 2)
        if selection in ("range", "entries", "sample"):
            self.check_6_selection(m, selection)
        if ENTRIES not in self.z.infos:
            self.fail(ENTRIES, "count", "the bundle has no entries.jsonl")
            return
        if WRITER_KEYS in self.z.infos and not v2:  # v1: no records; v2: a restatement only
            try:
                keys = self.json_file(WRITER_KEYS, "writer_signature")
                expect(
                    type(keys) is dict and type(keys.get("keys")) is list,
                    "writer_signature",
                    'not {"keys": [...]}',
                )
                self.writer_keys = keys["keys"]
            except Failed as failed:
                self.record(WRITER_KEYS, failed)
        count, previous, first = 0, -1, None
        last: tuple[int | None, bytes] = (None, b"")
        for piece in self.z.pieces(ENTRIES, lines=True):
            line = piece.removesuffix(b"\n")
            count += 1
            seq, leaf, entry = self.check_5_line(count, line)
            first, last = first or {"seq": seq, "leaf_hash": given_leaf(line)}, (seq, line)
            if seq is not None:
                if seq <= previous:
                    msg = f"seq {seq} follows seq {previous}: seqs must strictly increase"
                    self.fail(ENTRIES, "order", msg, seq, f"> {previous}", seq)
                previous = seq
                self.summary.setdefault("first_seq", seq)
                self.summary["last_seq"] = seq
            if selection == "range":
                self.check_6_range_line(seq, leaf, count)
            elif seq is not None:
                self.check_6_inclusion(seq, leaf)
                if selection == "entries" and entry is not None:
                    self.check_6_back_link(seq, entry)
            if self.window and seq is not None and entry is not None:
                self.check_6_time_window(seq, entry.get("received_at"))
        self.summary["entries"] = count
        self.compare(ENTRIES)
        last_line = first and {"seq": last[0], "leaf_hash": given_leaf(last[1])}
        self.check_6_whole(m, count, first, last_line)

    def check_5_line(self, n: int, line: bytes) -> tuple[int | None, bytes, dict[str, Any] | None]:
        """Check 5 on line n ("entries.jsonl"): canonical JSON of the six fields; the leaf hash
        recomputed; the entry bytes name the seq and the origin; the payload. Returns (seq, leaf
        hash, entry) for check 6; seq is None when the line cannot be read at all."""
        seq, leaf, entry = None, bytes(32), None
        try:
            what = f"line {n}: not JSON" if line else f"line {n}: an empty line"
            obj = must(lambda: strict_json(line), "line", what)
            ok = type(obj) is dict and type(obj.get("seq")) is int and 0 <= obj["seq"] <= MAX_SAFE
            expect(ok, "line", f"line {n}: not an object with a seq")
            what = f"line {n}: entry_b64 is not base64"
            raw = must(lambda: b64(obj["entry_b64"]), "entry_bytes", what)
            seq, leaf = obj["seq"], hashlib.sha256(b"\x00" + raw).digest()
            expect(set(obj) == LINE_FIELDS, "line", f"line {n}: not the fields of an entry line")
            expect(is_canonical(line, obj), "line", f"line {n}: not canonical JSON (RFC 8785)")
            what = "SHA-256(0x00 || entry bytes) is not the leaf hash given"
            expect(obj["leaf_hash"] == enc(leaf), "leaf_hash", what, enc(leaf), obj["leaf_hash"])
            entry = must(
                lambda: json.loads(raw), "entry_bytes", "the entry bytes are not a JSON object"
            )
            expect(type(entry) is dict, "entry_bytes", "the entry bytes are not a JSON object")
            named = entry.get("seq")
            what = "the entry bytes name another seq"
            expect(type(named) is int and named == seq, "entry_bytes", what, seq, show(named))
            named = entry.get("origin")
            what = "the entry bytes name another log origin"
            expect(named == self.origin, "entry_bytes", what, self.origin, show(named))
            self.check_5_payload(seq, entry, obj)
            if "writer_signature" in entry:  # from the entry alone: erasure changes nothing
                try:
                    problem = writer_signature_problem(entry, self.writer_keys)
                except (ValueError, TypeError, KeyError, nacl.exceptions.CryptoError) as exc:
                    problem = f"unreadable: {exc!r}"
                expect(problem is None, "writer_signature", f"writer signature: {problem}")
                self.summary["writer_signatures"] = self.summary.get("writer_signatures", 0) + 1
        except Failed as failed:
            self.record(ENTRIES, failed, seq)
        return seq, leaf, entry if isinstance(entry, dict) else None

    def check_5_payload(self, seq: int, entry: dict[str, Any], line: dict[str, Any]) -> None:
        """("entries.jsonl") When the line carries the payload, SHA-256(salt || payload bytes) is
        the entry's payload.commitment. Erased, missing or withheld payloads are counted, not
        failed; a pci-dss-10 bundle carries none at all (card data is never present)."""
        status, payload, salt = line["payload_status"], line["payload_b64"], line["payload_salt"]
        carried = payload is not None or salt is not None
        if self.summary["profile"] == "pci-dss-10":
            what = "a pci-dss-10 bundle carries no payload (card data is never present): "
            what += "payload_status withheld, payload_b64 and payload_salt null"
            got = f"{show(status)}{' with a payload or salt' * carried}"
            expect(status == "withheld" and not carried, "payload", what, "withheld", got)
        what = "payload_status is not one of the document's"
        expect(status in STATUSES, "payload", what, None, show(status))
        if not carried:
            what = "payload_status is verified, but no payload bytes and salt are given"
            expect(status != "verified", "payload", what)
            if status in ("erased", "missing", "withheld"):
                self.summary["withheld"][status] = self.summary["withheld"].get(status, 0) + 1
                event = entry.get("event")
                if status == "erased" and isinstance(event, dict):  # check 8 finds its record
                    self.erased.append((seq, event.get("conversation")))
                elif status == "erased":
                    self.erased.append((seq, None))
            else:
                self.warn("payload", f"the ledger could not read this payload ({status})", seq)
            return
        what = "payload_b64 and payload_salt must come together"
        expect(payload is not None and salt is not None, "payload", what)
        what = "the payload cannot be checked"
        data, salt = must(lambda: (b64(payload), b64(salt)), "payload", what)
        commitment: dict[str, Any] = (
            entry["payload"] if isinstance(entry.get("payload"), dict) else {}
        )
        ok = commitment.get("alg") == "sha256-salted" and len(salt) == 32
        expect(ok, "payload", f"{what}: not a sha256-salted commitment with a 32-byte salt")
        committed = must(lambda: b64(commitment.get("commitment")), "payload", what)
        found = hashlib.sha256(salt + data).digest()
        if found != committed and status == "mismatch":
            what = "the ledger says it does not match its commitment, and it does not: not proven"
            self.warn("payload", what, seq)
            return
        what = "SHA-256(salt || payload bytes) is not the entry's commitment"
        expect(found == committed, "payload", what, enc(committed), enc(found))
        self.summary["verified"] += 1
        if status != "verified":
            self.warn("payload", f"payload_status is {status!r}, but the payload checks", seq)

    # -- check 6: the selection's proof ("Selections and their completeness proofs")

    def check_6_selection(self, m: dict[str, Any], selection: str) -> None:
        """What the manifest says was selected: a range (or a sample's population), a sample,
        conversations, each null unless its selection has it; a time window; the proof files."""
        for key, given in (
            ("range", selection != "entries"),
            ("sample", selection == "sample"),
            ("conversations", selection == "entries"),
        ):
            if (m.get(key) is not None) != given:
                self.fail(MANIFEST, key, f"{key}: must {'' if given else 'not '}be given")
        if selection != "entries" and m.get("range") is not None:
            value = m["range"] if isinstance(m["range"], dict) and len(m["range"]) == 2 else {}
            start, end = value.get("start"), value.get("end")
            if type(start) is int and type(end) is int and 0 <= start < end <= self.size:
                self.population, self.summary["range"] = (start, end), [start, end]
            else:
                msg = f"range: not {{start, end}} with 0 <= start < end <= tree_size ({self.size})"
                self.fail(MANIFEST, "range", msg, None, None, show(m["range"]))
        if selection == "sample" and m.get("sample") is not None:
            sample = m["sample"] if isinstance(m["sample"], dict) else {}
            shape = sample.get("algorithm"), type(sample.get("size")), type(sample.get("seed"))
            if shape == (SAMPLE, int, str):
                self.summary["sample"] = sample
            else:
                self.fail(MANIFEST, "sample", f"sample: not {{algorithm: {SAMPLE}, size, seed}}")
        if selection == "entries" and m.get("conversations") is not None:
            listed = m["conversations"]
            if isinstance(listed, list) and all(type(c) is str for c in listed):
                self.listed = listed if len(set(listed)) == len(listed) else None
            if self.listed is None:
                self.fail(MANIFEST, "conversations", "conversations: not a list of distinct ids")
        self.check_6_window_of(m.get("query"))
        self.tlog = {n for n in self.z.infos if TLOG.fullmatch(n)}
        if selection == "range":
            for name in sorted(self.tlog):
                self.fail(name, "range_proof", "a range bundle holds no per-entry tlog-proof")
                self.compare(name)
            self.tlog = set()
            try:
                self.check_6_range_proof()
            except Failed as failed:
                self.record(RANGE, failed)
        elif RANGE in self.z.infos:
            self.fail(RANGE, "inclusion", f"a {selection} bundle holds no range proof")

    def check_6_range_proof(self) -> None:
        """proofs/range.json: "left" is the frontier at start, onto which the range's leaves are
        folded as they are read; "consistency" leads from the root at end to the root at N."""
        if self.population is None:
            return
        start, end = self.population
        expect(RANGE in self.z.infos, "range_proof", "the range bundle has no proofs/range.json")
        proof = self.json_file(RANGE, "range_proof")
        expect(isinstance(proof, dict), "range_proof", "not a JSON object")
        for key, want in (("start", start), ("end", end), ("tree_size", self.size)):
            found = proof.get(key)
            ok = found == want and type(found) is int
            expect(ok, "range_proof", f"{key} is not the manifest's", want, show(found))
        what = "left and consistency must be lists of base64 hashes"
        left = must(lambda: [b64(h) for h in proof["left"]], "range_proof", what)
        self.consistency = must(lambda: [b64(h) for h in proof["consistency"]], "range_proof", what)
        tiles = bin(start).count("1")  # [0, start) is one perfect subtree per bit of start
        what = f"left must be the {tiles} subtree hashes that tile [0, {start})"
        ok = len(left) == tiles and all(len(h) == 32 for h in left)
        expect(ok, "range_proof", what, tiles, len(left))
        self.frontier = left

    def check_6_range_line(self, seq: int | None, leaf: bytes, n: int) -> None:
        """("range") Line n holds seq start + n - 1; its leaf is folded onto the frontier."""
        if self.population is None:
            return
        start, end = self.population
        if seq != start + n - 1:
            msg = f"the range [{start}, {end}) does not continue here: an entry is missing, added"
            self.fail(ENTRIES, "range", msg + " or out of order", seq, start + n - 1, seq)
        if self.frontier is not None and n <= end - start:
            fold(self.frontier, start + n - 1, leaf)

    def check_6_inclusion(self, seq: int, leaf: bytes) -> None:
        """The entry's c2sp.org/tlog-proof ("proofs/<seq>.tlog-proof"): its index, the bundle's
        checkpoint verbatim, an audit path to the checkpoint's root."""
        name = f"proofs/{seq}.tlog-proof"
        self.tlog.discard(name)
        self.seen.append(seq)
        try:
            expect(name in self.z.infos, "inclusion", "the entry has no tlog-proof in the bundle")
            self.compare(name)
            what = "not a c2sp.org/tlog-proof"
            proof = must(lambda: parse_tlog_proof(self.z.text(name)), "inclusion", what)
            index, hashes, note = proof
            what = "the proof's index is not the entry's seq"
            expect(index == seq, "inclusion", what, seq, index)
            what = "the proof's checkpoint is not the bundle's, byte for byte"
            expect(note == self.checkpoint or not self.checkpoint, "inclusion", what)
            what = "the entry is not proven in the checkpoint"
            at = must(lambda: root_from_inclusion(leaf, seq, self.size, hashes), "inclusion", what)
            expect(at == self.root, "inclusion", f"{what}: the audit path leads elsewhere")
        except Failed as failed:
            self.record(name, failed, seq)

    def check_6_back_link(self, seq: int, entry: dict[str, Any]) -> None:
        """("entries") Each conversation, read from the entry bytes, is one chain: its first entry
        names conversation_prev null, each next one the seq of the one before."""
        event = entry.get("event")
        conversation = event.get("conversation") if isinstance(event, dict) else None
        if type(conversation) is not str:
            self.fail(ENTRIES, "conversations", "the entry bytes name no conversation", seq)
            return
        if self.listed is not None and conversation not in self.listed:
            msg = "the entry is of a conversation the manifest does not list"
            self.fail(ENTRIES, "conversations", msg, seq, None, conversation)
        previous, found = self.chains.get(conversation), entry.get("conversation_prev", "absent")
        if found != previous or (found is not None and type(found) is not int):
            msg = f"conversation_prev is not the entry before it of {conversation!r} in the bundle"
            msg += " (one is missing or out of order)"
            self.fail(ENTRIES, "back_link", msg, seq, previous, found)
        self.chains[conversation] = seq

    def check_6_window_of(self, query: Any) -> None:
        """("range") A range or sample exported for a time window: the query's from_time and
        to_time, on the ledger's received_at."""
        if self.population is None or not isinstance(query, dict):
            return
        texts = {k: query.get(k) for k in ("from_time", "to_time") if query.get(k) is not None}
        for key, text in texts.items():
            if instant(text) is None:
                msg = f"query.{key} is not an RFC 3339 time with its offset"
                self.fail(MANIFEST, "time_window", msg, None, None, show(text))
                return
        if texts:
            self.window = instant(texts.get("from_time")), instant(texts.get("to_time"))
            self.summary["time_window"] = {"from_time": None, "to_time": None, **texts}

    def check_6_time_window(self, seq: int, received: Any) -> None:
        """("range") A time window's range holds its neighbours, so it is seen complete at both
        ends: where there is one before it (start > 0), seq start was received before from_time
        and seq start + 1 at or after it; where there is one after it (end < N), seq end - 1 at
        or after to_time and seq end - 2 before it (a sample: the same, for the seqs it holds).
        Any other entry outside the window is a warning: received_at is the clock of the server
        process that took the event, and two processes' clocks may differ a little."""
        (low, high), (start, end) = self.window or (None, None), self.population or (0, 0)
        at, given = instant(received), self.summary["time_window"]
        if at is None:
            what = "the entry bytes' received_at is not an RFC 3339 time"
            self.fail(ENTRIES, "time_window", what, seq, None, show(received))
            return
        before, after = low is not None and at < low, high is not None and at >= high
        from_side, to_side = low is not None and start > 0, high is not None and end < self.size
        gt, lt = f">= {given['from_time']}", f"< {given['to_time']}"
        rules = (  # (applies, holds, expected, what it means if it does not hold)
            (from_side and seq == start, before, "< " + gt[3:], FIRST),
            (from_side and seq == start + 1, not before, gt, SECOND),
            (to_side and seq == end - 1, after, ">= " + lt[2:], LAST),
            (to_side and seq == end - 2, not after, lt, LAST_BUT_ONE),
        )
        broken = [(want, what) for applies, holds, want, what in rules if applies and not holds]
        for want, what in broken:
            self.fail(ENTRIES, "time_window", what, seq, want, received)
        neighbour = (seq == start and before) or (seq == end - 1 and after)
        if (before or after) and not (broken or neighbour):
            self.warn("time_window", f"received at {received}, {OUTSIDE}", seq)

    def check_6_whole(self, m: dict[str, Any], count: int, first: Any, last: Any) -> None:
        """What needs every line: the range's root, unclaimed tlog-proofs, the sample, the
        listed conversations; count, first and last are what entries.jsonl holds."""
        if self.population is not None and m.get("selection") == "range":
            (start, end), frontier = self.population, self.frontier
            root = frontier_root(frontier) if frontier and count == end - start else b""
            if count != end - start:
                msg = f"entries.jsonl holds {count} entries, the range [{start}, {end}) has"
                self.fail(ENTRIES, "range", f"{msg} {end - start}", None, end - start, count)
            elif frontier and not consistent(end, self.size, self.consistency, root, self.root):
                msg = "the range's leaves folded onto left do not lead to the signed root"
                self.fail(RANGE, "range_proof", msg + " (RFC 9162 consistency proof)")
        for name in sorted(self.tlog):
            self.fail(name, "inclusion", "a tlog-proof for a seq entries.jsonl does not hold")
            self.compare(name)
        if self.population is not None and "sample" in self.summary:
            self.check_6_sample(*self.population, self.summary["sample"])
        for c in self.listed or []:
            if c not in self.chains:
                msg = f"conversation {c!r} is listed, but no entry of it is here"
                self.fail(MANIFEST, "conversations", msg)
        if m.get("count") != count or type(m.get("count")) is not int:
            msg = "count is not the number of lines of entries.jsonl"
            self.fail(MANIFEST, "count", msg, None, count, show(m.get("count")))
        for key, actual in (("first", first), ("last", last)):
            if m.get(key) != actual:
                msg = f"{key} is not the {key} line of entries.jsonl"
                self.fail(MANIFEST, key, msg, None, show(actual), show(m.get(key)))

    def check_6_sample(self, start: int, end: int, sample: dict[str, Any]) -> None:
        """("sample") The bundle holds the population's first and last, and exactly the seqs
        handoff-ledger/sample/v1 draws from the signed root and the seed."""
        try:
            drawn = sample_seqs(self.root, sample["seed"], start, end, sample["size"])
        except ValueError as exc:
            self.fail(MANIFEST, "sample", f"the sample cannot be drawn: {exc}")
            return
        expected, found = {start, end - 1, *drawn}, set(self.seen)
        for seq in sorted(expected - found):
            why = "drawn by the sample" if seq in drawn else "the population's first or last"
            self.fail(ENTRIES, "sample", f"seq {seq} is {why}, but not in the bundle", seq)
        for seq in sorted(found - expected):
            msg = f"seq {seq} is in the bundle, but {SAMPLE} does not draw it"
            self.fail(ENTRIES, "sample", msg, seq)

    # -- check 7: consistency.json, if present ("consistency.json")

    def check_7_consistency(self) -> None:
        if CONSISTENCY not in self.z.infos:
            return
        try:
            c = self.json_file(CONSISTENCY, "consistency")
            what = "not {from, from_size, to_size, hashes} of their types"
            expect(isinstance(c, dict), "consistency", what)
            shape = type(c.get("from")), type(c.get("from_size")), type(c.get("to_size"))
            expect(shape == (str, int, int), "consistency", what)
            hashes = must(lambda: [b64(h) for h in c["hashes"]], "consistency", what)
            what = "to_size is not the checkpoint's size"
            expect(c["to_size"] == self.size, "consistency", what, self.size, c["to_size"])
            note, what = c["from"], "the earlier checkpoint does not open under your key(s)"
            opened = must(
                lambda: open_checkpoint(note, self.trusted, self.origin), "consistency", what
            )
            size, root, _ = opened
            what = "from_size is not the earlier checkpoint's size"
            expect(size == c["from_size"], "consistency", what, size, c["from_size"])
            what = "the earlier checkpoint is not a prefix of this one (RFC 9162)"
            expect(consistent(size, self.size, hashes, root, self.root), "consistency", what)
            self.summary["consistency_from"] = size
        except Failed as failed:
            self.record(CONSISTENCY, failed)

    # -- check 8 (version 2): erasure records and witness cosignatures

    def check_8_erasures(self, m: dict[str, Any]) -> None:
        """Every erased payload is covered by a record of the tenant's system log: a record
        (erasures/records.jsonl) of this log that names the entry's conversation and was made
        at a log size above its seq, proven (erasures/proofs/<seq>.tlog-proof) in the system
        log's checkpoint (erasures/checkpoint), which opens under YOUR key for that log."""
        section, covers = self.open_system(m), {}
        if section is not None and self.system is not None:
            covers = self.check_8_records(m.get("log"), section)
        by = {"by_erasure": 0, "by_retention": 0}
        for seq, conversation in self.erased:
            kinds = [k for limit, k in covers.get(conversation, []) if seq < limit]
            if kinds:
                by[kinds[-1]] += 1
            else:
                what = "erased payload without a valid erasure record"
                self.fail(ENTRIES, "erasure", what, seq, f"a record of {conversation!r}", None)
        if section is not None and self.system is not None:
            self.summary["erasures"] = {**by, "records": section.get("records")}

    def open_system(self, m: dict[str, Any]) -> Any:
        """The manifest's erasures section (None if null or malformed), and erasures/checkpoint
        opened under YOUR key for the system log (self.system), once for both kinds of record."""
        if self.section != "unread":
            return self.section
        section = m.get("erasures", "missing")
        try:
            expect(section != "missing", "manifest", "erasures: missing (version 2)")
            if section is not None:
                what = "erasures: not {origin, tree_size, records}"
                ok = type(section) is dict and type(section.get("origin")) is str
                expect(ok and type(section.get("tree_size")) is int, "manifest", what)
        except Failed as failed:
            self.record(MANIFEST, failed)
            section = None
        self.section = section
        if section is not None:
            origin = section["origin"]
            keys = self.keys_for(origin, E_ROTATION, "the system log of the records")
            try:
                note = must(lambda: self.z.text(E_CHECKPOINT), "erasure", "no erasures/checkpoint")
                what = f"does not open under your key(s) for {origin!r}"
                size, root, _ = must(lambda: open_checkpoint(note, keys, origin), "erasure", what)
                what = "not the size the manifest names"
                expect(size == section["tree_size"], "erasure", what, section["tree_size"], size)
                self.system = (origin, size, root, note)
            except Failed as failed:
                self.record(E_CHECKPOINT, failed)
        return section

    def check_8_writer_keys(self, m: dict[str, Any]) -> list[dict[str, Any]]:
        """The writer keys (kid, credential, public_key, revoked_at) as erasures/writer-keys.jsonl
        proves them: each line a ledger.writer_key.added.v1 / revoked.v1 record of the system
        log's "keys" stream, of this log, checked as an erasure record is. A line that fails is
        a writer_key failure naming its system-log seq, and its key is left out (the entries it
        signed then fail, each at its seq). writer-keys.json only restates them: not read."""
        if E_WRITER_KEYS not in self.z.infos:
            return []
        section = self.open_system(m)
        if section is None or self.system is None:
            self.fail(E_WRITER_KEYS, "writer_key", "the system log's checkpoint is not proven")
            return []
        found: dict[str, dict[str, Any]] = {}
        lines = self.z.read(E_WRITER_KEYS).splitlines()
        if len(lines) != section.get("writer_key_records"):
            what = "writer_key_records: not the lines of " + E_WRITER_KEYS
            got = show(section.get("writer_key_records"))
            self.fail(MANIFEST, "writer_key", what, None, len(lines), got)
        for n, line in enumerate(lines, start=1):
            seq = None
            try:
                seq, kind, record = self.check_8_record(
                    n, line, m.get("log"), KEY_RECORDS, "keys", "writer_key"
                )
                kid, credential, key = record["kid"], record["credential"], found.get(record["kid"])
                if kind == KEY_RECORDS[0]:
                    public_key = b64url(record["public_key"])
                    what = (
                        f"system log seq {seq}: adds key {kid!r} twice, or a key it does not name"
                    )
                    jwk = '{"crv":"Ed25519","kty":"OKP","x":"' + record["public_key"] + '"}'
                    x = base64.urlsafe_b64encode(hashlib.sha256(jwk.encode()).digest())
                    ok = key is None and len(public_key) == 32 and x.rstrip(b"=").decode() == kid
                    expect(ok, "writer_key", what)
                    found[kid] = {"kid": kid, "credential": credential, "revoked_at": None}
                    found[kid]["public_key"] = record["public_key"]
                else:
                    what = f"system log seq {seq}: revokes key {kid!r}, which no record adds"
                    key = key or {}
                    ok = key.get("credential") == credential and "revoked_at" in key
                    ok = ok and key["revoked_at"] is None and type(record["revoked_at"]) is str
                    expect(ok, "writer_key", what)
                    key["revoked_at"] = record["revoked_at"]
            except Failed as failed:
                self.record(E_WRITER_KEYS, failed, seq)
            except BAD as exc:
                self.fail(E_WRITER_KEYS, "writer_key", f"line {n}: malformed: {exc!r}", seq)
        return list(found.values())

    def check_8_records(self, log: Any, section: dict[str, Any]) -> dict[Any, list[Any]]:
        """conversation -> [(log size, by_erasure|by_retention)] of the records that check."""
        covers: dict[Any, list[Any]] = {}
        lines = self.z.read(E_RECORDS).splitlines() if E_RECORDS in self.z.infos else []
        for n, line in enumerate(lines, start=1):
            try:
                _seq, kind, record = self.check_8_record(n, line, log, tuple(RECORDS), "erasure")
                what = f"line {n}: not a record naming conversations and a size"
                ok = type(record.get("conversations")) is list
                expect(ok and type(record.get("tree_size")) is int, "erasure", what)
            except Failed as failed:
                self.record(E_RECORDS, failed)
                continue
            for conversation in record["conversations"]:
                covers.setdefault(conversation, []).append((record["tree_size"], RECORDS[kind]))
        if len(lines) != section.get("records"):
            what = "records: not the lines of erasures/records.jsonl"
            self.fail(MANIFEST, "erasure", what, None, len(lines), show(section.get("records")))
        return covers

    def check_8_record(
        self,
        n: int,
        line: bytes,
        log: Any,
        types: tuple[str, ...],
        stream: str,
        check: str = "erasure",
    ) -> tuple[int, str, Any]:
        """Line n of a records file, checked as an entry of the system log is: canonical JSON of
        five fields, its leaf hash, a record of ``types`` in ``stream`` of this log, its payload
        against its commitment, its tlog-proof. Returns (seq, type, the record)."""
        assert self.system is not None
        origin, size, root, note = self.system
        fields = {"seq", "leaf_hash", "entry_b64", "payload_b64", "payload_salt"}
        obj = must(lambda: strict_json(line), check, f"line {n}: not JSON")
        ok = type(obj) is dict and set(obj) == fields and is_canonical(line, obj)
        expect(ok and type(obj["seq"]) is int, check, f"line {n}: not a record line")
        seq = obj["seq"]
        name = f"erasures/proofs/{seq}.tlog-proof"
        self.e_proofs.discard(name)  # claimed, even if the record fails below
        raw, data, salt = must(
            lambda: (b64(obj["entry_b64"]), b64(obj["payload_b64"]), b64(obj["payload_salt"])),
            check,
            f"line {n}: not base64",
        )
        at = f"line {n} (system log seq {seq})"
        leaf = hashlib.sha256(b"\x00" + raw).digest()
        what = f"{at}: SHA-256(0x00 || entry bytes) is not the leaf hash given"
        expect(enc(leaf) == obj["leaf_hash"], check, what)
        entry = must(lambda: json.loads(raw), check, f"{at}: entry bytes not JSON")
        event = entry.get("event") or {}
        what = f"{at}: not a record of the system log's {stream} stream at seq {seq}"
        ok = entry.get("seq") == seq and entry.get("origin") == origin
        ok = ok and event.get("type") in types and event.get("conversation") == stream
        expect(ok, check, what)
        what = f"{at}: SHA-256(salt || payload bytes) is not the entry's commitment"
        committed = must(lambda: b64(entry["payload"]["commitment"]), check, what)
        expect(hashlib.sha256(salt + data).digest() == committed, check, what)
        record = must(lambda: json.loads(data), check, f"{at}: payload not JSON")
        what = f"{at}: not a record of this log"
        expect(type(record) is dict and record.get("log") == log, check, what)
        expect(name in self.z.infos, check, f"{at}: the record has no tlog-proof")
        what = f"{name}: not a proof of this record in erasures/checkpoint"
        index, path, proof_note = must(lambda: parse_tlog_proof(self.z.text(name)), check, what)
        expect(index == seq and proof_note == note, check, what)
        found = must(lambda: root_from_inclusion(leaf, seq, size, path), check, what)
        expect(found == root, check, what)
        return seq, event["type"], record

    def check_8_witnesses(self) -> None:
        """witnesses.json: each cosignature (c2sp.org/tlog-cosignature, cosignature/v1) verifies
        over the checkpoint it names, under the witness key it names (which the bundle states:
        compare it with the key the witness publishes)."""
        if WITNESSES not in self.z.infos:
            return
        try:
            w = self.json_file(WITNESSES, "witness")
            ok = type(w) is dict and type(w.get("cosignatures")) is list
            expect(ok, "witness", "not {cosignatures: [...]}")
        except Failed as failed:
            self.record(WITNESSES, failed)
            return
        for i, c in enumerate(w["cosignatures"]):
            try:
                self.summary.setdefault("witnesses", []).append(self.check_8_cosignature(i, c))
            except Failed as failed:
                self.record(WITNESSES, failed)

    def check_8_cosignature(self, i: int, c: Any) -> dict[str, Any]:
        notes = {"checkpoint": self.checkpoint, E_CHECKPOINT: self.system and self.system[3]}
        note = notes.get(str(c.get("checkpoint"))) if type(c) is dict else None
        what = f"cosignature {i}: not {{checkpoint, witness_key, cosignature}} of a checkpoint here"
        expect(note and set(c) == {"checkpoint", "witness_key", "cosignature"}, "witness", what)
        what = f"cosignature {i} does not verify"
        witness = must(
            lambda: cosigned(str(note), c["witness_key"], c["cosignature"]), "witness", what
        )
        what = f"cosignature {i}: by a witness key you did not name (--witness-key)"
        expect(
            not self.witness_keys or witness in self.witness_keys, "witness", what, None, witness
        )
        return {
            "checkpoint": c["checkpoint"],
            "witness": witness,
            "trusted": bool(self.witness_keys),
        }


# --- the command ---------------------------------------------------------------------------------


def shown(f: dict[str, Any]) -> str:
    text = f"{f['file']}: " + ("" if f["seq"] is None else f"seq {f['seq']}: ")
    text += f"{f['check']}: {f['message']}"
    if f.get("expected") is not None or f.get("found") is not None:
        text += f" (expected {json.dumps(f['expected'])}, found {json.dumps(f['found'])})"
    return text


def verify(
    path: str, given: list[str], keys_file: str | None, witness_keys: list[str] | None = None
) -> Verify:
    """Every check on the bundle at ``path``, with your keys (CannotRun: exit 2)."""
    if keys_file:
        with open(keys_file, encoding="utf-8") as f:
            given = given + f.read().splitlines()
    keys = [parse_key(k.strip()) for k in given if k.strip() and not k.strip().startswith("#")]
    if not keys:
        raise CannotRun("no verifier key given (--verifier-key, --verifier-keys-file)")
    z = Zip(path)
    with contextlib.closing(z.zf):
        v = Verify(z, keys)
        v.witness_keys = set(witness_keys or [])  # the witnesses' keys you trust, if any
        v.run()
    return v


def main() -> int:
    ap = argparse.ArgumentParser(description="Check a Handoff Ledger evidence bundle offline.")
    ap.add_argument("path")
    ap.add_argument("--verifier-key", action="append", default=[], metavar="KEY")
    ap.add_argument("--verifier-keys-file", metavar="FILE")
    ap.add_argument("--witness-key", action="append", default=[], metavar="KEY")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    try:
        v = verify(args.path, args.verifier_key, args.verifier_keys_file, args.witness_key)
    except (CannotRun, OSError, *BAD) as exc:
        message = str(exc) if isinstance(exc, CannotRun) else f"{type(exc).__name__}: {exc}"
        print(f"cannot verify: {message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"status": "error", "intact": False, "error": message}, indent=2))
        return 2
    s, window = v.summary, v.summary.get("time_window")
    if args.json:
        report = {
            "status": "failed" if v.nfails else "verified",
            "intact": not v.nfails,
            "file": args.path,
            "origin": v.origin,
            **{k: s.get(k) for k in ("log", "profile", "selection", "tree_size", "root", "range")},
            "time_window": window,
            "entries": {
                "count": s["entries"],
                "first": s.get("first_seq"),
                "last": s.get("last_seq"),
            },
            "payloads": {"verified": s["verified"], "withheld": s["withheld"]},
            "certified_keys": v.certified,
            "consistency_from": s.get("consistency_from"),
            "erasures": s.get("erasures"),
            "witnesses": s.get("witnesses", []),
            "failures": v.fails,
            "failures_total": v.nfails,
            "warnings": v.warns,
            "warnings_total": v.nwarns,
        }
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 1 if v.nfails else 0
    print(
        f"bundle of {v.origin!r}, profile {s.get('profile')}, selection {s.get('selection')}, "
        f"checkpoint size {s.get('tree_size')}: {s['entries']} entries checked (seq "
        f"{s.get('first_seq')}..{s.get('last_seq')}), {s['verified']} payloads verified, "
        f"withheld {s['withheld']}, range {s.get('range')}, time window {window}, consistency "
        f"from {s.get('consistency_from')}"
    )
    for w in v.warns:
        print(f"warning: {shown(w)}")
    if v.nfails:
        more = f"\n… and {v.nfails - len(v.fails)} more" if v.nfails > len(v.fails) else ""
        print(f"FAILED ({v.nfails}):\n" + "\n".join(shown(f) for f in v.fails) + more)
        return 1
    if window:
        print(f"time window [{window['from_time']}, {window['to_time']}): complete at both ends")
    if s.get("erasures"):
        print(f"erased payloads, each covered by a signed record: {s['erasures']}")
    for w in s.get("witnesses", []):
        print(f"cosigned: {w['checkpoint']} by witness {w['witness']}")
    print("VERIFIED: every file is the one the manifest signed by your key names; every entry is")
    print("in the signed log; the selection's proof holds.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
