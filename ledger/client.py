"""A writer's client for Handoff Ledger: sign, post, retry, receipts, proofs.

::

    from ledger.client import LedgerClient, load_signing_key

    client = LedgerClient("http://127.0.0.1:8080", "demo", token=WRITER,
                          signing_key=load_signing_key("writer.pem"))
    result = client.append(events)                       # signed, posted, retried: receipts
    proof = client.inclusion_proof(result.receipts[0], result.checkpoint, token=AUDITOR)
    client.check_receipt(result.receipts[0], proof, result.checkpoint, verifier_key=KEY)
    client.save_tlog_proof(proof, result.checkpoint, "event.tlog-proof")

Signing (``ledger.core.writer_signature``): for each event the client picks a 32-byte salt,
commits to ``data`` as the ledger does (``SHA-256(salt || RFC 8785 data)``), builds the signed
statement from the event's header as the ledger will store it (its ``time`` normalised), signs
it with the writer's Ed25519 key and adds ``datasalt`` and ``writersignature`` to the event. The
private key never leaves this process.

Retries: a 503 or a dropped connection leaves the outcome unknown (the batch may have committed
as its answer was lost). The client posts the very same bytes again (same ids, same salts, same
signatures: Ed25519 is deterministic), and the ledger answers a stored event with its original
receipt; a retry never duplicates an event. Other answers are final and raised as the ledger's
own errors (``EventInvalid`` with its pointer, ``Unauthenticated``, ...).
"""

from __future__ import annotations

import base64
import http.client
import os
import secrets
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import nacl.signing
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.core.canonical import canonicalize
from ledger.core.checkpoint import Checkpoint, open_checkpoint
from ledger.core.commitment import SALT_SIZE, payload_commitment
from ledger.core.merkle import verify_inclusion
from ledger.core.signing import NoteVerifier
from ledger.core.tlog_proof import format_tlog_proof
from ledger.core.writer_signature import (
    SALT_ATTRIBUTE,
    SIGNATURE_ATTRIBUTE,
    STATEMENT_FORMAT,
    b64url,
    key_thumbprint,
    sign_statement,
)
from ledger.errors import (
    Conflict,
    EventInvalid,
    Forbidden,
    IdempotencyConflict,
    InclusionProofInvalid,
    InvalidRequest,
    LedgerError,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    StoreUnavailable,
    Unauthenticated,
)
from ledger.events.envelope import normalise_time

TRACE_ATTRIBUTES = ("traceparent", "tracestate")
"""Extension attributes the ledger keeps in the entry's ``event`` object (so they are signed)."""


# --- the writer's key ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WriterSigningKey:
    """An Ed25519 private key of a writer, and the ``kid`` the ledger knows it by."""

    key: nacl.signing.SigningKey

    @property
    def public_key(self) -> bytes:
        return bytes(self.key.verify_key)

    @property
    def public_key_b64url(self) -> str:
        """What ``ledger writers keys add --public-key`` takes."""
        return b64url(self.public_key)

    @property
    def kid(self) -> str:
        return key_thumbprint(self.public_key)


def generate_signing_key() -> WriterSigningKey:
    return WriterSigningKey(nacl.signing.SigningKey.generate())


