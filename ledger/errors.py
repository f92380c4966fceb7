"""The one exception tree of the ledger. Every exception class the project raises is here.

    LedgerError
    ├── CryptoError                    a proof, signature, note or ciphertext does not check out
    │   ├── InclusionProofInvalid
    │   ├── ConsistencyProofInvalid
    │   ├── NoteFormatError            a signed note / checkpoint / key string is malformed
    │   ├── SignatureInvalid           no signature by a known key verifies
    │   └── DecryptionFailed           AES-GCM tag mismatch, unknown or destroyed data key
    ├── CanonicalizationError          a value has no RFC 8785 form (NaN, huge int, bad key)
    ├── ClientError                    the caller's fault
    │   ├── MalformedRequest           not JSON, wrong shape
    │   │   ├── TrailFileMalformed     a file given as a saved trail is not one
    │   │   └── BundleMalformed        a file given as an evidence bundle is not one (not a
    │   │                              zip, no manifest, unsafe name, over a size limit)
    │   ├── InvalidRequest             well formed, but asks for what cannot be (a bad range,
    │   │   │                          a role that does not exist, a log only the ledger writes)
    │   │   └── BeyondLatestCheckpoint a proof of a tree size no checkpoint reaches (yet: a
    │   │                              standby behind; the server then asks the primary)
    │   ├── EventInvalid               names the field by JSON Pointer (and batch index)
    │   ├── WriterSignatureInvalid     a writer's JWS or public key is malformed, unknown,
    │   │                              revoked or does not verify (ingest: an EventInvalid
    │   │                              naming the event; verifiers: the seq)
    │   ├── ExportInvalid              an export that cannot be made as asked (profile, range,
    │   │                              sample, data subject, since_checkpoint)
    │   ├── PayloadTooLarge            an event, a batch or a body over its limit
    │   │   └── TrailTooLarge          a conversation too long to serve whole
    │   ├── Conflict                   the request contradicts what the ledger holds
    │   │   ├── IdempotencyConflict    same (source, id), different content
    │   │   ├── LogExists
    │   │   ├── KeyStateConflict       generate on a log with a key, rotate on one without
    │   │   │                          (or retire a master key still wrapping keys)
    │   │   ├── ScopeErased            an append to (or a second erasure of) an erased
    │   │   │                          conversation
    │   │   ├── HoldActive             an erasure of what a legal hold covers (names the hold)
    │   │   └── RequestNotPending      approving a privacy request approved already or expired
    │   ├── NotFound                   log, entry, conversation, credential, request, hold
    │   ├── Unauthenticated
    │   ├── TooManyAuthFailures        a source over its failed-authentication limit (429,
    │   │                              ``retry_after`` seconds)
    │   └── Forbidden
    │       └── TwoPersonRule          a privacy request approved by the credential that made it
    ├── StoreUnavailable               the database cannot be reached right now
    │   └── LogMoved                   the log's tenant moved to another cluster: retry
    ├── KeyProviderUnavailable         a master key's provider (a KMS) failed or cannot be
    │                                  reached right now
    ├── ConfigurationError             the operator's settings are unusable
    ├── IntegrityFailure               stored data that does not check out
    │   └── CheckpointFork             the database's tree contradicts a checkpoint the ledger
    │                                  gave out or anchored (a rollback or a fork, e.g. a
    │                                  failover that lost acknowledged entries): never signed
    └── WorkerFailed                   a verification process died before it reported

Domain classes carry no transport detail: ``api/errors.py`` maps each class to an HTTP status
and problem type, and ``ledger/cli/errors.py`` to an exit code, each in one table that names
every class (a test walks the tree and fails on a class either table leaves out).

Library exceptions (nacl's BadSignatureError, cryptography's InvalidTag, SQLAlchemy's
OperationalError) are translated at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""


class CryptoError(LedgerError):
    """A cryptographic object did not verify or could not be parsed."""


class InclusionProofInvalid(CryptoError):
    """An RFC 9162 inclusion proof does not lead to the expected root."""


class ConsistencyProofInvalid(CryptoError):
    """An RFC 9162 consistency proof does not connect the two roots."""


class NoteFormatError(CryptoError):
    """A C2SP signed note, checkpoint body or key string is malformed."""


class SignatureInvalid(CryptoError):
    """No signature on a note verifies under a known key."""


class DecryptionFailed(CryptoError):
    """A payload or wrapped key could not be decrypted (tampered, wrong or destroyed key)."""


class CanonicalizationError(LedgerError):
    """A value cannot be expressed in RFC 8785 canonical JSON."""


class ClientError(LedgerError):
    """The request is at fault; nothing was stored."""


class MalformedRequest(ClientError):
    """The body is not JSON, or not the shape the operation takes."""


class TrailFileMalformed(MalformedRequest):
    """The file is not a saved trail (not JSON, or the wrong shape): nothing can be checked."""


class BundleMalformed(MalformedRequest):
    """The file is not an evidence bundle (not a zip, no manifest, a name that is unsafe, a
    member or total over its size limit): nothing can be checked, nothing was extracted."""


class InvalidRequest(ClientError):
    """Well formed, but asks for something that cannot be done."""


class BeyondLatestCheckpoint(InvalidRequest):
    """A proof asked for a tree size the log's latest checkpoint does not reach. From a standby,
    it may only not have replayed it yet: the server then asks the primary."""


class EventInvalid(ClientError):
    """An event fails validation. ``pointer`` is an RFC 6901 JSON Pointer into the request."""

    def __init__(self, pointer: str, detail: str) -> None:
        super().__init__(f"{pointer or '/'}: {detail}")
        self.pointer = pointer
        self.detail = detail

    def at_index(self, index: int, *, batch: bool) -> EventInvalid:
        """The same error, its pointer rebased into a request that held many events."""
        prefix = f"/events/{index}" if batch else ""
        return EventInvalid(prefix + self.pointer, self.detail)


class WriterSignatureInvalid(ClientError):
    """A writer's signature (detached JWS) or public key does not check out; says why."""


