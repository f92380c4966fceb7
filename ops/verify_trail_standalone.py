#!/usr/bin/env python3
"""Check a saved Handoff Ledger conversation trail offline: Python 3.11+ and PyNaCl, nothing else.

    python3 verify_trail_standalone.py TRAIL.json --verifier-key KEY... [--verifier-keys-file F]

TRAIL.json is the body of GET /v1/logs/{log}/conversations/{id}/trail; KEY the log's verifier key
(name+hexid+base64) as YOU got it (GET /v1/logs/{log}/verifier-key earlier, an anchor), never the
file's. Exit 0 all pass, 1 a check failed (seq, check, expected vs found), 2 cannot run. Checks,
named as `ledger verify-trail` names them: checkpoint (C2SP signed note, Ed25519, by your key
named after the trail's origin; size = tree_size), leaf_hash (SHA-256(0x00 || entry bytes)),
entry_bytes (JSON naming the seq, origin, conversation), inclusion (RFC 9162 2.1.3.2 audit path to
the signed root), order and back_link (from the bytes: first conversation_prev null, then the
previous seq), payload (SHA-256(salt || bytes) = the entry's commitment; payload = the bytes).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from typing import Any, NotRequired, TypedDict, TypeGuard

try:
    import nacl.exceptions
    import nacl.signing
except ImportError:  # could not run: that is exit 2, never "a check failed"
    print(
        "verify_trail_standalone: cannot run: PyNaCl is not installed (pip install pynacl)",
        file=sys.stderr,
    )
    sys.exit(2)

Key = tuple[str, bytes, bytes]  # name, 4-byte key ID, Ed25519 public key
BAD = (ValueError, TypeError, KeyError)  # what junk in a file raises


# A saved trail as far as is_trail checks it (else exit 2); the rest is unchecked JSON (Any).
class Proof(TypedDict):
    leaf_index: int
    tree_size: int
    hashes: list[Any]


class TrailEntry(TypedDict):
    seq: int
    leaf_hash: str
    entry_b64: str
    inclusion_proof: Proof
    payload_status: NotRequired[Any]
    payload: NotRequired[Any]
    payload_b64: NotRequired[Any]
    payload_salt: NotRequired[Any]


class Trail(TypedDict):
    origin: str
    conversation: str
    tree_size: int
    checkpoint: str
    entries: list[TrailEntry]


def b64(text: Any) -> bytes:
    """Canonical standard base64 only (one text per byte string)."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise ValueError(f"{str(text)[:20]!r} is not canonical base64")
    return raw


def strict_json(raw: bytes) -> Any:
    """UTF-8 JSON without duplicate keys (two readings of the same hashed bytes) or NaN."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in items}) != len(items):
            raise ValueError("duplicate key in JSON object")
        return dict(items)

    # parse_constant: int() refuses NaN, Infinity and -Infinity with a ValueError
    return json.loads(raw.decode("utf-8"), object_pairs_hook=pairs, parse_constant=int)


def parse_key(vkey: str) -> Key:
    name, hexid, data = vkey.split("+", 2)
    raw = b64(data)
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + raw[1:]).digest()[:4]
    if len(raw) != 33 or raw[0] != 1 or hexid.lower() != key_id.hex():
        raise ValueError(f"{vkey[:60]!r} is not an Ed25519 note verifier key")
    return name, key_id, raw[1:]


def open_checkpoint(note: str, keys: list[Key], origin: str) -> tuple[int, bytes]:
    """(size, root) of a checkpoint signed by one of ``keys`` named ``origin``, else ValueError."""
    text, blank, block = note.rpartition("\n\n")
    if not blank or not block.endswith("\n"):
        raise ValueError("not a signed note")
    text, signed = text + "\n", False
    for line in block[:-1].split("\n"):
        name, _, sig = line.removeprefix("\u2014 ").partition(" ")
        if not line.startswith("\u2014 ") or len(raw := b64(sig)) <= 4:
            raise ValueError(f"malformed signature line {line[:40]!r}")
        for key in keys:
            if key[:2] == (name, raw[:4]):
                try:  # a signature by a known key must verify (C2SP signed-note)
                    nacl.signing.VerifyKey(key[2]).verify(text.encode(), raw[4:])
                except nacl.exceptions.BadSignatureError:
                    raise ValueError(
                        f"signature by {name}+{key[1].hex()} does not verify"
                    ) from None
                signed = signed or name == origin
    if not signed:
        raise ValueError(f"the note has no signature by your key(s) for {origin!r}")
    lines = text[:-1].split("\n")  # origin, size, base64 root, extension lines
    if (
        len(lines) < 3
        or lines[0] != origin
        or not lines[1].isdigit()
        or str(int(lines[1])) != lines[1]
        or len(b64(lines[2])) != 32
    ):
        raise ValueError("the signed text is not a checkpoint of the trail's origin")
    return int(lines[1]), b64(lines[2])


def root_from_proof(leaf: bytes, index: int, size: int, proof: list[bytes]) -> bytes:
    """RFC 9162 2.1.3.2: the root an inclusion proof leads to; ValueError if ill-shaped."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0 or len(p) != 32:
            raise ValueError("the proof is too long or holds a hash that is not 32 bytes")
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    if sn:
        raise ValueError("the proof is too short")
    return r


