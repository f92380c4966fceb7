"""The handoff event domain: models of every event type, the envelope, and the card-data guard.

Pure: no database, no clock, no web framework. The whole public surface::

    validate_event(raw, *, policy, fingerprint_key) -> ValidatedEvent   # or raises EventInvalid
    json_schemas() -> dict[str, dict[str, Any]]                          # type → JSON Schema
    event_types() -> list[str]                                           # sorted type strings
    ValidatedEvent, GuardPolicy

The catalogue is ``../shared/EVENTS.md``; module by module:

``strict_json`` request bodies read as I-JSON: a member name twice in one object is refused
``limits``     plain JSON, depth ≤ 32, strings ≤ 256 KiB, numbers within ±(2^53 - 1)
``envelope``   CloudEvents 1.0 attributes, RFC 3339 time normalised to UTC microseconds
``fields``     actors, outcome, content parts and other shared field types
``catalogue``  one model per ``handoff.<name>.v<major>`` and the registry (add a v2 there)
``detectors``  PAN (Luhn), SSN, phone, email detection and masking — no policy
``guard``      the tenant policy over ``data``: reject or mask, keyed fingerprints
``pointer``    RFC 6901 pointers, and pydantic locations turned into them
``schemas``    JSON Schemas generated from the models
``validate``   the pipeline and :class:`ValidatedEvent`
"""

from __future__ import annotations

from ledger.events.catalogue import all_types
from ledger.events.guard import GuardPolicy
from ledger.events.schemas import json_schemas
from ledger.events.validate import ValidatedEvent, validate_event

__all__ = ["GuardPolicy", "ValidatedEvent", "event_types", "json_schemas", "validate_event"]


def event_types() -> list[str]:
    """Every accepted type string, e.g. ``handoff.tool.call.v1``, sorted."""
    return [spec.type for spec in all_types()]
