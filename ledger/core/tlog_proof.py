"""C2SP transparency-log proofs (c2sp.org/tlog-proof): one offline-verifiable inclusion proof.

::

    c2sp.org/tlog-proof@v1
    [extra <base64 opaque data>]
    index <leaf index, decimal, no leading zeroes>
    <base64 hash>                 the RFC 9162 §2.1.3.1 audit path, leaf's sibling first,
    …                             zero or more lines
    <empty line>
    <the checkpoint, verbatim>    a C2SP signed note (c2sp.org/tlog-checkpoint)

The parser is strict, as the rest of ``ledger.core``: every hash is exactly ``HASH_SIZE`` bytes
in canonical standard base64, the index fits in a uint64, no line holds a control character.
The extra data is not authenticated (the spec says so), so :func:`parse_tlog_proof` checks its
encoding and drops it; the checkpoint is returned as text, not opened: the caller opens it with
:func:`ledger.core.checkpoint.open_checkpoint` and checks the path with
:func:`ledger.core.merkle.verify_inclusion`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence

from ledger.core.signing import b64decode_canonical
from ledger.core.types import HASH_SIZE
from ledger.errors import NoteFormatError

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
MAX_INDEX = 2**64 - 1
MAX_PROOF_HASHES = 64
"""An audit path in a tree of at most 2**64 leaves has at most 64 hashes."""

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


def _check_chars(text: str) -> None:
    for ch in text:
        if (ch < " " and ch != "\n") or "\ud800" <= ch <= "\udfff":
            raise NoteFormatError(f"tlog-proof contains character U+{ord(ch):04X}")


def format_tlog_proof(
    index: int, hashes: Sequence[bytes], checkpoint: str, *, extra: bytes | None = None
) -> str:
    """The tlog-proof text of leaf ``index`` with audit path ``hashes`` in ``checkpoint`` (a
    signed note, copied verbatim). Raises NoteFormatError for arguments no parser would accept
    back; :func:`parse_tlog_proof` inverts it."""
    if isinstance(index, bool) or not 0 <= index <= MAX_INDEX:
        raise NoteFormatError(f"tlog-proof index {index!r} is not a uint64")
    if len(hashes) > MAX_PROOF_HASHES:
        raise NoteFormatError(f"tlog-proof has {len(hashes)} hashes, more than {MAX_PROOF_HASHES}")
    for position, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise NoteFormatError(f"tlog-proof hash {position} is {len(h)} bytes, not {HASH_SIZE}")
    if not checkpoint:
        raise NoteFormatError("tlog-proof checkpoint is empty")
    _check_chars(checkpoint)
    lines = [TLOG_PROOF_HEADER]
    if extra is not None:
        lines.append("extra " + base64.b64encode(extra).decode("ascii"))
    lines.append(f"index {index}")
    lines.extend(base64.b64encode(h).decode("ascii") for h in hashes)
    return "\n".join(lines) + "\n\n" + checkpoint


def parse_tlog_proof(text: str) -> tuple[int, list[bytes], str]:
    """``(index, hashes, checkpoint)`` from a tlog-proof. Raises NoteFormatError, nothing else.

    The checkpoint is everything after the empty line that ends the proof hashes, verbatim.
    """
    if not isinstance(text, str):
        raise NoteFormatError("tlog-proof is not text")
    _check_chars(text)
    header, sep, rest = text.partition("\n")
    if header != TLOG_PROOF_HEADER or not sep:
        raise NoteFormatError(f"tlog-proof does not start with {TLOG_PROOF_HEADER!r}")
    line, sep, rest = rest.partition("\n")
    if line.startswith("extra "):
        b64decode_canonical(line[len("extra ") :], "tlog-proof extra data")
        line, sep, rest = rest.partition("\n")
    if not sep or not line.startswith("index "):
        raise NoteFormatError("tlog-proof has no 'index' line")
    digits = line[len("index ") :]
    if _DECIMAL.fullmatch(digits) is None or int(digits) > MAX_INDEX:
        raise NoteFormatError("tlog-proof index is not a uint64 without sign or leading zeroes")
    hashes: list[bytes] = []
    while True:
        line, sep, rest = rest.partition("\n")
        if not sep:
            raise NoteFormatError("tlog-proof has no empty line before its checkpoint")
        if not line:
            break
        if len(hashes) == MAX_PROOF_HASHES:
            raise NoteFormatError(f"tlog-proof has more than {MAX_PROOF_HASHES} hashes")
        h = b64decode_canonical(line, f"tlog-proof hash {len(hashes)}")
        if len(h) != HASH_SIZE:
            raise NoteFormatError(
                f"tlog-proof hash {len(hashes)} is {len(h)} bytes, not {HASH_SIZE}"
            )
        hashes.append(h)
    if not rest:
        raise NoteFormatError("tlog-proof has no checkpoint")
    return int(digits), hashes, rest
