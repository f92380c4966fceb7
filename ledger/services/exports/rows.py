"""The rows each export profile renders: plain dicts, one fixed column order per profile.

Every row is built from one :class:`ExportedEntry` (or, for the HIPAA access report, one
:class:`AccessRecord`) and nothing else, so the functions here stream: they take iterables and
yield, holding one row at a time. Values are ``str``, ``int`` or ``None`` (an empty cell).

``soc2-population`` (:data:`SOC2_COLUMNS`), one row per entry, from the entry header::

    seq, leaf_hash (base64), received_at, event_time, event_type, conversation, actor_kind,
    actor_id, outcome, resource ("type:id"), writer ("credential N (label)"), payload_status

``pci-dss-10`` (:data:`PCI_COLUMNS`), one row per entry with the six fields of PCI DSS 10.2.2 —
user, type of event, date and time, success or failure, origin, identity of the affected
resource — each a column, plus the proof handles. Built from the entry header *only*: the payload
is never read (card data is never present, and all six fields are in the header)::

    seq, leaf_hash, user ("kind:id"), event_type, date_time (event time), received_at,
    outcome (success / failure / unknown), origin ("source via credential N (label)"),
    affected_resource ("type:id"; the conversation when the event names no other resource)

``hipaa-disclosures`` (:data:`HIPAA_COLUMNS`), for one data subject, two kinds of row told
apart by ``record``:

* ``disclosure`` — one per ``handoff.data.access`` entry whose payload says
  ``disclosure: true``: the accounting of HIPAA 164.528(b)(2) — date, recipient, a description
  of what was disclosed (resource, fields, classification), purpose — with the conversation and
  the proof handles (:data:`DISCLOSURE_COLUMNS`).
* ``unverifiable`` — a ``data.access`` entry whose payload could not be read (erased, missing,
  undecryptable, or not matching its commitment): whether it was a disclosure cannot be told,
  so it is listed rather than left out, with its ``payload_status``.
* ``access`` — one per :class:`AccessRecord`, the per-subject access report of GDPR Art. 15 as
  read in CJEU C-579/21: date, kind, purpose, conversation (:data:`ACCESS_COLUMNS`). Never a
  staff name or an actor id: an access record carries none, and no column holds one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from ledger.core.entry import b64
from ledger.services.exports.model import AccessRecord, ExportedEntry, Profile

Row = dict[str, object]

SOC2_COLUMNS: Final = (
    "seq",
    "leaf_hash",
    "received_at",
    "event_time",
    "event_type",
    "conversation",
    "actor_kind",
    "actor_id",
    "outcome",
    "resource",
    "writer",
    "payload_status",
)
PCI_COLUMNS: Final = (
    "seq",
    "leaf_hash",
    "user",
    "event_type",
    "date_time",
    "received_at",
    "outcome",
    "origin",
    "affected_resource",
)
HIPAA_COLUMNS: Final = (
    "record",
    "date",
    "recipient",
    "description",
    "purpose",
    "kind",
    "conversation",
    "seq",
    "leaf_hash",
    "payload_status",
)
DISCLOSURE_COLUMNS: Final = (
    "date",
    "recipient",
    "description",
    "purpose",
    "conversation",
    "seq",
    "leaf_hash",
    "payload_status",
)
"""The columns of HIPAA_COLUMNS a disclosure (or unverifiable) row fills."""
ACCESS_COLUMNS: Final = ("date", "kind", "purpose", "conversation")
"""The columns of HIPAA_COLUMNS an access-report row fills: dates and purposes, never who."""

COLUMNS: Final[Mapping[Profile, tuple[str, ...]]] = {
    "soc2-population": SOC2_COLUMNS,
    "pci-dss-10": PCI_COLUMNS,
    "hipaa-disclosures": HIPAA_COLUMNS,
}

OUTCOMES: Final = ("success", "failure", "unknown")
DATA_ACCESS_TYPE: Final = "handoff.data.access.v"
"""Prefix of the data-access event type, any major version."""


# --- reading the entry header ---------------------------------------------------------------


def event_of(e: ExportedEntry) -> dict[str, Any]:
    """The entry's ``event`` object ({id, source, type, time, subject, conversation})."""
    event = e.entry.get("event")
    return event if isinstance(event, dict) else {}


def actor_of(e: ExportedEntry) -> dict[str, Any]:
    actor = e.entry.get("actor")
    return actor if isinstance(actor, dict) else {}


def writer_of(e: ExportedEntry) -> dict[str, Any]:
    writer = e.entry.get("writer")
    return writer if isinstance(writer, dict) else {}


def is_data_access(event_type: object) -> bool:
    return isinstance(event_type, str) and event_type.startswith(DATA_ACCESS_TYPE)


def compact_resource(resource: object) -> str | None:
    """``type:id`` of a resource as entries hold it: ``conversation:c-1``,
    ``billing/invoice:inv-88120`` (a data-access resource names its system),
    ``function:billing.list_charges`` (a tool, by name); other shapes as ``key:value`` pairs."""
    if not isinstance(resource, dict) or not resource:
        return None
    kind, ident = resource.get("type"), resource.get("id", resource.get("name"))
    if kind is not None and ident is not None:
        system = resource.get("system")
        return f"{system}/{kind}:{ident}" if system is not None else f"{kind}:{ident}"
    return ", ".join(f"{key}:{resource[key]}" for key in sorted(resource))


