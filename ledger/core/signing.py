"""Ed25519 note keys: signers, verifiers and their text encodings (C2SP signed-note).

A key is named (the log origin, for a log key) and identified by a 4-byte key ID,
C2SP signed-note §"Signatures" and §"Ed25519 signatures"::

    key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4]

Encodings, as in golang.org/x/mod/sumdb/note (``NewVerifier``, ``NewSigner``, ``GenerateKey``):

    verifier key   <name>+<hex key ID>+base64(0x01 || public key)
    private key    PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 || 32-byte seed)

Key names are non-empty and contain neither Unicode spaces nor ``+`` (§"Format"); this module
also refuses ASCII control characters, which can never appear in a signed note anyway.

Base64 is standard RFC 4648 §4 and decoded *canonically*: padding and unused trailing bits must
be exactly what the encoder writes, so every byte string has one text form and flipping any
character of a signature line changes what is decoded (Go's decoder is laxer on trailing bits).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from ledger.core.types import KeyId
from ledger.errors import NoteFormatError, SignatureInvalid

ALG_ED25519 = 0x01
"""Signature type byte for Ed25519, C2SP signed-note §"Signature types"."""

KEY_ID_SIZE = 4
ED25519_PUBLIC_KEY_SIZE = 32
ED25519_SEED_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"

_HEX_KEY_ID = re.compile(r"[0-9a-fA-F]{8}")


def key_id(name: str, public_key: bytes) -> KeyId:
    """The C2SP signed-note key ID of an Ed25519 key: the first 4 bytes of
    SHA-256(name || 0x0A || 0x01 || public key)."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return KeyId(digest[:KEY_ID_SIZE])


def check_key_name(name: str) -> None:
    """Raise NoteFormatError unless ``name`` is a valid key name (signed-note §"Format")."""
    if not name:
        raise NoteFormatError("key name is empty")
    for ch in name:
        if ch == "+":
            raise NoteFormatError(f"key name {_show(name)} contains '+'")
        if ch.isspace():
            raise NoteFormatError(f"key name {_show(name)} contains a space (U+{ord(ch):04X})")
        if ord(ch) < 0x20 or ch == "\x7f":
            raise NoteFormatError(f"key name {_show(name)} contains a control character")
        if 0xD800 <= ord(ch) <= 0xDFFF:
            raise NoteFormatError(f"key name {_show(name)} is not valid UTF-8")


def b64decode_canonical(text: str, what: str) -> bytes:
    """Decode standard base64 (RFC 4648 §4), accepting only the canonical encoding.

    Raises NoteFormatError naming ``what`` on any other input.
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeError, binascii.Error) as exc:
        raise NoteFormatError(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteFormatError(f"{what} is not canonical base64")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _show(value: str, limit: int = 40) -> str:
    """A bounded repr for error messages, so junk input cannot flood a log line."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + "…"


def _parse_hex_key_id(hexid: str) -> KeyId:
    if _HEX_KEY_ID.fullmatch(hexid) is None:
        raise NoteFormatError(f"key ID {_show(hexid)} is not 8 hex digits")
    return KeyId(bytes.fromhex(hexid))


def _split_key_data(data: bytes, size: int, what: str) -> bytes:
    """Check the signature type byte and length of ``0x01 || key`` and return the key."""
    if not data:
        raise NoteFormatError(f"{what} is empty")
    if data[0] != ALG_ED25519:
        raise NoteFormatError(f"{what} has signature type 0x{data[0]:02x}, not Ed25519 (0x01)")
    if len(data) != 1 + size:
        raise NoteFormatError(
            f"{what} must be {size} bytes after the type byte, got {len(data) - 1}"
        )
    return data[1:]


