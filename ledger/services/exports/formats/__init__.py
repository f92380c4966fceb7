"""The formats an export renders besides its evidence bundle, one module each:

``jsonl``        the profile's rows, one RFC 8785 canonical JSON object a line
``csv_rows``     the same rows as CSV (RFC 4180), cells neutralised against formula injection
``ocsf``         one OCSF 1.7.0 event per entry, canonical JSON Lines, for SIEMs
``html_report``  one self-contained page: context, population, timelines, how to re-check

Every renderer is a generator of ``bytes`` chunks that reads the entries once, in the order
given (seq order), so an export of a million entries is written in bounded memory; the rows
are those of :mod:`ledger.services.exports.rows`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Final

from ledger.errors import ExportInvalid
from ledger.services.exports.formats.csv_rows import render_csv
from ledger.services.exports.formats.html_report import render_html
from ledger.services.exports.formats.jsonl import render_jsonl
from ledger.services.exports.formats.ocsf import OCSF_VERSION, render_ocsf
from ledger.services.exports.model import (
    AccessRecord,
    ExportContext,
    ExportedEntry,
    RenderedFormat,
)

RENDERED_FORMATS: Final[tuple[RenderedFormat, ...]] = ("jsonl", "csv", "ocsf", "html")
MEDIA_TYPES: Final[Mapping[RenderedFormat, str]] = {
    "jsonl": "application/jsonl",
    "csv": "text/csv; charset=utf-8; header=present",
    "ocsf": "application/jsonl",
    "html": "text/html; charset=utf-8",
}
FILENAMES: Final[Mapping[RenderedFormat, str]] = {
    "jsonl": "entries.jsonl",
    "csv": "rows.csv",
    "ocsf": "ocsf.jsonl",
    "html": "report.html",
}


def render(
    fmt: RenderedFormat,
    ctx: ExportContext,
    entries: Iterable[ExportedEntry],
    accesses: Iterable[AccessRecord] = (),
) -> Iterator[bytes]:
    """The bytes of ``entries`` rendered as ``fmt`` for ``ctx.profile``, in chunks.

    ``accesses`` is the per-subject access report of ``hipaa-disclosures`` (read after the
    entries; the other profiles and OCSF do not render it: its records name no actor, which
    OCSF's API Activity requires). Raises ``ExportInvalid`` for a format that is not rendered.
    """
    if fmt == "jsonl":
        return render_jsonl(ctx, entries, accesses)
    if fmt == "csv":
        return render_csv(ctx, entries, accesses)
    if fmt == "ocsf":
        return render_ocsf(ctx, entries)
    if fmt == "html":
        return render_html(ctx, entries, accesses)
    raise ExportInvalid(f"format {fmt!r} is not rendered; use one of {list(RENDERED_FORMATS)}")


__all__ = ["FILENAMES", "MEDIA_TYPES", "OCSF_VERSION", "RENDERED_FORMATS", "render"]
