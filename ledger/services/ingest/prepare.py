"""Ingest: request body -> validated events -> prepared events -> the group committer.

Everything that can be done without a sequence number happens here, outside the log's lock:
parsing, validation, the card-data guard, canonicalization, the salted commitment. A request is
rejected whole, naming the bad event by JSON Pointer, before anything reaches the database.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ledger.core.canonical import canonicalize
from ledger.core.commitment import new_salt, new_salts, payload_commitment
from ledger.core.entry import EventHeader
from ledger.domain import LogInfo, PreparedEvent
from ledger.errors import CanonicalizationError, EventInvalid, MalformedRequest, PayloadTooLarge
from ledger.events import GuardPolicy, ValidatedEvent, strict_json, validate_event
from ledger.events.pointer import join
from ledger.services.ingest.signatures import SignatureChecker, signature_policy, signed_parts

REDACTIONS_FIELD = "ledger_redactions"
"""Where the guard's own redaction records are kept inside a masked payload."""


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_events: int = 1000
    max_event_bytes: int = 1 << 20
    """The size of an event is that of its canonical bytes as the ledger keeps them (see
    :func:`event_size`), whether it is posted alone or in a batch."""


# RFC 8785 writes ``{"data":…}`` after the envelope's other attributes (there is always one):
# the event's canonical bytes are the envelope's without its "}", this, the data's, and "}".
_DATA_MEMBER = b',"data":'


def event_size(envelope_bytes: bytes, canonical_data: bytes) -> int:
    """The length of the canonical (RFC 8785) event the ledger keeps: its attributes, time and
    content type normalised, and its data (with the guard's redaction records if it masked)."""
    return len(envelope_bytes) + len(_DATA_MEMBER) + len(canonical_data)


def parse_body(body: bytes, limits: IngestLimits) -> tuple[list[Any], bool]:
    """``(raw events, is_batch)``; one event or ``{"events": [...]}``. Read as I-JSON: a
    member name twice in one object is refused (:mod:`ledger.events.strict_json`)."""
    doc = strict_json.loads(body)
    if not isinstance(doc, dict):
        raise MalformedRequest('request body must be a JSON object: one event or {"events": [...]}')
    if "events" in doc and "specversion" not in doc:
        for name in doc:
            if name != "events":  # never dropped silently
                raise EventInvalid(join("", name), 'unknown member; a batch is {"events": [...]}')
        events = doc["events"]
        if not isinstance(events, list):
            raise EventInvalid("/events", "must be an array of events")
        if not events:
            raise EventInvalid("/events", "must hold at least one event")
        if len(events) > limits.max_events:
            raise PayloadTooLarge(
                f"a batch holds at most {limits.max_events} events; this one has {len(events)}"
            )
        return events, True
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


def prepare(
    event: ValidatedEvent, salt: bytes | None = None, *, max_event_bytes: int | None = None
) -> PreparedEvent:
    """The event, canonicalized and committed to; ``PayloadTooLarge`` (no pointer: the caller
    names the event) if its :func:`event_size` is over ``max_event_bytes``."""
    data = event.data
    if event.redactions:
        data = {**data, REDACTIONS_FIELD: event.redactions}
    try:
        canonical_data = canonicalize(data)
        envelope_bytes = canonicalize(event.envelope)
    except CanonicalizationError as exc:
        raise EventInvalid("/data", f"cannot be canonicalized (RFC 8785): {exc}") from exc
    size = event_size(envelope_bytes, canonical_data)
    if max_event_bytes is not None and size > max_event_bytes:
        raise PayloadTooLarge(
            f"event is {size} bytes as the ledger keeps it (canonical JSON); "
            f"the limit is {max_event_bytes}"
        )
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
        trace=event.trace,
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


def prepare_all(
    events: list[ValidatedEvent],
    *,
    batch: bool,
    max_event_bytes: int | None = None,
    log: LogInfo | None = None,
    signatures: SignatureChecker | None = None,
) -> list[PreparedEvent]:
    """Prepare each event; with ``signatures``, a signed event commits with its writer's salt
    and its signature is signed in (``log``'s policy says whether one is required, or refused);
    the caller runs ``signatures.verify()`` before anything is stored."""
    out = []
    salts = new_salts(len(events))
    policy = signature_policy(log) if log is not None and signatures is not None else "off"
    if signatures is not None:
        signatures.batch = batch
    for index, event in enumerate(events):
        try:
            signed = signed_parts(event, policy=policy)
            if signed is None:
                out.append(prepare(event, next(salts), max_event_bytes=max_event_bytes))
            else:
                assert signatures is not None
                prepared = prepare(event, signed.salt, max_event_bytes=max_event_bytes)
                out.append(signatures.sign_in(event, prepared, signed.jws, index))
        except EventInvalid as exc:
            raise exc.at_index(index, batch=batch) from None
        except PayloadTooLarge as exc:
            raise PayloadTooLarge(f"/events/{index}: {exc}" if batch else str(exc)) from None
    return out
