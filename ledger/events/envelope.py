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

Any other attribute is a CloudEvents extension: its name must be 1-20 lowercase ASCII
letters or digits and its value a string, an integer or a boolean (the JSON forms of the
CloudEvents type system). Extensions are kept with the envelope.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from ledger.core.canonical import MAX_SAFE_INTEGER
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
EXTENSION_NAME: Final = re.compile(r"[a-z0-9]{1,20}")
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

    for name, value in raw.items():
        if name not in CORE_ATTRIBUTES:
            _check_extension(name, value)

    return Envelope(event_id, source, type_string, time, match.group(1), data, attributes)


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


def _check_extension(name: str, value: object) -> None:
    pointer = join("", name)
    reject_card_data(name, value, pointer)
    if not EXTENSION_NAME.fullmatch(name):
        raise EventInvalid(
            pointer,
            "unknown attribute; extension names are 1 to 20 lowercase letters or digits",
        )
    if isinstance(value, bool | str):
        return
    if isinstance(value, int) and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return
    raise EventInvalid(pointer, "an extension attribute must be a string, an integer or a boolean")