class ExportInvalid(ClientError):
    """An export request that cannot be made as asked; nothing is exported or recorded."""


class PayloadTooLarge(ClientError):
    """An event, a batch or a request body is over its limit."""


class TrailTooLarge(PayloadTooLarge):
    """A conversation has more entries than a trail serves whole (export it instead)."""


class Conflict(ClientError):
    """The request contradicts what the ledger already holds."""


class IdempotencyConflict(Conflict):
    """The same (source, id) was already recorded with different content."""


class LogExists(Conflict):
    """A log with that id exists."""


class KeyStateConflict(Conflict):
    """Key generation on a log that has an active key, or rotation on one that has none; a
    master key retired while keys are still wrapped under it, or rotated to one retired."""


class ScopeErased(Conflict):
    """An append to a conversation whose data key was destroyed: its trail is closed. Also an
    erasure asked of a scope that is erased already."""


class HoldActive(Conflict):
    """An erasure of a conversation or data subject that an active legal hold covers; the
    message names the hold. Release the hold (two admins) first."""


class RequestNotPending(Conflict):
    """A privacy request that can no longer be approved: approved already, or expired."""


class NotFound(ClientError):
    """No such log, entry, conversation, credential, privacy request or active hold."""


class Unauthenticated(ClientError):
    """No bearer token, or one that is unknown or revoked."""


class TooManyAuthFailures(ClientError):
    """A source (client address) failed to authenticate too often in the current window: its
    requests without a credential this process has verified are refused, unread, until the
    window closes in ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many failed authentications from this address; retry in {retry_after} seconds"
        )
        self.retry_after = retry_after


class Forbidden(ClientError):
    """A valid credential without the role or log the operation needs."""


class TwoPersonRule(Forbidden):
    """A privacy request (erasure, hold, release) approved by the credential that made it: a
    second admin approves (NIST AU-9(5))."""


class StoreUnavailable(LedgerError):
    """The database is unreachable; the caller may retry later."""


class LogMoved(StoreUnavailable):
    """The log's tenant has moved to another cluster: its head on this one names the new cluster
    (``ledger tenants move``). Nothing was stored; the server drops the placement it cached, so
    the retry goes to the new cluster."""

    def __init__(self, message: str, *, log_id: str) -> None:
        super().__init__(message)
        self.log_id = log_id


class KeyProviderUnavailable(LedgerError):
    """A master key's provider (a KMS plugin) failed to wrap or unwrap; the message names the
    master key and the provider's exception class, never what it was asked to wrap."""


class ConfigurationError(LedgerError):
    """Settings or key material are missing or unusable."""


class IntegrityFailure(LedgerError):
    """Stored data does not check out. Carries where (log, seq) and what was expected."""

    def __init__(
        self,
        what: str,
        *,
        log: str | None = None,
        seq: int | None = None,
        expected: str | None = None,
        found: str | None = None,
    ) -> None:
        where = f"log {log}" if log else "ledger"
        if seq is not None:
            where += f" seq {seq}"
        msg = f"{where}: {what}"
        if expected is not None or found is not None:
            msg += f" (expected {expected}, found {found})"
        super().__init__(msg)
        self.what = what
        self.log = log
        self.seq = seq
        self.expected = expected
        self.found = found


class CheckpointFork(IntegrityFailure):
    """The log in the database does not extend a checkpoint this ledger already gave out (it
    signed it) or anchored: it is behind it (acknowledged entries are missing: a database
    rolled back, or a failover to a standby that lacked them) or it forks from it (an old
    primary back on its own). Signing on it would put two inconsistent checkpoints into the
    world, so the sequencer refuses, before anything is written."""


class WorkerFailed(LedgerError):
    """A verification process died or could not run: nothing was proven either way."""
