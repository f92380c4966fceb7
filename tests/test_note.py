"""C2SP signed-note and note keys: known answers from ../shared/vectors/notes, plus properties.

Vectors: golang/mod sumdb/note tests and the C2SP signed-note example (see the vectors README).
A missing vectors file is an error, never a skip.
"""

from __future__ import annotations

import base64
import contextlib
from typing import Any

import nacl.exceptions
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.core.note import (
    MAX_SIGNATURES,
    NoteSignature,
    open_note,
    parse_note,
    sign_note,
)
from ledger.core.signing import NoteSigner, NoteVerifier, key_id
from ledger.core.types import KeyId
from ledger.errors import (
    ConfigurationError,
    CryptoError,
    NoteFormatError,
    SignatureInvalid,
)
from tests.vectors import load_notes

VECTORS = load_notes()
SIGNED = VECTORS["signedNote"]
VALID = [c for c in SIGNED if c["valid"]]
INVALID = [c for c in SIGNED if not c["valid"]]
DETERMINISTIC = next(c for c in SIGNED if "skey" in c)

# What each invalid vector must raise: a signature from a known key that fails is tampering
# (SignatureInvalid); everything else in this list is a malformed note.
EXPECTED_ERROR = {"corrupted signature from known key": SignatureInvalid}


def _expected_error(desc: str) -> type[CryptoError]:
    for prefix, error in EXPECTED_ERROR.items():
        if desc.startswith(prefix):
            return error
    return NoteFormatError


def _note_of(case: dict[str, Any]) -> str | bytes:
    if case["signedNote"] is not None:
        return str(case["signedNote"])
    return bytes.fromhex(case["signedNoteHex"])


def _sig_lines(note: str) -> list[str]:
    return [line for line in note.split("\n") if line.startswith("\u2014 ")]


TEXT = "A checkpoint is a promise.\n"


# --- known answers -----------------------------------------------------------------------------


def test_vectors_present() -> None:
    assert len(VALID) >= 3
    assert len(INVALID) >= 8


def test_deterministic_private_key_produces_exact_note() -> None:
    case = DETERMINISTIC
    signer = NoteSigner.from_private_key_string(case["skey"])
    assert signer.private_key_string() == case["skey"]
    assert signer.verifier_key() == case["vkey"]
    assert signer.key_id == KeyId(bytes.fromhex(case["skey"].split("+")[3]))

    from_seed = NoteSigner(signer.name, bytes.fromhex(case["seedHex"]))
    assert from_seed.public_key == signer.public_key

    note = sign_note(case["text"], [signer])
    assert note == case["signedNote"]
    assert _sig_lines(note) == _sig_lines(case["signedNote"])


def test_second_signer_from_zero_seed_reproduces_double_signed_note() -> None:
    peter = NoteSigner.from_private_key_string(DETERMINISTIC["skey"])
    enoch_case = next(c for c in VALID if "EnochRoot" in c["vkey"])
    enoch = NoteSigner("EnochRoot", bytes.fromhex(enoch_case["seedHex"]))
    assert enoch.verifier_key() == enoch_case["vkey"]
    assert sign_note(enoch_case["text"], [peter, enoch]) == enoch_case["signedNote"]


@pytest.mark.parametrize("case", VALID, ids=lambda c: c["source"][:60])
def test_valid_vector_opens_with_its_key(case: dict[str, Any]) -> None:
    verifier = NoteVerifier.from_verifier_key(case["vkey"])
    opened = open_note(case["signedNote"], [verifier])
    assert opened.text == case["text"]
    assert opened.verified == [verifier]
    assert opened.unverified_sigs == len(_sig_lines(case["signedNote"])) - 1


def test_double_signed_vector_with_only_first_key_leaves_second_unverified() -> None:
    case = next(c for c in VALID if "EnochRoot" in c["vkey"])
    peter = NoteVerifier.from_verifier_key(DETERMINISTIC["vkey"])
    opened = open_note(case["signedNote"], [peter])
    assert opened.verified == [peter]
    assert opened.unverified_sigs == 1
    assert opened.unverified[0].name == "EnochRoot"
    assert opened.unverified[0].key_id.hex() == "af0cfe78"

    both = [peter, NoteVerifier.from_verifier_key(case["vkey"])]
    assert open_note(case["signedNote"], both).verified == both


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c["desc"])
def test_invalid_vector_is_rejected(case: dict[str, Any]) -> None:
    verifier = NoteVerifier.from_verifier_key(case["vkey"])
    with pytest.raises(_expected_error(case["desc"])):
        open_note(_note_of(case), [verifier])


