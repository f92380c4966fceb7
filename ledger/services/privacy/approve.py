"""Approval by a second admin, and what it sets off, in the caller's one transaction:

- an erasure: under the log's lock (``lock_head``: no batch appends meanwhile), the scope's
  conversations are found (a data subject's as of now, not as of the request), the holds are
  checked again, their data keys destroyed, and ``ledger.privacy.approved.v1`` and
  ``ledger.erasure.executed.v1`` appended to the tenant's system log: scope, legal basis,
  reference, both credentials, the affected seqs and the destroyed key ids;
- a hold: in force from the commit (``ledger.hold.placed.v1``);
- a release: the hold is no longer in force (``ledger.hold.released.v1``);
- a retention change: the log's new period is in force (``ledger.retention.changed.v1``); the
  next ``ledger retention run`` applies it.

Refused (and recorded through ``refusals`` before the lock is taken): an unknown request, one's
own request (``TwoPersonRule``), a request approved already or expired (``RequestNotPending``),
an erasure under a hold (``HoldActive``), a release of a hold no longer in force. The same
checks run again under the lock; one that fails only there lost a race with a concurrent
approval and is refused without a record of its own (the winner's is there).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from ledger.core.entry import format_time
from ledger.domain import LogInfo, Principal
from ledger.errors import ClientError, HoldActive, NotFound, RequestNotPending, TwoPersonRule
from ledger.services.privacy.requests import active_hold, check_admin, refuse, request_json
from ledger.services.privacy.retention import retention_before
from ledger.services.privacy.scopes import (
    Scope,
    conversations_of,
    describe_holds,
    holds_covering,
)
from ledger.services.privacy.shred import ErasureDone, shred_conversations
from ledger.services.system_log import (
    SystemLog,
    credential_actor,
    erasure_executed_event,
    hold_event,
    privacy_approved_event,
    retention_changed_event,
)
from ledger.storage import privacy as stored
from ledger.storage.keystore import KeyRing
from ledger.storage.logs import lock_head, log_size
from ledger.storage.privacy import PrivacyRecord


@dataclass(frozen=True, slots=True)
class Approval:
    request: PrivacyRecord
    """The request, approved."""
    done: str
    """What was done, in words."""
    erasure: ErasureDone | None = None
    system_seqs: list[int] = field(default_factory=list)
    """Where the approval and what it did are in the tenant's system log."""


