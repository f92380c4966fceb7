"""Ed25519 witness cosignatures, c2sp.org/tlog-cosignature (``cosignature/v1``).

A cosignature is a note signature line on a checkpoint::

    — <witness name> base64(key ID || u64 big-endian timestamp || 64-byte Ed25519 signature)

over the message ``"cosignature/v1\\n" || "time <timestamp>\\n" || <checkpoint note text>``.
The key ID is ``SHA-256(name || 0x0A || 0x04 || public key)[:4]`` and the witness's verifier
key is ``name+hexid+base64(0x04 || public key)``. A v1 cosignature states that, at that time,
this was the largest consistent tree the witness had seen for the origin.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from ledger.core.note import NoteSignature, parse_note
from ledger.core.signing import (
    ED25519_PUBLIC_KEY_SIZE,
    ED25519_SIGNATURE_SIZE,
    KEY_ID_SIZE,
    b64decode_canonical,
    check_key_name,
)
from ledger.core.types import KeyId
from ledger.errors import NoteFormatError, SignatureInvalid

ALG_COSIGNATURE_V1 = 0x04
"""Signature type byte of Ed25519 ``cosignature/v1`` keys (tlog-cosignature §"Format")."""

MAX_TIMESTAMP = 2**63 - 1


def cosignature_key_id(name: str, public_key: bytes) -> KeyId:
    digest = hashlib.sha256(
        name.encode() + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key
    ).digest()
    return KeyId(digest[:KEY_ID_SIZE])


def cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint_text}".encode()


@dataclass(frozen=True)
class Cosignature:
    witness: str
    """The witness's verifier key."""
    timestamp: int
    line: str
    """The signature line, newline included, ready to append to the checkpoint note."""


@dataclass(frozen=True)
class CosignerVerifier:
    name: str
    key_id: KeyId
    public_key: bytes

    @classmethod
    def from_verifier_key(cls, vkey: str) -> CosignerVerifier:
        """Parse ``name+hexid+base64(0x04 || public key)``. Raises NoteFormatError."""
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise NoteFormatError("witness key is not of the form name+hexid+key")
        name, hexid, key64 = parts
        check_key_name(name)
        data = b64decode_canonical(key64, "witness key data")
        if len(data) != 1 + ED25519_PUBLIC_KEY_SIZE or data[0] != ALG_COSIGNATURE_V1:
            raise NoteFormatError("witness key is not an Ed25519 cosignature/v1 key (0x04)")
        public_key = data[1:]
        kid = cosignature_key_id(name, public_key)
        if hexid.lower() != kid.hex():
            raise NoteFormatError(f"witness key ID {hexid} does not match its key ({kid.hex()})")
        return cls(name, kid, public_key)

    def verifier_key(self) -> str:
        data = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{data}"

    def verify(self, signature: NoteSignature, checkpoint_text: str) -> Cosignature:
        """Check one signature line of this witness over ``checkpoint_text``."""
        if (signature.name, signature.key_id) != (self.name, self.key_id):
            raise SignatureInvalid(f"signature is not by witness {self.name}")
        if len(signature.signature) != 8 + ED25519_SIGNATURE_SIZE:
            raise NoteFormatError(f"cosignature by {self.name} has the wrong length")
        (timestamp,) = struct.unpack(">Q", signature.signature[:8])
        if timestamp > MAX_TIMESTAMP:
            raise NoteFormatError(f"cosignature by {self.name} has an invalid timestamp")
        try:
            nacl.signing.VerifyKey(self.public_key).verify(
                cosigned_message(checkpoint_text, timestamp), signature.signature[8:]
            )
        except nacl.exceptions.BadSignatureError as exc:
            raise SignatureInvalid(f"cosignature by {self.name} does not verify") from exc
        return Cosignature(self.verifier_key(), timestamp, signature.line())


def open_cosignatures(note: str, response: str, witness: CosignerVerifier) -> list[Cosignature]:
    """The witness's valid cosignatures in an add-checkpoint ``response`` for signed checkpoint
    ``note``; lines from other keys are ignored (tlog-witness). Raises if none verifies."""
    parsed = parse_note(note + response)
    found = [
        witness.verify(sig, parsed.text)
        for sig in parsed.signatures
        if (sig.name, sig.key_id) == (witness.name, witness.key_id)
    ]
    if not found:
        raise SignatureInvalid(f"the response holds no cosignature by {witness.name}")
    return found


class Cosigner:
    """A witness's signing key (for tests and tools that play a witness)."""

    def __init__(self, name: str, seed: bytes) -> None:
        check_key_name(name)
        self.name = name
        self._key = nacl.signing.SigningKey(seed)
        public_key = bytes(self._key.verify_key)
        self.verifier = CosignerVerifier(name, cosignature_key_id(name, public_key), public_key)

    def cosign(self, checkpoint_text: str, timestamp: int) -> str:
        sig = self._key.sign(cosigned_message(checkpoint_text, timestamp)).signature
        return NoteSignature(
            self.name, self.verifier.key_id, struct.pack(">Q", timestamp) + sig
        ).line()
