"""``validate_event``: from a posted JSON value to a :class:`ValidatedEvent`, or one precise error.

The steps, each raising :class:`~ledger.errors.EventInvalid` with an RFC 6901 pointer into the
event:

1. limits — plain JSON, depth ≤ 32, strings ≤ 256 KiB, safe integers (:mod:`.limits`);
2. the CloudEvents envelope (:mod:`.envelope`), then the type (:mod:`.catalogue`);
3. the card-data / PII guard over ``data`` (:mod:`.guard`) — before anything is hashed;
4. the type's model over the guarded ``data`` (strict), then its cross-field rules.

Pure: no clock, no database, no settings. The input is never mutated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ledger.errors import EventInvalid
from ledger.events.catalogue import lookup
from ledger.events.detectors import find_pans, mask
from ledger.events.envelope import parse_envelope
from ledger.events.guard import GuardPolicy, guard
from ledger.events.limits import check_limits
from ledger.events.pointer import pointer_for, resolve

_TYPE_OF_UNION: Final = frozenset({"part_type", "trigger_type"})
"""Our discriminated unions' errors: reported at the member's ``type``, not at the member."""
_MESSAGES: Final = {
    "missing": "required field is missing",
    "finite_number": "must be a finite number",
}
_TYPE_NAMES: Final = {
    "model_type": "a JSON object",
    "model_attributes_type": "a JSON object",
    "dict_type": "a JSON object",
    "list_type": "a JSON array",
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
}


@dataclass(frozen=True)
class ValidatedEvent:
    """One event that passed validation, in the shape the ingest service stores.

    ``time`` is the event time in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` — always exactly six
    fractional digits (microseconds), so it sorts as text and its precision is fixed (NIST AU-8).
    ``resource`` is the affected resource (AU-3): ``data.resource`` for ``data.access``,
    ``data.tool`` for ``tool.call``, ``data.target`` for ``sentiment.scored``, otherwise
    ``{"type", "id"}`` of the event (``redaction.applied``), customer, message, step,
    escalation, handoff, suggestion or conversation concerned.
    ``data`` is what to store: the posted ``data``, masked where the policy said so (then a
    copy; ``redactions`` lists one record per masking, paths relative to ``data``).
    ``envelope`` is the posted event minus ``data``, ``datacontenttype`` filled in if absent.
    ``trace`` holds the posted extension attributes the entry header keeps (``traceparent``,
    ``tracestate``).
    ``actor`` and ``resource`` are views into ``data``; treat all of it as read-only.
    """

    event_id: str
    source: str
    type: str
    time: str
    conversation_id: str
    actor: dict[str, Any]
    outcome: str
    resource: dict[str, Any] | None
    data: dict[str, Any]
    redactions: list[dict[str, Any]]
    envelope: dict[str, Any]
    trace: dict[str, str]


def validate_event(raw: object, *, policy: GuardPolicy, fingerprint_key: bytes) -> ValidatedEvent:
    """Validate one posted event. Raises :class:`EventInvalid` naming the first problem.

    ``fingerprint_key`` keys the HMAC fingerprints of masked values (PCI DSS 3.5.1.1); it must
    be at least 16 bytes when the policy masks anything
    (:class:`~ledger.errors.ConfigurationError` otherwise). No error message or pointer ever
    holds a card number: one that would is masked before it leaves.
    """
    try:
        return _validate(raw, policy, fingerprint_key)
    except EventInvalid as exc:
        error = exc
    safe = _without_card_numbers(error)
    if safe is error:
        raise error
    raise safe


def _validate(raw: object, policy: GuardPolicy, fingerprint_key: bytes) -> ValidatedEvent:
    if not isinstance(raw, dict):
        raise EventInvalid("", "an event must be a JSON object")
    check_limits(raw)
    envelope = parse_envelope(raw)
    spec = lookup(envelope.type)
    guarded = guard(envelope.data, policy=policy, fingerprint_key=fingerprint_key)
    data = guarded.data
    try:
        spec.model.model_validate(data)
    except ValidationError as exc:
        raise _translate(exc, data) from None
    for check in spec.checks:
        check(data)
    return ValidatedEvent(
        event_id=envelope.id,
        source=envelope.source,
        type=spec.type,
        time=envelope.time,
        conversation_id=envelope.conversation_id,
        actor=data["actor"],
        outcome=data["outcome"],
        resource=spec.resource(data, envelope.conversation_id),
        data=data,
        redactions=guarded.redactions,
        envelope=envelope.attributes,
        trace=envelope.trace,
    )


def _translate(exc: ValidationError, data: dict[str, Any]) -> EventInvalid:
    """The first failing field of pydantic's errors as an :class:`EventInvalid`.

    Errors are grouped by the pointer they resolve to (a value that fits no member of a union
    fails once per member); the first group is reported, and the others counted.
    """
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    groups: dict[str, list[ErrorDetails]] = {}
    for error in errors:
        pointer = pointer_for(data, error["loc"], base="/data")
        reported = error
        if error["type"] in _TYPE_OF_UNION:
            member = resolve({"data": data}, pointer)
            if isinstance(member, dict) and "type" not in member:
                reported = {**error, "type": "missing"}
            pointer += "/type"
        groups.setdefault(pointer, []).append(reported)
    pointer, first = next(iter(groups.items()))
    detail = _message(first)
    if len(groups) > 1:
        others = len(groups) - 1
        detail += f" (and {others} more invalid field{'s' if others > 1 else ''})"
    return EventInvalid(pointer, detail)


def _message(errors: list[ErrorDetails]) -> str:
    """One message for the errors at one place."""
    if len(errors) > 1 and all(e["type"] in _TYPE_NAMES for e in errors):
        names = list(dict.fromkeys(_TYPE_NAMES[e["type"]] for e in errors))
        return "must be " + " or ".join(names)
    error = errors[0]
    kind = error["type"]
    if kind in _TYPE_NAMES:
        return "must be " + _TYPE_NAMES[kind]
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    message = error["msg"]
    for prefix, replacement in (("Value error, ", ""), ("Input should be ", "must be ")):
        if message.startswith(prefix):
            message = replacement + message[len(prefix) :]
    return message[:1].lower() + message[1:]


def _without_card_numbers(error: EventInvalid) -> EventInvalid:
    """``error`` itself, or a copy with any card number in its pointer or detail masked."""
    pointer, detail = _mask_pans(error.pointer), _mask_pans(error.detail)
    if (pointer, detail) == (error.pointer, error.detail):
        return error
    return EventInvalid(pointer, detail)


def _mask_pans(text: str) -> str:
    for found in reversed(find_pans(text)):
        text = text[: found.start] + mask("pan", text[found.start : found.end]) + text[found.end :]
    return text
