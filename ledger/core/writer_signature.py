"""Writer signatures: a writer's detached JWS over its signed statement (issue 18).

A writer (an AI platform) signs each event it posts, so that the entry proves who *said* it,
not only which credential posted it (NIST AU-10). Standards, with nothing of our own:

* the signature is a compact JWS (RFC 7515 §7.1) with a **detached, unencoded payload**
  (RFC 7797 ``"b64": false``, listed in ``crit``; RFC 7515 Appendix F):
  ``base64url(protected header) + ".." + base64url(signature)``;
* ``alg`` is ``EdDSA`` with an Ed25519 key (RFC 8037 §3.1); nothing else is accepted,
  ``none`` least of all;
* ``kid`` is the key's RFC 7638 JWK thumbprint (SHA-256 over
  ``{"crv":"Ed25519","kty":"OKP","x":…}``, base64url): it names exactly one public key, so a
  key list handed to a verifier cannot swap a key without its ``kid`` changing, and the ``kid``
  sits inside the entry the ledger's checkpoints sign.

The JWS signing input is ``ASCII(base64url(header)) || "." || statement`` where the statement is
RFC 8785 canonical JSON of::

    {"actor": {"kind", "id"}, "event": {"id", "source", "type", "time", "subject",
     "conversation"}, "format": "handoff-ledger/statement/v1", "origin": <log origin>,
     "outcome": <data.outcome>, "payload": {"alg": "sha256-salted", "commitment": <base64>}}

exactly the entry's own fields of those names (see :mod:`ledger.core.entry`), so anyone can
rebuild it from a stored entry alone, offline, after the payload is erased: the commitment
``SHA-256(salt || canonical(data))`` uses a salt the writer chose and sent (``datasalt``), and
the erased salt and data are not needed. Only what the writer knows before posting is signed:
never ``seq``, ``prev``, ``received_at``, ``conversation_prev`` or the ``writer`` principal.

The module is pure: bytes and values in, bytes out or :class:`~ledger.errors.
WriterSignatureInvalid` naming the reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import nacl.exceptions
import nacl.signing
import orjson

from ledger.core.canonical import canonicalize
from ledger.errors import CanonicalizationError, WriterSignatureInvalid

SIGNATURE_ATTRIBUTE: Final = "writersignature"
"""CloudEvents extension attribute carrying the writer's detached compact JWS."""
SALT_ATTRIBUTE: Final = "datasalt"
"""CloudEvents extension attribute carrying the writer-chosen commitment salt (base64url)."""
WRITER_ATTRIBUTES: Final = frozenset({SIGNATURE_ATTRIBUTE, SALT_ATTRIBUTE})
"""The extension attributes the ledger reads itself (reserved for writer signatures)."""

STATEMENT_FORMAT: Final = "handoff-ledger/statement/v1"
STATEMENT_FIELDS: Final = ("actor", "event", "origin", "outcome", "payload")
"""The entry's fields the statement copies (plus ``format``)."""
JWS_ALG: Final = "EdDSA"
MAX_JWS_LENGTH: Final = 1024
"""Far above any header we accept (~130 characters) plus 86 of signature."""
ED25519_PUBLIC_KEY_SIZE: Final = 32
ED25519_SIGNATURE_SIZE: Final = 64
POLICIES: Final = ("required", "optional", "off")
"""A log's ``signatures`` policy: ``off`` refuses a signed event (422)."""
DEFAULT_POLICY: Final = "optional"

KEYS_STREAM: Final = "keys"
"""The tenant's system-log stream (conversation) recording writer keys and their revocations."""
KEY_ADDED: Final = "ledger.writer_key.added.v1"
KEY_REVOKED: Final = "ledger.writer_key.revoked.v1"
KEY_RECORD_TYPES: Final = (KEY_ADDED, KEY_REVOKED)
POLICY_CHANGED: Final = "ledger.log.signatures.changed.v1"
POLICY_GRACE: Final = timedelta(seconds=60)
"""How long after a change to ``required`` an unsigned entry may still be received: servers
apply a policy within the 30 s they cache a log, and an event checked just before may wait in
the committer's queue (up to 30 s) before its batch is received."""


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, what: str) -> bytes:
    """Strict base64url without padding (RFC 7515 §2): one text per byte string."""
    if not isinstance(text, str) or not text.isascii() or "=" in text:
        raise WriterSignatureInvalid(f"{what} is not base64url without padding")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise WriterSignatureInvalid(f"{what} is not base64url without padding") from exc
    if b64url(raw) != text:
        raise WriterSignatureInvalid(f"{what} is not base64url without padding")
    return raw