@pytest.mark.parametrize("vkey", sorted({c["vkey"] for c in SIGNED}), ids=lambda v: v.split("+")[0])
def test_vector_verifier_keys_round_trip(vkey: str) -> None:
    verifier = NoteVerifier.from_verifier_key(vkey)
    assert verifier.verifier_key() == vkey
    assert verifier.key_id == key_id(verifier.name, verifier.public_key)
    assert vkey.split("+")[1] == verifier.key_id.hex()


# --- keys --------------------------------------------------------------------------------------


def test_key_id_is_sha256_of_name_newline_alg_key() -> None:
    verifier = NoteVerifier.from_verifier_key(DETERMINISTIC["vkey"])
    assert key_id("PeterNeumann", verifier.public_key) == bytes.fromhex("c74f20a3")


def test_generate_gives_fresh_working_keys() -> None:
    a, b = NoteSigner.generate("example.com/log"), NoteSigner.generate("example.com/log")
    assert a.public_key != b.public_key
    restored = NoteSigner.from_private_key_string(a.private_key_string())
    assert restored.public_key == a.public_key
    assert restored.key_id == a.key_id
    NoteVerifier.from_verifier_key(a.verifier_key()).verify(b"m", restored.sign(b"m"))


def test_signer_repr_hides_the_seed() -> None:
    signer = NoteSigner.from_private_key_string(DETERMINISTIC["skey"])
    assert repr(signer) == "NoteSigner(PeterNeumann+c74f20a3)"
    assert DETERMINISTIC["skey"].split("+")[-1] not in repr(signer)


PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_KEY64 = PETER_VKEY.split("+", 2)[2]


def _vkey_with(name: str, pk: bytes, alg: int = 1, hexid: str | None = None) -> str:
    kid = hexid if hexid is not None else key_id(name, pk).hex()
    return f"{name}+{kid}+{base64.b64encode(bytes([alg]) + pk).decode()}"


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        f"+c74f20a3+{PETER_KEY64}",  # empty name
        f"PeterNeumann+c74f20a4+{PETER_KEY64}",  # key ID does not match
        f"PeterNeumann+c74f20a+{PETER_KEY64}",  # 7 hex digits
        f"PeterNeumann+0c74f20a3+{PETER_KEY64}",  # 9 hex digits
        f"PeterNeumann+0xc74f20+{PETER_KEY64}",
        f"PeterNeumann+c74f_20a+{PETER_KEY64}",
        f"PeterNeumann+ c74f20a+{PETER_KEY64}",
        f"PeterNeumann+c74f20a3+{PETER_KEY64[:-1]}",  # truncated base64
        f"PeterNeumann+c74f20a3+{PETER_KEY64} ",
        f"PeterNeumann+c74f20a3+{PETER_KEY64}\n",
        f"PeterNeumann+c74f20a3+{PETER_KEY64[:-1]}é",
        f"Peter Neumann+c74f20a3+{PETER_KEY64}",
        f"Peter\u00a0Neumann+c74f20a3+{PETER_KEY64}",  # no-break space
        f"Peter\u2003Neumann+c74f20a3+{PETER_KEY64}",  # em space
        f"Peter\tNeumann+c74f20a3+{PETER_KEY64}",
        f"Peter\x01Neumann+c74f20a3+{PETER_KEY64}",
        _vkey_with("x", b"\x07" * 32, alg=2),  # ECDSA type byte
        _vkey_with("x", b"\x07" * 32, alg=4),  # cosignature type byte
        _vkey_with("x", b"\x07" * 31),
        _vkey_with("x", b"\x07" * 33),
        "x+00000000+",
    ],
)
def test_bad_verifier_key_is_a_format_error(vkey: str) -> None:
    with pytest.raises(NoteFormatError):
        NoteVerifier.from_verifier_key(vkey)


def test_verifier_key_hex_id_is_case_insensitive_like_go() -> None:
    upper = PETER_VKEY.replace("c74f20a3", "C74F20A3")
    assert NoteVerifier.from_verifier_key(upper) == NoteVerifier.from_verifier_key(PETER_VKEY)


def test_verifier_constructor_checks_key_id_and_sizes() -> None:
    good = NoteVerifier.from_verifier_key(PETER_VKEY)
    with pytest.raises(NoteFormatError, match="does not match"):
        NoteVerifier(good.name, KeyId(b"\0\0\0\0"), good.public_key)
    with pytest.raises(NoteFormatError, match="32 bytes"):
        NoteVerifier.from_public_key("x", b"\0" * 31)
    with pytest.raises(NoteFormatError, match="key name"):
        NoteVerifier.from_public_key("a+b", good.public_key)


