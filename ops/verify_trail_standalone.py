#!/usr/bin/env python3
"""Check a saved Handoff Ledger conversation trail offline: Python 3.11+ and PyNaCl, nothing else.

    python3 verify_trail_standalone.py TRAIL.json --verifier-key KEY... [--verifier-keys-file F]

TRAIL.json is the body of GET /v1/logs/{log}/conversations/{id}/trail; KEY the log's verifier key
(name+hexid+base64) as YOU got it (GET /v1/logs/{log}/verifier-key earlier, an anchor), never the
file's. Exit 0 all pass, 1 a check failed (seq, check, expected vs found), 2 cannot run. Checks,
named as `ledger verify-trail` names them: checkpoint (C2SP signed note, Ed25519, by your key
named after the trail's origin, or a later key yours certified: rotation, each of the trail's
rotations that names your key as old is a handoff-ledger/key-rotation/v1 note signed by it and
by the new key; size = tree_size), leaf_hash (SHA-256(0x00 || entry bytes)),
entry_bytes (JSON naming the seq, origin, conversation), inclusion (RFC 9162 2.1.3.2 audit path to
the signed root), order and back_link (from the bytes: first conversation_prev null, then the
previous seq), payload (SHA-256(salt || bytes) = the entry's commitment; payload = the bytes),
writer_signature (an entry's detached JWS, alg EdDSA, b64 false, verifies over the statement
rebuilt from the entry by the writer key whose RFC 7638 thumbprint is the JWS kid, a key of the
entry's writer credential not revoked before the entry's received_at), writer_key (the keys and
their revocation times are those the tenant's system log records: writer_key_records, each a
ledger.writer_key.added.v1 / revoked.v1 entry of its "keys" stream with its payload and an
inclusion proof to the system log's checkpoint, which must open under YOUR key for that log; the
file's writer_keys only restates them for reading and is not read).
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
    writer_keys: NotRequired[list[Any]]
    writer_key_records: NotRequired[Any]
    rotations: NotRequired[Any]


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


def open_note(note: str, keys: list[Key]) -> tuple[str, list[Key]]:
    """(text, the keys of ``keys`` that signed it) of a C2SP signed note; ValueError if a
    signature by one of them does not verify."""
    text, blank, block = note.rpartition("\n\n")
    if not blank or not block.endswith("\n"):
        raise ValueError("not a signed note")
    text, signers = text + "\n", []
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
                signers += [key] if key not in signers else []
    return text, signers


def open_checkpoint(note: str, keys: list[Key], origin: str) -> tuple[int, bytes]:
    """(size, root) of a checkpoint signed by one of ``keys`` named ``origin``, else ValueError."""
    text, signers = open_note(note, keys)
    if not any(key[0] == origin for key in signers):
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


def certified_keys(trail: Trail, keys: list[Key], fail: Any) -> list[Key]:
    """Your keys for the trail's origin, plus each key one of them certified: a rotation
    statement (ledger/core/rotation.py; the trail's rotations, oldest first) naming a key you
    trust as old, signed by it and by the new key. One rotating a key you do not trust
    certifies nothing (history before your pin); one that rotates yours and does not verify is
    a rotation failure."""
    origin = trail["origin"]
    trusted = [k for k in keys if k[0] == origin]
    for i, note in enumerate(trail.get("rotations") or []):
        try:
            text = str(note).rpartition("\n\n")[0] + "\n"
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
            if old in trusted and len(open_note(str(note), [old, new])[1]) != 2:
                raise ValueError("not signed by both the old and the new key")
        except BAD as exc:
            fail(None, "rotation", f"rotations/{i}: does not certify its new key: {exc}")
            continue
        if old in trusted and new not in trusted:
            trusted.append(new)
    return trusted


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


def b64url(text: Any) -> bytes:
    """Canonical base64url without padding (RFC 7515 2)."""
    if not isinstance(text, str) or "=" in text:
        raise ValueError("not base64url without padding")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != text:
        raise ValueError("not canonical base64url")
    return raw


def thumbprint(public_key: bytes) -> str:
    """RFC 7638 JWK thumbprint of an Ed25519 (OKP, RFC 8037) public key."""
    x = base64.urlsafe_b64encode(public_key).rstrip(b"=").decode()
    jwk = '{"crv":"Ed25519","kty":"OKP","x":"' + x + '"}'
    return base64.urlsafe_b64encode(hashlib.sha256(jwk.encode()).digest()).rstrip(b"=").decode()


def writer_signature_problem(entry: dict[str, Any], writer_keys: list[Any]) -> str | None:
    """Why the entry's writer signature does not check out, or None. The statement is RFC 8785
    of the entry's actor, event, origin, outcome, payload and format
    "handoff-ledger/statement/v1": strings, integers, null and objects only, for which
    json.dumps(sort_keys, compact, ensure_ascii=False) writes exactly the RFC 8785 bytes."""
    head, empty, sig = str(entry["writer_signature"]).split(".")  # else ValueError: unreadable
    header = strict_json(b64url(head))
    if not isinstance(header, dict):
        return "the JWS header is not an object"
    if header.get("alg") != "EdDSA":
        return f"alg is {header.get('alg')!r}, not EdDSA"
    if empty or header.get("b64") is not False or header.get("crit") != ["b64"]:
        return "not a detached JWS with an unencoded payload (b64 false, crit [b64])"
    if set(header) - {"alg", "b64", "crit", "kid"}:
        return "unknown JWS header parameters"
    kid = header.get("kid")
    key = next((k for k in writer_keys if isinstance(k, dict) and k.get("kid") == kid), None)
    if key is None:
        return f"no writer key {kid!r} in the file's writer_key_records"
    public_key = b64url(key["public_key"])
    if len(public_key) != 32 or thumbprint(public_key) != kid:
        return f"writer key {kid!r} is not the key it names (RFC 7638 thumbprint)"
    if key.get("credential") != entry["writer"]["credential"]:
        return f"key {kid} belongs to credential {key.get('credential')}, not the entry's writer"
    revoked = key.get("revoked_at")
    if revoked is not None and not entry["received_at"] < revoked:
        return f"key {kid} was revoked at {revoked}, before the entry was received"
    statement = {name: entry[name] for name in ("actor", "event", "origin", "outcome", "payload")}
    statement["format"] = "handoff-ledger/statement/v1"
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        nacl.signing.VerifyKey(public_key).verify(
            head.encode() + b"." + payload.encode(), b64url(sig)
        )
    except nacl.exceptions.BadSignatureError:
        return f"the signature by key {kid} does not verify over the statement"
    return None


KEY_RECORDS = ("ledger.writer_key.added.v1", "ledger.writer_key.revoked.v1")


class NoSystemLogKey(Exception):
    """The trail's writer keys are proven in a system log you gave no key for: exit 2."""


def recorded_writer_keys(trail: Trail, keys: list[Key], fail: Any) -> list[dict[str, Any]]:
    """The writer keys (kid, credential, public_key, revoked_at) as the trail's
    writer_key_records prove them. A record that does not check out is a writer_key failure
    and its key is left out, so each entry it signed fails too, naming its seq."""
    carried = trail.get("writer_key_records")
    if carried is None:
        return []
    if not isinstance(carried, dict) or not isinstance(carried.get("records"), list):
        fail(None, "writer_key", "writer_key_records is not {origin, checkpoint, records}")
        return []
    origin = carried.get("origin")
    mine = [k for k in keys if k[0] == origin]
    if not isinstance(origin, str) or not mine:
        raise NoSystemLogKey(
            f"the trail's writer keys are proven in the system log {origin!r}: "
            "pass its verifier key too (--verifier-key)"
        )
    try:
        size, root = open_checkpoint(str(carried.get("checkpoint")), mine, origin)
    except BAD as exc:
        fail(None, "writer_key", f"the system log's checkpoint does not open: {exc}")
        return []
    found: dict[str, dict[str, Any]] = {}
    previous = -1
    for r in carried["records"]:
        where = r.get("seq") if isinstance(r, dict) else None
        try:
            seq = r["seq"]
            if type(seq) is not int or seq <= previous:
                raise ValueError("seq is not an integer above the previous record's")
            leaf = hashlib.sha256(b"\x00" + (raw := b64(r["entry_b64"]))).digest()
            if base64.b64encode(leaf).decode() != r["leaf_hash"]:
                raise ValueError("SHA-256(0x00 || entry bytes) is not the leaf hash given")
            entry = strict_json(raw)
            kind = entry["event"]["type"]
            ok = [entry["seq"], entry["origin"], entry["event"]["conversation"]] == [
                seq,
                origin,
                "keys",
            ]
            if not ok or kind not in KEY_RECORDS:
                raise ValueError("not a writer key record of the system log at this seq")
            if not commits(entry, r["payload_salt"], r["payload_b64"]):
                raise ValueError("SHA-256(salt || payload bytes) is not the entry's commitment")
            record = strict_json(b64(r["payload_b64"]))
            if record["log"] != trail.get("log"):
                raise ValueError(f"the record is of another log ({record['log']!r})")
            if root_from_proof(leaf, seq, size, [b64(h) for h in r["hashes"]]) != root:
                raise ValueError("not proven in the system log's checkpoint")
            kid, credential, key = record["kid"], record["credential"], found.get(record["kid"])
            if kind == KEY_RECORDS[0]:
                public_key = b64url(record["public_key"])
                if key is not None or len(public_key) != 32 or thumbprint(public_key) != kid:
                    raise ValueError(f"adds key {kid!r} twice, or a key it does not name")
                found[kid] = {"kid": kid, "credential": credential,
                              "public_key": record["public_key"], "revoked_at": None}  # fmt: skip
            else:
                if key is None or key["credential"] != credential or key["revoked_at"] is not None:
                    raise ValueError(f"revokes key {kid!r}, which no earlier record adds")
                if type(record["revoked_at"]) is not str:
                    raise ValueError("revoked_at is not a time")
                key["revoked_at"] = record["revoked_at"]
            previous = seq
        except BAD as exc:
            fail(None, "writer_key", f"system log seq {where}: {exc}")
    return list(found.values())


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
        size, root = open_checkpoint(trail["checkpoint"], certified_keys(trail, keys, fail), origin)
    except BAD as exc:
        fail(None, "checkpoint", f"does not open under your key(s) for {origin!r}: {exc}")
    if size >= 0 and size != trail["tree_size"]:
        fail(None, "checkpoint", "tree_size is not the signed size", size, trail["tree_size"])
    previous, verified, withheld, signed = None, 0, [], 0
    writer_keys = recorded_writer_keys(trail, keys, fail)
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
        if "writer_signature" in entry:  # 5. the writer's signature, from the entry alone
            try:
                problem = writer_signature_problem(entry, list(writer_keys))
            except (*BAD, nacl.exceptions.CryptoError) as exc:
                problem = f"unreadable: {exc!r}"
            if problem is None:
                signed += 1
            else:
                fail(seq, "writer_signature", problem)
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
            f"{verified} payloads verified, {len(withheld)} erased/missing {withheld}, "
            f"{signed} writer signatures verified"
        ),
    )


def is_trail(trail: object) -> TypeGuard[Trail]:
    """Whether the file has a trail's fields with their JSON types (else exit 2, not 1)."""

    def has(obj: object, **types: type) -> TypeGuard[dict[str, Any]]:
        return isinstance(obj, dict) and all(type(obj.get(k)) is t for k, t in types.items())

    return (
        has(trail, origin=str, conversation=str, tree_size=int, checkpoint=str, entries=list)
        and bool(trail["entries"])
        and isinstance(rotations := trail.get("rotations", []), list)
        and all(type(r) is str for r in rotations)
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
    try:
        fails, warns, summary = verify(trail, keys)
    except NoSystemLogKey as exc:
        print(f"cannot verify: {exc}", file=sys.stderr)
        return 2
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