def approve(
    conn: Connection,
    keys: KeyRing,
    log: LogInfo,
    request_id: int,
    *,
    approver: Principal,
    now: datetime,
    refusals: SystemLog | None = None,
) -> Approval:
    """Approve request ``request_id`` of ``log`` as ``approver`` (an admin credential other than
    the requester's) and carry it out."""
    check_admin(log, approver)
    record = stored.get_request(conn, log.id, request_id)

    def refused(error: ClientError) -> ClientError:
        return refuse(
            refusals,
            log,
            error,
            attempt="approve",
            principal=approver,
            now=now,
            request_id=request_id,
            action=None if record is None else record.action,
        )

    if record is None:
        raise refused(NotFound(f"log {log.id!r} has no privacy request {request_id}"))
    if record.requested_by == approver.credential_id:
        raise refused(
            TwoPersonRule(
                f"request {request_id} was made by credential {approver.credential_id}: "
                "another admin approves it"
            )
        )
    if record.approved_at is not None:
        raise refused(
            RequestNotPending(
                f"request {request_id} was approved already, by credential "
                f"{record.approved_by} at {format_time(record.approved_at)}"
            )
        )
    if now > record.expires_at:
        raise refused(
            RequestNotPending(
                f"request {request_id} expired unapproved at {format_time(record.expires_at)}; "
                "request again"
            )
        )
    scope = Scope.of_record(record)
    size_before = log_size(conn, log.id)
    conversations: list[str] = []
    if record.action == "erase":
        conversations = conversations_of(conn, log.id, scope, size=size_before)
        holds = holds_covering(
            conn, log.id, scope, conversations, stored.active_holds(conn, log.id)
        )
        if holds:
            raise refused(HoldActive(f"{scope} is under legal hold: {describe_holds(holds)}"))
    elif (
        record.action == "release"
        and record.hold_id is not None
        and active_hold(conn, log, record.hold_id) is None
    ):
        raise refused(NotFound(f"hold {record.hold_id} is no longer in force"))

    # Under the log's lock from here: no batch appends, and approvals of one log run one at a
    # time (a hold and an erasure approved at once cannot both miss each other).
    lock_head(conn, log.id)
    if record.hold_id is not None and active_hold(conn, log, record.hold_id) is None:
        raise NotFound(f"hold {record.hold_id} is no longer in force")
    if not stored.insert_approval(
        conn, record.id, approved_by=approver.credential_id, approved_at=now
    ):
        raise RequestNotPending(f"request {request_id} was approved already")
    approved = replace(record, approved_by=approver.credential_id, approved_at=now)
    actor = credential_actor(approver)
    described = request_json(approved, now)
    events = [privacy_approved_event(log, described, actor=actor, now=now)]
    erasure: ErasureDone | None = None
    if record.action == "erase":
        erasure = _erase(
            conn, keys, log, approved, conversations=conversations, size_before=size_before, now=now
        )
        events.append(
            erasure_executed_event(
                log,
                {
                    "request": approved.id,
                    "scope": scope.as_json(),
                    "legal_basis": approved.legal_basis,
                    "reference": approved.reference,
                    "requested_by": approved.requested_by,
                    "approved_by": approver.credential_id,
                    "requested_at": described["requested_at"],
                    "erased_at": format_time(now),
                    **erasure.as_json(),
                },
                actor=actor,
                now=now,
            )
        )
        done = (
            f"erased {scope}: {len(erasure.conversations)} conversation(s), "
            f"{erasure.entries} entries' payloads, data keys {erasure.destroyed_keys} destroyed"
        )
    elif record.action == "hold":
        events.append(hold_event("placed", log, _hold_json(approved), actor=actor, now=now))
        done = f"hold {approved.id} on {scope} is in force"
    elif record.action == "retention":
        # Read under the lock, after this approval's insert: the period it replaces.
        before = retention_before(conn, log, approved.id)
        events.append(
            retention_changed_event(
                log,
                {
                    **_hold_json(approved),
                    "retention_days": approved.retention_days,
                    "previous_days": before.days,
                    "previous_set_by": before.set_by,
                },
                actor=actor,
                now=now,
            )
        )
        done = (
            f"log {log.id!r} keeps payloads {approved.retention_days} days "
            f"(was {before.days}); `ledger retention run` applies it"
        )
    else:
        assert record.hold_id is not None
        events.append(
            hold_event(
                "released",
                log,
                {**_hold_json(approved), "request": approved.id, "hold": record.hold_id},
                actor=actor,
                now=now,
            )
        )
        done = f"hold {record.hold_id} on {scope} is released"
    recorded = SystemLog.in_transaction(conn, keys, now=now).record_durably(log.tenant, *events)
    return Approval(approved, done, erasure, [r.seq for r in recorded.receipts])


def _erase(
    conn: Connection,
    keys: KeyRing,
    log: LogInfo,
    request: PrivacyRecord,
    *,
    conversations: list[str],
    size_before: int,
    now: datetime,
) -> ErasureDone:
    scope = Scope.of_record(request)
    size = log_size(conn, log.id)
    if scope.kind == "subject" and size > size_before:
        # Entries appended since the first look, before the lock: the subject's newer ones.
        later = conversations_of(conn, log.id, scope, size=size, start=size_before)
        conversations = conversations + [c for c in later if c not in conversations]
    holds = holds_covering(conn, log.id, scope, conversations, stored.active_holds(conn, log.id))
    if holds:
        raise HoldActive(f"{scope} is under legal hold: {describe_holds(holds)}")
    return shred_conversations(
        conn,
        keys,
        log,
        conversations,
        destroyed_by="erasure",
        request_id=request.id,
        size=size,
        now=now,
    )


def _hold_json(hold: PrivacyRecord) -> dict[str, Any]:
    return {
        "request": hold.id,
        "scope": Scope.of_record(hold).as_json(),
        "legal_basis": hold.legal_basis,
        "reference": hold.reference,
        "requested_by": hold.requested_by,
        "approved_by": hold.approved_by,
    }
