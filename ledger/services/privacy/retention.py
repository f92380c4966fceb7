"""Retention (PCI DSS 10.5.1, HIPAA 164.316(b)(2)): each events log keeps payloads for a period,
then crypto-shreds them; entries are kept for ever.

- **The policy** is a number of days per log: given when the log is created
  (``ledger logs create --retention 365d|pci-dss|hipaa``; ``hipaa``, six years, when not
  given), changed only through the two-person rule (``request_retention_change``, approved by
  another admin with ``ledger approve``: a shorter period destroys data sooner, and a longer
  one must not be slipped in to keep data past what was promised either).
- **The rule**: data keys are per conversation (scope ``conversation:{id}``), so a
  conversation's payloads are shredded together, once its *last* entry (by seq) was received
  more than the period ago. A data subject has no key of their own: each of their
  conversations expires on its own clock, and one still running keeps all of its payloads. A
  conversation that is shredded is closed: a later event for it is refused (409), as after an
  erasure.
- **Holds win**: a conversation an active legal hold covers (on it, or on a data subject it
  names) is skipped, and listed as held in the run's record.
- **The run** (``run_retention``, ``ledger retention run``, scheduled daily): per log, expired
  conversations are found without a lock, in batches of at most ``BATCH`` keys; each batch is
  one transaction that takes the log's lock, re-checks the batch (an event may have arrived
  meanwhile; another run may have shredded it), checks the holds, destroys the keys through the
  erasure's own path (``shred.shred_conversations``) and appends ``ledger.retention.executed.v1``
  to the tenant's system log naming the keys, conversations and seqs. A log where nothing
  expired gets one record too, so every run is on the record. Two runs at once are safe: the
  second finds the first's keys destroyed under the lock and records an empty batch.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from ledger.core.entry import format_time
from ledger.domain import LogInfo, Principal
from ledger.errors import ClientError, InvalidRequest
from ledger.services.privacy.requests import (
    DEFAULT_TTL,
    admit_request,
    insert_request,
    refuse,
)
from ledger.services.privacy.scopes import Scope, held_conversations
from ledger.services.privacy.shred import ErasureDone, shred_conversations
from ledger.services.system_log import SystemLog, retention_executed_event
from ledger.storage import privacy as stored
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import KeyRing
from ledger.storage.logs import list_logs, lock_head, log_size
from ledger.storage.privacy import PrivacyRecord

PROFILES = {"pci-dss": 366, "hipaa": 2192}
"""Named periods, in days: PCI DSS 10.5.1's twelve months, and the cautious six years of HIPAA
164.316(b)(2), each counting the leap days it may span, so no period ends early."""
DEFAULT_PROFILE = "hipaa"
MAX_DAYS = 36_525
BATCH = 1000
"""Keys shredded per transaction: the log's lock is held for one batch, not for a whole run."""
MAX_LISTED_HELD = 1000
_DAYS = re.compile(r"([1-9][0-9]{0,4})d", re.ASCII)


def parse_retention(value: str) -> int:
    """``365d`` (whole days) or a profile name (``pci-dss``, ``hipaa``) → days;
    ``InvalidRequest`` for anything else, never guessed at."""
    if value in PROFILES:
        return PROFILES[value]
    match = _DAYS.fullmatch(value)
    if match is None or int(match[1]) > MAX_DAYS:
        raise InvalidRequest(
            f"retention {value!r} must be a whole number of days (e.g. 365d, at most "
            f"{MAX_DAYS}d) or one of {', '.join(PROFILES)}"
        )
    return int(match[1])


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    days: int
    set_by: str
    """Where it comes from: ``log creation``, ``request N`` (an approved change), or
    ``default`` (a log created before retention existed)."""

    def as_json(self) -> dict[str, Any]:
        return {"days": self.days, "set_by": self.set_by}


def retention_policy(conn: Connection, log: LogInfo) -> RetentionPolicy:
    """The log's retention now: its latest approved change, else what it was created with."""
    changed = stored.approved_retention_days(conn, log.id)
    if changed is not None:
        return RetentionPolicy(changed[0], f"request {changed[1]}")
    return _created_policy(log)


def retention_before(conn: Connection, log: LogInfo, request_id: int) -> RetentionPolicy:
    """The policy a just-approved change (request ``request_id``) replaces."""
    previous = stored.approved_retention_days(conn, log.id, excluding=request_id)
    if previous is not None:
        return RetentionPolicy(previous[0], f"request {previous[1]}")
    return _created_policy(log)


def _created_policy(log: LogInfo) -> RetentionPolicy:
    created = log.policy.get("retention_days")
    if isinstance(created, int) and created > 0:
        return RetentionPolicy(created, "log creation")
    return RetentionPolicy(PROFILES[DEFAULT_PROFILE], "default")