def save_signing_key(key: WriterSigningKey, path: str) -> None:
    """PEM PKCS #8 (as ``openssl genpkey -algorithm ed25519`` writes), created with mode 0600;
    an existing file is never overwritten."""
    pem = Ed25519PrivateKey.from_private_bytes(bytes(key.key)).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise InvalidRequest(f"cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def load_signing_key(path: str) -> WriterSigningKey:
    """A writer key from a PEM PKCS #8 Ed25519 private key file (``save_signing_key``,
    ``openssl genpkey -algorithm ed25519``)."""
    try:
        with open(path, "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidRequest(f"cannot read an Ed25519 private key from {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidRequest(f"{path} does not hold an Ed25519 private key")
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return WriterSigningKey(nacl.signing.SigningKey(seed))


# --- signing an event ---------------------------------------------------------------------------


def statement_for(event: dict[str, Any], *, origin: str, salt: bytes) -> bytes:
    """The statement the ledger will rebuild from the entry of ``event`` in the log ``origin``
    (``ledger.core.writer_signature``): RFC 8785 of the entry's actor, event, origin, outcome
    and payload commitment, plus the statement format."""
    data = event["data"]
    subject = event["subject"]
    header: dict[str, Any] = {
        "id": event["id"],
        "source": event["source"],
        "type": event["type"],
        "time": normalise_time(event["time"]),
        "subject": subject,
        "conversation": subject.removeprefix("conversations/"),
    }
    header.update({name: event[name] for name in TRACE_ATTRIBUTES if name in event})
    actor = data.get("actor") or {}
    commitment = payload_commitment(salt, canonicalize(data))
    return canonicalize(
        {
            "actor": {"kind": actor.get("kind"), "id": actor.get("id")},
            "event": header,
            "format": STATEMENT_FORMAT,
            "origin": origin,
            "outcome": data.get("outcome"),
            "payload": {
                "alg": "sha256-salted",
                "commitment": base64.b64encode(commitment).decode(),
            },
        }
    )


def sign_event(
    event: dict[str, Any], *, origin: str, key: WriterSigningKey, salt: bytes | None = None
) -> dict[str, Any]:
    """A copy of ``event`` with ``datasalt`` and ``writersignature``; its ``time`` written as
    the ledger normalises it. Signing the same event with the same salt gives the same bytes."""
    salt = secrets.token_bytes(SALT_SIZE) if salt is None else salt
    signed = {**event, "time": normalise_time(event["time"]), SALT_ATTRIBUTE: b64url(salt)}
    signed[SIGNATURE_ATTRIBUTE] = sign_statement(
        statement_for(signed, origin=origin, salt=salt), key.key
    )
    return signed


# --- receipts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    event_id: str
    seq: int
    leaf_hash: bytes


@dataclass(frozen=True)
class AppendResult:
    receipts: list[Receipt]
    checkpoint: str
    """The signed checkpoint (C2SP signed note) covering every receipt."""
    created: bool
    """False when every event was already recorded (an answered retry)."""


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    hashes: list[bytes]


# --- the client ---------------------------------------------------------------------------------

_ERRORS: dict[int, type[LedgerError]] = {
    400: MalformedRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
}


class LedgerClient:
    """A writer's connection to one log. Not thread-safe: one per thread."""

    def __init__(
        self,
        url: str,
        log: str,
        *,
        token: str,
        signing_key: WriterSigningKey | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.2,
        salt_for: Callable[[dict[str, Any]], bytes] | None = None,
    ) -> None:
        """``salt_for(event)``: the commitment salt of a signed event (32 bytes). By default a
        fresh random one; a writer that may re-send an event from another process (after a
        restart) must send the same salt again, else the retry is a 409 (other content): keep
        the signed event, or derive the salt from a secret of its own."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidRequest("the ledger URL must be http:// or https://HOST[:PORT]")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._base = parts.path.rstrip("/")
        self.log = log
        self._token = token
        self.signing_key = signing_key
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._conn: http.client.HTTPConnection | None = None
        self._origin: str | None = None
        self._salt_for = salt_for

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- writing --

    @property
    def origin(self) -> str:
        """The log's origin (the first line of its checkpoint): part of what a writer signs."""
        if self._origin is None:
            self._origin = self.checkpoint().split("\n", 1)[0]
        return self._origin

    def sign(self, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The events as they will be posted: signed when the client has a key."""
        if self.signing_key is None:
            return list(events)
        origin, key, salt_for = self.origin, self.signing_key, self._salt_for
        return [
            sign_event(e, origin=origin, key=key, salt=None if salt_for is None else salt_for(e))
            for e in events
        ]

    def append(self, events: Sequence[dict[str, Any]]) -> AppendResult:
        """Sign and post ``events`` as one atomic batch; retried on 503 or a dropped connection
        with the same bytes. Raises the ledger's error for any other refusal."""
        return self.post_signed(self.sign(events))

    def post_signed(self, events: Sequence[dict[str, Any]]) -> AppendResult:
        """Post events as they are (signed already, or unsigned), with retries."""
        body = orjson.dumps({"events": list(events)})
        status, answer = self._request("POST", f"/v1/logs/{self.log}/events", body, self._token)
        doc = orjson.loads(answer)
        return AppendResult(
            [
                Receipt(r["event_id"], int(r["seq"]), base64.b64decode(r["leaf_hash"]))
                for r in doc["receipts"]
            ],
            doc["checkpoint"],
            created=status == 201,
        )

    # -- reading what proves a receipt --

    def checkpoint(self) -> str:
        return self._request("GET", f"/v1/logs/{self.log}/checkpoint", None, None)[1].decode()

    def verifier_keys(self) -> list[str]:
        text = self._request("GET", f"/v1/logs/{self.log}/verifier-key", None, None)[1].decode()
        return [line for line in text.splitlines() if line]

    def inclusion_proof(
        self, receipt: Receipt, checkpoint: str, *, token: str | None = None
    ) -> InclusionProof:
        """The receipt's RFC 9162 audit path in the tree of ``checkpoint``. Proofs are served to
        auditor and verifier credentials: pass one as ``token`` (a writer's is refused)."""
        size = int(checkpoint.split("\n")[1])
        query = urllib.parse.urlencode({"seq": receipt.seq, "tree_size": size})
        answer = self._request(
            "GET", f"/v1/logs/{self.log}/proofs/inclusion?{query}", None, token or self._token
        )[1]
        doc = orjson.loads(answer)
        return InclusionProof(
            int(doc["leaf_index"]),
            int(doc["tree_size"]),
            [base64.b64decode(h) for h in doc["hashes"]],
        )

    @staticmethod
    def check_receipt(
        receipt: Receipt, proof: InclusionProof, checkpoint: str, *, verifier_key: str
    ) -> Checkpoint:
        """Nothing wrong, or an error: the checkpoint is signed by ``verifier_key`` (which you
        got from somewhere you trust, not from this answer) and the receipt's leaf is in its
        tree at its seq. Returns the opened checkpoint."""
        opened = open_checkpoint(checkpoint, [NoteVerifier.from_verifier_key(verifier_key)])
        if proof.leaf_index != receipt.seq or proof.tree_size != opened.size:
            raise InclusionProofInvalid(
                f"proof is for leaf {proof.leaf_index} of {proof.tree_size}, not seq "
                f"{receipt.seq} of {opened.size}"
            )
        verify_inclusion(
            receipt.leaf_hash, receipt.seq, opened.size, proof.hashes, opened.root_hash
        )
        return opened

    @staticmethod
    def tlog_proof(proof: InclusionProof, checkpoint: str) -> str:
        """The receipt as a C2SP tlog-proof (c2sp.org/tlog-proof), verifiable offline."""
        return format_tlog_proof(proof.leaf_index, proof.hashes, checkpoint)

    @classmethod
    def save_tlog_proof(cls, proof: InclusionProof, checkpoint: str, path: str) -> None:
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(cls.tlog_proof(proof, checkpoint))

    # -- transport --

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = (
                http.client.HTTPSConnection
                if self._scheme == "https"
                else http.client.HTTPConnection
            )
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn

    def _request(
        self, method: str, path: str, body: bytes | None, token: str | None
    ) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        last = ""
        for attempt in range(self._retries + 1):
            if attempt:
                time.sleep(self._backoff * 2 ** (attempt - 1))
            try:
                conn = self._connection()
                conn.request(method, self._base + path, body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as exc:
                # Dropped or refused: the outcome is unknown, the same bytes go again.
                self.close()
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.status == 503:
                last = "503 Service Unavailable"
                continue
            if response.status >= 400:
                raise _refusal(response.status, answer)
            return response.status, answer
        raise StoreUnavailable(
            f"the ledger did not answer after {self._retries + 1} tries ({last})"
        )


def _refusal(status: int, answer: bytes) -> LedgerError:
    """The ledger's problem detail as the ledger's own error class."""
    try:
        problem = orjson.loads(answer)
    except orjson.JSONDecodeError:
        problem = {}
    detail = str(problem.get("detail", answer[:200].decode("utf-8", "replace")))
    if status == 422 and "pointer" in problem:
        return EventInvalid(str(problem["pointer"]), detail)
    if status == 409 and problem.get("type", "").endswith(":idempotency-conflict"):
        return IdempotencyConflict(detail)
    return _ERRORS.get(status, InvalidRequest)(f"{status}: {detail}")
