#!/usr/bin/env python3
"""Check a Handoff Ledger evidence bundle offline: Python 3.11+ and PyNaCl, nothing else.

    python3 verify_bundle_standalone.py BUNDLE.zip --verifier-key KEY... [--verifier-keys-file F]
                                                   [--json]

KEY is the log's verifier key (name+hexid+base64) as YOU got it (GET /v1/logs/{log}/verifier-key
earlier, an anchor), never the bundle's. The bundle's format is docs/evidence-bundle.md; the
checks are its seven, in its order, named as `ledger verify-bundle` names them:

1. the zip: safe names (relative, no "..", no backslash, no drive), each member under its size
   limit, the total under its limit, no member inflating more than 100:1 (a zip bomb). Members
   are read in memory; nothing is ever written to disk. Else: exit 2.
2. manifest_sig: manifest.sig, a C2SP signed note "handoff-ledger/evidence-bundle/v1 / origin /
   SHA-256 of manifest.json", opens under your key (or a key your key certified by a rotation
   statement, rotations/<i>.note); manifest: canonical JSON (RFC 8785) of format v1.
3. files: every file's SHA-256 is the manifest's; no file missing, none added.
4. checkpoint: a C2SP checkpoint signed by your key; its origin, size and root are the manifest's.
5. each line of entries.jsonl: canonical JSON (line), seq ascending (order), SHA-256(0x00 ||
   entry bytes) = leaf_hash (leaf_hash), the entry bytes name the seq and origin (entry_bytes),
   SHA-256(salt || payload) = the entry's commitment when a payload is there (payload).
6. the selection: range (every seq of [s, e); the leaves folded onto proofs/range.json's "left"
   give the root at e, and its RFC 9162 consistency proof leads to the signed root: range_proof);
   entries (a c2sp.org/tlog-proof per entry: inclusion; each conversation one back-linked chain:
   back_link, conversations); sample (the seqs handoff-ledger/sample/v1 draws from the signed
   root and the seed: sample); count, first and last as entries.jsonl says.
7. consistency: consistency.json, if present, from an earlier checkpoint signed by your key.

Exit 0 all pass, 1 a check failed (file, seq, check, expected vs found), 2 cannot run.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import re
import sys
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

import nacl.exceptions
import nacl.signing

Key = tuple[str, bytes, bytes]  # name, 4-byte key ID, Ed25519 public key
BAD = (ValueError, TypeError, KeyError, IndexError, AttributeError)  # what junk raises

FORMAT = "handoff-ledger/evidence-bundle/v1"
SAMPLE_ALGORITHM = "handoff-ledger/sample/v1"
STATUSES = ("verified", "erased", "missing", "undecryptable", "mismatch", "withheld")
LINE_FIELDS = {"seq", "leaf_hash", "entry_b64", "payload_status", "payload_b64", "payload_salt"}
SMALL, MANIFEST_MAX, STREAMED, TOTAL = 1 << 20, 64 << 20, 64 << 30, 128 << 30
MAX_MEMBERS, MAX_RATIO, RATIO_FLOOR, MAX_LINE = 2_000_000, 100, 1 << 20, 16 << 20
MAX_FINDINGS = 1000
MAX_SAFE = 2**53 - 1
ROTATION = re.compile(r"rotations/(0|[1-9][0-9]{0,8})\.note")
TLOG = re.compile(r"proofs/(0|[1-9][0-9]{0,18})\.tlog-proof")
PROFILES = ("soc2-population", "pci-dss-10", "hipaa-disclosures")
SELECTIONS = ("range", "entries", "sample")
MANIFEST, SIG, CHECKPOINT, KEYS = "manifest.json", "manifest.sig", "checkpoint", "verifier-keys"
ENTRIES, RANGE, CONSISTENCY = "entries.jsonl", "proofs/range.json", "consistency.json"
FIXED = {MANIFEST, SIG, CHECKPOINT, KEYS, ENTRIES, RANGE, CONSISTENCY}
REPORTS = {"reports/" + n for n in ("entries.jsonl", "rows.csv", "report.html", "ocsf.jsonl")}
PAY = ("payload_b64", "payload_salt")
Fields = tuple[int, bytes, bytes, str, bytes | None, bytes | None]
# seq, entry bytes, leaf_hash as given, payload_status, payload bytes, salt


class CannotRun(Exception):
    """Not a bundle, or no key: nothing was checked (exit 2)."""


# --- encodings -----------------------------------------------------------------------------------


def b64(text: Any) -> bytes:
    """Canonical standard base64 only (one text per byte string)."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw) != (text.encode() if isinstance(text, str) else text):
        raise ValueError(f"{str(text)[:20]!r} is not canonical base64")
    return raw


def enc(data: bytes) -> str:
    return base64.b64encode(data).decode()


