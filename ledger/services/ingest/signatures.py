"""Writer signatures at ingest: the log's policy, the writer's salt, the key, the JWS.

A signed event carries two CloudEvents extension attributes (``ledger.core.writer_signature``):
``datasalt``, the 32-byte commitment salt the writer chose (base64url), and
``writersignature``, its detached JWS over the statement. The ledger commits to the payload with
the writer's salt, so the statement it rebuilds is the one the writer signed, and verifies it
before anything reaches the sequencer. Each refusal is an ``EventInvalid`` at the attribute,
naming the event id and the reason (422; nothing of the request is stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import nacl.signing

from ledger.core.commitment import SALT_SIZE
from ledger.core.entry import writer_known_fields
from ledger.core.writer_signature import (
    DEFAULT_POLICY,
    SALT_ATTRIBUTE,
    SIGNATURE_ATTRIBUTE,
    ParsedJws,
    b64url_decode,
    check_signature,
    parse_jws,
    statement_bytes,
)
from ledger.domain import LogInfo, PreparedEvent, Principal
from ledger.errors import EventInvalid, WriterSignatureInvalid
from ledger.events import ValidatedEvent
from ledger.storage.writer_keys import WriterKeyRecord

STATEMENT_HINT = (
    "time as YYYY-MM-DDTHH:MM:SS.ffffffZ, the commitment over the datasalt, the log's origin"
)


class WriterKeyLookup(Protocol):
    def writer_key(self, log_id: str, kid: str) -> WriterKeyRecord | None:
        """The log's key with that kid (revoked or not), or None."""


class NoWriterKeys:
    """A lookup for callers that take no signed events (every kid is unknown)."""

    def writer_key(self, log_id: str, kid: str) -> WriterKeyRecord | None:
        return None


@dataclass(frozen=True, slots=True)
class SignedParts:
    """What a signed event brought: its salt and its (parsed) JWS."""

    salt: bytes
    jws: str


def signature_policy(log: LogInfo) -> str:
    return str(log.policy.get("signatures", DEFAULT_POLICY))


def signed_parts(event: ValidatedEvent, *, policy: str) -> SignedParts | None:
    """The event's salt and JWS if it is signed; None if it is unsigned and may be.
    Raises ``EventInvalid`` (pointer relative to the event) for what the policy refuses."""
    jws = event.envelope.get(SIGNATURE_ATTRIBUTE)
    salt_text = event.envelope.get(SALT_ATTRIBUTE)
    if jws is None:
        if salt_text is not None:
            raise _refused(
                event,
                SALT_ATTRIBUTE,
                f"{SALT_ATTRIBUTE} is only taken with a {SIGNATURE_ATTRIBUTE}",
            )
        if policy == "required":
            raise _refused(event, SIGNATURE_ATTRIBUTE, "this log requires writer signatures")
        return None
    if policy == "off":
        raise _refused(
            event, SIGNATURE_ATTRIBUTE, "this log takes no writer signatures (its policy is off)"
        )
    if not isinstance(jws, str):
        raise _refused(event, SIGNATURE_ATTRIBUTE, "must be a detached compact JWS string")
    if salt_text is None:
        raise _refused(
            event,
            SALT_ATTRIBUTE,
            f"a signed event carries the salt it committed with ({SALT_ATTRIBUTE})",
        )
    try:
        salt = b64url_decode(salt_text, SALT_ATTRIBUTE)
    except WriterSignatureInvalid as exc:
        raise _refused(event, SALT_ATTRIBUTE, str(exc)) from None
    if len(salt) != SALT_SIZE:
        raise _refused(event, SALT_ATTRIBUTE, f"must be {SALT_SIZE} bytes, base64url")
    if event.redactions:
        raise _refused(
            event,
            SIGNATURE_ATTRIBUTE,
            "the card-data guard would mask this event's data, so the ledger would not store "
            "what was signed: mask it before signing",
        )
    return SignedParts(salt, jws)


@dataclass(frozen=True, slots=True)
class _Pending:
    """A signed event whose JWS parsed and whose key may sign it: only the Ed25519 check is
    left, which releases the GIL (PyNaCl calls libsodium through cffi)."""

    index: int
    event_id: str
    parsed: ParsedJws
    statement: bytes
    verifier: nacl.signing.VerifyKey


class SignatureChecker:
    """Checks the signed events of one request against the writer's keys: :meth:`sign_in` does
    what is cheap (parse, key, policy) at once; :meth:`verify` does the Ed25519 checks, which
    ingest runs off the event loop. Each key's verifier is cached for the request (a batch is
    usually signed by one key)."""

    def __init__(self, log: LogInfo, writer: Principal, keys: WriterKeyLookup) -> None:
        self._log = log
        self._writer = writer
        self._keys = keys
        self._verifiers: dict[str, tuple[int, nacl.signing.VerifyKey]] = {}
        self._pending: list[_Pending] = []
        self._headers: dict[str, str] = {}
        self.batch = False

    def sign_in(
        self, event: ValidatedEvent, prepared: PreparedEvent, jws: str, index: int = 0
    ) -> PreparedEvent:
        """``prepared`` with its signature and key, its Ed25519 check left to :meth:`verify`;
        ``EventInvalid`` saying why if anything else is wrong."""
        try:
            parsed = parse_jws(jws, self._headers)
            key_id, verifier = self._verifier(parsed.kid)
            statement = statement_bytes(
                writer_known_fields(
                    origin=self._log.origin, header=prepared.header, commitment=prepared.commitment
                )
            )
        except WriterSignatureInvalid as exc:
            raise _refused(event, SIGNATURE_ATTRIBUTE, str(exc)) from None
        self._pending.append(_Pending(index, event.event_id, parsed, statement, verifier))
        # Built directly: dataclasses.replace introspects the fields on every call (~3 µs).
        return PreparedEvent(
            prepared.header,
            prepared.scope,
            prepared.salt,
            prepared.canonical_data,
            prepared.commitment,
            prepared.request_digest,
            writer_signature=jws,
            writer_key_id=key_id,
        )

    @property
    def pending(self) -> int:
        return len(self._pending)

    def verify(self) -> None:
        """The Ed25519 checks of every signed event signed in; the first that fails is an
        ``EventInvalid`` naming the event (its pointer rebased into a batch)."""
        for p in self._pending:
            try:
                check_signature(p.parsed, p.statement, p.verifier)
            except WriterSignatureInvalid as exc:
                reason = f"{exc} (built as the ledger stores the event: {STATEMENT_HINT})"
                refused = EventInvalid(f"/{SIGNATURE_ATTRIBUTE}", f"event {p.event_id!r}: {reason}")
                raise refused.at_index(p.index, batch=self.batch) from None

    def _verifier(self, kid: str) -> tuple[int, nacl.signing.VerifyKey]:
        known = self._verifiers.get(kid)
        if known is not None:
            return known
        record = self._keys.writer_key(self._log.id, kid)
        if record is None:
            raise WriterSignatureInvalid(f"unknown writer key {kid}")
        if record.credential_id != self._writer.credential_id:
            raise WriterSignatureInvalid(f"key {kid} belongs to another writer")
        if record.revoked_at is not None:
            raise WriterSignatureInvalid(f"key {kid} is revoked")
        known = self._verifiers[kid] = (record.id, nacl.signing.VerifyKey(record.public_key))
        return known


def _refused(event: ValidatedEvent, attribute: str, reason: str) -> EventInvalid:
    return EventInvalid(f"/{attribute}", f"event {event.event_id!r}: {reason}")
