"""What an export is made of: the entries it read (with their payloads, when the profile carries
them) and the context every format names (log, checkpoint, query, who exported and when)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Profile = Literal["soc2-population", "pci-dss-10", "hipaa-disclosures"]
PROFILES: tuple[Profile, ...] = ("soc2-population", "pci-dss-10", "hipaa-disclosures")
Format = Literal["bundle", "jsonl", "csv", "ocsf", "html"]
FORMATS: tuple[Format, ...] = ("bundle", "jsonl", "csv", "ocsf", "html")
RenderedFormat = Literal["jsonl", "csv", "ocsf", "html"]
"""The formats rendered from rows (a bundle may carry them too, under ``reports/``)."""


@dataclass(frozen=True, slots=True)
class ExportedEntry:
    """One entry as exported: its exact bytes and their parse, and its payload as opened."""

    seq: int
    leaf_hash: bytes
    entry_bytes: bytes
    entry: dict[str, Any]
    """The parsed entry bytes (the ledger's header: event, actor, outcome, resource, writer,
    received_at, payload commitment, conversation_prev)."""
    payload_status: str
    """verified, erased, missing, undecryptable, mismatch, or withheld (the profile carries no
    payloads)."""
    payload: dict[str, Any] | None = None
    payload_bytes: bytes | None = None
    """The payload's canonical (RFC 8785) bytes: SHA-256(salt || these) is the commitment."""
    salt: bytes | None = None


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """An access to a data subject's records, as the system log recorded it (the per-subject
    access report: dates and purposes, never staff names)."""

    time: str
    """RFC 3339 UTC."""
    kind: str
    """What was done, e.g. ``trail.read`` or ``data.access``."""
    purpose: str
    conversation: str
    seq: int
    """The seq of the record: in the events log for ``data.access``, in the tenant's system log
    for reads."""
    log: str


@dataclass(frozen=True, slots=True)
class ExportContext:
    """What every format names about the export."""

    log: str
    origin: str
    profile: Profile
    query: dict[str, Any]
    tree_size: int
    root: bytes
    checkpoint: str
    """The signed note every entry was read at."""
    generated_at: datetime
    generated_by: dict[str, Any]
