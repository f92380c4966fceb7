"""C2SP tlog-checkpoint: known answers from ../shared/vectors/notes, tampering, round trips.

Vectors: transparency-dev/formats ``TestUnmarshalLogState`` (checkpointParse) and
FiloSottile/sunlight witness test data (cosignatureV1), see the vectors README. The parse vectors
use roots such as "bananas" that are not 32 bytes: this ledger's strict parser rejects them for
that reason, and each case is also replayed with a 32-byte root, which must then parse exactly
when the vector says it is valid. A missing vectors file is an error, never a skip.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
from typing import Any

import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.core.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from ledger.core.note import open_note, parse_note, sign_note
from ledger.core.signing import NoteSigner, NoteVerifier
from ledger.core.types import HASH_SIZE, RootHash
from ledger.errors import (
    ConfigurationError,
    CryptoError,
    NoteFormatError,
    SignatureInvalid,
)
from tests.vectors import load_notes

VECTORS = load_notes()
PARSE = VECTORS["checkpointParse"]
COSIG = VECTORS["cosignatureV1"]

ORIGIN = "ledger.example.com/acme-support"
ROOT = RootHash(hashlib.sha256(b"root").digest())
ROOT64 = base64.b64encode(ROOT).decode()
_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# 32 bytes leave 2 unused bits in the last base64 digit; setting one gives another text, same bytes.
ROOT64_NON_CANONICAL = ROOT64[:-2] + _B64_ALPHABET[_B64_ALPHABET.index(ROOT64[-2]) | 1] + "="
ROOT64_URLSAFE = base64.urlsafe_b64encode(bytes([0xFF]) * 32).decode()  # "_" and "-", not std
EMPTY_ROOT = RootHash(hashlib.sha256(b"").digest())  # RFC 6962 §2.1: MTH({}) = SHA-256()


def _with_32_byte_root(text: str) -> str:
    """Replace the third line, when it is base64, by a 32-byte root derived from it."""
    lines = text.split("\n")
    if len(lines) > 2:
        try:
            short = base64.b64decode(lines[2], validate=True)
        except binascii.Error:
            return text
        lines[2] = base64.b64encode(hashlib.sha256(short).digest()).decode()
    return "\n".join(lines)


# --- checkpointParse vectors -------------------------------------------------------------------


def test_vectors_present() -> None:
    assert any(c["valid"] for c in PARSE)
    assert any(not c["valid"] for c in PARSE)
    assert COSIG


@pytest.mark.parametrize("case", PARSE, ids=lambda c: c["desc"])
def test_parse_vector_as_published_is_rejected(case: dict[str, Any]) -> None:
    """Every published body fails here: the valid ones only because their root is not 32 bytes."""
    with pytest.raises(NoteFormatError) as caught:
        parse_checkpoint(case["noteText"])
    if case["valid"]:
        assert "root hash must be 32 bytes" in str(caught.value)


@pytest.mark.parametrize("case", PARSE, ids=lambda c: c["desc"])
def test_parse_vector_with_32_byte_root(case: dict[str, Any]) -> None:
    text = _with_32_byte_root(case["noteText"])
    if not case["valid"]:
        with pytest.raises(NoteFormatError):
            parse_checkpoint(text)
        return
    cp = parse_checkpoint(text)
    origin, size, root64 = text.split("\n")[:3]
    assert cp.origin == origin
    assert cp.size == int(size)
    assert cp.root_hash == base64.b64decode(root64)
    assert len(cp.root_hash) == HASH_SIZE
    rest = case["rest"] or ""
    assert cp.extensions == tuple(rest.splitlines())
    assert cp.body() == text


# --- strict parsing ----------------------------------------------------------------------------


def test_parse_minimal_and_empty_tree() -> None:
    cp = parse_checkpoint(f"{ORIGIN}\n0\n{base64.b64encode(EMPTY_ROOT).decode()}\n")
    assert cp == Checkpoint(ORIGIN, 0, EMPTY_ROOT)


def test_largest_size_is_uint64_max() -> None:
    assert parse_checkpoint(f"o\n{MAX_TREE_SIZE}\n{ROOT64}\n").size == 2**64 - 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "newline"),
        (f"o\n1\n{ROOT64}", "newline"),
        ("o\n1\n", "needs at least 3"),
        (f"\n1\n{ROOT64}\n", "origin is empty"),
        (f"o\r\n1\n{ROOT64}\n", "origin contains"),
        (f"o\n1\r\n{ROOT64}\n", "tree size"),
        (f"o\n\n{ROOT64}\n", "tree size"),
        (f"o\n01\n{ROOT64}\n", "tree size"),
        (f"o\n00\n{ROOT64}\n", "tree size"),
        (f"o\n+1\n{ROOT64}\n", "tree size"),
        (f"o\n-0\n{ROOT64}\n", "tree size"),
        (f"o\n 1\n{ROOT64}\n", "tree size"),
        (f"o\n1 \n{ROOT64}\n", "tree size"),
        (f"o\n1_000\n{ROOT64}\n", "tree size"),
        (f"o\n0x10\n{ROOT64}\n", "tree size"),
        (f"o\n1e3\n{ROOT64}\n", "tree size"),
        (f"o\n\u0663\n{ROOT64}\n", "tree size"),  # ARABIC-INDIC DIGIT THREE: int() would take it
        (f"o\n{2**64}\n{ROOT64}\n", "64 bits"),
        (f"o\n{'9' * 5000}\n{ROOT64}\n", "64 bits"),  # longer than int()'s digit limit
        ("o\n1\n\n", "root hash"),
        (f"o\n1\n{ROOT64.rstrip('=')}\n", "root hash"),
        (f"o\n1\n{ROOT64_NON_CANONICAL}\n", "canonical"),
        (f"o\n1\n {ROOT64}\n", "root hash"),
        (f"o\n1\n{ROOT64_URLSAFE}\n", "root hash"),
        (f"o\n1\n{base64.b64encode(bytes(31)).decode()}\n", "32 bytes, got 31"),
        (f"o\n1\n{base64.b64encode(bytes(33)).decode()}\n", "32 bytes, got 33"),
        (f"o\n1\n{ROOT64}\n\n", "extension line 1 is empty"),
        (f"o\n1\n{ROOT64}\next\n\n", "extension line 2 is empty"),
        (f"o\n1\n{ROOT64}\nex\tt\n", "extension line 1 contains"),
        (f"o\n1\n{ROOT64}\u00e9\n", "root hash"),
    ],
)
def test_strict_parse_rejects(body: str, reason: str) -> None:
    with pytest.raises(NoteFormatError, match=reason):
        parse_checkpoint(body)


def test_non_canonical_root_case_really_decodes_to_the_same_bytes() -> None:
    assert ROOT64_NON_CANONICAL != ROOT64
    assert base64.b64decode(ROOT64_NON_CANONICAL, validate=True) == ROOT


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": ""},
        {"origin": "a\nb"},
        {"size": -1},
        {"size": 2**64},
        {"size": True},
        {"root_hash": RootHash(bytes(31))},
        {"extensions": ("",)},
        {"extensions": ("a\nb",)},
    ],
)
def test_checkpoint_constructor_refuses_what_the_parser_would(kwargs: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"origin": ORIGIN, "size": 5, "root_hash": ROOT} | kwargs
    with pytest.raises(NoteFormatError):
        Checkpoint(**fields)


def test_body_is_the_c2sp_text() -> None:
    cp = Checkpoint(ORIGIN, 20852163, ROOT, ("ext one", "ext two"))
    assert cp.body() == f"{ORIGIN}\n20852163\n{ROOT64}\next one\next two\n"


_line = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1)
_checkpoints = st.builds(
    Checkpoint,
    origin=_line,
    size=st.integers(0, MAX_TREE_SIZE),
    root_hash=st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE).map(RootHash),
    extensions=st.lists(_line, max_size=3).map(tuple),
)


@given(_checkpoints)
def test_body_parse_round_trip(cp: Checkpoint) -> None:
    assert parse_checkpoint(cp.body()) == cp


@given(st.text(max_size=300))
def test_junk_bodies_raise_only_note_format_errors(junk: str) -> None:
    with contextlib.suppress(NoteFormatError):
        parse_checkpoint(junk)


_VALID_BODY = Checkpoint(ORIGIN, 1234, ROOT, ("x",)).body()


@given(
    st.integers(0, len(_VALID_BODY)),
    st.text(alphabet=st.sampled_from("0123456789+-=/ \n\r\t\0aZ\u00e9\u2014"), max_size=4),
    st.integers(0, 4),
)
def test_edited_bodies_raise_only_note_format_errors(at: int, insert: str, cut: int) -> None:
    edited = _VALID_BODY[:at] + insert + _VALID_BODY[at + cut :]
    try:
        cp = parse_checkpoint(edited)
    except NoteFormatError:
        return
    assert cp.body() == edited


# --- signing, opening, tampering ---------------------------------------------------------------

LOG = NoteSigner(ORIGIN, hashlib.sha256(b"test log key").digest())
CHECKPOINT = Checkpoint(ORIGIN, 20852163, ROOT)
SIGNED = sign_checkpoint(CHECKPOINT, LOG)


def test_generate_sign_open_parse_round_trip() -> None:
    signer = NoteSigner.generate(ORIGIN)
    verifier = NoteVerifier.from_verifier_key(signer.verifier_key())
    cp = Checkpoint(ORIGIN, 7, ROOT, ("ext",))
    note = sign_checkpoint(cp, signer)
    assert note.startswith(cp.body() + "\n\u2014 " + ORIGIN + " ")
    assert open_checkpoint(note, [verifier]) == cp
    assert open_checkpoint(note.encode(), [verifier]) == cp
    assert parse_checkpoint(open_note(note, [verifier]).text) == cp


@pytest.mark.parametrize("mask", [0x01, 0x20, 0x80])
def test_flipping_any_byte_of_a_signed_checkpoint_fails(mask: int) -> None:
    raw = SIGNED.encode("utf-8")
    opened = 0
    for i in range(len(raw)):
        tampered = raw[:i] + bytes([raw[i] ^ mask]) + raw[i + 1 :]
        try:
            open_checkpoint(tampered, [LOG.verifier()])
        except CryptoError:
            continue
        opened += 1
    assert opened == 0


def test_tampered_body_fails_verification_not_parsing() -> None:
    forged = SIGNED.replace("\n20852163\n", "\n20852164\n")
    with pytest.raises(SignatureInvalid):
        open_checkpoint(forged, [LOG.verifier()])


def test_checkpoint_signed_by_another_key_with_the_same_name_fails() -> None:
    impostor = NoteSigner.generate(ORIGIN)
    with pytest.raises(SignatureInvalid):
        open_checkpoint(sign_checkpoint(CHECKPOINT, impostor), [LOG.verifier()])


def test_signer_must_be_named_after_the_origin() -> None:
    other = NoteSigner.generate("other.example/log")
    with pytest.raises(ConfigurationError):
        sign_checkpoint(CHECKPOINT, other)
    # Signed anyway (by hand) and opened with that key: not this log's signature.
    note = sign_note(CHECKPOINT.body(), [other])
    with pytest.raises(SignatureInvalid, match="not signed by that log's key"):
        open_checkpoint(note, [LOG.verifier(), other.verifier()])


def test_signed_note_that_is_not_a_checkpoint_is_a_format_error() -> None:
    with pytest.raises(NoteFormatError):
        open_checkpoint(sign_note("just text\n", [LOG]), [LOG.verifier()])


def test_known_witness_signature_alongside_the_log_key() -> None:
    witness = NoteSigner.generate("witness.example")
    note = sign_note(CHECKPOINT.body(), [LOG, witness])
    assert open_checkpoint(note, [LOG.verifier(), witness.verifier()]) == CHECKPOINT
    assert open_checkpoint(note, [LOG.verifier()]) == CHECKPOINT
    with pytest.raises(SignatureInvalid):
        open_checkpoint(note, [witness.verifier()])


# --- cosignature/v1 (c2sp.org/tlog-cosignature) -------------------------------------------------

COSIGNATURE_ALG = 0x04


@pytest.mark.parametrize("case", COSIG, ids=lambda c: c["cosignerName"])
def test_cosignature_vector_parses_and_verifies_by_hand(case: dict[str, Any]) -> None:
    name, hexid, key64 = case["vkey"].split("+", 2)
    key = base64.b64decode(key64)
    assert key[0] == COSIGNATURE_ALG
    public_key = key[1:]
    assert bytes(nacl.signing.SigningKey(bytes.fromhex(case["seedHex"])).verify_key) == public_key
    assert hashlib.sha256(name.encode() + b"\n" + key).digest()[:4].hex() == hexid

    # Our Ed25519 note verifier refuses a cosignature (type 0x04) key outright.
    with pytest.raises(NoteFormatError, match="signature type 0x04"):
        NoteVerifier.from_verifier_key(case["vkey"])

    body = case["checkpointBody"]
    parsed_cp = parse_checkpoint(body)  # real 32-byte roots: the strict parser accepts them
    assert parsed_cp.body() == body

    note = body + "\n" + case["signatureLine"] + "\n"
    (sig,) = parse_note(note).signatures
    assert sig.name == case["cosignerName"] == name
    assert sig.key_id.hex() == hexid
    assert len(sig.signature) == 8 + 64
    timestamp = int.from_bytes(sig.signature[:8], "big")
    assert timestamp == case["timestamp"]
    message = f"cosignature/v1\ntime {timestamp}\n{body}"
    assert message == case["signedMessage"]
    nacl.signing.VerifyKey(public_key).verify(message.encode(), sig.signature[8:])
    assert sig.line() == case["signatureLine"] + "\n"

    # A note carrying only a cosignature has no signature by a key we know.
    with pytest.raises(SignatureInvalid):
        open_note(note, [])


@pytest.mark.parametrize("case", COSIG, ids=lambda c: c["cosignerName"])
def test_cosignature_from_unknown_key_is_left_unverified(case: dict[str, Any]) -> None:
    body = case["checkpointBody"]
    log = NoteSigner.generate(parse_checkpoint(body).origin)
    note = sign_note(body, [log]) + case["signatureLine"] + "\n"
    assert open_checkpoint(note, [log.verifier()]) == parse_checkpoint(body)
    opened = open_note(note, [log.verifier()])
    assert opened.unverified_sigs == 1
    assert opened.unverified[0].name == case["cosignerName"]
