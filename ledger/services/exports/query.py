"""An export request as the auditor writes it (the HTTP body, or ``ledger export``'s options),
checked field by field before anything is read: a request that cannot be made as asked is an
``ExportInvalid`` (422) naming the field, and nothing is exported or recorded.

What it selects:

- a **range**: ``start_seq``/``end_seq`` (half-open) or ``from_time``/``to_time`` (the ledger's
  ``received_at``, RFC 3339, half-open); neither: the whole log at the checkpoint read;
- or **conversations**: ``conversations`` (ids), or every conversation of a ``data_subject``
  (the customer id the entries name as their actor).

``event_types`` narrows which of the selected entries are *reported* (rows, payloads); the
bundle still carries every entry of the range or conversation, so that its completeness can be
proven. ``sample`` (with a range only) picks that many entries by ``handoff-ledger/sample/v1``,
seeded from the checkpoint's root and the auditor's ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from ledger.core.canonical import MAX_SAFE_INTEGER
from ledger.errors import ExportInvalid
from ledger.events.fields import CONTROL_CHARACTERS
from ledger.services.exports.model import FORMATS, PROFILES, Format, Profile, RenderedFormat

RENDERED: tuple[RenderedFormat, ...] = ("jsonl", "csv", "ocsf", "html")
MAX_LIST = 1000
MAX_TEXT = 200
MAX_SAMPLE = 10_000


@dataclass(frozen=True)
class ExportQuery:
    profile: Profile
    format: Format = "bundle"
    start_seq: int | None = None
    end_seq: int | None = None
    from_time: datetime | None = None
    to_time: datetime | None = None
    conversations: tuple[str, ...] = ()
    data_subject: str | None = None
    event_types: tuple[str, ...] = ()
    sample: int | None = None
    seed: str = ""
    since_checkpoint: str | None = None
    include: tuple[RenderedFormat, ...] = ()
    """The rendered formats a bundle carries besides its evidence (``reports/``)."""
    as_given: dict[str, Any] | None = None
    """The request's fields as the auditor gave them: the manifest's ``query``."""

    @property
    def is_range(self) -> bool:
        return not (self.conversations or self.data_subject)

    def reports(self, event_type: str) -> bool:
        """Whether an entry of ``event_type`` is reported (rows, payload)."""
        return not self.event_types or event_type in self.event_types


def parse_query(body: Any) -> ExportQuery:
    """The request ``body`` (a JSON object) as an ``ExportQuery``; ``ExportInvalid`` naming the
    first field that is wrong."""
    if not isinstance(body, dict):
        raise ExportInvalid("the export request must be a JSON object")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise ExportInvalid(f"unknown field {unknown[0]!r}; known: {', '.join(sorted(_FIELDS))}")
    profile = body.get("profile")
    if profile not in PROFILES:
        raise ExportInvalid(f"profile must be one of {', '.join(PROFILES)}, not {profile!r}")
    fmt = body.get("format", "bundle")
    if fmt not in FORMATS:
        raise ExportInvalid(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    query = ExportQuery(
        profile=cast(Profile, profile),
        format=cast(Format, fmt),
        start_seq=_seq(body, "start_seq"),
        end_seq=_seq(body, "end_seq"),
        from_time=_time(body, "from_time"),
        to_time=_time(body, "to_time"),
        conversations=_texts(body, "conversations"),
        data_subject=_text(body, "data_subject"),
        event_types=_texts(body, "event_types"),
        sample=_count(body, "sample"),
        seed=_text(body, "seed") or "",
        since_checkpoint=_note(body, "since_checkpoint"),
        include=cast(tuple[RenderedFormat, ...], _texts(body, "include")),
        as_given={k: body[k] for k in sorted(body)},
    )
    _check_together(query)
    return query


_FIELDS = {
    "profile",
    "format",
    "start_seq",
    "end_seq",
    "from_time",
    "to_time",
    "conversations",
    "data_subject",
    "event_types",
    "sample",
    "seed",
    "since_checkpoint",
    "include",
}


def _check_together(q: ExportQuery) -> None:
    seq_range = q.start_seq is not None or q.end_seq is not None
    time_range = q.from_time is not None or q.to_time is not None
    if seq_range and time_range:
        raise ExportInvalid(
            "give a seq range (start_seq, end_seq) or a time range (from_time, to_time), not both"
        )
    if q.start_seq is not None and q.end_seq is not None and q.end_seq <= q.start_seq:
        raise ExportInvalid(f"the range [{q.start_seq}, {q.end_seq}) is empty or inverted")
    if q.from_time is not None and q.to_time is not None and q.to_time <= q.from_time:
        raise ExportInvalid("the time range is empty or inverted: to_time must be after from_time")
    if q.conversations and q.data_subject:
        raise ExportInvalid("give conversations or a data_subject, not both")
    if not q.is_range and (seq_range or time_range):
        raise ExportInvalid(
            "conversations and data_subject select whole conversations: "
            "they take no seq or time range"
        )
    if q.sample is not None:
        if not q.is_range:
            raise ExportInvalid("sample draws from a range (a population), not from conversations")
        if q.event_types:
            raise ExportInvalid("sample draws from a whole range: it takes no event_types")
        if q.sample > MAX_SAMPLE:
            raise ExportInvalid(f"sample is at most {MAX_SAMPLE}")
    elif q.seed:
        raise ExportInvalid("seed goes with sample")
    if q.profile == "hipaa-disclosures" and not q.data_subject:
        raise ExportInvalid("the hipaa-disclosures profile is for one data_subject")
    if q.profile == "soc2-population" and not q.is_range:
        raise ExportInvalid(
            "the soc2-population profile exports a range (seq or time), not conversations"
        )
    for fmt in q.include:
        if fmt not in RENDERED:
            raise ExportInvalid(f"include takes {', '.join(RENDERED)}, not {fmt!r}")
    if q.include and q.format != "bundle":
        raise ExportInvalid("include lists the formats a bundle carries: use it with bundle")


def _seq(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SAFE_INTEGER:
        raise ExportInvalid(f"{name} must be an integer from 0 to {MAX_SAFE_INTEGER}")
    return value


def _count(body: dict[str, Any], name: str) -> int | None:
    value = _seq(body, name)
    if value is not None and value < 1:
        raise ExportInvalid(f"{name} must be at least 1")
    return value


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise ExportInvalid(f"{name} must be a string of 1 to {MAX_TEXT} characters")
    if CONTROL_CHARACTERS.search(value):
        raise ExportInvalid(f"{name} must not hold control characters")
    return value


def _texts(body: dict[str, Any], name: str) -> tuple[str, ...]:
    value = body.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise ExportInvalid(f"{name} must be a list of at most {MAX_LIST} strings")
    for item in value:
        if not isinstance(item, str) or not item or len(item) > MAX_TEXT:
            raise ExportInvalid(f"{name} holds strings of 1 to {MAX_TEXT} characters")
        if CONTROL_CHARACTERS.search(item):
            raise ExportInvalid(f"{name} holds strings without control characters")
    return tuple(dict.fromkeys(value))


def _time(body: dict[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ExportInvalid(f"{name} must be an RFC 3339 time, e.g. 2026-11-16T08:00:00Z")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ExportInvalid(f"{name} is not an RFC 3339 time: {value!r}") from exc
    if moment.tzinfo is None:
        raise ExportInvalid(f"{name} needs a time zone (Z for UTC)")
    return moment


def _note(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 64_000:
        raise ExportInvalid(f"{name} must be a signed checkpoint (C2SP signed note) as text")
    return value
