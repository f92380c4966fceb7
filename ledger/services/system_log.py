"""Events the ledger writes about itself into each tenant's system log (``{tenant}.system``):
reads of the audit trail (PCI DSS 10.2.1.3), authentication failures (10.2.1.4), credential and
key changes (10.2.1.5/7), verification runs and their results (10.2.1.6, 10.4.1.1), anchoring,
exports, service start and stop.

They go through the same sequencer as writers' events, so they are hash-chained, in the tree and
covered by signed checkpoints. Each kind of event forms its own back-linked stream (its
"conversation": ``access``, ``auth``, ``verification``, ...).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from ledger.core.canonical import canonicalize
from ledger.core.commitment import new_salt
from ledger.core.entry import EventHeader, format_time
from ledger.domain import AppendRequest, AppendResult, LogInfo, PreparedEvent, Principal
from ledger.services.ingest.prepare import prepared_event
from ledger.storage.appenders import Appender, InTransaction
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import KeyRing
from ledger.storage.logs import get_log

SYSTEM_SOURCE = f"urn:handoff-ledger:{socket.gethostname()}"
SYSTEM_SUFFIX = ".system"
RECORD_TIMEOUT_SECONDS = 30
LEDGER_PRINCIPAL_ID = 0

STREAMS = (
    "access",
    "auth",
    "credentials",
    "keys",
    "verification",
    "anchoring",
    "exports",
    "erasure",
    "service",
)


def ledger_principal(system_log: str) -> Principal:
    """The ledger itself, as the writer of its own system events."""
    return Principal(LEDGER_PRINCIPAL_ID, system_log, "ledger", "handoff-ledger")


def system_event(
    name: str,
    *,
    stream: str,
    data: dict[str, Any],
    now: datetime,
    actor: dict[str, Any] | None = None,
    outcome: str = "success",
    resource: dict[str, Any] | None = None,
) -> PreparedEvent:
    """A ``ledger.<name>.v1`` event, ready for the sequencer.

    ``actor`` is who did it (a credential, the verifier job); it defaults to the ledger itself.
    """
    assert stream in STREAMS, f"unknown system stream {stream!r}"
    actor = actor or {"kind": "system", "id": "handoff-ledger"}
    event_id = str(uuid.uuid4())
    time = format_time(now)
    body = {**data, "actor": actor, "outcome": outcome}
    if resource is not None:
        body["resource"] = resource
    canonical_data = canonicalize(body)
    salt = new_salt()
    header = EventHeader(
        event_id=event_id,
        source=SYSTEM_SOURCE,
        type=f"ledger.{name}.v1",
        time=time,
        conversation_id=stream,
        actor={"kind": actor.get("kind"), "id": actor.get("id")},
        outcome=outcome,
        resource=resource,
    )
    return prepared_event(
        header,
        scope=f"system:{stream}",
        canonical_data=canonical_data,
        envelope_bytes=canonicalize([event_id, time, name]),
        salt=salt,
    )


def credential_actor(principal: Principal) -> dict[str, Any]:
    return {
        "kind": "system",
        "id": f"credential:{principal.credential_id}",
        "role": principal.role,
        "label": principal.label,
        "log": principal.log_id,
    }


@dataclass(frozen=True, slots=True)
class Access:
    """Where an access came from, as recorded: an HTTP request, or a command on a host."""

    client: str
    """The client's address, or ``cli``."""
    method: str | None = None
    path: str | None = None
    query: str | None = None
    host: str | None = None
    """The host a command ran on."""

    def as_data(self) -> dict[str, str]:
        fields = {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "client": self.client,
            "host": self.host,
        }
        return {k: v for k, v in fields.items() if v is not None}


# --- what the ledger records, one builder per kind of event ---------------------------------


def read_event(
    what: str,
    log: LogInfo,
    *,
    actor: dict[str, Any],
    access: Access,
    now: datetime,
    **details: object,
) -> PreparedEvent:
    """``ledger.<what>.read.v1``: a read of the audit trail (PCI DSS 10.2.1.3)."""
    return system_event(
        f"{what}.read",
        stream="access",
        now=now,
        actor=actor,
        data={"log": log.id, **access.as_data(), **details},
        resource={"type": "log", "id": log.id},
    )


