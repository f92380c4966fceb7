"""Writing sample conversations through the writers' own path (the ingest use case and the group
committer), and the demo log a new user gets from ``ledger serve --demo``.

Each function here runs several units of work on the engine it is given: a fill commits batch by
batch, as a writer's posts would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine

from ledger.domain import LogInfo, Principal
from ledger.errors import InvalidRequest
from ledger.services.admin.credentials import create_credential
from ledger.services.admin.logs import create_log
from ledger.services.demo.conversations import DemoConversation, chunks, generate, interleave
from ledger.services.ingest.append import ingest
from ledger.services.ingest.prepare import IngestLimits
from ledger.storage.db import unit_of_work
from ledger.storage.entries import first_conversation_of_type
from ledger.storage.group_commit import GroupCommitter
from ledger.storage.keystore import KeyRing, pan_fingerprint_key
from ledger.storage.logs import find_log, get_log, log_size

BATCH_EVENTS = 500
DEMO_LOG = "demo"
HANDOFF_REQUESTED = "handoff.handoff.requested.v1"


def demo_writer(log_id: str, operator: str) -> Principal:
    """The writer recorded in the entries: the ledger's CLI, run by ``operator``."""
    return Principal(0, log_id, "writer", f"ledger demo ({operator})")


def fill(
    engine: Engine,
    keys: KeyRing,
    log_id: str,
    count: int,
    *,
    seed: int,
    operator: str,
    now: Callable[[], datetime],
) -> tuple[list[DemoConversation], int]:
    """Generate ``count`` conversations and append them to ``log_id``, a batch of
    ``BATCH_EVENTS`` at a time; the conversations and how many events were new. The same seed
    twice is an idempotent retry."""
    with unit_of_work(engine) as conn:
        log = get_log(conn, log_id)
        fingerprint_key = pan_fingerprint_key(conn, keys.masters)
    if log.kind != "events":
        raise InvalidRequest(f"log {log_id!r} is written only by the ledger itself")
    conversations = generate(count, seed=seed, raw_cards=log.policy.get("card_policy") == "mask")
    writer = demo_writer(log.id, operator)
    limits = IngestLimits(max_events=BATCH_EVENTS)
    appended = 0
    with GroupCommitter(
        engine, signers=keys.signers, data_keys=keys.data_keys, clock=now
    ) as committer:
        for batch in chunks(interleave(conversations), BATCH_EVENTS):
            result = ingest(
                orjson.dumps({"events": batch}),
                log=log,
                writer=writer,
                committer=committer,
                limits=limits,
                default_card_policy=str(log.policy.get("card_policy", "reject")),
                fingerprint_key=fingerprint_key,
            ).result()
            appended += result.appended
    return conversations, appended


@dataclass(frozen=True)
class DemoLog:
    log: LogInfo
    writer_token: str
    auditor_token: str
    sample_conversation: str | None
    """The log's first handed-off conversation, the one to show a new user: the same on every
    start, whatever was written since."""


def prepare_demo_log(
    engine: Engine,
    keys: KeyRing,
    *,
    origin_prefix: str,
    conversations: int,
    actor: dict[str, Any],
    operator: str,
    now: Callable[[], datetime],
) -> DemoLog:
    """Log ``demo`` (card policy ``mask``, so the guard's masking shows), a writer and an
    auditor credential, and, when the log is empty, ``conversations`` sample conversations.
    Every creation is recorded in the tenant's system log."""
    with unit_of_work(engine) as conn:
        log = find_log(conn, DEMO_LOG) or create_log(
            conn,
            keys,
            DEMO_LOG,
            origin_prefix=origin_prefix,
            actor=actor,
            now=now(),
            card_policy="mask",
        )
        writer = create_credential(
            conn, keys, log_id=log.id, role="writer", label="demo writer", actor=actor, now=now()
        )
        auditor = create_credential(
            conn, keys, log_id=log.id, role="auditor", label="demo auditor", actor=actor, now=now()
        )
        empty = log_size(conn, log.id) == 0
    if empty:
        fill(engine, keys, log.id, conversations, seed=1, operator=operator, now=now)
    with unit_of_work(engine) as conn:
        sample = first_conversation_of_type(conn, log.id, HANDOFF_REQUESTED)
    return DemoLog(log, writer.token, auditor.token, sample)
