"""Key rotation statements: how a log's old checkpoint key vouches for its successor.

A rotation statement is a C2SP signed note (c2sp.org/signed-note) whose text is::

    handoff-ledger/key-rotation/v1
    origin <log origin>
    old <old verifier key>
    new <new verifier key>
    time <RFC 3339 UTC time of the rotation>

signed by the OLD key (the certification: a verifier that pinned the old key accepts the new one)
and by the NEW key (proof that whoever asked for the rotation holds the new private key). Both
keys are named after the log origin, as every checkpoint key is. The first line keeps a rotation
statement from ever parsing as a checkpoint (whose first line is the origin, second a size).
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.core.note import open_note, parse_note, sign_note
from ledger.core.signing import NoteSigner, NoteVerifier
from ledger.errors import NoteFormatError, SignatureInvalid

ROTATION_HEADER = "handoff-ledger/key-rotation/v1"


@dataclass(frozen=True)
class Rotation:
    origin: str
    old: NoteVerifier
    new: NoteVerifier
    time: str


def rotation_text(origin: str, old: NoteVerifier, new: NoteVerifier, time: str) -> str:
    return (
        f"{ROTATION_HEADER}\norigin {origin}\nold {old.verifier_key()}\n"
        f"new {new.verifier_key()}\ntime {time}\n"
    )


def sign_rotation(old: NoteSigner, new: NoteSigner, time: str) -> str:
    """The rotation statement from ``old`` to ``new``, signed by both (old first)."""
    if old.name != new.name:
        raise NoteFormatError(f"keys {old.name!r} and {new.name!r} belong to different logs")
    if old.key_id == new.key_id:
        raise NoteFormatError("a key cannot rotate to itself")
    return sign_note(rotation_text(old.name, old.verifier(), new.verifier(), time), [old, new])


def parse_rotation(text: str) -> Rotation:
    """Parse the statement text (no signature check). Raises NoteFormatError."""
    lines = text.split("\n")
    if len(lines) != 6 or lines[5] != "" or lines[0] != ROTATION_HEADER:
        raise NoteFormatError("not a handoff-ledger/key-rotation/v1 statement")
    fields: dict[str, str] = {}
    for line, name in zip(lines[1:5], ("origin", "old", "new", "time"), strict=True):
        key, _, value = line.partition(" ")
        if key != name or not value:
            raise NoteFormatError(f"rotation statement: expected a {name!r} line")
        fields[name] = value
    old = NoteVerifier.from_verifier_key(fields["old"])
    new = NoteVerifier.from_verifier_key(fields["new"])
    if not old.name == new.name == fields["origin"]:
        raise NoteFormatError("rotation statement: keys are not named after its origin")
    if old.key_id == new.key_id:
        raise NoteFormatError("rotation statement: old and new key are the same")
    return Rotation(fields["origin"], old, new, fields["time"])


def open_rotation(note: str, trusted_old: NoteVerifier) -> Rotation:
    """Verify a rotation statement away from ``trusted_old``; return it.

    Raises NoteFormatError if it is malformed or rotates another key, SignatureInvalid unless
    both the old key and the new key it names signed it.
    """
    rotation = parse_rotation(parse_note(note).text)
    if rotation.old != trusted_old:
        raise NoteFormatError(
            f"rotation statement rotates {rotation.old.verifier_key()},"
            f" not {trusted_old.verifier_key()}"
        )
    opened = open_note(note, [rotation.old, rotation.new])
    missing = [v for v in (rotation.old, rotation.new) if v not in opened.verified]
    if missing:
        raise SignatureInvalid(
            f"rotation statement is not signed by {missing[0].name}+{missing[0].key_id.hex()}"
        )
    return rotation
