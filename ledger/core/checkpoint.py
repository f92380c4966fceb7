"""C2SP transparency-log checkpoints (c2sp.org/tlog-checkpoint), signed as C2SP signed notes.

The note text (tlog-checkpoint §"Note text")::

    <origin>
    <tree size, decimal, no leading zeroes>
    <base64 RFC 6962 root hash>
    [<extension line>…]

This parser is stricter than the spec requires, by design: the root hash must be exactly
``HASH_SIZE`` (32) bytes in canonical standard base64, the size must fit in a uint64, and no
line may hold a control character. The ledger's log key is named after the origin (DESIGN.md;
tlog-checkpoint §"Signatures" says the key name SHOULD match), so ``open_checkpoint`` accepts a
checkpoint only when a key named after its origin signed it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.core.note import open_note, sign_note
from ledger.core.signing import NoteSigner, NoteVerifier, b64decode_canonical
from ledger.core.types import HASH_SIZE, RootHash
from ledger.errors import ConfigurationError, NoteFormatError, SignatureInvalid

MAX_TREE_SIZE = 2**64 - 1
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_MAX_TREE_SIZE_DIGITS = len(str(MAX_TREE_SIZE))


def _check_line(value: str, what: str) -> None:
    if not value:
        raise NoteFormatError(f"checkpoint {what} is empty")
    for ch in value:
        if ch < " " or "\ud800" <= ch <= "\udfff":
            raise NoteFormatError(f"checkpoint {what} contains character U+{ord(ch):04X}")


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head: the log's origin, its size and its RFC 6962 root hash.

    Construction validates every field, so ``body()`` always parses back to an equal value.
    """

    origin: str
    size: int
    root_hash: RootHash
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteFormatError(f"checkpoint tree size {self.size!r} is not a uint64")
        if len(self.root_hash) != HASH_SIZE:
            raise NoteFormatError(
                f"checkpoint root hash must be {HASH_SIZE} bytes, got {len(self.root_hash)}"
            )
        for n, ext in enumerate(self.extensions, start=1):
            _check_line(ext, f"extension line {n}")

    def body(self) -> str:
        """The note text: origin, size, base64 root hash and extension lines, each + newline."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        return "".join(
            f"{line}\n" for line in (self.origin, str(self.size), root, *self.extensions)
        )


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse a checkpoint note text strictly. Raises NoteFormatError, never anything else."""
    if not body.endswith("\n"):
        raise NoteFormatError("checkpoint does not end in a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise NoteFormatError(f"checkpoint has {len(lines)} lines, needs at least 3")
    origin, size_line, root_line, *extensions = lines
    _check_line(origin, "origin")
    if _DECIMAL.fullmatch(size_line) is None:
        raise NoteFormatError(
            "checkpoint tree size is not a decimal number without sign or leading zeroes"
        )
    if len(size_line) > _MAX_TREE_SIZE_DIGITS or int(size_line) > MAX_TREE_SIZE:
        raise NoteFormatError("checkpoint tree size does not fit in 64 bits")
    root = b64decode_canonical(root_line, "checkpoint root hash")
    return Checkpoint(origin, int(size_line), RootHash(root), tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    """The checkpoint as a signed note. The signer's key name must be the log origin."""
    if signer.name != checkpoint.origin:
        raise ConfigurationError(
            f"key {signer.name!r} cannot sign checkpoints of log {checkpoint.origin!r}:"
            " a log key is named after its origin"
        )
    return sign_note(checkpoint.body(), [signer])


def open_checkpoint(note: str | bytes, verifiers: Sequence[NoteVerifier]) -> Checkpoint:
    """Verify a signed checkpoint, then parse it.

    A key named after the checkpoint's origin must be among the verified signers; other known
    keys (witnesses) may have signed too. Raises NoteFormatError or SignatureInvalid.
    """
    opened = open_note(note, verifiers)
    checkpoint = parse_checkpoint(opened.text)
    if not any(v.name == checkpoint.origin for v in opened.verified):
        signers = ", ".join(v.name for v in opened.verified)
        raise SignatureInvalid(
            f"checkpoint of {checkpoint.origin!r} is not signed by that log's key"
            f" (verified: {signers})"
        )
    return checkpoint
