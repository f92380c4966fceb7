"""C2SP signed notes: text followed by a blank line and signature lines (c2sp.org/signed-note).

    <text, ending in a newline>
    <blank line>
    — <key name> base64(4-byte key ID || signature)
    …

Format (signed-note §"Format"): valid UTF-8, no ASCII control characters but newline; the text
is separated from the signatures by the *last* blank line and includes its final newline.

Verification (signed-note §"Signatures", and golang.org/x/mod/sumdb/note ``Open``): a signature
whose (key name, key ID) pair is unknown is kept as unverified; a signature from a known key
MUST verify, and a failure rejects the whole note; a note with no verified signature is
rejected. At most ``MAX_SIGNATURES`` signature lines are read (the spec requires accepting at
least 16; Go's limit is 100). Base64 must be canonical (see ``ledger.core.signing``).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

from ledger.core.signing import (
    KEY_ID_SIZE,
    NoteSigner,
    NoteVerifier,
    b64decode_canonical,
    check_key_name,
)
from ledger.core.types import KeyId
from ledger.errors import ConfigurationError, NoteFormatError, SignatureInvalid

SIGNATURE_PREFIX = "\u2014 "
"""Em dash (U+2014) and a space open every signature line."""

MAX_SIGNATURES = 100


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: the key it names and the signature bytes after the key ID."""

    name: str
    key_id: KeyId
    signature: bytes

    def line(self) -> str:
        """The signature line, newline included."""
        data = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{SIGNATURE_PREFIX}{self.name} {data}\n"


@dataclass(frozen=True)
class ParsedNote:
    """A note split into its text and signatures, none of them verified yet."""

    text: str
    signatures: tuple[NoteSignature, ...]


@dataclass(frozen=True)
class OpenedNote:
    """A note whose text is vouched for by every key in ``verified`` (at least one).

    ``unverified`` holds the distinct signatures from keys the caller did not know (witness
    cosignatures, a rotated-out key, …): they were parsed, not checked.
    """

    text: str
    verified: list[NoteVerifier]
    unverified: tuple[NoteSignature, ...] = field(default=())

    @property
    def unverified_sigs(self) -> int:
        return len(self.unverified)


def _check_note_chars(text: str, what: str) -> None:
    """Valid UTF-8 (no lone surrogates) and no control characters but newline."""
    for ch in text:
        if ch < " " and ch != "\n":
            raise NoteFormatError(f"{what} contains control character U+{ord(ch):04X}")
        if "\ud800" <= ch <= "\udfff":
            raise NoteFormatError(f"{what} is not valid UTF-8 (lone surrogate)")


def _decode(note: str | bytes) -> str:
    if isinstance(note, str):
        return note
    try:
        return note.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteFormatError(f"note is not valid UTF-8 (byte {exc.start})") from exc


def _parse_signature_line(line: str, number: int) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteFormatError(f"signature line {number} does not start with '\u2014 '")
    name, _, data = line[len(SIGNATURE_PREFIX) :].partition(" ")
    check_key_name(name)
    if not data:
        raise NoteFormatError(f"signature line {number} has no signature")
    raw = b64decode_canonical(data, f"signature line {number}")
    if len(raw) <= KEY_ID_SIZE:
        raise NoteFormatError(f"signature line {number} is too short ({len(raw)} bytes)")
    return NoteSignature(name, KeyId(raw[:KEY_ID_SIZE]), raw[KEY_ID_SIZE:])


def parse_note(note: str | bytes) -> ParsedNote:
    """Split a signed note into text and signature lines; verify nothing.

    Raises NoteFormatError. Use ``open_note`` unless you verify signatures yourself (for
    example a witness cosignature, whose signed message is not the note text).
    """
    note = _decode(note)
    _check_note_chars(note, "note")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteFormatError("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise NoteFormatError("note has no signature lines")
    if not block.endswith("\n"):
        raise NoteFormatError("note does not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteFormatError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    sigs = tuple(_parse_signature_line(line, n) for n, line in enumerate(lines, start=1))
    return ParsedNote(text, sigs)


def _index(verifiers: Sequence[NoteVerifier]) -> dict[tuple[str, bytes], NoteVerifier]:
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for v in verifiers:
        other = known.setdefault((v.name, v.key_id), v)
        if other != v:
            raise ConfigurationError(
                f"two different verifier keys share name and key ID {v.name}+{v.key_id.hex()}"
            )
    return known


def open_note(note: str | bytes, verifiers: Sequence[NoteVerifier]) -> OpenedNote:
    """Parse a signed note and verify it against the known ``verifiers``.

    Raises NoteFormatError if the note is malformed, SignatureInvalid if a signature by a known
    key fails or if no signature by a known key is present, ConfigurationError if two
    ``verifiers`` collide on (name, key ID).
    """
    parsed = parse_note(note)
    known = _index(verifiers)
    msg = parsed.text.encode("utf-8")
    verified: list[NoteVerifier] = []
    unverified: list[NoteSignature] = []
    for sig in parsed.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        verifier.verify(msg, sig.signature)
        if verifier not in verified:
            verified.append(verifier)
    if not verified:
        names = ", ".join(f"{s.name}+{s.key_id.hex()}" for s in parsed.signatures)
        raise SignatureInvalid(f"note has no signature by a known key (signed by {names})")
    return OpenedNote(parsed.text, verified, tuple(unverified))


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """Sign ``text`` with every signer, in order: ``text + "\\n" + signature lines``.

    ``text`` must end in a newline and hold no control character but newline. Raises
    NoteFormatError otherwise, or if there is no signer.
    """
    if not text.endswith("\n"):
        raise NoteFormatError("note text must end in a newline")
    _check_note_chars(text, "note text")
    if not signers:
        raise NoteFormatError("a signed note needs at least one signer")
    msg = text.encode("utf-8")
    lines = [NoteSignature(s.name, s.key_id, s.sign(msg)).line() for s in signers]
    return text + "\n" + "".join(lines)
