"""Plain value objects passed between storage, services and the edges."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledger.core.entry import EventHeader


@dataclass(frozen=True, slots=True)
class LogInfo:
    id: str
    origin: str
    tenant: str
    kind: str
    policy: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as the ledger established it (never what the caller claims)."""

    credential_id: int
    log_id: str
    role: str
    label: str

    def as_writer(self) -> dict[str, Any]:
        return {"credential": self.credential_id, "role": self.role, "label": self.label}


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """A validated event, ready for the sequencer: everything that does not need a seq."""

    header: EventHeader
    scope: str
    """Erasure scope: whose data key seals the payload."""
    salt: bytes
    canonical_data: bytes
    commitment: bytes
    request_digest: bytes


@dataclass(frozen=True, slots=True)
class Receipt:
    event_id: str
    seq: int
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class AppendResult:
    receipts: list[Receipt]
    created: bool
    """False when every event was already in the log (an idempotent retry)."""
    checkpoint: str