@dataclass(frozen=True, repr=False)
class NoteVerifier:
    """A known Ed25519 note key: verifies signatures by (name, key ID).

    Construction checks the name and that ``key_id`` is the one computed from name and key.
    """

    name: str
    key_id: KeyId
    public_key: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.public_key) != ED25519_PUBLIC_KEY_SIZE:
            raise NoteFormatError(
                f"Ed25519 public key must be {ED25519_PUBLIC_KEY_SIZE} bytes,"
                f" got {len(self.public_key)}"
            )
        expected = key_id(self.name, self.public_key)
        if self.key_id != expected:
            raise NoteFormatError(
                f"key ID {self.key_id.hex()} does not match key {self.name}"
                f" (computed {expected.hex()})"
            )

    def __repr__(self) -> str:
        return f"NoteVerifier({self.verifier_key()})"

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> NoteVerifier:
        check_key_name(name)
        return cls(name, key_id(name, public_key), bytes(public_key))

    @classmethod
    def from_verifier_key(cls, vkey: str) -> NoteVerifier:
        """Parse ``name+hexid+base64(0x01 || public key)``. Raises NoteFormatError."""
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise NoteFormatError("verifier key is not of the form name+hexid+key")
        name, hexid, key64 = parts
        check_key_name(name)
        kid = _parse_hex_key_id(hexid)
        data = b64decode_canonical(key64, "verifier key data")
        public_key = _split_key_data(data, ED25519_PUBLIC_KEY_SIZE, "verifier key data")
        return cls(name, kid, public_key)

    def verifier_key(self) -> str:
        """``name+hexid+base64(0x01 || public key)``, the form published to auditors."""
        data = _b64encode(bytes([ALG_ED25519]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{data}"

    def verify(self, msg: bytes, sig: bytes) -> None:
        """Return if ``sig`` is this key's Ed25519 signature of ``msg``; else SignatureInvalid."""
        if len(sig) != ED25519_SIGNATURE_SIZE:
            raise SignatureInvalid(
                f"signature by {self.name}+{self.key_id.hex()} is {len(sig)} bytes,"
                f" not {ED25519_SIGNATURE_SIZE}"
            )
        try:
            nacl.signing.VerifyKey(self.public_key).verify(msg, sig)
        except nacl.exceptions.BadSignatureError as exc:
            raise SignatureInvalid(
                f"signature by {self.name}+{self.key_id.hex()} does not verify"
            ) from exc


class NoteSigner:
    """An Ed25519 note signing key with its name. Its repr never shows the seed."""

    __slots__ = ("_seed", "_signing_key", "key_id", "name", "public_key")

    def __init__(self, name: str, seed: bytes) -> None:
        check_key_name(name)
        if len(seed) != ED25519_SEED_SIZE:
            raise NoteFormatError(
                f"Ed25519 seed must be {ED25519_SEED_SIZE} bytes, got {len(seed)}"
            )
        self.name = name
        self._seed = bytes(seed)
        self._signing_key = nacl.signing.SigningKey(self._seed)
        self.public_key = bytes(self._signing_key.verify_key)
        self.key_id = key_id(name, self.public_key)

    def __repr__(self) -> str:
        return f"NoteSigner({self.name}+{self.key_id.hex()})"

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        """A new key from the operating system's CSPRNG."""
        return cls(name, secrets.token_bytes(ED25519_SEED_SIZE))

    @classmethod
    def from_private_key_string(cls, skey: str) -> NoteSigner:
        """Parse ``PRIVATE+KEY+name+hexid+base64(0x01 || seed)`` (Go sumdb/note ``NewSigner``).

        The key ID is checked against the public key derived from the seed.
        """
        if not skey.startswith(PRIVATE_KEY_PREFIX):
            raise NoteFormatError("private key string does not start with PRIVATE+KEY+")
        parts = skey[len(PRIVATE_KEY_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise NoteFormatError(
                "private key string is not of the form PRIVATE+KEY+name+hexid+key"
            )
        name, hexid, key64 = parts
        check_key_name(name)
        kid = _parse_hex_key_id(hexid)
        data = b64decode_canonical(key64, "private key data")
        signer = cls(name, _split_key_data(data, ED25519_SEED_SIZE, "private key data"))
        if signer.key_id != kid:
            raise NoteFormatError(
                f"private key string names key ID {kid.hex()},"
                f" but its key has {signer.key_id.hex()}"
            )
        return signer

    def private_key_string(self) -> str:
        """``PRIVATE+KEY+name+hexid+base64(0x01 || seed)``. Secret: keep it out of logs."""
        data = _b64encode(bytes([ALG_ED25519]) + self._seed)
        return f"{PRIVATE_KEY_PREFIX}{self.name}+{self.key_id.hex()}+{data}"

    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.key_id, self.public_key)

    def verifier_key(self) -> str:
        return self.verifier().verifier_key()

    def sign(self, msg: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``msg`` (RFC 8032, deterministic)."""
        return bytes(self._signing_key.sign(msg).signature)
