"""JSON Lines: the profile's rows, one RFC 8785 canonical JSON object a line.

Canonical bytes (``ledger.core.canonical.canonicalize``: sorted keys, no insignificant
whitespace, fixed number forms) make the file a function of the rows alone: the same export
rendered again, by the ledger or by anyone from the bundle's entries, is the same bytes, so its
SHA-256 (in a bundle's manifest, in the ``export.created`` record) reproduces. Every row names
its ``seq`` and ``leaf_hash``, the handles of its inclusion proof. Lines end with ``\\n``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ledger.core.canonical import canonicalize
from ledger.services.exports.formats._common import chunked
from ledger.services.exports.model import AccessRecord, ExportContext, ExportedEntry
from ledger.services.exports.rows import Row, access_rows, rows


def profile_rows(
    ctx: ExportContext, entries: Iterable[ExportedEntry], accesses: Iterable[AccessRecord]
) -> Iterator[Row]:
    """The export's rows: the entries' rows, then (``hipaa-disclosures``) the access report."""
    yield from rows(ctx.profile, entries)
    if ctx.profile == "hipaa-disclosures":
        yield from access_rows(accesses)


def render_jsonl(
    ctx: ExportContext, entries: Iterable[ExportedEntry], accesses: Iterable[AccessRecord]
) -> Iterator[bytes]:
    return chunked(canonicalize(r) + b"\n" for r in profile_rows(ctx, entries, accesses))
