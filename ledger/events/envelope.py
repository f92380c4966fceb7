"""The CloudEvents 1.0 envelope (structured JSON mode) of a handoff event.

Context attributes (CloudEvents 1.0.2 §3.1 and the JSON format §3):

============== ===================================================================
``specversion`` ``"1.0"``
``id``          non-empty string of at most 256 characters, no control characters —
                a JSON number is refused, however it looks
``source``      URI-reference: an absolute URI (``urn:bot:acme-prod``, ``https://…``) or
                an absolute path (``/bots/acme``); no whitespace; at most 2048 characters
``type``        ``handoff.<name>.v<major>``, a registered type (:mod:`.catalogue`)
``time``        RFC 3339 ``date-time`` with an explicit zone (``Z`` or ``±hh:mm``);
                normalised to UTC with fixed microsecond precision (see :func:`normalise_time`)
``subject``     ``conversations/{id}``, the id 1-128 of ``A-Z a-z 0-9 . _ : -``, starting
                with a letter or digit
``datacontenttype`` optional; ``application/json`` (a ``charset=utf-8`` parameter is
                allowed); defaults to ``application/json``
``data``        a JSON object
============== ===================================================================

CloudEvents extension attributes are accepted only when the ledger knows them
(:data:`KNOWN_ATTRIBUTES`, the one list of every attribute name an event may carry); any other
is a 422 naming it, never answered 201 and dropped:

* :data:`KEPT_EXTENSIONS`, the W3C Trace Context of the CloudEvents distributed-tracing
  extension (``traceparent``, ``tracestate``): opaque trace ids that carry no personal data and
  tie an audit record to the writer's traces. Checked against the W3C grammar and kept in the
  entry's ``event`` object, so the leaf hash covers them and they survive erasure (which is why
  nothing that could be personal data is allowed there).
* ``writersignature`` and ``datasalt`` (:data:`~ledger.core.writer_signature.WRITER_ATTRIBUTES`):
  read by writer signatures, which check and store them themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from ledger.core.writer_signature import (
    MAX_JWS_LENGTH,
    SALT_ATTRIBUTE,
    WRITER_ATTRIBUTES,
)
from ledger.errors import EventInvalid
from ledger.events.fields import CONTROL_CHARACTERS, MAX_ID_LENGTH
from ledger.events.guard import reject_card_data
from ledger.events.pointer import join

SPECVERSION: Final = "1.0"
DATACONTENTTYPE: Final = "application/json"
CORE_ATTRIBUTES: Final = frozenset(
    {"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data"}
)
MAX_SOURCE_LENGTH: Final = 2048
CONVERSATION_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
"""What a conversation id may be: anything else names no conversation of any log."""
SUBJECT_PATTERN: Final = re.compile(f"conversations/({CONVERSATION_ID.pattern})")
SOURCE_PATTERN: Final = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.-]*:|/)[!-~]*")
TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
KEPT_EXTENSIONS: Final = frozenset({TRACEPARENT, TRACESTATE})
"""Extension attributes kept in the entry header (hashed, served, never erased)."""
KNOWN_ATTRIBUTES: Final = CORE_ATTRIBUTES | KEPT_EXTENSIONS | WRITER_ATTRIBUTES
"""Every attribute name an event may carry; anything else is refused (422), not dropped."""
REFUSED_CLOUDEVENTS_ATTRIBUTES: Final = {
    "dataschema": "not kept: an event's type names its schema (GET /v1/schemas/{type})",
    "data_base64": "not accepted: data must be a JSON object (structured JSON mode)",
}
"""CloudEvents 1.0 attributes the ledger does not take, with why."""
TRACEPARENT_PATTERN: Final = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
"""W3C Trace Context §3.2 (``version-traceid-parentid-flags``, lowercase hex)."""
TRACESTATE_MEMBER: Final = re.compile(
    r"[a-z0-9][a-z0-9_*/@-]{0,255}=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]",
    re.ASCII,
)
"""One ``key=value`` list member of W3C Trace Context §3.3 (simple or ``tenant@system`` key;
printable ASCII value without ``,`` and ``=``, not ending in a space)."""
MAX_TRACESTATE_LENGTH: Final = 512
MAX_TRACESTATE_MEMBERS: Final = 32
TIME_PATTERN: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
DATACONTENTTYPE_PATTERN: Final = re.compile(
    r"application/json(?:\s*;\s*charset=\"?utf-8\"?)?", re.IGNORECASE
)


@dataclass(frozen=True)
class Envelope:
    """The envelope's attributes, checked. ``time`` is normalised; ``attributes`` is the
    envelope as posted minus ``data``, with ``time`` normalised and ``datacontenttype`` written
    one way (what a retry is compared on)."""

    id: str
    source: str
    type: str
    time: str
    conversation_id: str
    data: dict[str, Any]
    attributes: dict[str, Any]
    trace: dict[str, str]
    """The kept extension attributes (:data:`KEPT_EXTENSIONS`) that were posted."""


def parse_envelope(raw: dict[str, Any]) -> Envelope:
    """Check the envelope of one event, attribute by attribute in the order of the spec."""
    if raw.get("specversion") != SPECVERSION:
        _require(raw, "specversion")
        raise EventInvalid("/specversion", f'must be "{SPECVERSION}" (CloudEvents 1.0)')

    event_id = _string(raw, "id", "an identifier")
    if len(event_id) > MAX_ID_LENGTH or CONTROL_CHARACTERS.search(event_id):
        raise EventInvalid(
            "/id", f"must be 1 to {MAX_ID_LENGTH} characters without control characters"
        )

    source = _string(raw, "source", "a URI")
    if len(source) > MAX_SOURCE_LENGTH or not SOURCE_PATTERN.fullmatch(source):
        raise EventInvalid(
            "/source",
            "must be a URI-reference such as 'urn:bot:acme-prod' or '/bots/acme' "
            f"(no whitespace, at most {MAX_SOURCE_LENGTH} characters)",
        )

    type_string = _string(raw, "type", "an event type such as 'handoff.tool.call.v1'")
    time = normalise_time(_string(raw, "time", "an RFC 3339 timestamp"))

    subject = _string(raw, "subject", "'conversations/{id}'")
    match = SUBJECT_PATTERN.fullmatch(subject)
    if match is None:
        raise EventInvalid(
            "/subject",
            "must be 'conversations/{id}', the id 1 to 128 of A-Z a-z 0-9 . _ : - "
            "starting with a letter or digit",
        )

    attributes = {name: value for name, value in raw.items() if name != "data"}
    if "datacontenttype" in raw:
        content_type = raw["datacontenttype"]
        if not isinstance(content_type, str) or not DATACONTENTTYPE_PATTERN.fullmatch(content_type):
            raise EventInvalid("/datacontenttype", f'must be "{DATACONTENTTYPE}"')
    # What is compared on a retry is what the ledger keeps, not how it was spelled: the same
    # instant in another notation, or the same content type, is the same event.
    attributes["datacontenttype"] = DATACONTENTTYPE
    attributes["time"] = time

    data = _require(raw, "data")
    if not isinstance(data, dict):
        raise EventInvalid("/data", "must be a JSON object")

    trace: dict[str, str] = {}
    for name, value in raw.items():
        if name in WRITER_ATTRIBUTES:  # writer signatures check the rest
            _check_writer_attribute(name, value, event_id)
        elif name not in CORE_ATTRIBUTES:
            _check_extension(name, value)
            if name in KEPT_EXTENSIONS:
                trace[name] = value

    return Envelope(event_id, source, type_string, time, match.group(1), data, attributes, trace)


def normalise_time(value: str) -> str:
    """An RFC 3339 ``date-time`` (§5.6) with an explicit zone, as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.

    Fixed microsecond precision (NIST AU-8): shorter fractions are padded with zeros, longer
    ones truncated (never rounded, so an instant never moves into the next second). A naive
    time, a space for ``T``, a leap second (``:60``) and impossible dates are refused.
    ``-00:00`` ("UTC, local offset unknown", §4.3) is read as UTC.
    """
    match = TIME_PATTERN.fullmatch(value)
    if match is None:
        raise EventInvalid(
            "/time",
            "must be an RFC 3339 date-time with a zone, e.g. 2026-11-20T09:14:00.000Z "
            "or 2026-11-20T10:14:00+01:00",
        )
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if zulu:
        zone = UTC
    else:
        hours, minutes = int(off_h), int(off_m)
        if hours > 23 or minutes > 59:
            raise EventInvalid("/time", "has an impossible UTC offset")
        offset = timedelta(hours=hours, minutes=minutes)
        zone = timezone(-offset if sign == "-" else offset)
    micros = int((fraction or "")[:6].ljust(6, "0"))
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, zone
        )
        utc = moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise EventInvalid("/time", "is not a valid date and time (or is a leap second)") from exc
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond:06d}Z"
    )


def _require(raw: dict[str, Any], name: str) -> Any:
    if name not in raw:
        raise EventInvalid(join("", name), "required attribute is missing")
    return raw[name]


def _string(raw: dict[str, Any], name: str, what: str) -> str:
    value = _require(raw, name)
    if not isinstance(value, str):
        never_number = " (identifiers are never JSON numbers)" if name == "id" else ""
        raise EventInvalid(join("", name), f"must be a string, {what}{never_number}")
    if not value:
        raise EventInvalid(join("", name), "must not be empty")
    return value


SALT_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")
"""Canonical base64url, no padding, of exactly 32 bytes (the last character's two spare bits
are zero): the only text a ``datasalt`` may be."""
JWS_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+\.\.[A-Za-z0-9_-]*")
"""A detached compact JWS: base64url header, two dots, base64url signature; nothing else."""


def _check_writer_attribute(name: str, value: object, event_id: str) -> None:
    """``datasalt`` and ``writersignature`` have one exact shape each, checked here; the card
    guard does not scan them (it costs ~7 µs an event, a tenth of signed ingest's overhead
    beyond the Ed25519 check). That is safe: neither is customer data. A salt is 32 random
    bytes and a signature 64 bytes computed by Ed25519, each as base64url characters only;
    the header is base64url too, and writer signatures then accept it only as exactly
    ``alg``/``b64``/``crit``/``kid`` with fixed values and the kid of a registered key, so no
    free text of the writer's reaches the entry through either attribute."""
    pointer = join("", name)
    if name == SALT_ATTRIBUTE:
        if not isinstance(value, str) or not SALT_SHAPE.fullmatch(value):
            raise EventInvalid(
                pointer, f"event {event_id!r}: must be 32 bytes, base64url without padding"
            )
    elif (
        not isinstance(value, str) or len(value) > MAX_JWS_LENGTH or not JWS_SHAPE.fullmatch(value)
    ):
        raise EventInvalid(
            pointer,
            f"event {event_id!r}: must be a detached compact JWS string: base64url(header), '..', "
            f"base64url(signature), at most {MAX_JWS_LENGTH} characters",
        )


