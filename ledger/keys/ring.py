"""The master keys one process holds, keyed by master key id.

During a master-key rotation a process holds the old and the new key: every key row records the
id of the master key that wrapped it (``master_key_id``; NULL for rows wrapped before ids were
recorded, migration 0012), so the ring opens each row with the right one, and wraps new keys
under ``wrapping_id``: the configured primary, or the target of a rotation in progress once the
database names it (``follow``).

Errors say which master key and what failed, never any key byte: a provider's own exception
(a KMS that cannot be reached, a denied request) is named by its class only.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ledger.errors import ConfigurationError, DecryptionFailed, KeyProviderUnavailable, LedgerError
from ledger.keys.provider import KeyProvider, LocalKeyProvider

FINGERPRINT_LABEL = b"handoff-ledger/pan-fingerprint/v1"
"""The label the card guard's fingerprint key was derived under before it was stored wrapped."""


class MasterKeyRing:
    """Providers by master key id; the first is the primary (wraps new keys unless a rotation
    names another). Safe to share between threads."""

    def __init__(self, providers: Sequence[KeyProvider]) -> None:
        if not providers:
            raise ConfigurationError("no master key configured")
        self._providers: dict[str, KeyProvider] = {}
        for provider in providers:
            self._providers.setdefault(provider.key_id, provider)
        self.primary_id = providers[0].key_id
        self._wrapping_id = self.primary_id
        self._lock = threading.Lock()

    @classmethod
    def local(cls, key: bytes) -> MasterKeyRing:
        """One local key (tests, benchmarks, the environment variable of old)."""
        return cls([LocalKeyProvider(key)])

    @property
    def ids(self) -> list[str]:
        """The master key ids held, the primary first."""
        return list(self._providers)

    @property
    def wrapping_id(self) -> str:
        return self._wrapping_id

    def holds(self, key_id: str) -> bool:
        return key_id in self._providers

    def add(self, provider: KeyProvider) -> None:
        """Hold one more master key (a rotation's target given on the command line)."""
        with self._lock:
            self._providers.setdefault(provider.key_id, provider)

    def follow(self, active_id: str | None) -> bool:
        """Wrap new keys under ``active_id`` (the database's active master key) when this ring
        holds it, else under the primary. Returns whether the ring holds ``active_id``."""
        held = active_id is not None and active_id in self._providers
        self._wrapping_id = active_id if held and active_id is not None else self.primary_id
        return held or active_id is None

    def wrap(self, plaintext: bytes, *, context: bytes, key_id: str | None = None) -> bytes:
        """``plaintext`` wrapped under ``key_id`` (default: ``wrapping_id``)."""
        key_id = key_id or self._wrapping_id
        provider = self._provider(key_id)
        try:
            return provider.wrap(plaintext, context=context)
        except LedgerError:
            raise
        except Exception as exc:  # a plugin's own error: named by class, never echoed
            raise KeyProviderUnavailable(
                f"master key {key_id} could not wrap a key ({type(exc).__name__})"
            ) from None

    def unwrap(self, key_id: str | None, wrapped: bytes, *, context: bytes) -> bytes:
        """The plaintext of a key wrapped under ``key_id``; ``None`` (a row wrapped before ids
        were recorded): whichever held key opens it, the primary first (AES-GCM authenticates,
        so a wrong key fails, it never yields wrong bytes)."""
        if key_id is not None:
            return self._unwrap_with(self._provider(key_id), wrapped, context)
        for provider in list(self._providers.values()):
            try:
                return self._unwrap_with(provider, wrapped, context)
            except DecryptionFailed:
                continue
        raise DecryptionFailed(
            f"no configured master key ({', '.join(self._providers)}) opens this key"
        )

    def legacy_fingerprint_key(self) -> bytes | None:
        """The card guard's fingerprint key as it was derived from a local primary key before
        it was stored wrapped; None for a provider that cannot derive (a KMS)."""
        primary = self._providers[self.primary_id]
        return primary.derive(FINGERPRINT_LABEL) if isinstance(primary, LocalKeyProvider) else None

    def provider(self, key_id: str) -> KeyProvider:
        """The held provider of ``key_id`` (``DecryptionFailed`` if not held)."""
        return self._provider(key_id)

    def _provider(self, key_id: str) -> KeyProvider:
        provider = self._providers.get(key_id)
        if provider is None:
            raise DecryptionFailed(
                f"master key {key_id} is not configured in this process"
                f" (it holds {', '.join(self._providers)})"
            )
        return provider

    @staticmethod
    def _unwrap_with(provider: KeyProvider, wrapped: bytes, context: bytes) -> bytes:
        try:
            return provider.unwrap(wrapped, context=context)
        except DecryptionFailed:
            raise DecryptionFailed(
                f"master key {provider.key_id} does not open this key"
                " (tampered, moved, or wrapped by another key)"
            ) from None
        except LedgerError:
            raise
        except Exception as exc:
            raise KeyProviderUnavailable(
                f"master key {provider.key_id} could not unwrap a key ({type(exc).__name__})"
            ) from None

    def __repr__(self) -> str:
        return f"MasterKeyRing({', '.join(self._providers)}; wraps under {self._wrapping_id})"

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled to verification processes as its providers (a plugin's re-creates itself
        from its spec: ``ledger.keys.config.PluginProvider``)."""
        return _rebuild, (list(self._providers.values()), self._wrapping_id)


def _rebuild(providers: list[KeyProvider], wrapping_id: str) -> MasterKeyRing:
    ring = MasterKeyRing(providers)
    ring._wrapping_id = wrapping_id
    return ring
