"""The one exception tree of the ledger.

    LedgerError
    ├── CryptoError                    a proof, signature, note or ciphertext does not check out
    │   ├── InclusionProofInvalid
    │   ├── ConsistencyProofInvalid
    │   ├── NoteFormatError            a signed note / checkpoint / key string is malformed
    │   ├── SignatureInvalid           no signature by a known key verifies
    │   └── DecryptionFailed           AES-GCM tag mismatch, unknown or destroyed data key
    ├── CanonicalizationError          a value has no RFC 8785 form (NaN, huge int, bad key)
    ├── ClientError                    the caller's fault; maps to a 4xx
    │   ├── MalformedRequest           400: not JSON, wrong shape
    │   ├── EventInvalid               422: names the field by JSON Pointer (and batch index)
    │   ├── PayloadTooLarge            413
    │   ├── IdempotencyConflict        409: same (source, id), different content
    │   ├── NotFound                   404: log, entry, conversation
    │   ├── Unauthenticated            401
    │   └── Forbidden                  403
    ├── StoreUnavailable               503: the database cannot be reached right now
    ├── ConfigurationError             the operator's settings are unusable
    └── IntegrityFailure               verification found stored data that does not check out

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
    """The request is at fault. ``status`` is the HTTP status the API answers with."""

    status = 400
    title = "Bad Request"


class MalformedRequest(ClientError):
    status = 400
    title = "Malformed request"


class EventInvalid(ClientError):
    """An event fails validation. ``pointer`` is an RFC 6901 JSON Pointer into the request."""

    status = 422
    title = "Invalid event"

    def __init__(self, pointer: str, detail: str) -> None:
        super().__init__(f"{pointer or '/'}: {detail}")
        self.pointer = pointer
        self.detail = detail

    def at_index(self, index: int, *, batch: bool) -> EventInvalid:
        """The same error, its pointer rebased into a request that held many events."""
        prefix = f"/events/{index}" if batch else ""
        return EventInvalid(prefix + self.pointer, self.detail)


class PayloadTooLarge(ClientError):
    status = 413
    title = "Payload too large"


class IdempotencyConflict(ClientError):
    status = 409
    title = "Idempotency conflict"


class NotFound(ClientError):
    status = 404
    title = "Not found"


class Unauthenticated(ClientError):
    status = 401
    title = "Unauthenticated"


class Forbidden(ClientError):
    status = 403
    title = "Forbidden"


class StoreUnavailable(LedgerError):
    """The database is unreachable; the caller may retry later."""


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
