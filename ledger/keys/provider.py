"""The key-provider interface: envelope operations under a master key that stays where it is.

A provider wraps (encrypts) and unwraps (decrypts) short secrets, data keys and signing keys,
under its own key, bound to a ``context`` (the associated data: which log, scope or key id the
secret belongs to, so a wrapped key moved to another row fails to open). It never hands its key
out: a cloud KMS fits as is (AWS KMS ``Encrypt``/``Decrypt`` with ``EncryptionContext``,
HashiCorp Vault Transit ``encrypt``/``decrypt`` with ``associated_data``), see
``docs/key-providers.md``.

``key_id`` names the master key for as long as it exists: it is stored beside every key it
wrapped (``master_key_id``), so a keyring holding several master keys during a rotation knows
which one opens which row. It must not reveal the key: the local provider's id is a key check
value, the first 8 bytes of ``HMAC-SHA256(key, "handoff-ledger/master-key-id/v1")``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol, runtime_checkable

from ledger.core.sealing import KEY_SIZE, seal, unseal

KEY_ID_LABEL = b"handoff-ledger/master-key-id/v1"


@runtime_checkable
class KeyProvider(Protocol):
    """A master key that wraps and unwraps other keys; its own bytes never leave it."""

    @property
    def key_id(self) -> str:
        """Stable, printable, not secret: ``local:<16 hex>``, ``vault-transit:<key name>``."""
        ...

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
        """``plaintext`` encrypted and authenticated under the master key and ``context``."""
        ...

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        """The plaintext; raises ``DecryptionFailed`` when the blob or context does not match
        (tampered, moved, or wrapped by another key)."""
        ...


def local_key_id(key: bytes) -> str:
    """The id of a local master key: a key check value, one-way (it reveals nothing of the key
    beyond telling two keys apart)."""
    return "local:" + hmac.new(key, KEY_ID_LABEL, hashlib.sha256).digest()[:8].hex()


class LocalKeyProvider:
    """A 32-byte master key held in this process (from a file or an environment variable):
    AES-256-GCM, ``nonce || ciphertext || tag`` (``ledger.core.sealing``), the layout every key
    was wrapped in before providers existed, so existing rows open unchanged."""

    __slots__ = ("_key", "_key_id", "origin")

    def __init__(self, key: bytes, *, origin: str = "configured key") -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"a master key is {KEY_SIZE} bytes")
        self._key = key
        self._key_id = local_key_id(key)
        self.origin = origin
        """Where the key came from (``env:LEDGER_MASTER_KEY``, ``file:/etc/…``): for messages."""

    @property
    def key_id(self) -> str:
        return self._key_id

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
        return seal(self._key, plaintext, context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        return unseal(self._key, wrapped, context)

    def derive(self, label: bytes) -> bytes:
        """``HMAC-SHA256(key, label)``: only for secrets that were derived from the master key
        before they were stored wrapped (the card guard's fingerprint key), so their values do
        not change when a deployment upgrades."""
        return hmac.new(self._key, label, hashlib.sha256).digest()

    def __repr__(self) -> str:  # never the key
        return f"LocalKeyProvider({self._key_id}, from {self.origin})"

    def __reduce__(self) -> tuple[type[LocalKeyProvider], tuple[bytes], dict[str, str]]:
        """Pickled to verification processes (``ledger verify --jobs``) with its key, as the
        store it belongs to always was."""
        return LocalKeyProvider, (self._key,), {"origin": self.origin}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.origin = state["origin"]
