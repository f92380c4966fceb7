"""What the renderers share: chunking, times, and the one rule on payloads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from ledger.services.exports.model import ExportContext, ExportedEntry

CHUNK_SIZE: Final = 1 << 16
"""Rendered bytes are handed on in pieces of about this size (a row is far smaller)."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


def chunked(pieces: Iterable[bytes], size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """``pieces`` joined into chunks of at least ``size`` bytes (the last may be shorter)."""
    buffer: list[bytes] = []
    held = 0
    for piece in pieces:
        buffer.append(piece)
        held += len(piece)
        if held >= size:
            yield b"".join(buffer)
            buffer.clear()
            held = 0
    if buffer:
        yield b"".join(buffer)


def epoch_ms(value: object) -> int | None:
    """Milliseconds since the epoch of an RFC 3339 time as entries hold it, or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return (moment - _EPOCH) // _MS


def readable_payload(ctx: ExportContext, e: ExportedEntry) -> dict[str, Any] | None:
    """The payload a renderer may show: only one whose commitment matched, and never under
    ``pci-dss-10``, which is rendered from entry headers alone (even if a payload was passed)."""
    if ctx.profile == "pci-dss-10" or e.payload_status != "verified":
        return None
    return e.payload