def auth_failed_event(log: LogInfo, *, access: Access, reason: str, now: datetime) -> PreparedEvent:
    """An invalid access attempt on a known log (PCI DSS 10.2.1.4): the first of its source on
    that log in a window (``count`` 1); the rest come in a summary."""
    return system_event(
        "auth.failed",
        stream="auth",
        outcome="failure",
        now=now,
        data={"log": log.id, **access.as_data(), "reason": reason, "count": 1},
        resource={"type": "log", "id": log.id},
    )


def auth_failures_summary_event(
    log: LogInfo,
    *,
    client: str,
    count: int,
    first_at: datetime,
    last_at: datetime,
    window_seconds: float,
    reasons: dict[str, int],
    now: datetime,
) -> PreparedEvent:
    """``ledger.auth.failed.v1`` for ``count`` further invalid access attempts of one source on
    a known log in one window, between ``first_at`` and ``last_at`` (PCI DSS 10.2.1.4)."""
    return system_event(
        "auth.failed",
        stream="auth",
        outcome="failure",
        now=now,
        data={
            "log": log.id,
            "client": client,
            "count": count,
            "first_at": format_time(first_at),
            "last_at": format_time(last_at),
            "window": window_seconds,
            "reasons": reasons,
        },
        resource={"type": "log", "id": log.id},
    )


def access_denied_event(
    log: LogInfo,
    *,
    actor: dict[str, Any],
    access: Access,
    needed_roles: Sequence[str],
    now: datetime,
) -> PreparedEvent:
    """A valid credential used beyond its log or role (PCI DSS 10.2.1.4)."""
    return system_event(
        "access.denied",
        stream="auth",
        outcome="failure",
        now=now,
        actor=actor,
        data={"log": log.id, **access.as_data(), "needed_roles": list(needed_roles)},
        resource={"type": "log", "id": log.id},
    )


def log_created_event(log: LogInfo, *, actor: dict[str, Any], now: datetime) -> PreparedEvent:
    """A new log and its policy (PCI DSS 10.2.1.7)."""
    return system_event(
        "log.created",
        stream="service",
        now=now,
        actor=actor,
        data={"log": log.id, "origin": log.origin, **log.policy},
        resource={"type": "log", "id": log.id},
    )


def credential_event(
    change: str,
    *,
    credential_id: int,
    log_id: str,
    actor: dict[str, Any],
    now: datetime,
    **details: object,
) -> PreparedEvent:
    """``credential.created`` or ``credential.revoked`` (PCI DSS 10.2.1.5)."""
    return system_event(
        f"credential.{change}",
        stream="credentials",
        now=now,
        actor=actor,
        data={"credential": credential_id, "log": log_id, **details},
        resource={"type": "credential", "id": str(credential_id)},
    )


def writer_key_event(
    change: str,
    *,
    log_id: str,
    kid: str,
    credential_id: int,
    actor: dict[str, Any],
    now: datetime,
    **details: object,
) -> PreparedEvent:
    """``writer_key.added`` (with the public key) or ``writer_key.revoked`` (with the time it
    signs nothing from): the registration history verifiers check writer signatures against."""
    return system_event(
        f"writer_key.{change}",
        stream="keys",
        now=now,
        actor=actor,
        data={"log": log_id, "kid": kid, "credential": credential_id, **details},
        resource={"type": "writer_key", "id": kid},
    )


def signature_policy_event(
    log_id: str, *, policy: str, previous: str, actor: dict[str, Any], now: datetime
) -> PreparedEvent:
    """A log's writer-signature policy changed (``required``, ``optional`` or ``off``)."""
    return system_event(
        "log.signatures.changed",
        stream="keys",
        now=now,
        actor=actor,
        data={"log": log_id, "signatures": policy, "previous": previous},
        resource={"type": "log", "id": log_id},
    )