def _check_extension(name: str, value: object) -> None:
    pointer = join("", name)
    reject_card_data(name, value, pointer)
    if name in REFUSED_CLOUDEVENTS_ATTRIBUTES:
        raise EventInvalid(pointer, REFUSED_CLOUDEVENTS_ATTRIBUTES[name])
    if name not in KNOWN_ATTRIBUTES:
        # Answering 201 and dropping it would lose data silently; keeping an arbitrary one in
        # the entry header could make personal data unerasable.
        raise EventInvalid(
            pointer,
            "unknown attribute; the extension attributes the ledger keeps are "
            + ", ".join(sorted(KEPT_EXTENSIONS)),
        )
    if name not in KEPT_EXTENSIONS:
        return
    if not isinstance(value, str):
        raise EventInvalid(pointer, "must be a string")
    if name == TRACEPARENT and not TRACEPARENT_PATTERN.fullmatch(value):
        raise EventInvalid(
            pointer,
            "must be a W3C traceparent: version-traceid-parentid-flags in lowercase hex, "
            "e.g. 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
    if name == TRACESTATE:
        _check_tracestate(value, pointer)


def _check_tracestate(value: str, pointer: str) -> None:
    members = [member.strip(" \t") for member in value.split(",")] if value else []
    if (
        len(value) > MAX_TRACESTATE_LENGTH
        or len(members) > MAX_TRACESTATE_MEMBERS
        or not all(TRACESTATE_MEMBER.fullmatch(member) for member in members if member)
    ):
        raise EventInvalid(
            pointer,
            f"must be a W3C tracestate: up to {MAX_TRACESTATE_MEMBERS} comma-separated "
            f"key=value members, at most {MAX_TRACESTATE_LENGTH} characters",
        )