def request_retention_change(
    conn: Connection,
    keys: KeyRing,
    log: LogInfo,
    days: int,
    *,
    legal_basis: str,
    reference: str,
    requester: Principal,
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
    refusals: SystemLog | None = None,
) -> PrivacyRecord:
    """A pending change of ``log``'s retention to ``days``; in force once another admin
    approves it. Refused (and recorded) when ``days`` is what the log keeps already."""
    legal_basis, reference = admit_request(log, requester, legal_basis, reference)
    if not 0 < days <= MAX_DAYS:
        raise InvalidRequest(f"retention must be 1 to {MAX_DAYS} days")
    current = retention_policy(conn, log)
    if current.days == days:
        error: ClientError = InvalidRequest(f"log {log.id!r} keeps payloads {days} days already")
        raise refuse(
            refusals,
            log,
            error,
            attempt="request retention",
            principal=requester,
            now=now,
            retention_days=days,
            reference=reference,
        )
    return insert_request(
        conn,
        keys,
        log,
        "retention",
        Scope("log", log.id),
        retention_days=days,
        legal_basis=legal_basis,
        reference=reference,
        requester=requester,
        now=now,
        ttl=ttl,
    )


@dataclass(frozen=True, slots=True)
class RetentionBatch:
    """One transaction of a run on one log, as recorded."""

    shredded: ErasureDone
    held: list[str]
    system_seq: int


@dataclass(frozen=True, slots=True)
class RetentionRun:
    log: str
    policy: RetentionPolicy
    cutoff: datetime
    batches: list[RetentionBatch]

    @property
    def destroyed_keys(self) -> list[int]:
        return [k for b in self.batches for k in b.shredded.destroyed_keys]

    def as_json(self) -> dict[str, Any]:
        return {
            "log": self.log,
            "policy": self.policy.as_json(),
            "cutoff": format_time(self.cutoff),
            "destroyed_keys": self.destroyed_keys,
            "conversations": [c for b in self.batches for c in b.shredded.conversations],
            "entries": sum(b.shredded.entries for b in self.batches),
            "held": [c for b in self.batches for c in b.held],
            "system_seqs": [b.system_seq for b in self.batches],
        }


def run_retention(
    engine: Engine,
    keys: KeyRing,
    *,
    now: datetime,
    actor: dict[str, Any],
    log_ids: list[str] | None = None,
    tenant: str | None = None,
    batch: int = BATCH,
) -> list[RetentionRun]:
    """Shred what has expired in each events log (those of ``log_ids``, or of ``tenant``, or
    all), one transaction per batch, each recorded in the tenant's system log."""
    with unit_of_work(engine) as conn:
        logs = [
            log
            for log in list_logs(conn)
            if log.kind == "events"
            and (log_ids is None or log.id in log_ids)
            and (tenant is None or log.tenant == tenant)
        ]
        unknown = sorted(set(log_ids or ()) - {log.id for log in list_logs(conn)})
        if unknown:
            raise InvalidRequest(f"no events log {unknown[0]!r}")
    run_id = str(uuid.uuid4())
    return [
        _run_log(engine, keys, log, run_id=run_id, now=now, actor=actor, batch=batch)
        for log in logs
    ]


def _run_log(
    engine: Engine,
    keys: KeyRing,
    log: LogInfo,
    *,
    run_id: str,
    now: datetime,
    actor: dict[str, Any],
    batch: int,
) -> RetentionRun:
    with unit_of_work(engine) as conn:
        policy = retention_policy(conn, log)
    cutoff = now - timedelta(days=policy.days)
    batches: list[RetentionBatch] = []
    after = 0
    while True:
        with unit_of_work(engine) as conn:  # found without the lock; re-checked under it
            candidates = stored.expired_conversation_keys(
                conn, log.id, cutoff=cutoff, after_key=after, limit=batch
            )
        if not candidates and batches:
            break
        with unit_of_work(engine) as conn:
            batches.append(
                _shred_batch(
                    conn,
                    keys,
                    log,
                    [key_id for key_id, _ in candidates],
                    record={"run": run_id, "batch": len(batches), "policy": policy.as_json()},
                    cutoff=cutoff,
                    now=now,
                    actor=actor,
                )
            )
        if len(candidates) < batch:
            break
        after = candidates[-1][0]
    return RetentionRun(log.id, policy, cutoff, batches)


def _shred_batch(
    conn: Connection,
    keys: KeyRing,
    log: LogInfo,
    key_ids: list[int],
    *,
    record: dict[str, Any],
    cutoff: datetime,
    now: datetime,
    actor: dict[str, Any],
) -> RetentionBatch:
    lock_head(conn, log.id)  # no append to these conversations, no erasure, no other run
    size = log_size(conn, log.id)
    still = (
        stored.expired_conversation_keys(
            conn, log.id, cutoff=cutoff, limit=len(key_ids), key_ids=key_ids
        )
        if key_ids
        else []
    )
    expired = [conversation for _, conversation in still]
    held = held_conversations(conn, log.id, expired, stored.active_holds(conn, log.id))
    shredded = shred_conversations(
        conn,
        keys,
        log,
        [c for c in expired if c not in held],
        destroyed_by="retention",
        request_id=None,
        size=size,
        now=now,
    )
    listed_held = sorted(held)
    recorded = SystemLog.in_transaction(conn, keys, now=now).record_durably(
        log.tenant,
        retention_executed_event(
            log,
            {
                **record,
                "cutoff": format_time(cutoff),
                "executed_at": format_time(now),
                "held": listed_held[:MAX_LISTED_HELD],
                "held_count": len(listed_held),
                **shredded.as_json(),
            },
            actor=actor,
            now=now,
        ),
    )
    return RetentionBatch(shredded, listed_held, recorded.receipts[0].seq)