def export_created_event(
    log: LogInfo,
    *,
    actor: dict[str, Any],
    access: Access,
    query: dict[str, Any],
    selection: str,
    tree_size: int,
    count: int,
    digest: dict[str, str],
    now: datetime,
) -> PreparedEvent:
    """``ledger.export.created.v1``: who exported what, recorded before it is served (PCI DSS
    10.2.1.3). ``digest`` names the manifest's (a bundle) or the file's SHA-256."""
    return system_event(
        "export.created",
        stream="exports",
        now=now,
        actor=actor,
        data={
            "log": log.id,
            **access.as_data(),
            "query": query,
            "selection": selection,
            "tree_size": tree_size,
            "count": count,
            "digest": digest,
        },
        resource={"type": "log", "id": log.id},
    )


def _privacy_event(
    name: str,
    log: LogInfo,
    *,
    request_id: int | None,
    actor: dict[str, Any],
    now: datetime,
    data: dict[str, Any],
    outcome: str = "success",
) -> PreparedEvent:
    """Stream ``erasure``. The entry header (kept for ever, in the clear) names only the
    request; which conversation or data subject is in the payload, which is erasable."""
    resource = (
        {"type": "privacy_request", "id": str(request_id)}
        if request_id is not None
        else {"type": "log", "id": log.id}
    )
    return system_event(
        name,
        stream="erasure",
        now=now,
        actor=actor,
        outcome=outcome,
        data={"log": log.id, **data},
        resource=resource,
    )


def privacy_requested_event(
    log: LogInfo, request: dict[str, Any], *, actor: dict[str, Any], now: datetime
) -> PreparedEvent:
    """``ledger.privacy.requested.v1``: an admin asked for an erasure, a legal hold or a hold's
    release (pending until a second admin approves; PCI DSS 10.2.1.7)."""
    return _privacy_event(
        "privacy.requested", log, request_id=request["id"], actor=actor, now=now, data=request
    )


def privacy_approved_event(
    log: LogInfo, request: dict[str, Any], *, actor: dict[str, Any], now: datetime
) -> PreparedEvent:
    """``ledger.privacy.approved.v1``: a second admin approved the request (NIST AU-9(5))."""
    return _privacy_event(
        "privacy.approved", log, request_id=request["id"], actor=actor, now=now, data=request
    )


def privacy_refused_event(
    log: LogInfo,
    *,
    attempt: str,
    reason: str,
    actor: dict[str, Any],
    now: datetime,
    request_id: int | None = None,
    **details: object,
) -> PreparedEvent:
    """``ledger.privacy.refused.v1``: an erasure, hold or approval the ledger refused (approving
    one's own request, an expired one, erasing under a hold, an unknown scope)."""
    return _privacy_event(
        "privacy.refused",
        log,
        request_id=request_id,
        actor=actor,
        now=now,
        outcome="failure",
        data={"attempt": attempt, "reason": reason, **details},
    )


def erasure_executed_event(
    log: LogInfo, erasure: dict[str, Any], *, actor: dict[str, Any], now: datetime
) -> PreparedEvent:
    """``ledger.erasure.executed.v1``: data keys destroyed (GDPR Art. 17): the scope, legal
    basis, reference, both credentials, the affected seqs and the destroyed key ids."""
    return _privacy_event(
        "erasure.executed", log, request_id=erasure["request"], actor=actor, now=now, data=erasure
    )


def retention_executed_event(
    log: LogInfo, run: dict[str, Any], *, actor: dict[str, Any], now: datetime
) -> PreparedEvent:
    """``ledger.retention.executed.v1``: a retention run's batch on one log (PCI DSS 10.5.1):
    the policy and cutoff, the data keys destroyed, the conversations and seqs affected, those
    skipped under a legal hold; also when nothing expired."""
    return _privacy_event(
        "retention.executed", log, request_id=None, actor=actor, now=now, data=run
    )


def retention_changed_event(
    log: LogInfo, change: dict[str, Any], *, actor: dict[str, Any], now: datetime
) -> PreparedEvent:
    """``ledger.retention.changed.v1``: a log's retention period changed, approved by a second
    admin (PCI DSS 10.2.1.7)."""
    return _privacy_event(
        "retention.changed", log, request_id=change["request"], actor=actor, now=now, data=change
    )


