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
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from ledger.core.canonical import canonicalize
from ledger.core.commitment import new_salt
from ledger.core.entry import EventHeader, format_time
from ledger.domain import AppendRequest, AppendResult, LogInfo, PreparedEvent, Principal
from ledger.errors import NotFound
from ledger.services.admin.logs import find_log, system_log_id
from ledger.services.ingest.prepare import prepared_event
from ledger.storage.keystore import DataKeyStore, SignerCache
from ledger.storage.sequencer import append_batch

SYSTEM_SOURCE = f"urn:handoff-ledger:{socket.gethostname()}"
LEDGER_PRINCIPAL_ID = 0

STREAMS = ("access", "auth", "credentials", "keys", "verification", "anchoring", "exports",
           "erasure", "service")


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
    if stream not in STREAMS:
        raise ValueError(f"unknown system stream {stream!r}")
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
    return prepared_event(header, scope=f"system:{stream}", canonical_data=canonical_data,
                          envelope_bytes=canonicalize([event_id, time, name]), salt=salt)


def credential_actor(principal: Principal) -> dict[str, Any]:
    return {"kind": "system", "id": f"credential:{principal.credential_id}",
            "role": principal.role, "label": principal.label, "log": principal.log_id}


def system_log_for(conn: Connection, tenant: str) -> LogInfo:
    info = find_log(conn, system_log_id(tenant))
    if info is None:
        raise NotFound(f"tenant {tenant!r} has no system log")
    return info


def append_system_events(
    conn: Connection,
    tenant: str,
    events: Sequence[PreparedEvent],
    *,
    master_key: bytes,
    now: datetime,
) -> AppendResult:
    """Append directly in the caller's transaction (CLI jobs; the server uses its committer)."""
    log = system_log_for(conn, tenant)
    outcome = append_batch(
        conn,
        log,
        [AppendRequest(list(events), ledger_principal(log.id))],
        signers=SignerCache(master_key),
        data_keys=DataKeyStore(master_key),
        now=now,
    )
    result = outcome.results[0]
    if not isinstance(result, AppendResult):
        raise result
    return result
