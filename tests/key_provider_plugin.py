"""An in-process key provider for the tests, plugged in through ``LEDGER_KEY_PROVIDER``
(``tests.key_provider_plugin:transit:NAME``), shaped like a KMS's envelope API: the ledger
hands it a key and a context and gets an opaque blob back, and never sees the provider's key.

Its wire format is not the local provider's (a versioned prefix, as Vault Transit's
``vault:v1:``), so a test can tell which provider wrapped a row. ``CALLS`` counts what the
ledger asked of it; ``FAIL_AFTER`` makes it fail like an unreachable KMS after that many calls
(a rotation interrupted half-way).
"""

from __future__ import annotations

import hashlib
from collections import Counter

from ledger.core.sealing import seal, unseal

CALLS: Counter[str] = Counter()
FAIL_AFTER: dict[str, int] = {}
"""Key name -> number of wrap calls after which every call raises ``ConnectionError``."""
UNREACHABLE: set[str] = set()
"""Key names whose unwrap raises ``TimeoutError`` (a KMS that does not answer)."""

PREFIX = b"test-kms:v1:"


class TransitKey:
    """One named key of the pretend KMS; its bytes stay inside it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._key = hashlib.sha256(b"test-kms key " + name.encode()).digest()

    @property
    def key_id(self) -> str:
        return f"test-kms:{self.name}"

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
        CALLS[f"{self.name}:wrap"] += 1
        limit = FAIL_AFTER.get(self.name)
        if limit is not None and CALLS[f"{self.name}:wrap"] > limit:
            raise ConnectionError("test-kms unreachable")
        return PREFIX + seal(self._key, plaintext, context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        CALLS[f"{self.name}:unwrap"] += 1
        if self.name in UNREACHABLE:
            raise TimeoutError(f"test-kms timed out unwrapping {wrapped.hex()}")
        if not wrapped.startswith(PREFIX):
            from ledger.errors import DecryptionFailed

            raise DecryptionFailed("not a test-kms blob")
        return unseal(self._key, wrapped[len(PREFIX) :], context)


def transit(name: str = "ledger") -> TransitKey:
    """The factory ``LEDGER_KEY_PROVIDER=tests.key_provider_plugin:transit:NAME`` calls."""
    return TransitKey(name)


def not_a_provider() -> object:
    return object()


def broken() -> TransitKey:
    raise RuntimeError("secret-token-123 rejected")  # a plugin error must not be echoed


NOT_CALLABLE = 42