def hold_event(
    change: str, log: LogInfo, hold: dict[str, Any], *, actor: dict[str, Any], now: datetime
) -> PreparedEvent:
    """``ledger.hold.placed.v1`` / ``ledger.hold.released.v1`` (PCI DSS 10.2.1.7)."""
    return _privacy_event(
        f"hold.{change}", log, request_id=hold["request"], actor=actor, now=now, data=hold
    )


def master_key_event(
    change: str, *, data: dict[str, Any], actor: dict[str, Any], now: datetime
) -> PreparedEvent:
    """``master_key.rotation.started`` / ``master_key.rotation.finished`` (ids and counts of
    the tenant's keys re-wrapped) and ``master_key.retired`` (PCI DSS 10.2.1.7, 3.7.4): master
    key ids only, never key material."""
    return system_event(
        f"master_key.{change}",
        stream="keys",
        now=now,
        actor=actor,
        data=data,
        resource={"type": "master_key", "id": str(data["master_key"])},
    )


def service_event(change: str, *, instance: str, version: str, now: datetime) -> PreparedEvent:
    """``service.started`` / ``service.stopped``: audit logging for a tenant starts or stops in
    one server process (PCI DSS 10.2.1.6)."""
    return system_event(
        f"service.{change}",
        stream="service",
        now=now,
        data={"instance": instance, "version": version},
    )


# --- where they go ------------------------------------------------------------------------------


class SystemLog:
    """The tenants' system logs, written through an appender: the server's group committer, or
    a use case's own unit of work (``in_transaction``) when the events must commit with its
    other rows."""

    def __init__(self, appender: Appender, find_log: Callable[[str], LogInfo]) -> None:
        self._appender = appender
        self._find_log = find_log

    @classmethod
    def in_transaction(cls, conn: Connection, keys: KeyRing, *, now: datetime) -> SystemLog:
        """Recorded in ``conn``'s unit of work: durable when it commits, gone if it rolls back."""
        return cls(InTransaction(conn, keys, now=now), lambda log_id: get_log(conn, log_id))

    @classmethod
    def committing(cls, committer: Appender, engine: Engine) -> SystemLog:
        """Recorded through ``committer`` (a group committer): durable once recorded."""

        def find(log_id: str) -> LogInfo:
            with unit_of_work(engine) as conn:
                return get_log(conn, log_id)

        return cls(committer, find)

    def record(self, tenant: str, *events: PreparedEvent) -> Future[AppendResult]:
        """Append ``events`` to the tenant's system log, as the ledger itself."""
        log = self._find_log(system_log_id(tenant))
        return self._appender.submit(log, AppendRequest(list(events), ledger_principal(log.id)))

    def record_durably(self, tenant: str, *events: PreparedEvent) -> AppendResult:
        """Fail closed: return only once the events are durable (or will commit with the
        caller's unit of work); what the caller does next depends on it."""
        return self.record(tenant, *events).result(timeout=RECORD_TIMEOUT_SECONDS)

    def record_read(
        self,
        what: str,
        log: LogInfo,
        *,
        actor: dict[str, Any],
        access: Access,
        now: datetime,
        **details: object,
    ) -> None:
        """Record a read of ``log`` (:func:`read_event`) durably in its tenant's system log: a
        read use case calls this before it reads anything (PCI DSS 10.2.1.3: a read that cannot
        be recorded is not served)."""
        self.record_durably(
            log.tenant, read_event(what, log, actor=actor, access=access, now=now, **details)
        )


class ReadRecordedOnce(SystemLog):
    """The system log as one read request sees it, when the read may run twice (on a standby
    that had not replayed what was asked, then on the primary): the read is recorded once."""

    def __init__(self, system_log: SystemLog) -> None:
        super().__init__(system_log._appender, system_log._find_log)
        self._recorded = False

    def record_read(
        self,
        what: str,
        log: LogInfo,
        *,
        actor: dict[str, Any],
        access: Access,
        now: datetime,
        **details: object,
    ) -> None:
        if not self._recorded:
            super().record_read(what, log, actor=actor, access=access, now=now, **details)
            self._recorded = True


def system_log_id(tenant: str) -> str:
    """Each tenant's own log of what the ledger did (reads, exports, verifications, keys)."""
    return tenant + SYSTEM_SUFFIX
