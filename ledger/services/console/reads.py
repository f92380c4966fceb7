"""What the auditor console reads besides trails: the logs a credential can read (size, latest
checkpoint, the last verification run's result), conversations found by filters, a random
handed-off conversation (the pilot test: "pull a random handoff and produce its full audit
trail"), and a log's overview (events per day, handoff rate, trigger mix, takeover times).

Each is a read of the audit trail like any other: recorded in the tenant's system log, durably,
before anything is read (PCI DSS 10.2.1.3; ``ledger.<what>.read.v1`` in the ``access`` stream).
"""

from __future__ import annotations

import secrets
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Row

from ledger.domain import LogInfo
from ledger.errors import NotFound
from ledger.services.console.index import IndexState, catch_up
from ledger.services.reads.entries import open_payload
from ledger.services.system_log import Access, SystemLog, system_log_id
from ledger.services.verification.record import RUN_EVENT
from ledger.storage.checkpoints import latest_checkpoint
from ledger.storage.console import (
    ConversationFilter,
    conversation_totals,
    events_per_day,
    handed_off_at_or_after,
    indexed_size,
    latest_stream_entries,
    search_conversations,
    trigger_mix,
)
from ledger.storage.keystore import DataKeyStore
from ledger.storage.logs import get_log

MAX_PAGE = 200
RUNS_SEARCHED = 50
"""Verification runs read back (newest first) to find the last one that checked a log."""
OVERVIEW_DAYS = 90


def describe_log_for(
    conn: Connection,
    system_log: SystemLog,
    log: LogInfo,
    *,
    reader: dict[str, Any],
    access: Access,
    data_keys: DataKeyStore,
    now: datetime,
) -> dict[str, Any]:
    """The log a credential reads, as the console's log list shows it."""
    system_log.record_read("logs", log, actor=reader, access=access, now=now)
    checkpoint = latest_checkpoint(conn, log.id)
    return {
        "log": log.id,
        "origin": log.origin,
        "tenant": log.tenant,
        "kind": log.kind,
        "size": checkpoint.size,
        "checkpoint": {
            "size": checkpoint.size,
            "signed_at": _time(checkpoint.signed_at),
            "note": checkpoint.note,
        },
        "indexed": indexed_size(conn, log.id),
        "last_verification": last_verification(conn, log, data_keys),
    }


def last_verification(
    conn: Connection, log: LogInfo, data_keys: DataKeyStore
) -> dict[str, Any] | None:
    """The latest recorded verification run (``ledger.verification.run.v1`` in the tenant's
    system log) that checked ``log``: its seq there, when, mode, and this log's result."""
    system = system_log_id(log.tenant)
    try:
        system_info = get_log(conn, system)
        size = latest_checkpoint(conn, system).size
    except NotFound:
        return None
    rows = latest_stream_entries(
        conn,
        system_info.id,
        "verification",
        f"ledger.{RUN_EVENT}.v1",
        size=size,
        limit=RUNS_SEARCHED,
    )
    for row in rows:
        seq, _leaf, raw, data_key_id, sealed = tuple(row)
        opened = open_payload(
            lambda key_id: data_keys.key_by_id(conn, system_info.id, key_id),
            log_id=system_info.id,
            seq=int(seq),
            entry=orjson.loads(bytes(raw)),
            data_key_id=data_key_id,
            sealed=None if sealed is None else bytes(sealed),
        )
        run = opened.payload if opened.status == "verified" else None
        if not isinstance(run, dict):
            continue
        for checked in run.get("logs") or []:
            if isinstance(checked, dict) and checked.get("log") == log.id:
                return {
                    "system_log": system_info.id,
                    "seq": int(seq),
                    "run_status": run.get("status"),
                    "status": checked.get("status"),
                    "mode": run.get("mode"),
                    "finished_at": run.get("finished_at"),
                    "host": run.get("host"),
                }
    return None