def strict_json(raw: bytes) -> Any:
    """UTF-8 JSON without duplicate keys or NaN."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in items}) != len(items):
            raise ValueError("duplicate key in JSON object")
        return dict(items)

    return json.loads(raw.decode("utf-8"), object_pairs_hook=pairs, parse_constant=int)


def es_number(x: float) -> str:
    """ECMAScript Number::toString, as RFC 8785 3.2.2.3 writes a number."""
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
    """RFC 8785 (JCS): sorted keys (by UTF-16 code units), no whitespace, ES number forms."""
    if value is None or value is True or value is False:
        return json.dumps(value)
    if type(value) is int:
        if abs(value) > MAX_SAFE:
            raise ValueError("an integer beyond 2**53 - 1 has no exact RFC 8785 form")
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
    raise ValueError(f"{type(value).__name__} is not JSON")


def is_canonical(raw: bytes, value: Any) -> bool:
    try:
        return canonical(value).encode("utf-8") == raw
    except (ValueError, UnicodeEncodeError):
        return False


def b64_or_none(text: Any) -> bytes | None:
    try:
        return b64(text)
    except (*BAD, UnicodeError):
        return None


def show(value: Any) -> Any:
    """A value as a failure shows it: short."""
    return value if value is None or type(value) in (int, str) else json.dumps(value)[:200]


LINE_HEAD = b'{"entry_b64":"'
LINE_REST = re.compile(
    rb'","leaf_hash":"([A-Za-z0-9+/]*={0,2})","payload_b64":(?:null|"([A-Za-z0-9+/]*={0,2})"),'
    rb'"payload_salt":(?:null|"([A-Za-z0-9+/]*={0,2})"),"payload_status":"(verified|erased|'
    rb'missing|undecryptable|mismatch|withheld)","seq":(0|[1-9][0-9]{0,15})\}'
)


def fast_fields(line: bytes) -> Fields | None:
    """A line in the one form RFC 8785 gives a line of base64 strings, a status and a seq:
    {"entry_b64":"…","leaf_hash":"…","payload_b64":"…"|null,"payload_salt":"…"|null,
    "payload_status":"…","seq":n}, keys sorted, nothing to escape. Such a line is canonical,
    and checked at a fraction of the cost of a parse; anything else goes the slow way."""
    end = line.find(b'"', len(LINE_HEAD)) if line.startswith(LINE_HEAD) else -1
    m = LINE_REST.fullmatch(line, end) if end > 0 else None
    if m is None or int(m[5]) > MAX_SAFE:
        return None
    try:
        raw = b64(line[len(LINE_HEAD) : end])
        payload, salt = (None if v is None else b64(v) for v in (m[2], m[3]))
    except BAD:
        return None
    return int(m[5]), raw, m[1], m[4].decode(), payload, salt


def given_leaf(line: bytes) -> str:
    """The leaf_hash a line states (for the manifest's first and last), or ""."""
    try:
        value = json.loads(line)["leaf_hash"]
        return value if isinstance(value, str) else ""
    except (*BAD, RecursionError):
        return ""


# --- keys and signed notes (c2sp.org/signed-note, tlog-checkpoint) -------------------------------


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
    data = enc(b"\x01" + key[2])
    return f"{key[0]}+{key[1].hex()}+{data}"


def open_note(note: str, keys: list[Key]) -> tuple[str, list[Key]]:
    """(text, the keys that signed it) of a note with a valid signature by one of ``keys``; a
    signature by a known key that does not verify rejects the note. Else ValueError."""
    if any(c < " " and c != "\n" for c in note):
        raise ValueError("the note holds a control character")
    text, blank, block = note.rpartition("\n\n")
    if not blank or not block.endswith("\n") or block.count("\n") > 100:
        raise ValueError("not a signed note")
    text += "\n"
    signed: list[Key] = []
    for line in block[:-1].split("\n"):
        name, _, sig = line.removeprefix("\u2014 ").partition(" ")
        if not line.startswith("\u2014 ") or len(raw := b64(sig)) <= 4:
            raise ValueError(f"malformed signature line {line[:40]!r}")
        for key in keys:
            if key[:2] == (name, raw[:4]):
                try:
                    nacl.signing.VerifyKey(key[2]).verify(text.encode(), raw[4:])
                except nacl.exceptions.BadSignatureError:
                    raise ValueError(
                        f"signature by {name}+{key[1].hex()} does not verify"
                    ) from None
                if key not in signed:
                    signed.append(key)
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
    """(old, new) of a rotation statement (handoff-ledger/key-rotation/v1); the caller trusts
    new only if it trusts old. Both must have signed it."""
    text = note.rpartition("\n\n")[0] + "\n"
    lines = text.split("\n")
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
    if old in trusted:
        _, signers = open_note(note, [old, new])
        if old not in signers or new not in signers:
            raise ValueError("not signed by both the old and the new key")
    return old, new


# --- Merkle trees (RFC 9162 2.1) and the sample --------------------------------------------------


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes]) -> bytes:
    """RFC 9162 2.1.3.2: the root an audit path leads to; ValueError if ill-shaped."""
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
    """RFC 9162 2.1.4.2: whether the tree of m leaves with root1 is a prefix of the tree of n
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
    """Append one leaf hash to the tree of ``size`` whose right frontier (its perfect subtrees,
    largest first) is ``frontier``, in place."""
    acc = leaf
    while size & 1:
        acc, size = node(frontier.pop(), acc), size >> 1
    frontier.append(acc)


def frontier_root(frontier: list[bytes]) -> bytes:
    acc = frontier[-1]
    for h in reversed(frontier[:-1]):
        acc = node(h, acc)
    return acc


def sample_seqs(root: bytes, seed: str, start: int, end: int, k: int) -> list[int]:
    """handoff-ledger/sample/v1 (docs/evidence-bundle.md): k distinct seqs of [start, end)."""
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
    """(index, audit path, checkpoint) of a c2sp.org/tlog-proof; ValueError if malformed."""
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


# --- the zip (check 1) ---------------------------------------------------------------------------


def bundle_file(name: str) -> bool:
    return (
        name in FIXED or name in REPORTS or bool(ROTATION.fullmatch(name) or TLOG.fullmatch(name))
    )


def unsafe(name: str) -> str | None:
    parts = name.removesuffix("/").split("/")
    for bad, why in (
        (not name, "an empty name"),
        (name.startswith("/"), "an absolute path"),
        ("\\" in name, "a backslash"),
        (":" in name, "a drive or stream name (':')"),
        (any(ord(c) < 0x20 or c == "\x7f" for c in name), "a control character"),
        (any(p in ("", ".", "..") for p in parts), "an empty, '.' or '..' path component"),
    ):
        if bad:
            return why
    return None


class Zip:
    """The members, checked before a byte is read; read in memory, hashed as they are read."""

    def __init__(self, path: str) -> None:
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise CannotRun(f"{path} is not a zip file (or is truncated): {exc}") from exc
        self.infos: dict[str, zipfile.ZipInfo] = {}
        self.digests: dict[str, str] = {}
        total = 0
        members = self.zf.infolist()
        if len(members) > MAX_MEMBERS:
            raise CannotRun(f"the zip has {len(members)} members, more than {MAX_MEMBERS}")
        for info in members:
            name = info.filename
            why = "a NUL byte" if "\x00" in info.orig_filename else unsafe(name)
            streamed = name == ENTRIES or name in REPORTS or not bundle_file(name)
            limit = MANIFEST_MAX if name == MANIFEST else STREAMED if streamed else SMALL
            if why is not None:
                raise CannotRun(f"member {name[:80]!r} has an unsafe name: {why}")
            if name in self.infos:
                raise CannotRun(f"member {name!r} is in the zip twice")
            if info.flag_bits & 1:
                raise CannotRun(f"member {name!r} is encrypted")
            if info.file_size > limit:
                raise CannotRun(
                    f"member {name!r} is {info.file_size} bytes, over its limit {limit}"
                )
            if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * info.compress_size:
                raise CannotRun(
                    f"member {name!r} expands from {info.compress_size} to {info.file_size} "
                    f"bytes, more than {MAX_RATIO}:1: a zip bomb"
                )
            total += info.file_size
            if total > TOTAL:
                raise CannotRun(f"the members total more than {TOTAL} bytes: a zip bomb")
            self.infos[name] = info

    def chunks(self, name: str, size: int = 4 << 20) -> Iterator[bytes]:
        """Exactly the member's declared bytes (zipfile checks the CRC at the end)."""
        info, digest, left = self.infos[name], hashlib.sha256(), self.infos[name].file_size
        try:
            with self.zf.open(info) as member:
                while left > 0:
                    piece = member.read(min(size, left))
                    if not piece:
                        raise CannotRun(f"member {name!r} is shorter than it declares")
                    left -= len(piece)
                    digest.update(piece)
                    yield piece
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, ValueError) as exc:
            raise CannotRun(f"member {name!r} cannot be read: {exc}") from exc
        self.digests[name] = digest.hexdigest()

    def read(self, name: str) -> bytes:
        return b"".join(self.chunks(name))

    def text(self, name: str) -> str:
        return self.read(name).decode("utf-8")  # UnicodeDecodeError is a ValueError

    def digest(self, name: str) -> str:
        if name not in self.digests:
            for _ in self.chunks(name):
                pass
        return self.digests[name]


