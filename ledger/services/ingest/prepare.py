"""Ingest: request body -> validated events -> prepared events -> the group committer.

Everything that can be done without a sequence number happens here, outside the log's lock:
parsing, validation, the card-data guard, canonicalization, the salted commitment. A request is
rejected whole, naming the bad event by JSON Pointer, before anything reaches the database.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from ledger.core.canonical import canonicalize
from ledger.core.commitment import new_salt, new_salts, payload_commitment
from ledger.core.entry import EventHeader
from ledger.domain import PreparedEvent
from ledger.errors import CanonicalizationError, EventInvalid, MalformedRequest, PayloadTooLarge
from ledger.events import GuardPolicy, ValidatedEvent, validate_event

REDACTIONS_FIELD = "ledger_redactions"
"""Where the guard's own redaction records are kept inside a masked payload."""


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_events: int = 1000
    max_event_bytes: int = 1 << 20


def parse_body(body: bytes, limits: IngestLimits) -> tuple[list[Any], bool]:
    """``(raw events, is_batch)``; one event or ``{"events": [...]}``."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise MalformedRequest('request body must be a JSON object: one event or {"events": [...]}')
    if "events" in doc and "specversion" not in doc:
        events = doc["events"]
        if not isinstance(events, list):
            raise EventInvalid("/events", "must be an array of events")
        if not events:
            raise EventInvalid("/events", "must hold at least one event")
        if len(events) > limits.max_events:
            raise PayloadTooLarge(
                f"a batch holds at most {limits.max_events} events; this one has {len(events)}"
            )
        # No event can be larger than the whole body: measure each only when that could matter.
        for index, event in enumerate(events if len(body) > limits.max_event_bytes else ()):
            size = len(orjson.dumps(event))
            if size > limits.max_event_bytes:
                raise PayloadTooLarge(
                    f"/events/{index}: event is {size} bytes; the limit is {limits.max_event_bytes}"
                )
        return events, True
    if len(body) > limits.max_event_bytes:
        raise PayloadTooLarge(f"event is {len(body)} bytes; the limit is {limits.max_event_bytes}")
    return [doc], False


def validate_all(
    raws: list[Any], *, batch: bool, policy: GuardPolicy, fingerprint_key: bytes
) -> list[ValidatedEvent]:
    out = []
    for index, raw in enumerate(raws):
        try:
            out.append(validate_event(raw, policy=policy, fingerprint_key=fingerprint_key))
        except EventInvalid as exc:
            raise exc.at_index(index, batch=batch) from None
    return out


def prepare(event: ValidatedEvent, salt: bytes | None = None) -> PreparedEvent:
    data = event.data
    if event.redactions:
        data = {**data, REDACTIONS_FIELD: event.redactions}
    try:
        canonical_data = canonicalize(data)
        envelope_bytes = canonicalize(event.envelope)
    except CanonicalizationError as exc:
        raise EventInvalid("/data", f"cannot be canonicalized (RFC 8785): {exc}") from exc
    salt = salt or new_salt()
    header = EventHeader(
        event_id=event.event_id,
        source=event.source,
        type=event.type,
        time=event.time,
        conversation_id=event.conversation_id,
        actor={"kind": event.actor.get("kind"), "id": event.actor.get("id")},
        outcome=event.outcome,
        resource=event.resource,
    )
    return prepared_event(
        header,
        scope=f"conversation:{event.conversation_id}",
        canonical_data=canonical_data,
        envelope_bytes=envelope_bytes,
        salt=salt,
    )


def prepared_event(
    header: EventHeader, *, scope: str, canonical_data: bytes, envelope_bytes: bytes, salt: bytes
) -> PreparedEvent:
    """The sequencer's input: the salted commitment, and the digest that tells a retry (same
    envelope and payload) from a conflicting reuse of its ``(source, id)``."""
    return PreparedEvent(
        header=header,
        scope=scope,
        salt=salt,
        canonical_data=canonical_data,
        commitment=payload_commitment(salt, canonical_data),
        request_digest=hashlib.sha256(envelope_bytes + b"\n" + canonical_data).digest(),
    )


def prepare_all(events: list[ValidatedEvent], *, batch: bool) -> list[PreparedEvent]:
    out = []
    salts = new_salts(len(events))
    for index, event in enumerate(events):
        try:
            out.append(prepare(event, next(salts)))
        except EventInvalid as exc:
            raise exc.at_index(index, batch=batch) from None
    return out
