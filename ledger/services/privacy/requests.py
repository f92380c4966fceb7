"""Privacy requests: an admin asks for an erasure, a legal hold, or a hold's release. Each is
pending until another admin approves it (``approve``), and expires unapproved after a while
(``LEDGER_APPROVAL_TTL_HOURS``, 24 h by default).

Each use case takes the caller's unit of work, the key ring, the log, the requesting principal
and ``now``; the request row and its ``ledger.privacy.requested.v1`` event commit together.
What is refused (an unknown scope, an erasure under a hold or of an erased scope, a release of
a hold that is not active) is recorded as ``ledger.privacy.refused.v1`` through ``refusals``, a
system log that commits on its own (the caller's transaction rolls back with the error).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from ledger.core.entry import format_time
from ledger.domain import LogInfo, Principal
from ledger.errors import (
    ClientError,
    Forbidden,
    HoldActive,
    InvalidRequest,
    NotFound,
    ScopeErased,
)
from ledger.services.privacy.scopes import (
    Scope,
    conversations_of,
    data_key_scope,
    describe_holds,
    holds_covering,
)
from ledger.services.system_log import (
    SystemLog,
    credential_actor,
    privacy_refused_event,
    privacy_requested_event,
)
from ledger.storage import privacy as stored
from ledger.storage.keystore import KeyRing
from ledger.storage.logs import log_size
from ledger.storage.privacy import PrivacyRecord, Status

DEFAULT_TTL = timedelta(hours=24)
MAX_TEXT = 1000
MAX_LISTED = 1000


def request_json(record: PrivacyRecord, now: datetime) -> dict[str, Any]:
    """A request as the API serves it, the CLI prints it and the system log records it."""
    described = {
        "id": record.id,
        "log": record.log_id,
        "action": record.action,
        "scope": Scope.of_record(record).as_json(),
        "hold_id": record.hold_id,
        "legal_basis": record.legal_basis,
        "reference": record.reference,
        "requested_by": record.requested_by,
        "requested_at": format_time(record.requested_at),
        "expires_at": format_time(record.expires_at),
        "status": record.status(now),
        "approved_by": record.approved_by,
        "approved_at": None if record.approved_at is None else format_time(record.approved_at),
    }
    if record.retention_days is not None:
        described["retention_days"] = record.retention_days
    return described


def check_admin(log: LogInfo, principal: Principal) -> None:
    """Only an admin credential of this very log requests or approves (the edges authorize it
    first; this keeps the rule where the use case is)."""
    if principal.role != "admin" or principal.log_id != log.id:
        raise Forbidden("privacy requests and approvals need an admin credential of this log")
    if log.kind != "events":
        raise InvalidRequest(f"log {log.id!r} is written by the ledger itself: nothing to erase")


def refuse(
    refusals: SystemLog | None,
    log: LogInfo,
    error: ClientError,
    *,
    attempt: str,
    principal: Principal,
    now: datetime,
    request_id: int | None = None,
    **details: object,
) -> ClientError:
    """``error``, once recorded as ``ledger.privacy.refused.v1`` (committed on its own)."""
    if refusals is not None:
        refusals.record_durably(
            log.tenant,
            privacy_refused_event(
                log,
                attempt=attempt,
                reason=str(error),
                actor=credential_actor(principal),
                now=now,
                request_id=request_id,
                error=type(error).__name__,
                **details,
            ),
        )
    return error


def text_field(name: str, value: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_TEXT:
        raise InvalidRequest(f"{name} must be 1 to {MAX_TEXT} characters")
    return value


def admit_request(
    log: LogInfo, requester: Principal, legal_basis: str, reference: str
) -> tuple[str, str]:
    """What every request (erasure, hold, release, retention change) checks first: the
    requester is an admin credential of this events log, and the legal basis and reference are
    1 to ``MAX_TEXT`` characters; returns them trimmed."""
    check_admin(log, requester)
    return text_field("legal_basis", legal_basis), text_field("reference", reference)


def request_erasure(
    conn: Connection,
    keys: KeyRing,
    log: LogInfo,
    scope: Scope,
    *,
    legal_basis: str,
    reference: str,
    requester: Principal,
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
    refusals: SystemLog | None = None,
) -> PrivacyRecord:
    """A pending erasure of ``scope``: refused now if the scope has no conversation in the log,
    is erased already, or is under an active legal hold (``HoldActive`` names it)."""
    legal_basis, reference = admit_request(log, requester, legal_basis, reference)

    def refused(error: ClientError) -> ClientError:
        return refuse(
            refusals,
            log,
            error,
            attempt="request erase",
            principal=requester,
            now=now,
            scope=scope.as_json(),
            reference=reference,
        )

    conversations = conversations_of(conn, log.id, scope, size=log_size(conn, log.id))
    if not conversations:
        raise refused(NotFound(f"log {log.id!r} has no entry of {scope}: nothing to erase"))
    erased = stored.destroyed_scopes(conn, log.id, [data_key_scope(c) for c in conversations])
    if len(erased) == len(conversations):
        raise refused(ScopeErased(f"{scope} is erased already"))
    holds = holds_covering(conn, log.id, scope, conversations, stored.active_holds(conn, log.id))
    if holds:
        raise refused(HoldActive(f"{scope} is under legal hold: {describe_holds(holds)}"))
    return insert_request(
        conn,
        keys,
        log,
        "erase",
        scope,
        legal_basis=legal_basis,
        reference=reference,
        requester=requester,
        now=now,
        ttl=ttl,
    )


def request_hold(
    conn: Connection,
    keys: KeyRing,
    log: LogInfo,
    scope: Scope,
    *,
    legal_basis: str,
    reference: str,
    requester: Principal,
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
    refusals: SystemLog | None = None,
) -> PrivacyRecord:
    """A pending legal hold on ``scope`` (in force once approved, until an approved release);
    refused if the scope has no conversation in the log (a hold names what exists)."""
    legal_basis, reference = admit_request(log, requester, legal_basis, reference)
    if not conversations_of(conn, log.id, scope, size=log_size(conn, log.id)):
        raise refuse(
            refusals,
            log,
            NotFound(f"log {log.id!r} has no entry of {scope}: nothing to hold"),
            attempt="request hold",
            principal=requester,
            now=now,
            scope=scope.as_json(),
            reference=reference,
        )
    return insert_request(
        conn,
        keys,
        log,
        "hold",
        scope,
        legal_basis=legal_basis,
        reference=reference,
        requester=requester,
        now=now,
        ttl=ttl,
    )


def request_release(
    conn: Connection,
    keys: KeyRing,
    log: LogInfo,
    hold_id: int,
    *,
    legal_basis: str,
    reference: str,
    requester: Principal,
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
    refusals: SystemLog | None = None,
) -> PrivacyRecord:
    """A pending release of the active hold ``hold_id`` (``NotFound`` if the log has no such
    active hold: never placed, not approved yet, or released)."""
    legal_basis, reference = admit_request(log, requester, legal_basis, reference)
    hold = active_hold(conn, log, hold_id)
    if hold is None:
        raise refuse(
            refusals,
            log,
            NotFound(f"log {log.id!r} has no active hold {hold_id}"),
            attempt="request release",
            principal=requester,
            now=now,
            hold=hold_id,
            reference=reference,
        )
    return insert_request(
        conn,
        keys,
        log,
        "release",
        Scope.of_record(hold),
        hold_id=hold.id,
        legal_basis=legal_basis,
        reference=reference,
        requester=requester,
        now=now,
        ttl=ttl,
    )


def insert_request(
    conn: Connection,
    keys: KeyRing,
    log: LogInfo,
    action: stored.Action,
    scope: Scope,
    *,
    hold_id: int | None = None,
    retention_days: int | None = None,
    legal_basis: str,
    reference: str,
    requester: Principal,
    now: datetime,
    ttl: timedelta,
) -> PrivacyRecord:
    if ttl <= timedelta(0):
        raise InvalidRequest("a request's lifetime must be positive")
    record = stored.insert_request(
        conn,
        log_id=log.id,
        action=action,
        scope_kind=scope.kind,
        scope_id=scope.id,
        hold_id=hold_id,
        legal_basis=legal_basis,
        reference=reference,
        requested_by=requester.credential_id,
        requested_at=now,
        expires_at=now + ttl,
        retention_days=retention_days,
    )
    SystemLog.in_transaction(conn, keys, now=now).record_durably(
        log.tenant,
        privacy_requested_event(
            log, request_json(record, now), actor=credential_actor(requester), now=now
        ),
    )
    return record


def active_hold(conn: Connection, log: LogInfo, hold_id: int) -> PrivacyRecord | None:
    return next((h for h in stored.active_holds(conn, log.id) if h.id == hold_id), None)


def list_requests(
    conn: Connection, log: LogInfo, *, status: str | None, now: datetime
) -> list[PrivacyRecord]:
    """The log's requests, newest first (at most ``MAX_LISTED``), of one status or all."""
    if status is not None and status not in stored.STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(stored.STATUSES)}, not {status!r}")
    wanted: Status | None = next((s for s in stored.STATUSES if s == status), None)
    return stored.list_requests(conn, log.id, status=wanted, now=now, limit=MAX_LISTED)


def active_holds(conn: Connection, log: LogInfo) -> list[PrivacyRecord]:
    """The holds in force on the log: approved, and no approved release names them."""
    return stored.active_holds(conn, log.id)