def commits(entry: dict[str, Any], salt64: Any, data64: Any) -> bool:
    """Whether SHA-256(salt || payload bytes) is the entry's sha256-salted commitment."""
    commitment, salt = entry["payload"], b64(salt64)
    if commitment["alg"] != "sha256-salted" or len(salt) != 32:
        raise ValueError("not a sha256-salted commitment with a 32-byte salt")
    return b64(commitment["commitment"]) == hashlib.sha256(salt + b64(data64)).digest()


def verify(trail: Trail, keys: list[Key]) -> tuple[list[str], list[str], str]:
    """(failures, warnings, summary) of a saved trail."""
    fails: list[str] = []
    warns: list[str] = []

    def fail(
        seq: int | None, check: str, msg: str, expected: object = ..., found: object = ...
    ) -> None:
        shown = (
            ""
            if expected is ...
            else f" (expected {json.dumps(expected)}, found {json.dumps(found)})"
        )
        fails.append(("" if seq is None else f"seq {seq}: ") + f"{check}: {msg}{shown}")

    origin, conversation = trail["origin"], trail["conversation"]
    size, root = -1, b""
    try:  # 1. the checkpoint, under the auditor's keys named after the trail's origin
        size, root = open_checkpoint(
            trail["checkpoint"], [k for k in keys if k[0] == origin], origin
        )
    except BAD as exc:
        fail(None, "checkpoint", f"does not open under your key(s) for {origin!r}: {exc}")
    if size >= 0 and size != trail["tree_size"]:
        fail(None, "checkpoint", "tree_size is not the signed size", size, trail["tree_size"])
    previous, verified, withheld = None, 0, []
    for e in trail["entries"]:
        seq = e["seq"]
        try:  # 2. bytes, leaf hash, what the bytes name, inclusion in the signed tree
            leaf = hashlib.sha256(b"\x00" + (raw := b64(e["entry_b64"]))).digest()
            if base64.b64encode(leaf).decode() != e["leaf_hash"]:
                fail(
                    seq,
                    "leaf_hash",
                    "SHA-256(0x00 || entry bytes) is not the leaf hash given",
                    base64.b64encode(leaf).decode(),
                    e["leaf_hash"],
                )
            entry = strict_json(raw)
            named = [entry["seq"], entry["origin"], entry["event"]["conversation"]]
        except BAD as exc:
            fail(seq, "entry_bytes", f"not an entry: {exc!r}")
            previous = seq
            continue
        if named != [seq, origin, conversation] or type(named[0]) is not int:
            fail(
                seq, "entry_bytes", "seq, origin, conversation", [seq, origin, conversation], named
            )
        seq = named[0] if type(named[0]) is int else seq  # the signed seq from here on
        proof = e["inclusion_proof"]
        if proof["leaf_index"] != seq or (size >= 0 and proof["tree_size"] != size):
            fail(
                seq,
                "inclusion",
                "leaf_index, tree_size",
                [seq, size],
                [proof["leaf_index"], proof["tree_size"]],
            )
        try:
            if (
                size >= 0
                and root_from_proof(leaf, seq, size, [b64(h) for h in proof["hashes"]]) != root
            ):
                fail(seq, "inclusion", "the audit path does not lead to the checkpoint's root")
        except BAD as exc:
            fail(seq, "inclusion", str(exc))
        if previous is not None and seq <= previous:  # 3. order and back-link, from the bytes
            fail(seq, "order", "seqs must strictly increase", f"> {previous}", seq)
        link = entry.get("conversation_prev", "absent")
        if link != previous or (link is not None and type(link) is not int):
            fail(
                seq,
                "back_link",
                "conversation_prev is not the previous entry of the trail "
                "(an entry is missing, or the entries are out of order)",
                previous,
                link,
            )
        previous = seq
        status, payload = e.get("payload_status"), e.get("payload")  # 4. the payload
        if e.get("payload_b64") is None and e.get("payload_salt") is None:
            if payload is not None or status == "verified":
                fail(seq, "payload", "a payload is claimed without its bytes and salt")
            elif status in ("erased", "missing"):
                withheld.append(seq)
            else:
                warns.append(f"seq {seq}: payload: the server could not read it ({status})")
            continue
        try:
            ok = commits(entry, e.get("payload_salt"), e.get("payload_b64"))
            same = ok and json.dumps(payload, sort_keys=True) == json.dumps(
                strict_json(b64(e["payload_b64"])), sort_keys=True
            )
        except BAD as exc:
            fail(seq, "payload", f"unreadable: {exc!r}")
            continue
        if not ok and status == "mismatch":
            warns.append(
                f"seq {seq}: payload: the server says it does not match its "
                "commitment, and it does not: its content is not proven"
            )
        elif not ok:
            fail(seq, "payload", "SHA-256(salt || payload bytes) is not the entry's commitment")
        elif not same:
            fail(seq, "payload", "the payload shown is not the committed payload bytes")
        verified += same
    return (
        fails,
        warns,
        (
            f"origin {origin!r}, conversation {conversation!r}: {len(trail['entries'])} "
            f"entries checked, checkpoint size {size if size >= 0 else 'NOT VERIFIED'}, "
            f"{verified} payloads verified, {len(withheld)} erased/missing {withheld}"
        ),
    )