def key_thumbprint(public_key: bytes) -> str:
    """RFC 7638 thumbprint of the Ed25519 public key as an OKP JWK (RFC 8037 §2): its ``kid``."""
    if len(public_key) != ED25519_PUBLIC_KEY_SIZE:
        raise WriterSignatureInvalid(
            f"an Ed25519 public key is {ED25519_PUBLIC_KEY_SIZE} bytes, not {len(public_key)}"
        )
    jwk = b'{"crv":"Ed25519","kty":"OKP","x":"' + b64url(public_key).encode() + b'"}'
    return b64url(hashlib.sha256(jwk).digest())


def statement_of(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The signed statement as a JSON value, from an entry (or anything with its fields)."""
    statement = {name: entry[name] for name in STATEMENT_FIELDS}
    statement["format"] = STATEMENT_FORMAT
    return statement


def statement_bytes(entry: Mapping[str, Any]) -> bytes:
    """The JWS payload: RFC 8785 canonical JSON of :func:`statement_of`."""
    return canonicalize(statement_of(entry))


@dataclass(frozen=True, slots=True)
class ParsedJws:
    kid: str
    signing_input_head: bytes
    """``ASCII(base64url(header)) || "."``: the statement follows it."""
    signature: bytes


def parse_jws(jws: object, headers: dict[str, str] | None = None) -> ParsedJws:
    """Parse a detached compact JWS with an unencoded payload; every refusal names its reason.
    ``headers`` caches accepted protected headers (encoded) by their kid: a writer's events
    share one header, so a batch parses it once."""
    if not isinstance(jws, str):
        raise WriterSignatureInvalid("must be a string, a detached compact JWS")
    if len(jws) > MAX_JWS_LENGTH:
        raise WriterSignatureInvalid(f"is longer than {MAX_JWS_LENGTH} characters")
    parts = jws.split(".")
    if len(parts) != 3:
        raise WriterSignatureInvalid("is not a compact JWS (three parts separated by '.')")
    encoded_header, payload, encoded_signature = parts
    if payload:
        raise WriterSignatureInvalid("must be detached: the payload part must be empty")
    kid = None if headers is None else headers.get(encoded_header)
    if kid is None:
        kid = _header_kid(encoded_header)
        if headers is not None:
            headers[encoded_header] = kid
    signature = b64url_decode(encoded_signature, "signature")
    if len(signature) != ED25519_SIGNATURE_SIZE:
        raise WriterSignatureInvalid(f"an Ed25519 signature is {ED25519_SIGNATURE_SIZE} bytes")
    return ParsedJws(kid, encoded_header.encode("ascii") + b".", signature)


def _header_kid(encoded_header: str) -> str:
    """The kid of an acceptable protected header, or the reason it is not one."""
    try:
        header = orjson.loads(b64url_decode(encoded_header, "protected header"))
    except orjson.JSONDecodeError as exc:
        raise WriterSignatureInvalid("protected header is not JSON") from exc
    if not isinstance(header, dict):
        raise WriterSignatureInvalid("protected header is not a JSON object")
    alg = header.get("alg")
    if alg == "none":
        raise WriterSignatureInvalid('alg "none" is refused: an unsigned JWS signs nothing')
    if alg != JWS_ALG:
        raise WriterSignatureInvalid(f'alg must be "{JWS_ALG}" (Ed25519, RFC 8037)')
    if header.get("b64") is not False or header.get("crit") != ["b64"]:
        raise WriterSignatureInvalid(
            'header must have "b64": false and "crit": ["b64"] (RFC 7797 unencoded payload)'
        )
    # Nothing else: the header is stored in the entry for ever, so it may hold no free text.
    unknown = set(header) - {"alg", "b64", "crit", "kid"}
    if unknown:
        raise WriterSignatureInvalid(f"unknown header parameters: {', '.join(sorted(unknown))}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise WriterSignatureInvalid("header has no kid naming the writer key")
    return kid


def jws_kid(jws: object) -> str | None:
    """The kid a JWS names, or None if it does not parse (to pick the keys a reader needs)."""
    try:
        return parse_jws(jws).kid
    except WriterSignatureInvalid:
        return None


def check_signature(
    parsed: ParsedJws, statement: bytes, verify_key: nacl.signing.VerifyKey
) -> None:
    """Raises :class:`WriterSignatureInvalid` unless the signature is over ``statement``."""
    try:
        verify_key.verify(parsed.signing_input_head + statement, parsed.signature)
    except nacl.exceptions.BadSignatureError as exc:
        raise WriterSignatureInvalid(
            f"signature by key {parsed.kid} does not verify over the statement"
        ) from exc


def sign_statement(statement: bytes, signing_key: nacl.signing.SigningKey) -> str:
    """The detached JWS a writer sends (the private key stays with the writer)."""
    kid = key_thumbprint(bytes(signing_key.verify_key))
    header = b64url(
        canonicalize({"alg": JWS_ALG, "b64": False, "crit": ["b64"], "kid": kid})
    ).encode("ascii")
    signature = signing_key.sign(header + b"." + statement).signature
    return header.decode("ascii") + ".." + b64url(signature)


@dataclass(frozen=True, slots=True)
class WriterKey:
    """A registered writer key and its history, as verifiers receive it."""

    kid: str
    credential: int
    public_key: bytes
    added_at: str
    revoked_at: str | None = None
    """RFC 3339 UTC (``format_time``): a revoked key signs nothing received at or after it."""

    def as_json(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "credential": self.credential,
            "public_key": b64url(self.public_key),
            "added_at": self.added_at,
            "revoked_at": self.revoked_at,
        }


def writer_key_from_json(value: object) -> WriterKey:
    """A :class:`WriterKey` from its JSON form (types only: :class:`WriterKeyring` holds each
    key to its kid, and names a key that is not the one its kid names on its first use)."""
    if not isinstance(value, dict):
        raise WriterSignatureInvalid("a writer key must be a JSON object")
    kid, credential, added, revoked = (
        value.get("kid"),
        value.get("credential"),
        value.get("added_at"),
        value.get("revoked_at"),
    )
    public_key = b64url_decode(value.get("public_key"), "writer public key")  # type: ignore[arg-type]
    if not isinstance(credential, int) or isinstance(credential, bool):
        raise WriterSignatureInvalid("a writer key's credential must be an integer")
    if not isinstance(added, str) or not (revoked is None or isinstance(revoked, str)):
        raise WriterSignatureInvalid("a writer key's added_at / revoked_at must be times")
    if not isinstance(kid, str):
        raise WriterSignatureInvalid("a writer key's kid must be a string")
    return WriterKey(kid, credential, public_key, added, revoked)


class WriterKeyring:
    """Verifies entries' writer signatures against known keys; caches each key's verifier."""

    def __init__(self, keys: list[WriterKey]) -> None:
        self._keys = {key.kid: key for key in keys}
        self._verifiers: dict[str, nacl.signing.VerifyKey] = {}
        self._headers: dict[str, str] = {}
        self._broken: dict[str, str] = {}
        """Keys whose kid is not their thumbprint (a substituted key): named on first use."""
        for key in keys:
            try:
                thumbprint = key_thumbprint(key.public_key)
            except WriterSignatureInvalid as exc:
                self._broken[key.kid] = f"writer key {key.kid}: {exc}"
                continue
            if thumbprint != key.kid:
                self._broken[key.kid] = (
                    f"writer key {key.kid} is not the key it names (its thumbprint is {thumbprint})"
                )

    def __len__(self) -> int:
        return len(self._keys)

    def keys(self) -> list[WriterKey]:
        return list(self._keys.values())

    def check_entry(self, entry: Mapping[str, Any]) -> str | None:
        """Nothing when the entry carries no writer signature or a good one; else the reason
        (for a verifier's report, which names the seq)."""
        jws = entry.get("writer_signature")
        if jws is None:
            return None
        try:
            self.verify_entry(entry, jws)
        except WriterSignatureInvalid as exc:
            return str(exc)
        return None

    def verify_entry(self, entry: Mapping[str, Any], jws: object) -> None:
        parsed = parse_jws(jws, self._headers)
        key = self._keys.get(parsed.kid)
        if parsed.kid in self._broken:
            raise WriterSignatureInvalid(self._broken[parsed.kid])
        if key is None:
            raise WriterSignatureInvalid(f"unknown writer key {parsed.kid}")
        writer = entry.get("writer")
        credential = writer.get("credential") if isinstance(writer, dict) else None
        if credential != key.credential:
            raise WriterSignatureInvalid(
                f"key {parsed.kid} belongs to credential {key.credential}, "
                f"not to the entry's writer {credential}"
            )
        received = entry.get("received_at")
        if key.revoked_at is not None and (
            not isinstance(received, str) or received >= key.revoked_at
        ):
            raise WriterSignatureInvalid(
                f"key {parsed.kid} was revoked at {key.revoked_at}, before the entry was "
                f"received ({received})"
            )
        verifier = self._verifiers.get(parsed.kid)
        if verifier is None:
            verifier = self._verifiers[parsed.kid] = nacl.signing.VerifyKey(key.public_key)
        try:
            statement = statement_bytes(entry)
        except (KeyError, CanonicalizationError) as exc:
            raise WriterSignatureInvalid(f"entry has no statement to check: {exc}") from exc
        check_signature(parsed, statement, verifier)


def writer_keys_from_records(
    records: Iterable[tuple[int, str, Mapping[str, Any]]],
) -> tuple[list[WriterKey], list[tuple[int, str]]]:
    """A log's writer keys and their history from its signed system-log records
    ``(seq, type, payload)`` in seq order (``ledger.writer_key.added.v1`` with the public key,
    ``ledger.writer_key.revoked.v1`` with the time the key signs nothing from): the keys, and
    ``(seq, reason)`` for each record that makes no sense (it is then left out, so the entries
    that need it fail). Every verifier takes its keys from here, never from a key list: the
    records are signed and hash-chained in the system log; a list is only the ledger's word."""
    added: dict[str, WriterKey] = {}
    problems: list[tuple[int, str]] = []
    for seq, kind, record in records:
        try:
            key = _apply_key_record(added, kind, record)
        except (KeyError, TypeError, ValueError, WriterSignatureInvalid) as exc:
            problems.append((seq, f"writer key record is malformed: {exc}"))
            continue
        added[key.kid] = key
    return list(added.values()), problems


def _apply_key_record(
    added: Mapping[str, WriterKey], kind: str, record: Mapping[str, Any]
) -> WriterKey:
    """The key as it stands after one record; raises (KeyError, TypeError, ValueError,
    WriterSignatureInvalid) for a record that makes no sense after the earlier ones."""
    kid, credential = record["kid"], record["credential"]
    if not isinstance(kid, str) or type(credential) is not int:
        raise TypeError("kid and credential must be a string and an integer")
    if kind == KEY_ADDED:
        if kid in added:
            raise ValueError(f"key {kid} is added twice")
        public_key = b64url_decode(record["public_key"], "the recorded public key")
        if key_thumbprint(public_key) != kid:
            raise ValueError(f"the recorded key is not the key {kid} names")
        if not isinstance(record["added_at"], str):
            raise TypeError("added_at must be a time")
        return WriterKey(kid, credential, public_key, record["added_at"])
    if kind != KEY_REVOKED:
        raise ValueError(f"not a writer key record: {kind!r}")
    key = added.get(kid)
    if key is None or key.credential != credential or key.revoked_at is not None:
        raise ValueError(
            f"revokes key {kid}, which no earlier record adds for credential {credential} "
            "or which is revoked already"
        )
    revoked = record["revoked_at"]
    if not isinstance(revoked, str):
        raise TypeError("revoked_at must be a time")
    return WriterKey(kid, credential, key.public_key, key.added_at, revoked)


class RequiredPolicy:
    """When a log's policy was ``required``, from its ``ledger.log.signatures.changed.v1``
    records ``(time, policy)`` in seq order: an unsigned entry received in such a window (from
    :data:`POLICY_GRACE` after the change, until the next change) should have been refused.
    Times are the entries' own (``format_time``: fixed width, so they compare as strings)."""

    def __init__(self, changes: Iterable[tuple[str, str]]) -> None:
        self.windows: list[tuple[str, str | None, str]] = []
        """``(from, until, changed_at)``: required from ``from`` (the change plus the grace)
        until ``until`` (the next change; None: still required)."""
        required_at: str | None = None
        for time, policy in changes:
            if required_at is not None:
                self._close(required_at, time)
                required_at = None
            if policy == "required":
                required_at = time
        if required_at is not None:
            self._close(required_at, None)

    def _close(self, changed_at: str, until: str | None) -> None:
        start = datetime.strptime(changed_at, "%Y-%m-%dT%H:%M:%S.%fZ") + POLICY_GRACE
        self.windows.append((start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), until, changed_at))

    def __bool__(self) -> bool:
        return bool(self.windows)

    def unsigned_problem(self, received_at: object) -> str | None:
        """Why an unsigned entry received at ``received_at`` breaks the policy, or None."""
        if not isinstance(received_at, str):
            return None
        for start, until, changed_at in self.windows:
            if received_at >= start and (until is None or received_at < until):
                return (
                    f"unsigned, but received at {received_at} while the log's policy was "
                    f"required (since {changed_at}, as its system log records)"
                )
        return None
