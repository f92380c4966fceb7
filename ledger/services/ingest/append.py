"""The writers' use case: a request body in, receipts out.

Everything that can be done without a sequence number happens here, in the caller's thread and
outside the log's lock (parse, validate, guard, canonicalize, commit to the payload); the group
committer then appends the request as a whole, and the future resolves once it is durable and
covered by a signed checkpoint.
"""

from __future__ import annotations

from concurrent.futures import Future

from ledger.domain import AppendRequest, AppendResult, LogInfo, Principal
from ledger.errors import InvalidRequest
from ledger.events import GuardPolicy
from ledger.services.ingest.prepare import IngestLimits, parse_body, prepare_all, validate_all
from ledger.storage.appenders import Appender


def ingest(
    body: bytes,
    *,
    log: LogInfo,
    writer: Principal,
    committer: Appender,
    limits: IngestLimits,
    default_card_policy: str,
    fingerprint_key: bytes,
) -> Future[AppendResult]:
    """Validate ``body`` (one event or ``{"events": [...]}``) and submit it, all or nothing.
    Raises the first problem (``EventInvalid`` naming it by JSON Pointer, ``PayloadTooLarge``,
    ``MalformedRequest``) before anything reaches the database."""
    if log.kind != "events":
        raise InvalidRequest(f"log {log.id!r} is written only by the ledger itself")
    raws, batch = parse_body(body, limits)
    policy = GuardPolicy(cards=log.policy.get("card_policy", default_card_policy))
    validated = validate_all(raws, batch=batch, policy=policy, fingerprint_key=fingerprint_key)
    prepared = prepare_all(validated, batch=batch)
    return committer.submit(log, AppendRequest(prepared, writer))