@pytest.mark.parametrize(
    "skey",
    [
        "",
        DETERMINISTIC["skey"].replace("PRIVATE+KEY+", "PRIVATE+KEYS+"),
        DETERMINISTIC["skey"].replace("PRIVATE+KEY+", ""),
        DETERMINISTIC["skey"].replace("c74f20a3", "c74f20a4"),  # key ID of another key
        DETERMINISTIC["skey"].replace("PeterNeumann", "PaulNeumann"),  # key ID no longer fits
        DETERMINISTIC["skey"].replace("+AYEK", "+AoEK"),  # type byte 0x02
        DETERMINISTIC["skey"][:-4],  # short seed
        "PRIVATE+KEY+PeterNeumann+c74f20a3",
    ],
)
def test_bad_private_key_string_is_a_format_error(skey: str) -> None:
    with pytest.raises(NoteFormatError):
        NoteSigner.from_private_key_string(skey)


def test_signer_rejects_bad_name_and_seed() -> None:
    with pytest.raises(NoteFormatError):
        NoteSigner("", bytes(32))
    with pytest.raises(NoteFormatError):
        NoteSigner("has space", bytes(32))
    with pytest.raises(NoteFormatError):
        NoteSigner("ok", bytes(31))


def test_verify_translates_library_errors() -> None:
    signer = NoteSigner.generate("example.com/log")
    verifier = signer.verifier()
    sig = signer.sign(b"message")
    verifier.verify(b"message", sig)
    with pytest.raises(SignatureInvalid) as caught:
        verifier.verify(b"massage", sig)
    assert isinstance(caught.value.__cause__, nacl.exceptions.BadSignatureError)
    with pytest.raises(SignatureInvalid, match="65 bytes"):
        verifier.verify(b"message", sig + b"\0")


# --- open_note semantics -----------------------------------------------------------------------


def test_unknown_keys_only_is_signature_invalid() -> None:
    note = sign_note(TEXT, [NoteSigner.generate("a.example")])
    with pytest.raises(SignatureInvalid, match="no signature by a known key"):
        open_note(note, [NoteSigner.generate("b.example").verifier()])
    with pytest.raises(SignatureInvalid):
        open_note(note, [])


def test_other_key_with_the_same_name_is_signature_invalid() -> None:
    real, impostor = NoteSigner.generate("log.example"), NoteSigner.generate("log.example")
    with pytest.raises(SignatureInvalid):
        open_note(sign_note(TEXT, [impostor]), [real.verifier()])


def test_forged_signature_under_a_known_key_id_is_signature_invalid() -> None:
    """A line naming the known (name, key ID) but signed by another key: tampering."""
    real, impostor = NoteSigner.generate("log.example"), NoteSigner.generate("log.example")
    forged = NoteSignature(real.name, real.key_id, impostor.sign(TEXT.encode()))
    with pytest.raises(SignatureInvalid, match="does not verify"):
        open_note(TEXT + "\n" + forged.line(), [real.verifier()])


def test_a_failing_known_signature_rejects_the_note_even_if_another_verifies() -> None:
    a, b = NoteSigner.generate("a.example"), NoteSigner.generate("b.example")
    good_a = NoteSignature(a.name, a.key_id, a.sign(TEXT.encode()))
    bad_b = NoteSignature(b.name, b.key_id, b.sign(b"something else\n"))
    note = TEXT + "\n" + good_a.line() + bad_b.line()
    with pytest.raises(SignatureInvalid):
        open_note(note, [a.verifier(), b.verifier()])
    opened = open_note(note, [a.verifier()])  # b unknown: ignored, as the spec requires
    assert opened.verified == [a.verifier()]
    assert opened.unverified == (bad_b,)


def test_repeated_signatures_are_counted_once() -> None:
    a, b = NoteSigner.generate("a.example"), NoteSigner.generate("b.example")
    note = sign_note(TEXT, [a, a, b, b])
    opened = open_note(note, [a.verifier()])
    assert opened.verified == [a.verifier()]
    assert opened.unverified_sigs == 1


def test_duplicate_verifier_entries_are_fine_but_colliding_keys_are_not() -> None:
    a = NoteSigner.generate("a.example")
    note = sign_note(TEXT, [a])
    assert open_note(note, [a.verifier(), a.verifier()]).verified == [a.verifier()]
    # A crafted collision on (name, 4-byte key ID): bypass the constructor's check to build it.
    clash = NoteSigner.generate("a.example").verifier()
    object.__setattr__(clash, "key_id", a.key_id)
    with pytest.raises(ConfigurationError, match="share name and key ID"):
        open_note(note, [a.verifier(), clash])