def actor_label(actor: object) -> str | None:
    """``kind:id`` of an actor."""
    if not isinstance(actor, dict) or not actor:
        return None
    return f"{actor.get('kind')}:{actor.get('id')}"


def writer_label(writer: dict[str, Any]) -> str | None:
    """``credential N (label)``: the credential the ledger authenticated, not a claim."""
    if not writer:
        return None
    return f"credential {writer.get('credential')} ({writer.get('label')})"


def outcome_of(e: ExportedEntry) -> str:
    """``success``, ``failure`` or ``unknown`` (anything else reads as unknown)."""
    outcome = e.entry.get("outcome")
    return outcome if outcome in OUTCOMES else "unknown"


# --- one row per profile --------------------------------------------------------------------


def soc2_row(e: ExportedEntry) -> Row:
    event, actor = event_of(e), actor_of(e)
    return {
        "seq": e.seq,
        "leaf_hash": b64(e.leaf_hash),
        "received_at": e.entry.get("received_at"),
        "event_time": event.get("time"),
        "event_type": event.get("type"),
        "conversation": event.get("conversation"),
        "actor_kind": actor.get("kind"),
        "actor_id": actor.get("id"),
        "outcome": e.entry.get("outcome"),
        "resource": compact_resource(e.entry.get("resource")),
        "writer": writer_label(writer_of(e)),
        "payload_status": e.payload_status,
    }


def pci_row(e: ExportedEntry) -> Row:
    """PCI DSS 10.2.2, from the header alone: ``e.payload`` is never read here."""
    event = event_of(e)
    writer = writer_label(writer_of(e))
    source = event.get("source")
    resource = compact_resource(e.entry.get("resource"))
    if resource is None and event.get("conversation") is not None:
        resource = f"conversation:{event['conversation']}"
    return {
        "seq": e.seq,
        "leaf_hash": b64(e.leaf_hash),
        "user": actor_label(actor_of(e)),
        "event_type": event.get("type"),
        "date_time": event.get("time"),
        "received_at": e.entry.get("received_at"),
        "outcome": outcome_of(e),
        "origin": f"{source} via {writer}" if writer else source,
        "affected_resource": resource,
    }


def disclosure_row(e: ExportedEntry) -> Row | None:
    """The HIPAA 164.528 row of a data-access entry that disclosed (``record: disclosure``), or
    whose payload cannot be read (``record: unverifiable``); None for any other entry."""
    event = event_of(e)
    if not is_data_access(event.get("type")):
        return None
    data = e.payload if e.payload_status == "verified" else None
    resource = compact_resource(e.entry.get("resource"))
    row: Row = dict.fromkeys(HIPAA_COLUMNS)
    row.update(
        date=event.get("time"),
        conversation=event.get("conversation"),
        seq=e.seq,
        leaf_hash=b64(e.leaf_hash),
        payload_status=e.payload_status,
    )
    if data is None:
        row.update(
            record="unverifiable",
            description=f"{resource or 'resource not named'}: fields, classification and "
            f"recipient unavailable (payload {e.payload_status})",
        )
        return row
    if data.get("disclosure") is not True:
        return None
    recipient = data.get("recipient")
    row.update(
        record="disclosure",
        recipient=str(recipient.get("name")) if isinstance(recipient, dict) else None,
        description=_description(resource, data),
        purpose=_text(data.get("purpose")),
    )
    return row


def _description(resource: str | None, data: dict[str, Any]) -> str:
    """What was disclosed: ``billing/chart:c-9: fields dx, meds; classification PHI``."""
    fields = data.get("fields")
    names = ", ".join(str(f) for f in fields) if isinstance(fields, list) else "-"
    classification = str(data.get("classification") or "unknown").upper()
    return f"{resource}: fields {names}; classification {classification}"


def _text(value: object) -> str | None:
    return None if value is None else str(value)


_ROWS: Final[Mapping[Profile, Callable[[ExportedEntry], Row | None]]] = {
    "soc2-population": soc2_row,
    "pci-dss-10": pci_row,
    "hipaa-disclosures": disclosure_row,
}


def row(profile: Profile, e: ExportedEntry) -> Row | None:
    """The row of one entry in ``profile``, or None if the profile does not list it."""
    return _ROWS[profile](e)


def rows(profile: Profile, entries: Iterable[ExportedEntry]) -> Iterator[Row]:
    """The rows of ``entries`` in ``profile``, in the entries' order (seq order), keys in
    ``COLUMNS[profile]`` order. Streams: one entry is held at a time."""
    build = _ROWS[profile]
    for e in entries:
        built = build(e)
        if built is not None:
            yield built


def access_rows(records: Iterable[AccessRecord]) -> Iterator[Row]:
    """The per-subject access report (``record: access``), in HIPAA_COLUMNS order: date, kind,
    purpose, conversation; the other columns empty. No staff names, no actor ids."""
    for r in records:
        built: Row = dict.fromkeys(HIPAA_COLUMNS)
        built.update(
            record="access",
            date=r.time,
            kind=r.kind,
            purpose=r.purpose,
            conversation=r.conversation,
        )
        yield built


__all__ = [
    "ACCESS_COLUMNS",
    "COLUMNS",
    "DISCLOSURE_COLUMNS",
    "HIPAA_COLUMNS",
    "PCI_COLUMNS",
    "SOC2_COLUMNS",
    "access_rows",
    "compact_resource",
    "disclosure_row",
    "pci_row",
    "row",
    "rows",
    "soc2_row",
]
