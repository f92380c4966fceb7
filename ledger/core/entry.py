"""The ledger entry: the ledger-assigned header that is the Merkle leaf and the chain link.

An entry is RFC 8785 canonical JSON of::

    {"format": "handoff-ledger/entry/v1", "origin", "seq", "prev", "received_at",
     "event": {"id", "source", "type", "time", "subject", "conversation"},
     "actor": {"kind", "id"}, "outcome", "resource",
     "writer": {...server-derived principal...},
     "payload": {"alg": "sha256-salted", "commitment"},
     "conversation_prev", ["writer_signature"]}

``prev`` is the previous entry's leaf hash (32 zero bytes at seq 0): the log is a hash chain and
an RFC 6962 tree over the same leaves. ``conversation_prev`` is the seq of the same conversation's
previous entry (null for its first), so one conversation's trail is provably gap-free on its own.
The event's ``data`` is not here: only its salted commitment, so erasing the payload leaves every
hash, proof and signature valid. Hashes are standard base64, as in checkpoints.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger.core.canonical import canonicalize
from ledger.core.commitment import COMMITMENT_ALG
from ledger.core.merkle import leaf_hash
from ledger.core.types import HASH_SIZE, LeafHash

ENTRY_FORMAT = "handoff-ledger/entry/v1"
GENESIS_PREV = LeafHash(bytes(HASH_SIZE))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with fixed microsecond precision (NIST AU-8)."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class EventHeader:
    """What of the posted event the entry keeps in the clear (the skeleton left after erasure)."""

    event_id: str
    source: str
    type: str
    time: str
    conversation_id: str
    actor: dict[str, Any]
    outcome: str
    resource: dict[str, Any] | None


def build_entry(
    *,
    origin: str,
    seq: int,
    prev: bytes,
    received_at: str,
    header: EventHeader,
    writer: dict[str, Any],
    commitment: bytes,
    conversation_prev: int | None,
    writer_signature: str | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "format": ENTRY_FORMAT,
        "origin": origin,
        "seq": seq,
        "prev": b64(prev),
        "received_at": received_at,
        "event": {
            "id": header.event_id,
            "source": header.source,
            "type": header.type,
            "time": header.time,
            "subject": f"conversations/{header.conversation_id}",
            "conversation": header.conversation_id,
        },
        "actor": header.actor,
        "outcome": header.outcome,
        "resource": header.resource,
        "writer": writer,
        "payload": {"alg": COMMITMENT_ALG, "commitment": b64(commitment)},
        "conversation_prev": conversation_prev,
    }
    if writer_signature is not None:
        entry["writer_signature"] = writer_signature
    return entry


def encode_entry(entry: dict[str, Any]) -> tuple[bytes, LeafHash]:
    """The entry's canonical bytes and its leaf hash: the only way entries become bytes."""
    data = canonicalize(entry)
    return data, leaf_hash(data)
