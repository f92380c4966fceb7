"""The domain's values: what services, storage and the edges pass to each other.

Not rows: a ``LogInfo`` or ``Principal`` is read from the database, but a ``PreparedEvent`` or an
``AppendRequest`` exists only on its way to the sequencer, and a ``Receipt`` on its way back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger.core.entry import EventHeader

MAIN_CLUSTER = "main"
"""The PostgreSQL cluster ``LEDGER_DATABASE_URL`` names: it holds the placement table (which
cluster holds each log, migration 0014) and every log not placed elsewhere."""


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
    expires_at: datetime | None = None
    """When the credential stops authenticating (None: never; caches must not outlive it)."""

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
    writer_signature: str | None = None
    """The writer's detached JWS, checked at ingest; stored verbatim in the entry."""
    writer_key_id: int | None = None
    """The row of the writer key that made it: the sequencer refuses it if revoked meanwhile."""


@dataclass(slots=True)
class AppendRequest:
    """One client request: its events are appended all together or not at all."""

    events: Sequence[PreparedEvent]
    principal: Principal
    batch: bool = False
    """Posted as ``{"events": [...]}`` (even of one): a refusal's pointer is ``/events/<i>/…``."""


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
    appended: int = 0
    """How many of the receipts are for events new to the log."""