def test_text_is_split_at_the_last_blank_line() -> None:
    a = NoteSigner.generate("a.example")
    text = "para one\n\n\u2014 looks.like a+signature=\n\nlast\n\n"
    opened = open_note(sign_note(text, [a]), [a.verifier()])
    assert opened.text == text


def test_signature_limit() -> None:
    a = NoteSigner.generate("a.example")
    line = _sig_lines(sign_note(TEXT, [a]))[0] + "\n"
    others = [NoteSigner("w.example", bytes([i]) * 32) for i in range(MAX_SIGNATURES)]
    witness_lines = [NoteSignature(w.name, w.key_id, w.sign(TEXT.encode())).line() for w in others]
    at_limit = TEXT + "\n" + line + "".join(witness_lines[: MAX_SIGNATURES - 1])
    assert open_note(at_limit, [a.verifier()]).unverified_sigs == MAX_SIGNATURES - 1
    over = TEXT + "\n" + line + "".join(witness_lines)
    with pytest.raises(NoteFormatError, match="more than"):
        open_note(over, [a.verifier()])


def test_signature_from_unknown_algorithm_is_kept_unverified() -> None:
    """Signatures of other types (e.g. 72-byte cosignatures) are opaque when the key is unknown."""
    a = NoteSigner.generate("a.example")
    other = NoteSignature("w.example", KeyId(b"\1\2\3\4"), b"\x09" * 72)
    opened = open_note(sign_note(TEXT, [a]) + other.line(), [a.verifier()])
    assert opened.unverified == (other,)


@pytest.mark.parametrize(
    ("suffix", "reason"),
    [
        ("\u2014 a.example\n", "no signature"),
        ("\u2014 a.example \n", "no signature"),
        ("\u2014  AAAAAAA=\n", "empty"),
        ("\u2014 a.example AAAA\n", "too short"),
        ("\u2014 a.example AAAAAAA\n", "base64"),
        ("\u2014 a.example AAAAAAB=\n", "canonical"),
        ("\u2014 a.example AAAA AAA=\n", "base64"),
        ("- a.example AAAAAAA=\n", "does not start"),
        ("\u2014a.example AAAAAAA=\n", "does not start"),
        ("\u2014 a.example AAAAAAA=\r\n", "control"),
    ],
)
def test_malformed_signature_lines(suffix: str, reason: str) -> None:
    with pytest.raises(NoteFormatError, match=reason):
        parse_note(TEXT + "\n" + suffix)


# --- sign_note ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["", "no newline", "tab\there\n", "nul\0\n", "cr\r\n", "lone \ud800 surrogate\n"]
)
def test_sign_note_rejects_unsignable_text(text: str) -> None:
    with pytest.raises(NoteFormatError):
        sign_note(text, [NoteSigner.generate("a.example")])


def test_sign_note_needs_a_signer() -> None:
    with pytest.raises(NoteFormatError, match="at least one"):
        sign_note(TEXT, [])


_note_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.just("\n"),
    max_size=200,
).map(lambda s: s + "\n")

SIGNER = NoteSigner("prop.example/log", bytes(range(32)))


@given(_note_text)
def test_sign_then_open_round_trips_any_text(text: str) -> None:
    note = sign_note(text, [SIGNER])
    opened = open_note(note.encode("utf-8"), [SIGNER.verifier()])
    assert opened.text == text
    assert opened.verified == [SIGNER.verifier()]


# --- no raw exception escapes the parsers ------------------------------------------------------


VALID_NOTE = sign_note(TEXT, [SIGNER])


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_junk_notes_raise_only_domain_errors(junk: str | bytes) -> None:
    with pytest.raises(CryptoError):
        open_note(junk, [SIGNER.verifier()])


@given(st.integers(0, len(VALID_NOTE) - 1), st.text(max_size=3), st.integers(0, 3))
def test_edited_notes_raise_only_domain_errors(at: int, insert: str, cut: int) -> None:
    edited = VALID_NOTE[:at] + insert + VALID_NOTE[at + cut :]
    if edited == VALID_NOTE:
        return
    try:
        open_note(edited, [SIGNER.verifier()])
    except CryptoError:
        return
    # The only edits that may still open are ones outside the signed text and signature bytes.
    assert open_note(edited, [SIGNER.verifier()]).text == TEXT


@given(st.text(max_size=200))
def test_junk_key_strings_raise_only_format_errors(junk: str) -> None:
    for candidate in (junk, "PRIVATE+KEY+" + junk, "x+c74f20a3+" + junk):
        for parse in (NoteVerifier.from_verifier_key, NoteSigner.from_private_key_string):
            with contextlib.suppress(NoteFormatError):
                parse(candidate)