def is_trail(trail: object) -> TypeGuard[Trail]:
    """Whether the file has a trail's fields with their JSON types (else exit 2, not 1)."""

    def has(obj: object, **types: type) -> TypeGuard[dict[str, Any]]:
        return isinstance(obj, dict) and all(type(obj.get(k)) is t for k, t in types.items())

    return (
        has(trail, origin=str, conversation=str, tree_size=int, checkpoint=str, entries=list)
        and bool(trail["entries"])
        and all(
            has(e, seq=int, leaf_hash=str, entry_b64=str, inclusion_proof=dict)
            and has(e["inclusion_proof"], leaf_index=int, tree_size=int, hashes=list)
            for e in trail["entries"]
        )
    )


class Args(argparse.Namespace):
    path: str
    verifier_key: list[str]
    verifier_keys_file: str | None


def main() -> int:
    ap = argparse.ArgumentParser(description="Check a saved Handoff Ledger trail offline.")
    ap.add_argument("path")
    ap.add_argument("--verifier-key", action="append", default=[], metavar="KEY")
    ap.add_argument("--verifier-keys-file", metavar="FILE")
    args = ap.parse_args(namespace=Args())
    try:
        lines = list(args.verifier_key)
        if args.verifier_keys_file:
            with open(args.verifier_keys_file, encoding="utf-8") as f:
                lines += f.read().splitlines()
        keys = [parse_key(k.strip()) for k in lines if k.strip() and not k.startswith("#")]
        with open(args.path, "rb") as f:
            trail = strict_json(f.read())
    except (OSError, *BAD) as exc:
        print(f"cannot verify: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if not keys or not is_trail(trail):
        print(
            "cannot verify: "
            + (
                "no verifier key given (--verifier-key, --verifier-keys-file)"
                if not keys
                else "the file is not a saved trail"
            ),
            file=sys.stderr,
        )
        return 2
    fails, warns, summary = verify(trail, keys)
    print("\n".join([summary, *(f"warning: {w}" for w in warns)]))
    if fails:
        print("FAILED:\n" + "\n".join(fails))
        return 1
    print(
        "VERIFIED: every entry is in the signed log; the conversation is gap-free from its first"
        " entry to its last.\nNOT PROVEN: that no later entry of the conversation exists "
        "(back-links point backwards)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
