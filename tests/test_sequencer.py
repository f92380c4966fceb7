"""The sequencer on its own: receipts, idempotency inside one group-commit batch, atomicity."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ledger.domain import AppendRequest, AppendResult, Principal
from ledger.errors import IdempotencyConflict
from ledger.events import GuardPolicy
from ledger.services.ingest.prepare import prepare_all, validate_all
from ledger.settings import Settings
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import DataKeyStore, SignerCache
from ledger.storage.logs import get_log
from ledger.storage.sequencer import append_batch
from tests.conftest import make_event


def prepared(*events: dict[str, Any]) -> list[Any]:
    valid = validate_all(list(events), batch=True, policy=GuardPolicy(), fingerprint_key=b"k" * 32)
    return prepare_all(valid, batch=True)


def run(engine: Engine, settings: Settings, log_id: str, *requests: list[Any]) -> list[Any]:
    principal = Principal(1, log_id, "writer", "test")
    with unit_of_work(engine) as conn:
        outcome = append_batch(
            conn,
            get_log(conn, log_id),
            [AppendRequest(r, principal) for r in requests],
            signers=SignerCache(settings.master_key_bytes),
            data_keys=DataKeyStore(settings.master_key_bytes),
            now=datetime.now(UTC),
        )
    return outcome.results


def test_a_retry_racing_its_original_in_one_batch_is_not_created(
    engine: Engine, settings: Settings, new_log: Any
) -> None:
    log_id = new_log()
    event = make_event("c", 1)
    first, retry = run(engine, settings, log_id, prepared(event), prepared(event))
    assert isinstance(first, AppendResult)
    assert isinstance(retry, AppendResult)
    assert first.created is True
    assert retry.created is False
    assert retry.receipts == first.receipts
    assert first.checkpoint == retry.checkpoint


def test_one_bad_request_does_not_sink_the_others_in_its_batch(
    engine: Engine, settings: Settings, new_log: Any
) -> None:
    log_id = new_log()
    run(engine, settings, log_id, prepared(make_event("c", 0)))
    conflicting = prepared(make_event("c", 5), make_event("c", 0, visibility="internal"))
    good = prepared(make_event("c", 6))
    bad_result, good_result = run(engine, settings, log_id, conflicting, good)
    assert isinstance(bad_result, IdempotencyConflict)
    assert "events[1]" in str(bad_result)
    assert isinstance(good_result, AppendResult)
    # The rejected request left no trace: the good one took seq 1, not 2 or 3.
    assert [r.seq for r in good_result.receipts] == [1]


def test_two_appends_creating_one_new_conversations_key_share_it(
    engine: Engine, settings: Settings, new_log: Any
) -> None:
    """Both transactions insert the same new data key before they queue on the log's lock:
    the second waits for the first's commit instead of deadlocking, and both use one key."""
    log_id = new_log()
    results: dict[str, Any] = {}

    def append(name: str, events: list[Any]) -> None:
        try:
            results[name] = run(engine, settings, log_id, events)[0]
        except Exception as exc:  # reported below, with the thread's name
            results[name] = exc

    with engine.connect() as holder:  # holds the log's lock while both appends start
        holder.execute(
            text("SELECT 1 FROM log_heads WHERE log_id = :log FOR UPDATE"), {"log": log_id}
        )
        threads = [
            threading.Thread(target=append, args=("a", prepared(make_event("new", 1)))),
            threading.Thread(
                target=append, args=("b", prepared(make_event("new", 2), make_event("other", 3)))
            ),
        ]
        for t in threads:
            t.start()
        time.sleep(0.5)  # both are now waiting: one on the lock, one on the other's key
        assert all(t.is_alive() for t in threads)
        holder.rollback()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads)
    assert all(isinstance(r, AppendResult) for r in results.values()), results
    seqs = sorted(r.seq for res in results.values() for r in res.receipts)
    assert seqs == [0, 1, 2]
    with engine.connect() as conn:
        keys = conn.execute(
            text(
                "SELECT d.scope, count(DISTINCT p.data_key_id) FROM payloads p"
                " JOIN data_keys d ON d.id = p.data_key_id WHERE p.log_id = :log GROUP BY d.scope"
            ),
            {"log": log_id},
        ).all()
    assert sorted(keys) == [("conversation:new", 1), ("conversation:other", 1)]


def test_a_rolled_back_append_leaves_no_data_key_behind(
    engine: Engine, settings: Settings, new_log: Any
) -> None:
    log_id = new_log()
    data_keys = DataKeyStore(settings.master_key_bytes)
    principal = Principal(1, log_id, "writer", "test")

    def append_then_fail() -> None:
        with unit_of_work(engine) as conn:
            append_batch(
                conn,
                get_log(conn, log_id),
                [AppendRequest(prepared(make_event("gone")), principal)],
                signers=SignerCache(settings.master_key_bytes),
                data_keys=data_keys,
                now=datetime.now(UTC),
            )
            raise RuntimeError("the caller fails after the append")

    with pytest.raises(RuntimeError):
        append_then_fail()
    assert data_keys.cached(log_id, {"conversation:gone"})[1] == ["conversation:gone"]
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM data_keys WHERE log_id = :log"), {"log": log_id}
            ).scalar_one()
            == 0
        )


def test_a_committed_append_caches_its_new_data_key(
    engine: Engine, settings: Settings, new_log: Any
) -> None:
    log_id = new_log()
    data_keys = DataKeyStore(settings.master_key_bytes)
    principal = Principal(1, log_id, "writer", "test")
    with unit_of_work(engine) as conn:
        append_batch(
            conn,
            get_log(conn, log_id),
            [AppendRequest(prepared(make_event("kept")), principal)],
            signers=SignerCache(settings.master_key_bytes),
            data_keys=data_keys,
            now=datetime.now(UTC),
        )
        assert data_keys.cached(log_id, {"conversation:kept"})[1] == ["conversation:kept"]
    assert data_keys.cached(log_id, {"conversation:kept"})[1] == []


def test_commit_lands_with_the_writes(engine: Engine, settings: Settings, new_log: Any) -> None:
    """A unit of work opened with ``commit_with_last_writes`` (the group committer's) is durable
    when append_batch returns, not at the end of the caller's block; any other is not."""
    log_id = new_log()
    principal = Principal(1, log_id, "writer", "test")

    def size_seen_by_another_connection() -> int:
        with engine.connect() as other:
            return int(
                other.execute(
                    text("SELECT size FROM log_heads WHERE log_id = :log"), {"log": log_id}
                ).scalar_one()
            )

    # Early commit: visible inside the block. Otherwise: only once the block has committed.
    for n, (commit_with_last_writes, inside, after) in enumerate(((True, 1, 1), (False, 1, 2))):
        with unit_of_work(engine, commit_with_last_writes=commit_with_last_writes) as conn:
            append_batch(
                conn,
                get_log(conn, log_id),
                [AppendRequest(prepared(make_event(n=n)), principal)],
                signers=SignerCache(settings.master_key_bytes),
                data_keys=DataKeyStore(settings.master_key_bytes),
                now=datetime.now(UTC),
            )
            assert size_seen_by_another_connection() == inside
        assert size_seen_by_another_connection() == after