# --- the checks (2 to 7) -------------------------------------------------------------------------

Where = tuple[str, str]  # (file, check)


class Verify:
    """Every check on one bundle. ``fails`` and ``warns`` name file, seq, check, message,
    expected and found; the first MAX_FINDINGS are kept, all are counted."""

    def __init__(self, z: Zip, keys: list[Key]) -> None:
        self.z, self.keys = z, keys
        self.fails: list[dict[str, Any]] = []
        self.warns: list[dict[str, Any]] = []
        self.nfails = self.nwarns = 0
        self.origin, self.size, self.root = "", 0, b""
        self.trusted: list[Key] = []
        self.certified: list[str] = []
        self.files: dict[str, str] = {}
        self.checkpoint: str | None = None
        self.summary: dict[str, Any] = {"entries": 0, "verified": 0, "withheld": {}}

    def fail(
        self, where: Where, msg: str, seq: int | None = None, exp: Any = None, got: Any = None
    ) -> None:
        self.nfails += 1
        if len(self.fails) < MAX_FINDINGS:
            f = {"file": where[0], "seq": seq, "check": where[1], "message": msg}
            self.fails.append({**f, "expected": exp, "found": got})

    def warn(self, where: Where, msg: str, seq: int | None = None) -> None:
        self.nwarns += 1
        if len(self.warns) < MAX_FINDINGS:
            self.warns.append({"file": where[0], "seq": seq, "check": where[1], "message": msg})

    def json_file(self, name: str, check: str) -> Any:
        """The file's JSON (None and a failure if it is not); a failure too if not canonical."""
        raw = self.z.read(name)
        try:
            value = strict_json(raw)
        except BAD as exc:
            self.fail((name, check), f"the file is not JSON: {exc}")
            return None
        if not is_canonical(raw, value):
            self.fail((name, check), "the file is not canonical JSON (RFC 8785)")
        return value

    def run(self) -> None:
        if MANIFEST not in self.z.infos:
            raise CannotRun("not an evidence bundle: no manifest.json")
        raw = self.z.read(MANIFEST)
        sig: str | None = None
        try:
            sig = self.z.text(SIG) if SIG in self.z.infos else None
        except ValueError:
            self.fail((SIG, "manifest_sig"), "the file is not UTF-8")
        if SIG not in self.z.infos:
            self.fail((SIG, "manifest_sig"), "the bundle has no manifest.sig")
        m = self.json_file(MANIFEST, "manifest")
        lines = (sig or "").rpartition("\n\n")[0].split("\n")
        lines = lines if len(lines) == 3 and lines[0] == FORMAT else []
        # The bundle's log: the manifest's origin, or else the one its signature names,
        # whichever you hold a key for (a difference between the two is a failure below).
        named = [m.get("origin") if isinstance(m, dict) else None, *lines[1:2]]
        candidates = [o for o in named if isinstance(o, str) and o]
        if not candidates:
            self.fail((MANIFEST, "manifest"), "no log origin to check the bundle against")
            return
        self.origin = next((o for o in candidates if o in {k[0] for k in self.keys}), candidates[0])
        self.trust()
        self.manifest_sig(sig, lines, raw, self.verifier_keys())
        if not self.manifest(m):
            self.check_files(None)
            return
        assert isinstance(m, dict)
        self.check_files(m)
        self.check_checkpoint()
        self.check_entries(m)
        self.check_consistency()

    # -- 2. whom to trust, the manifest and its signature

    def trust(self) -> None:
        """Your keys for the origin, and each key a trusted key certified (rotations/, in order)."""
        self.trusted = [k for k in self.keys if k[0] == self.origin]
        if not self.trusted:
            names = ", ".join(sorted({k[0] for k in self.keys}))
            raise CannotRun(
                f"none of your verifier keys is for the bundle's log "
                f"{self.origin!r} (yours: {names}): nothing can be checked"
            )
        numbered = {int(m[1]): n for n in self.z.infos if (m := ROTATION.fullmatch(n))}
        if sorted(numbered) != list(range(len(numbered))):
            self.fail(("rotations/", "rotation"), "not numbered 0, 1, 2, … without a gap")
        for i in sorted(numbered):
            try:
                old, new = open_rotation(self.z.text(numbered[i]), self.trusted, self.origin)
            except BAD as exc:
                self.fail((numbered[i], "rotation"), f"not a rotation certifying its key: {exc}")
                continue
            if old in self.trusted and new not in self.trusted:
                self.trusted.append(new)
                self.certified.append(key_text(new))

    def verifier_keys(self) -> list[Key]:
        where = (KEYS, "verifier_keys")
        if KEYS not in self.z.infos:
            self.fail(where, "the bundle has no verifier-keys file")
            return []
        keys: list[Key] = []
        try:
            lines = self.z.text(KEYS).splitlines()
        except ValueError:
            lines = ["(not UTF-8)"]
        for number, line in enumerate(lines, start=1):
            try:
                keys.append(key := parse_key(line))
            except BAD as exc:
                self.fail(where, f"line {number}: {exc}")
                continue
            if key[0] != self.origin:
                self.fail(where, f"line {number}: a key of another log", None, self.origin, key[0])
        if not keys:
            self.fail(where, "the file lists no key")
        return keys

    def manifest_sig(
        self, sig: str | None, lines: list[str], raw: bytes, listed: list[Key]
    ) -> None:
        where, digest = (SIG, "manifest_sig"), hashlib.sha256(raw).hexdigest()
        if sig is None:
            return
        if not lines:
            self.fail(where, f"its text is not the three lines {FORMAT} / origin / SHA-256")
            return
        if lines[1] != self.origin:
            self.fail(where, "signs another origin", None, self.origin, lines[1])
        if lines[2] != digest:
            self.fail(
                where,
                "names another manifest.json: its SHA-256 is not the one signed",
                None,
                digest,
                lines[2][:64],
            )
        try:
            _, signers = open_note(sig, self.trusted)
        except BAD as exc:
            self.fail(where, f"does not open under your key(s): {exc}")
            return
        self.summary["manifest_signed_by"] = [key_text(k) for k in signers]
        if listed and not any(k in listed for k in signers):
            self.fail(where, "signed by a key the bundle's verifier-keys does not list")

    def manifest(self, m: Any) -> bool:
        """The manifest's fields; False if too broken to go on."""
        where = (MANIFEST, "manifest")
        if not isinstance(m, dict):
            if m is not None:
                self.fail(where, "/: not a JSON object")
            return False
        size, root = m.get("tree_size"), b64_or_none(m.get("root")) or b""
        files = m.get("files")
        for key, want, ok in (
            ("origin", self.origin, m.get("origin") == self.origin),
            ("format", FORMAT, m.get("format") == FORMAT),
            ("profile", "a profile", m.get("profile") in PROFILES),
            ("selection", "range, entries or sample", m.get("selection") in SELECTIONS),
            ("log", "a string", isinstance(m.get("log"), str)),
            ("generated_at", "a string", isinstance(m.get("generated_at"), str)),
            ("query", "an object", isinstance(m.get("query"), dict)),
            ("generated_by", "an object", isinstance(m.get("generated_by"), dict)),
            (
                "files",
                "{path: hex SHA-256}",
                isinstance(files, dict)
                and all(
                    isinstance(v, str) and re.fullmatch("[0-9a-f]{64}", v) for v in files.values()
                ),
            ),
            ("tree_size", "an integer >= 0", type(size) is int and size >= 0),
            ("root", "a base64 hash", len(root) == 32),
        ):
            if not ok:
                self.fail(where, f"{key}: not {want}", None, want, show(m.get(key)))
        if type(size) is not int or size < 0 or len(root) != 32:
            return False
        self.size, self.root = size, root
        self.summary.update(
            {k: m.get(k) for k in ("log", "profile", "selection", "tree_size", "root")}
        )
        return True

    # -- 3. every file's digest

    def compare(self, name: str) -> None:
        if name in self.files and self.z.digest(name) != self.files[name]:
            self.fail(
                (name, "files"),
                "its SHA-256 is not the manifest's",
                None,
                self.files[name],
                self.z.digest(name),
            )

    def check_files(self, m: dict[str, Any] | None) -> None:
        names = [n for n in self.z.infos if n not in (MANIFEST, SIG)]
        for name in names:
            if not bundle_file(name):
                self.fail((name, "files"), "not a file an evidence bundle may hold")
        files = m.get("files") if m is not None else None
        if not isinstance(files, dict):
            return
        self.files = {str(k): str(v) for k, v in files.items()}
        for name in (MANIFEST, SIG):
            if name in self.files:
                self.fail((MANIFEST, "files"), f"files names {name}, which it cannot hash")
        for name in sorted(set(self.files) - set(self.z.infos)):
            self.fail((name, "files"), "named in the manifest, missing from the bundle")
        for name in names:
            if name not in self.files:
                self.fail((name, "files"), "in the bundle, not named in the manifest's files")
            elif name != ENTRIES and not TLOG.fullmatch(name):
                self.compare(name)  # entries.jsonl and the tlog-proofs: when they are read

    # -- 4. the checkpoint

    def check_checkpoint(self) -> None:
        where = (CHECKPOINT, "checkpoint")
        if CHECKPOINT not in self.z.infos:
            self.fail(where, "the bundle has no checkpoint")
            return
        try:
            self.checkpoint = self.z.text(CHECKPOINT)
            size, root, signers = open_checkpoint(self.checkpoint, self.trusted, self.origin)
        except BAD as exc:
            self.fail(
                where,
                f"does not open under your key(s) for {self.origin!r}: {exc}; "
                "the proofs are checked against the manifest's size and root",
            )
            return
        self.summary["checkpoint_signed_by"] = [key_text(k) for k in signers]
        if (size, root) != (self.size, self.root):
            self.fail(
                (MANIFEST, "checkpoint"),
                "the manifest's tree_size and root are not the signed checkpoint's",
                None,
                [size, enc(root)],
                [self.size, enc(self.root)],
            )
        self.size, self.root = size, root

    # -- 5 and 6. the entries and the selection's proof

    def check_entries(self, m: dict[str, Any]) -> None:
        selection, sample, conversations = m["selection"], m.get("sample"), m.get("conversations")
        population = self.population(m.get("range"), selection)
        if selection == "sample" and not (
            isinstance(sample, dict)
            and sample.get("algorithm") == SAMPLE_ALGORITHM
            and type(sample.get("size")) is int
            and type(sample.get("seed")) is str
        ):
            self.fail(
                (MANIFEST, "sample"), f"sample: not {{algorithm: {SAMPLE_ALGORITHM}, size, seed}}"
            )
            sample = None
        if selection == "entries" and not (
            isinstance(conversations, list)
            and all(type(c) is str for c in conversations)
            and len(set(conversations)) == len(conversations)
        ):
            self.fail((MANIFEST, "conversations"), "conversations: not a list of distinct ids")
            conversations = None
        if selection != "sample" and m.get("sample") is not None:
            self.fail((MANIFEST, "manifest"), f"sample: must be null for {selection}")
        if selection != "entries" and m.get("conversations") is not None:
            self.fail((MANIFEST, "manifest"), f"conversations: must be null for {selection}")
        tlog = {n for n in self.z.infos if TLOG.fullmatch(n)}
        if selection == "range":
            for name in sorted(tlog):
                self.fail((name, "range_proof"), "a range bundle holds no per-entry tlog-proof")
                self.compare(name)
            tlog = set()
        elif RANGE in self.z.infos:
            self.fail((RANGE, "inclusion"), f"a {selection} bundle holds no range proof")
        if ENTRIES not in self.z.infos:
            self.fail((ENTRIES, "count"), "the bundle has no entries.jsonl")
            return
        frontier = self.range_proof(population) if selection == "range" and population else None
        start, end = population or (0, 0)
        expected, folded, previous, count = start, 0, -1, 0
        first: dict[str, Any] | None = None
        last: tuple[int | None, bytes] | None = None
        chains: dict[str, int | None] = {}
        seen: list[int] = []
        for number, line in self.lines():
            count += 1
            found = self.entry(line, number)
            seq, leaf = (found[0], found[1]) if found else (None, bytes(32))
            first = first or {"seq": seq, "leaf_hash": given_leaf(line)}
            last = (seq, line)
            if seq is not None:
                if seq <= previous:
                    self.fail(
                        (ENTRIES, "order"),
                        f"seq {seq} follows seq {previous}: seqs must strictly increase",
                        seq,
                        f"> {previous}",
                        seq,
                    )
                previous = seq
                self.summary.setdefault("first_seq", seq)
                self.summary["last_seq"] = seq
            if selection == "range" and population:
                if seq != expected:
                    self.fail(
                        (ENTRIES, "range"),
                        f"the range [{start}, {end}) does not continue "
                        "here: an entry is missing, added or out of order",
                        seq,
                        expected,
                        seq,
                    )
                expected = (expected if seq is None else seq) + 1
                if frontier is not None and folded < end - start:
                    fold(frontier, start + folded, leaf)
                folded += 1
            elif seq is not None and selection in ("entries", "sample"):
                tlog.discard(name := f"proofs/{seq}.tlog-proof")
                self.inclusion(name, seq, leaf)
                seen.append(seq)
                if selection == "entries" and found is not None and found[2] is not None:
                    self.link(seq, found[2], conversations, chains)
        self.summary["entries"] = count
        self.compare(ENTRIES)
        for name in sorted(tlog):
            self.fail((name, "inclusion"), "a tlog-proof for a seq entries.jsonl does not hold")
            self.compare(name)
        if selection == "range" and population:
            self.range_end(population, frontier, folded)
        if selection == "sample" and population and isinstance(sample, dict):
            self.check_sample(population, sample, seen)
        for c in conversations if selection == "entries" and conversations else []:
            if c not in chains:
                self.fail(
                    (MANIFEST, "conversations"),
                    f"conversation {c!r} is listed, but no entry of it is here",
                )
        if m.get("count") != count or type(m.get("count")) is not int:
            self.fail(
                (MANIFEST, "count"),
                "count is not the number of lines of entries.jsonl",
                None,
                count,
                m.get("count"),
            )
        end_line = None if last is None else {"seq": last[0], "leaf_hash": given_leaf(last[1])}
        for key, actual in (("first", first), ("last", end_line)):
            if m.get(key) != actual:
                self.fail(
                    (MANIFEST, key),
                    f"{key} is not the {key} line of entries.jsonl",
                    None,
                    actual,
                    m.get(key),
                )

    def population(self, value: Any, selection: str) -> tuple[int, int] | None:
        """The range [start, end) of a range or a sample (the manifest's "range")."""
        if selection not in ("range", "sample"):
            if value is not None:
                self.fail((MANIFEST, "manifest"), f"range: must be null for {selection}")
            return None
        if (
            not isinstance(value, dict)
            or set(value) != {"start", "end"}
            or type(value["start"]) is not int
            or type(value["end"]) is not int
            or not 0 <= value["start"] < value["end"] <= self.size
        ):
            self.fail(
                (MANIFEST, "range"),
                f"range: not {{start, end}} with 0 <= start < end <= tree_size ({self.size})",
                None,
                None,
                show(value),
            )
            return None
        self.summary["range"] = [value["start"], value["end"]]
        return value["start"], value["end"]

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """entries.jsonl line by line, never held whole."""
        rest, number = b"", 0
        for chunk in self.z.chunks(ENTRIES):
            parts = (rest + chunk).split(b"\n")
            rest = parts.pop()
            if len(rest) > MAX_LINE:
                raise CannotRun(f"entries.jsonl has a line longer than {MAX_LINE} bytes")
            for line in parts:
                number += 1
                yield number, line
        if rest:
            yield number + 1, rest

    def entry(self, line: bytes, number: int) -> tuple[int, bytes, dict[str, Any] | None] | None:
        """Check 5 on one line: (seq, recomputed leaf hash, the entry) or None if unreadable."""
        fields = fast_fields(line) or self.slow_line(line, number)
        if fields is None:
            return None
        seq, raw, given, status, payload, salt = fields
        where = (ENTRIES, "entry_bytes")
        leaf = hashlib.sha256(b"\x00" + raw).digest()
        if enc(leaf).encode() != given:
            self.fail(
                (ENTRIES, "leaf_hash"),
                "SHA-256(0x00 || entry bytes) is not the leaf hash given",
                seq,
                enc(leaf),
                given.decode(errors="replace")[:64],
            )
        try:
            entry = json.loads(raw)
        except (*BAD, RecursionError):
            entry = None
        if type(entry) is not dict:
            self.fail(where, "the entry bytes are not a JSON object", seq)
            return seq, leaf, None
        if type(entry.get("seq")) is not int or entry.get("seq") != seq:
            self.fail(where, "the entry bytes name another seq", seq, seq, show(entry.get("seq")))
        if entry.get("origin") != self.origin:
            self.fail(
                where,
                "the entry bytes name another log origin",
                seq,
                self.origin,
                show(entry.get("origin")),
            )
        self.payload(entry, seq, status, payload, salt)
        return seq, leaf, entry

    def slow_line(self, line: bytes, number: int) -> Fields | None:
        """A line not in the fast form: parse it and say what is wrong with it."""
        where = (ENTRIES, "line")
        try:
            obj = strict_json(line)
        except (*BAD, RecursionError) as exc:
            self.fail(where, f"line {number}: " + (f"not JSON: {exc}" if line else "an empty line"))
            return None
        if type(obj) is not dict:
            self.fail(where, f"line {number}: not a JSON object")
            return None
        seq = (
            obj.get("seq") if type(obj.get("seq")) is int and 0 <= obj["seq"] <= MAX_SAFE else None
        )
        if set(obj) != LINE_FIELDS:
            self.fail(where, f"line {number}: not the fields of an entry line", seq)
        if not is_canonical(line, obj):
            self.fail(where, f"line {number}: not canonical JSON (RFC 8785)", seq)
        given, status, entry = obj.get("leaf_hash"), obj.get("payload_status"), obj.get("entry_b64")
        if (
            seq is None
            or type(given) is not str
            or type(status) is not str
            or type(entry) is not str
        ):
            self.fail(where, f"line {number}: a field is missing or not of its type", seq)
            return None
        if (raw := b64_or_none(entry)) is None:
            self.fail((ENTRIES, "entry_bytes"), f"line {number}: entry_b64 is not base64", seq)
            return None
        try:
            payload, salt = (None if v is None else b64(v) for v in (obj.get(k) for k in PAY))
        except BAD:
            self.fail((ENTRIES, "payload"), f"line {number}: payload_b64, salt: not base64", seq)
            return None
        return seq, raw, given.encode(errors="replace"), status, payload, salt

    def payload(
        self,
        entry: dict[str, Any],
        seq: int,
        status: str,
        payload: bytes | None,
        salt: bytes | None,
    ) -> None:
        """The payload, when the line carries it, against the entry's commitment."""
        where, withheld = (ENTRIES, "payload"), self.summary["withheld"]
        if status not in STATUSES:
            self.fail(where, "payload_status is not one of the document's", seq, None, status)
        elif payload is None and salt is None:
            if status in ("erased", "missing", "withheld"):
                withheld[status] = withheld.get(status, 0) + 1
            elif status == "verified":
                self.fail(
                    where,
                    "payload_status is verified, but no payload bytes and salt are given",
                    seq,
                )
            else:
                self.warn(where, f"the ledger could not read this payload ({status})", seq)
        elif payload is None or salt is None:
            self.fail(where, "payload_b64 and payload_salt must come together", seq)
        else:
            try:
                commitment = entry["payload"]
                if commitment["alg"] != "sha256-salted" or len(salt) != 32:
                    raise ValueError("not a sha256-salted commitment with a 32-byte salt")
                ok = b64(commitment["commitment"]) == hashlib.sha256(salt + payload).digest()
            except BAD as exc:
                self.fail(where, f"the payload cannot be checked: {exc!r}", seq)
                return
            if ok:
                self.summary["verified"] += 1
                if status != "verified":
                    self.warn(where, f"payload_status is {status!r}, but the payload checks", seq)
            elif status == "mismatch":
                self.warn(
                    where,
                    "the ledger says the payload does not match its commitment, and it does not",
                    seq,
                )
            else:
                self.fail(
                    where,
                    "SHA-256(salt || payload bytes) is not the entry's commitment",
                    seq,
                    commitment["commitment"],
                    enc(hashlib.sha256(salt + payload).digest()),
                )

    def range_proof(self, population: tuple[int, int]) -> list[bytes] | None:
        """The frontier at start (proofs/range.json's "left"); its consistency proof kept."""
        start, end = population
        where = (RANGE, "range_proof")
        self.consistency: list[bytes] = []
        proof = self.json_file(RANGE, "range_proof") if RANGE in self.z.infos else None
        if not isinstance(proof, dict):
            self.fail(where, "the range bundle has no proofs/range.json object")
            return None
        for key, want in (("start", start), ("end", end), ("tree_size", self.size)):
            if proof.get(key) != want or type(proof.get(key)) is not int:
                self.fail(where, f"{key} is not the manifest's", None, want, show(proof.get(key)))
        try:
            left = [b64(h) for h in proof["left"]]
            self.consistency = [b64(h) for h in proof["consistency"]]
        except BAD:
            self.fail(where, "left and consistency must be lists of base64 hashes")
            return None
        tiles = bin(start).count("1")
        if len(left) != tiles or any(len(h) != 32 for h in left):
            self.fail(
                where,
                f"left must be the {tiles} subtree hashes that tile [0, {start})",
                None,
                tiles,
                len(left),
            )
            return None
        return left

    def range_end(self, population: tuple[int, int], frontier: list[bytes] | None, n: int) -> None:
        start, end = population
        if n != end - start:
            self.fail(
                (ENTRIES, "range"),
                f"entries.jsonl holds {n} entries, the range [{start}, {end}) has {end - start}",
                None,
                end - start,
                n,
            )
        elif frontier is not None and not consistent(
            end, self.size, self.consistency, frontier_root(frontier), self.root
        ):
            self.fail(
                (RANGE, "range_proof"),
                "the range's leaves folded onto left do not lead "
                "to the signed root (RFC 9162 consistency proof)",
            )

    def inclusion(self, name: str, seq: int, leaf: bytes) -> None:
        """The entry's c2sp.org/tlog-proof: its index, the bundle's checkpoint, the audit path."""
        where = (name, "inclusion")
        if name not in self.z.infos:
            self.fail(where, "the entry has no tlog-proof in the bundle", seq)
            return
        try:
            index, hashes, checkpoint = parse_tlog_proof(self.z.text(name))
        except BAD as exc:
            self.fail(where, f"not a c2sp.org/tlog-proof: {exc}", seq)
            return
        finally:
            self.compare(name)
        if index != seq:
            self.fail(where, "the proof's index is not the entry's seq", seq, seq, index)
        if self.checkpoint is not None and checkpoint != self.checkpoint:
            self.fail(where, "the proof's checkpoint is not, byte for byte, the bundle's", seq)
        try:
            ok = root_from_inclusion(leaf, seq, self.size, hashes) == self.root
        except ValueError as exc:
            self.fail(where, f"the entry is not proven in the checkpoint: {exc}", seq)
            return
        if not ok:
            self.fail(where, "the audit path does not lead to the checkpoint's root", seq)

    def link(
        self,
        seq: int,
        entry: dict[str, Any],
        listed: list[str] | None,
        chains: dict[str, int | None],
    ) -> None:
        """One conversation's back-linked chain: conversation_prev names the entry before."""
        event = entry.get("event")
        conversation = event.get("conversation") if isinstance(event, dict) else None
        if type(conversation) is not str:
            self.fail((ENTRIES, "conversations"), "the entry bytes name no conversation", seq)
            return
        if listed is not None and conversation not in listed:
            self.fail(
                (ENTRIES, "conversations"),
                "the entry is of a conversation the manifest does not list",
                seq,
                None,
                conversation,
            )
        previous = chains.get(conversation)
        found = entry.get("conversation_prev", "absent")
        if found != previous or (found is not None and type(found) is not int):
            self.fail(
                (ENTRIES, "back_link"),
                f"conversation_prev is not the previous entry of "
                f"conversation {conversation!r} in the bundle (an entry is missing, or "
                "the entries are out of order)",
                seq,
                previous,
                found,
            )
        chains[conversation] = seq

    def check_sample(
        self, population: tuple[int, int], sample: dict[str, Any], seen: list[int]
    ) -> None:
        """The seqs handoff-ledger/sample/v1 draws, and the population's first and last."""
        start, end = population
        self.summary["sample"] = {"size": sample["size"], "seed": sample["seed"]}
        try:
            drawn = sample_seqs(self.root, sample["seed"], start, end, sample["size"])
        except ValueError as exc:
            self.fail((MANIFEST, "sample"), f"the sample cannot be drawn: {exc}")
            return
        expected, found = {start, end - 1, *drawn}, set(seen)
        for seq in sorted(expected - found):
            why = "drawn by the sample" if seq in drawn else "the population's first or last"
            self.fail((ENTRIES, "sample"), f"seq {seq} is {why}, but not in the bundle", seq)
        for seq in sorted(found - expected):
            self.fail(
                (ENTRIES, "sample"),
                f"seq {seq} is in the bundle, but {SAMPLE_ALGORITHM} does not draw it",
                seq,
            )

    # -- 7. consistency.json

    def check_consistency(self) -> None:
        if CONSISTENCY not in self.z.infos:
            return
        c, where = self.json_file(CONSISTENCY, "consistency"), (CONSISTENCY, "consistency")
        try:
            note, m, n = c["from"], c["from_size"], c["to_size"]
            hashes = [b64(h) for h in c["hashes"]]
            if type(note) is not str or type(m) is not int or type(n) is not int:
                raise TypeError("wrong types")
        except BAD:
            self.fail(where, "not {from, from_size, to_size, hashes} of their types")
            return
        if n != self.size:
            self.fail(where, "to_size is not the checkpoint's size", None, self.size, n)
        try:
            size, root, _ = open_checkpoint(note, self.trusted, self.origin)
        except BAD as exc:
            self.fail(where, f"the earlier checkpoint does not open under your key(s): {exc}")
            return
        if size != m:
            self.fail(where, "from_size is not the earlier checkpoint's size", None, size, m)
        if not consistent(size, self.size, hashes, root, self.root):
            self.fail(where, "the earlier checkpoint is not a prefix of this one (RFC 9162)")
            return
        self.summary["consistency_from"] = size


