"""The console's search index, kept up to date from the log itself.

Each search (and the overview) first reads into the index what was appended since the last one,
up to ``CATCH_UP_BUDGET`` entries, in the same transaction as the search; a log far behind (a
first search on a large log, or ``ops/bench_console.py``) is caught up with ``catch_up`` in a
loop. One transaction indexes a log at a time (a transaction-scoped advisory lock; a search
that meets another one indexing waits for it, at most one budget's work, and then sees its
rows).

What is indexed comes from the entry bytes (type, conversation, the customer actors, the times)
and, for ``escalation.triggered`` alone, from the payload: the typed trigger names. An erased
payload's triggers are simply not known. Handoff timings come from the header times, as the
trail's ``derived`` section computes them (``ledger.services.trails.summary``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import orjson
from sqlalchemy import Connection

from ledger.domain import LogInfo
from ledger.services.reads.entries import open_payload
from ledger.storage.checkpoints import latest_checkpoint
from ledger.storage.console import ConversationDelta, indexed_size, lock_index, save_index
from ledger.storage.db import is_read_only
from ledger.storage.entries import chunk_rows
from ledger.storage.keystore import DataKeyStore

CATCH_UP_BUDGET = 20_000
"""Entries one search reads into the index at most (a few tens of milliseconds of work)."""
CHUNK = 5_000
"""Entries read per query (primary-key ranges, as the verifier reads)."""

ESCALATION = "escalation.triggered"
HANDOFF_REQUESTED = "handoff.requested"
HANDOFF_ACCEPTED = "handoff.accepted"
TAKEOVER_PRODUCTIVE = "takeover.productive"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class IndexState:
    indexed: int
    """Entries ``[0, indexed)`` are in the index."""
    tree_size: int
    """The log's latest signed size: what the index is catching up to."""


def catch_up(
    conn: Connection, log: LogInfo, data_keys: DataKeyStore, *, budget: int = CATCH_UP_BUDGET
) -> IndexState:
    """Read up to ``budget`` entries beyond the indexed ones (below the latest checkpoint) into
    the index, in ``conn``'s transaction."""
    tree_size = latest_checkpoint(conn, log.id).size
    if is_read_only(conn):
        # A standby (or a read-only unit of work): the index is written on the primary only
        # (``LedgerState.read`` catches it up there first); here it is as replayed.
        return IndexState(indexed_size(conn, log.id), tree_size)
    start = lock_index(conn, log.id)
    end = min(tree_size, start + budget)
    if end <= start:
        return IndexState(start, tree_size)
    conversations: dict[str, ConversationDelta] = {}
    daily: dict[date, int] = {}
    keys: dict[int, bytes | None] = {}

    def key(key_id: int) -> bytes | None:
        if key_id not in keys:
            keys[key_id] = data_keys.key_by_id(conn, log.id, key_id)
        return keys[key_id]

    for low in range(start, end, CHUNK):
        chunk = chunk_rows(conn, log.id, low, min(end, low + CHUNK))
        if chunk is None:
            break
        rows, payload_rows = chunk
        payloads = {int(p[0]): (p[1], p[2]) for p in payload_rows}
        for seq, _leaf, raw, _source, _event_id, conversation_id in rows:
            entry = _object(orjson.loads(bytes(raw)))
            _index_entry(
                conversations,
                daily,
                int(seq),
                str(conversation_id),
                entry,
                triggers=partial(_triggers, log.id, int(seq), entry, payloads.get(int(seq)), key),
            )
    save_index(conn, log.id, size=end, conversations=conversations, daily=daily)
    return IndexState(end, tree_size)


def _index_entry(
    conversations: dict[str, ConversationDelta],
    daily: dict[date, int],
    seq: int,
    conversation_id: str,
    entry: dict[str, Any],
    *,
    triggers: Callable[[], list[str]],
) -> None:
    event = _object(entry.get("event"))
    full_type = str(event.get("type", ""))
    name = _name(full_type)
    received = _time(entry.get("received_at"))
    at = _time(event.get("time"))
    daily[received.date()] = daily.get(received.date(), 0) + 1
    row = conversations.get(conversation_id)
    if row is None:
        row = conversations[conversation_id] = ConversationDelta(
            first_seq=seq,
            last_seq=seq,
            events=0,
            first_at=received,
            last_at=received,
            event_types=set(),
            subjects=set(),
            triggers=set(),
        )
    row.last_seq = seq
    row.events += 1
    row.last_at = max(row.last_at, received)
    row.event_types.add(full_type)
    actor = _object(entry.get("actor"))
    if actor.get("kind") == "customer" and isinstance(actor.get("id"), str):
        row.subjects.add(actor["id"])
    if name == ESCALATION:
        row.escalated = True
        row.triggers.update(triggers())
    elif name == HANDOFF_REQUESTED:
        row.handed_off = True
        row.requested_at = row.requested_at or at
    elif name == HANDOFF_ACCEPTED:
        row.accepted_at = row.accepted_at or at
    elif name == TAKEOVER_PRODUCTIVE:
        row.productive_at = row.productive_at or at


def _triggers(
    log_id: str,
    seq: int,
    entry: dict[str, Any],
    stored: tuple[Any, Any] | None,
    key: Callable[[int], bytes | None],
) -> list[str]:
    """The typed trigger names of an escalation's payload, if it opens and matches its
    commitment (an erased or altered payload names none)."""
    data_key_id, sealed = stored if stored is not None else (None, None)
    opened = open_payload(
        key,
        log_id=log_id,
        seq=seq,
        entry=entry,
        data_key_id=data_key_id,
        sealed=None if sealed is None else bytes(sealed),
    )
    if opened.status != "verified" or not isinstance(opened.payload, dict):
        return []
    found = opened.payload.get("triggers")
    return [
        t["type"]
        for t in (found if isinstance(found, list) else [])
        if isinstance(t, dict) and isinstance(t.get("type"), str)
    ]


def _name(event_type: str) -> str:
    """``tool.call`` for ``handoff.tool.call.v1`` (as the trail summary names events)."""
    body = event_type.removeprefix("handoff.")
    return body.rsplit(".v", 1)[0] if ".v" in body else body


def _time(value: Any) -> datetime:
    """A header time; an unreadable one (only altered bytes hold one: the verifier and the
    trail's checks name those) sorts as the epoch rather than failing the search."""
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return EPOCH
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
