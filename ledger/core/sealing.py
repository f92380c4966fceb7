"""Envelope encryption of payloads and keys at rest: AES-256-GCM (NIST SP 800-38D).

Layout of every sealed blob: ``nonce (12 bytes) || ciphertext || tag (16 bytes)``. The
associated data binds a blob to where it belongs (log, seq; or log, key id), so a blob moved to
another row fails to open instead of decrypting as someone else's record.

A payload's plaintext is ``salt (32 bytes) || canonical(data)``: see ``commitment``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.core.commitment import SALT_SIZE
from ledger.errors import DecryptionFailed

KEY_SIZE = 32
NONCE_SIZE = 12


def new_key() -> bytes:
    return secrets.token_bytes(KEY_SIZE)


def fresh_nonces(count: int) -> Iterator[bytes]:
    """``count`` random 96-bit nonces from one CSPRNG call (one syscall per batch, not per
    event). Random nonces, never counters: many processes seal under the same data key."""
    pool = secrets.token_bytes(NONCE_SIZE * count)
    return (pool[i : i + NONCE_SIZE] for i in range(0, len(pool), NONCE_SIZE))


def seal(key: bytes, plaintext: bytes, aad: bytes, *, nonce: bytes | None = None) -> bytes:
    if nonce is None:
        nonce = secrets.token_bytes(NONCE_SIZE)
    elif len(nonce) != NONCE_SIZE:
        raise ValueError(f"nonce must be {NONCE_SIZE} bytes")
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < NONCE_SIZE + 16:
        raise DecryptionFailed("sealed blob is shorter than nonce and tag")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)
    except InvalidTag as exc:
        raise DecryptionFailed("authentication tag mismatch (tampered blob or wrong key)") from exc


def payload_aad(log_id: str, seq: int) -> bytes:
    return payload_aad_prefix(log_id) + b"%d" % seq


def payload_aad_prefix(log_id: str) -> bytes:
    """What every payload AAD of a log starts with (the verifier builds millions of them)."""
    return f"handoff-ledger/payload/v1\n{log_id}\n".encode()


def payload_cipher(data_key: bytes) -> AESGCM:
    """The AES-GCM context of a data key: built once per key and batch, not per payload
    (the key schedule costs twice the encryption of a 1.5 KB payload)."""
    return AESGCM(data_key)


def seal_payload(
    cipher: AESGCM, salt: bytes, canonical_data: bytes, aad: bytes, *, nonce: bytes
) -> bytes:
    """``nonce || AES-GCM(salt || canonical_data)``; ``nonce`` from :func:`fresh_nonces`."""
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"nonce must be {NONCE_SIZE} bytes")
    return nonce + cipher.encrypt(nonce, salt + canonical_data, aad)


def unseal_payload(data_key: bytes, blob: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """Returns ``(salt, canonical_data)``."""
    plain = unseal(data_key, blob, aad)
    if len(plain) < SALT_SIZE:
        raise DecryptionFailed("payload plaintext is shorter than its salt")
    return plain[:SALT_SIZE], plain[SALT_SIZE:]
