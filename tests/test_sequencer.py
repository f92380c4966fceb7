"""The sequencer on its own: receipts, idempotency inside one group-commit batch, atomicity."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from ledger.errors import IdempotencyConflict
from ledger.events import GuardPolicy
from ledger.services.ingest import prepare_all, validate_all
from ledger.services.logs import get_log
from ledger.settings import Settings
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import DataKeyStore, SignerCache
from ledger.storage.rows import AppendResult, Principal
from ledger.storage.sequencer import AppendRequest, append_batch
from tests.conftest import make_event


def prepared(*events: dict[str, Any]) -> list[Any]:
    valid = validate_all(list(events), batch=True, policy=GuardPolicy(), fingerprint_key=b"k" * 32)
    return prepare_all(valid, batch=True)


def run(engine: Engine, settings: Settings, log_id: str, *requests: list[Any]) -> list[Any]:
    principal = Principal(1, log_id, "writer", "test")
    with unit_of_work(engine) as conn:
        outcome = append_batch(
            conn, get_log(conn, log_id), [AppendRequest(r, principal) for r in requests],
            signers=SignerCache(settings.master_key_bytes),
            data_keys=DataKeyStore(settings.master_key_bytes), now=datetime.now(UTC))
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