def search_for(
    conn: Connection,
    system_log: SystemLog,
    log: LogInfo,
    where: ConversationFilter,
    *,
    below_seq: int | None,
    limit: int,
    reader: dict[str, Any],
    access: Access,
    data_keys: DataKeyStore,
    now: datetime,
) -> dict[str, Any]:
    """Conversations of ``log`` matching ``where``, newest first, ``limit`` a page; ``next`` is
    the ``below_seq`` of the page after, or None."""
    system_log.record_read(
        "conversations",
        log,
        actor=reader,
        access=access,
        now=now,
        filters={k: _plain(v) for k, v in asdict(where).items() if v is not None},
    )
    state = catch_up(conn, log, data_keys)
    rows = search_conversations(
        conn, log.id, where, below_seq=below_seq, limit=min(limit, MAX_PAGE) + 1
    )
    page = rows[: min(limit, MAX_PAGE)]
    more = len(rows) > len(page)
    return {
        "log": log.id,
        "conversations": [conversation_row(r) for r in page],
        "next_below_seq": int(tuple(page[-1])[2]) if more else None,
        "index": _index(state),
    }


def random_handoff_for(
    conn: Connection,
    system_log: SystemLog,
    log: LogInfo,
    *,
    reader: dict[str, Any],
    access: Access,
    data_keys: DataKeyStore,
    now: datetime,
) -> dict[str, Any]:
    """A handed-off conversation drawn at random: a uniformly random seq of the indexed log,
    and the first handed-off conversation to end at or after it (wrapping around)."""
    system_log.record_read(
        "conversations", log, actor=reader, access=access, now=now, random_handoff=True
    )
    state = catch_up(conn, log, data_keys)
    indexed = indexed_size(conn, log.id)
    pivot = secrets.randbelow(indexed) if indexed else 0
    row = handed_off_at_or_after(conn, log.id, pivot) or handed_off_at_or_after(conn, log.id, 0)
    if row is None:
        raise NotFound(f"log {log.id!r} has no handed-off conversation (indexed: {indexed})")
    return {
        "log": log.id,
        "conversation": conversation_row(row),
        "index": _index(state),
    }


def overview_for(
    conn: Connection,
    system_log: SystemLog,
    log: LogInfo,
    *,
    reader: dict[str, Any],
    access: Access,
    data_keys: DataKeyStore,
    now: datetime,
) -> dict[str, Any]:
    """Events per day, handoff rate, escalation trigger mix and takeover times, from the
    index (the trail summaries' facts, read once per conversation)."""
    system_log.record_read("overview", log, actor=reader, access=access, now=now)
    state = catch_up(conn, log, data_keys)
    totals = conversation_totals(conn, log.id)
    conversations = totals["conversations"]
    return {
        "log": log.id,
        "events_per_day": [
            {"day": d.isoformat(), "events": n}
            for d, n in events_per_day(conn, log.id, days=OVERVIEW_DAYS)
        ],
        **totals,
        "handoff_rate": totals["handed_off"] / conversations if conversations else None,
        "trigger_mix": [{"trigger": t, "conversations": n} for t, n in trigger_mix(conn, log.id)],
        "index": _index(state),
    }


def conversation_row(row: Row[Any]) -> dict[str, Any]:
    (
        conversation_id,
        first_seq,
        last_seq,
        events,
        first_at,
        last_at,
        event_types,
        subjects,
        triggers,
        handed_off,
        escalated,
        requested_at,
        accepted_at,
        productive_at,
    ) = tuple(row)
    return {
        "conversation": conversation_id,
        "first_seq": int(first_seq),
        "last_seq": int(last_seq),
        "events": int(events),
        "first_at": _time(first_at),
        "last_at": _time(last_at),
        "event_types": list(event_types),
        "subjects": list(subjects),
        "triggers": list(triggers),
        "handed_off": bool(handed_off),
        "escalated": bool(escalated),
        "time_to_accept_seconds": _seconds(requested_at, accepted_at),
        "time_to_productive_seconds": _seconds(requested_at, productive_at),
    }


def _index(state: IndexState) -> dict[str, Any]:
    indexed = state.indexed
    return {"indexed": indexed, "tree_size": state.tree_size, "behind": state.tree_size - indexed}


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    return _time(value) if isinstance(value, datetime) else value
