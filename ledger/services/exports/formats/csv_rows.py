"""CSV (RFC 4180) for spreadsheets: a header row, then the profile's rows, CRLF line ends,
UTF-8, fields quoted by the ``csv`` module when they hold a comma, a quote or a line break.

Formula injection (OWASP "CSV Injection"): a spreadsheet runs a cell that begins with ``=``,
``+``, ``-`` or ``@`` as a formula, and a leading tab or carriage return can hide such a
character. Event text is written by writers and customers, so every text cell that begins with
one of them, header included, gets a leading single quote ``'``: the spreadsheet shows the text,
never evaluates it. Numbers (seq) are written as numbers; a number cannot be a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Final

from ledger.core.canonical import canonicalize
from ledger.services.exports.formats._common import chunked
from ledger.services.exports.formats.jsonl import profile_rows
from ledger.services.exports.model import AccessRecord, ExportContext, ExportedEntry
from ledger.services.exports.rows import COLUMNS

FORMULA_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> str | int | float:
    """A cell's value, safe to open in a spreadsheet; ``None`` is an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        return value
    elif isinstance(value, str):
        text = value
    else:
        text = canonicalize(value).decode("utf-8")
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


class _Lines:
    """One CSV record at a time, as bytes (the ``csv`` module writes to a reused buffer)."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def __call__(self, cells: Sequence[object]) -> bytes:
        self._writer.writerow([neutralise(c) for c in cells])
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode("utf-8")


def render_csv(
    ctx: ExportContext, entries: Iterable[ExportedEntry], accesses: Iterable[AccessRecord]
) -> Iterator[bytes]:
    columns = COLUMNS[ctx.profile]
    line = _Lines()

    def lines() -> Iterator[bytes]:
        yield line(columns)
        for r in profile_rows(ctx, entries, accesses):
            yield line([r.get(c) for c in columns])

    return chunked(lines())
