"""The salted payload commitment an entry carries instead of its payload.

``commitment = SHA-256(salt || canonical(data))`` with a fresh 32-byte salt per event. The salt
travels inside the encrypted payload, so once the data key is destroyed neither the content nor
the salt survives, and the commitment can no longer be tested against guesses (GDPR Art. 17;
EDPB guidance on keeping personal data out of immutable structures).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator

SALT_SIZE = 32
COMMITMENT_ALG = "sha256-salted"


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_SIZE)


def new_salts(count: int) -> Iterator[bytes]:
    """``count`` salts from one CSPRNG call (a batch costs one syscall, not one per event)."""
    pool = secrets.token_bytes(SALT_SIZE * count)
    return (pool[i : i + SALT_SIZE] for i in range(0, len(pool), SALT_SIZE))


def payload_commitment(salt: bytes, canonical_data: bytes) -> bytes:
    if len(salt) != SALT_SIZE:
        raise ValueError(f"salt must be {SALT_SIZE} bytes, got {len(salt)}")
    return hashlib.sha256(salt + canonical_data).digest()


def commitment_matches(commitment: bytes, salt: bytes, canonical_data: bytes) -> bool:
    """Constant-time comparison; the caller turns a mismatch into its own domain error."""
    return hmac.compare_digest(commitment, payload_commitment(salt, canonical_data))
