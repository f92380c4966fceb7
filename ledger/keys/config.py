"""The master keys a process holds, from its settings.

A provider is named by a *spec*:

- ``env:NAME``: a local key, base64 of 32 bytes, in the environment variable ``NAME``;
- ``file:PATH``: a local key, base64 of 32 bytes, in a file (mode 0600, owned by the ledger);
- ``package.module:factory`` or ``package.module:factory:ARG``: a plugin, ``factory()`` or
  ``factory(ARG)`` returning a ``KeyProvider`` (a KMS client configured from its own
  environment; see ``docs/key-providers.md``).

The ring: ``LEDGER_KEY_PROVIDER`` (the primary, wraps new keys), else the local key of
``LEDGER_MASTER_KEY_FILE``, else of ``LEDGER_MASTER_KEY`` (as before providers existed), else in
development ``{data dir}/master.key``; then every spec of ``LEDGER_EXTRA_KEY_PROVIDERS``
(comma-separated: keys this process also unwraps with, during a master-key rotation).
"""

from __future__ import annotations

import base64
import binascii
import importlib
import os
import re
from pathlib import Path

from ledger.errors import ConfigurationError, LedgerError
from ledger.keys.provider import KeyProvider, LocalKeyProvider
from ledger.keys.ring import MasterKeyRing
from ledger.settings import Settings

_PLUGIN = re.compile(
    r"(?P<module>[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*):(?P<factory>[A-Za-z_]\w*)(?::(?P<arg>.+))?",
    re.ASCII,
)


def master_key_ring(settings: Settings, *, create: bool = False) -> MasterKeyRing:
    """Every master key this process is configured with, the primary first (``create``: in
    development, make the key file under the data directory if no key is configured)."""
    if settings.key_provider:
        primary = provider_from_spec(settings.key_provider)
    elif settings.master_key_file is not None:
        primary = _file_provider(settings.master_key_file)
    else:
        origin = "LEDGER_MASTER_KEY" if settings.master_key else "the development key file"
        primary = LocalKeyProvider(settings.master_key_for(create=create), origin=origin)
    extra = [provider_from_spec(s) for s in _specs(settings.extra_key_providers or "")]
    return MasterKeyRing([primary, *extra])


def provider_from_spec(spec: str) -> KeyProvider:
    """The provider a spec names; ``ConfigurationError`` saying what is wrong (never a key
    byte) for an unknown kind, a missing variable or file, a key that is not 32 bytes, a plugin
    that cannot be imported or does not return a provider."""
    spec = spec.strip()
    if spec.startswith("env:"):
        name = spec[4:]
        value = os.environ.get(name)
        if not name or value is None:
            raise ConfigurationError(f"key provider {spec!r}: the variable {name!r} is not set")
        return LocalKeyProvider(_decode(value, f"the variable {name}"), origin=spec)
    if spec.startswith("file:"):
        return _file_provider(Path(spec[5:]))
    match = _PLUGIN.fullmatch(spec)
    if match is None:
        raise ConfigurationError(
            f"unknown key provider {spec!r}: expected env:NAME, file:PATH or"
            " package.module:factory[:ARG]"
        )
    return PluginProvider(spec)


class PluginProvider:
    """A provider made by a plugin factory, named by its spec: pickled as the spec (a KMS
    client seldom pickles), so a verification process makes its own."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._inner = _load_plugin(spec)
        self._key_id = self._inner.key_id

    @property
    def key_id(self) -> str:
        return self._key_id

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
        return self._inner.wrap(plaintext, context=context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        return self._inner.unwrap(wrapped, context=context)

    def __reduce__(self) -> tuple[type[PluginProvider], tuple[str]]:
        return PluginProvider, (self.spec,)

    def __repr__(self) -> str:
        return f"PluginProvider({self.spec!r}, {self._key_id})"


def _load_plugin(spec: str) -> KeyProvider:
    match = _PLUGIN.fullmatch(spec)
    assert match is not None
    try:
        module = importlib.import_module(match["module"])
    except ImportError as exc:
        raise ConfigurationError(
            f"key provider {spec!r}: cannot import {match['module']!r} ({type(exc).__name__})"
        ) from None
    factory = getattr(module, match["factory"], None)
    if not callable(factory):
        raise ConfigurationError(
            f"key provider {spec!r}: {match['module']} has no callable {match['factory']!r}"
        )
    try:
        provider = factory(match["arg"]) if match["arg"] is not None else factory()
    except LedgerError:
        raise
    except Exception as exc:  # the plugin's own failure, named by class: never echoed
        raise ConfigurationError(
            f"key provider {spec!r}: the factory failed ({type(exc).__name__})"
        ) from None
    if not isinstance(provider, KeyProvider) or not isinstance(provider.key_id, str):
        raise ConfigurationError(
            f"key provider {spec!r}: the factory did not return a KeyProvider"
            " (key_id, wrap, unwrap)"
        )
    if not provider.key_id or not provider.key_id.isprintable() or len(provider.key_id) > 200:
        raise ConfigurationError(f"key provider {spec!r}: its key_id is empty or unprintable")
    return provider


def _file_provider(path: Path) -> LocalKeyProvider:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise ConfigurationError(f"master key file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"master key file {path} cannot be read ({type(exc).__name__})"
        ) from None
    return LocalKeyProvider(_decode(text.strip(), f"the file {path}"), origin=f"file:{path}")


def _decode(value: str, where: str) -> bytes:
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{where} does not hold valid base64") from None
    if len(key) != 32:
        raise ConfigurationError(f"{where} must decode to exactly 32 bytes")
    return key


def _specs(value: str) -> list[str]:
    return [s.strip() for s in value.split(",") if s.strip()]