# --- the command ---------------------------------------------------------------------------------


def shown(f: dict[str, Any]) -> str:
    text = f"{f['file']}: " + ("" if f["seq"] is None else f"seq {f['seq']}: ")
    text += f"{f['check']}: {f['message']}"
    if f.get("expected") is not None or f.get("found") is not None:
        text += f" (expected {json.dumps(f['expected'])}, found {json.dumps(f['found'])})"
    return text


class Args(argparse.Namespace):
    path: str
    verifier_key: list[str]
    verifier_keys_file: str | None
    json: bool


def verify(args: Args) -> Verify:
    """Every check on the bundle, with the keys given (CannotRun: exit 2)."""
    lines = list(args.verifier_key)
    if args.verifier_keys_file:
        with open(args.verifier_keys_file, encoding="utf-8") as f:
            lines += f.read().splitlines()
    keys = [parse_key(k.strip()) for k in lines if k.strip() and not k.strip().startswith("#")]
    if not keys:
        raise CannotRun("no verifier key given (--verifier-key, --verifier-keys-file)")
    z = Zip(args.path)
    try:
        v = Verify(z, keys)
        v.run()
    finally:
        z.zf.close()
    return v


def main() -> int:
    ap = argparse.ArgumentParser(description="Check a Handoff Ledger evidence bundle offline.")
    ap.add_argument("path")
    ap.add_argument("--verifier-key", action="append", default=[], metavar="KEY")
    ap.add_argument("--verifier-keys-file", metavar="FILE")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(namespace=Args())
    try:
        v = verify(args)
    except (CannotRun, OSError, *BAD) as exc:
        message = str(exc) if isinstance(exc, CannotRun) else f"{type(exc).__name__}: {exc}"
        print(f"cannot verify: {message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"status": "error", "intact": False, "error": message}, indent=2))
        return 2
    s = v.summary
    if args.json:
        report = {
            "status": "failed" if v.nfails else "verified",
            "intact": not v.nfails,
            "file": args.path,
            "origin": v.origin,
            **{k: s.get(k) for k in ("log", "profile", "selection", "tree_size", "root", "range")},
            "entries": {
                "count": s["entries"],
                "first": s.get("first_seq"),
                "last": s.get("last_seq"),
            },
            "payloads": {"verified": s["verified"], "withheld": s["withheld"]},
            "certified_keys": v.certified,
            "consistency_from": s.get("consistency_from"),
            "failures": v.fails,
            "failures_total": v.nfails,
            "warnings": v.warns,
            "warnings_total": v.nwarns,
        }
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 1 if v.nfails else 0
    print(
        f"bundle of {v.origin!r}, selection {s.get('selection')}, checkpoint size "
        f"{s.get('tree_size')}: {s['entries']} entries checked (seq {s.get('first_seq')}.."
        f"{s.get('last_seq')}), {s['verified']} payloads verified, withheld {s['withheld']}, "
        f"range {s.get('range')}, consistency from {s.get('consistency_from')}"
    )
    for w in v.warns:
        print(f"warning: {shown(w)}")
    if v.nfails:
        print(f"FAILED ({v.nfails}):\n" + "\n".join(shown(f) for f in v.fails))
        return 1
    print(
        "VERIFIED: every file is the one the manifest signed by your key names; every entry is "
        "in the signed log; the selection's proof holds."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
