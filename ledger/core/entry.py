"""The ledger entry: the ledger-assigned header that is the Merkle leaf and the chain link.

An entry is RFC 8785 canonical JSON of::

    {"format": "handoff-ledger/entry/v1", "origin", "seq", "prev", "received_at",
     "event": {"id", "source", "type", "time", "subject", "conversation",
               ["traceparent"], ["tracestate"]},
     "actor": {"kind", "id"}, "outcome", "resource",
     "writer": {...server-derived principal...},
     "payload": {"alg": "sha256-salted", "commitment"},
     "conversation_prev", ["writer_signature"]}

``prev`` is the previous entry's leaf hash (32 zero bytes at seq 0): the log is a hash chain and
an RFC 6962 tree over the same leaves. ``conversation_prev`` is the seq of the same conversation's
previous entry (null for its first), so one conversation's trail is provably gap-free on its own.
``event`` also holds the CloudEvents trace extension attributes when the writer sent them (W3C
Trace Context: opaque ids, no personal data), so they are hashed and outlive erasure.
The event's ``data`` is not here: only its salted commitment, so erasing the payload leaves every
hash, proof and signature valid. Hashes are standard base64, as in checkpoints.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger.core.canonical import MAX_SAFE_INTEGER, canonicalize
from ledger.core.commitment import COMMITMENT_ALG
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
    trace: dict[str, str] = field(default_factory=dict)
    """``traceparent`` / ``tracestate`` as posted (only those posted), kept in ``event``."""


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
    """The entry as a JSON value: its definition. The sequencer writes the same bytes through
    :class:`EntryTemplate` (tests hold the two byte-identical)."""
    entry: dict[str, Any] = {
        "format": ENTRY_FORMAT,
        "origin": origin,
        "seq": seq,
        "prev": b64(prev),
        "received_at": received_at,
        "event": _event(header),
        "actor": header.actor,
        "outcome": header.outcome,
        "resource": header.resource,
        "writer": writer,
        "payload": _payload(commitment),
        "conversation_prev": conversation_prev,
    }
    if writer_signature is not None:
        entry["writer_signature"] = writer_signature
    return entry


def writer_known_fields(*, origin: str, header: EventHeader, commitment: bytes) -> dict[str, Any]:
    """The entry's fields a writer knows before posting, exactly as :func:`build_entry` writes
    them: what a writer signature's statement is made of (:mod:`ledger.core.writer_signature`)."""
    return {
        "actor": header.actor,
        "event": _event(header),
        "origin": origin,
        "outcome": header.outcome,
        "payload": _payload(commitment),
    }


def _event(header: EventHeader) -> dict[str, Any]:
    return {
        "id": header.event_id,
        "source": header.source,
        "type": header.type,
        "time": header.time,
        "subject": f"conversations/{header.conversation_id}",
        "conversation": header.conversation_id,
        **header.trace,
    }


def _payload(commitment: bytes) -> dict[str, Any]:
    return {"alg": COMMITMENT_ALG, "commitment": b64(commitment)}


@dataclass(frozen=True, slots=True)
class EntryTemplate:
    """An entry's canonical bytes with the four fields only the sequencer knows left open:
    ``conversation_prev``, ``prev``, ``received_at`` and ``seq``.

    RFC 8785 sorts object keys, and an entry's top-level keys are fixed ASCII names, so each
    open field sits at a fixed place between canonical pieces that are known before a seq is
    assigned::

        {"actor":…,"conversation_prev":⟨cp⟩,"event":…,"format":…,"origin":…,"outcome":…,
         "payload":…,"prev":"⟨prev⟩","received_at":"⟨time⟩","resource":…,"seq":⟨seq⟩,
         "writer":…[,"writer_signature":…]}

    The open values need no escaping: integers, standard base64 and an RFC 3339 time are
    plain ASCII. So the sequencer, holding the log's lock, only joins bytes; the
    canonicalization is done before it takes the lock.
    """

    head: bytes
    middle: bytes
    after_received: bytes
    end: bytes

    def fill(
        self, *, seq: int, prev: bytes, received_at: bytes, conversation_prev: int | None
    ) -> bytes:
        """The canonical bytes. ``prev`` is the previous leaf hash (raw); ``received_at`` is
        :func:`format_time`'s text as ASCII bytes."""
        back_link_ok = conversation_prev is None or 0 <= conversation_prev < seq
        if not (0 <= seq <= MAX_SAFE_INTEGER and back_link_ok):
            raise ValueError(f"seq {seq} / conversation_prev {conversation_prev} out of range")
        return b"".join(
            (
                self.head,
                b"null" if conversation_prev is None else b"%d" % conversation_prev,
                self.middle,
                base64.b64encode(prev),
                b'","received_at":"',
                received_at,
                self.after_received,
                b"%d" % seq,
                self.end,
            )
        )


def entry_template(
    *,
    origin: str,
    header: EventHeader,
    writer: bytes,
    commitment: bytes,
    writer_signature: str | None = None,
) -> EntryTemplate:
    """The template of the entry :func:`build_entry` defines. ``writer`` is the canonical JSON
    of the writer principal, shared by all events of one request."""
    end = b',"writer":' + writer
    if writer_signature is not None:
        end += b',"writer_signature":' + canonicalize(writer_signature)
    return EntryTemplate(
        head=b'{"actor":' + canonicalize(header.actor) + b',"conversation_prev":',
        middle=b"".join(
            (
                b',"event":',
                canonicalize(_event(header)),
                b',"format":',
                canonicalize(ENTRY_FORMAT),
                b',"origin":',
                canonicalize(origin),
                b',"outcome":',
                canonicalize(header.outcome),
                b',"payload":',
                canonicalize(_payload(commitment)),
                b',"prev":"',
            )
        ),
        after_received=b'","resource":' + canonicalize(header.resource) + b',"seq":',
        end=end + b"}",
    )


def subject_fragment(subject: str) -> bytes:
    """The bytes every entry whose actor is the customer ``subject`` contains: entries are
    canonical (RFC 8785), so the actor reads the same in each. What finds a data subject's
    conversations, for exports and for erasure."""
    return canonicalize({"actor": {"id": subject, "kind": "customer"}})[1:-1]
