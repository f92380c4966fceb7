"""A revoked credential is refused by every server process within a second (issue 14.7).

Two app instances on one database stand for two server processes: each has its own
``LedgerState`` and principal cache. Both have the token cached when it is revoked through the
service the CLI uses; the other instance must refuse it within one second of the commit, and
must have been serving it from its cache until then (else the test would show nothing).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from ledger.server.state import PRINCIPAL_CACHE_SECONDS
from ledger.services.admin.credentials import authenticate, revoke_credential
from ledger.settings import Settings
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import KeyRing
from tests.test_ingest_api import auth

SLACK = 0.25
"""What a shared, loaded test machine may add to one request (the poll's own round trip)."""


@pytest.fixture
def other_process(settings: Settings, engine: Engine) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


def test_a_revocation_reaches_the_other_process_within_a_second(
    client: Any,
    other_process: Any,
    new_log: Any,
    token: Any,
    engine: Engine,
    settings: Settings,
) -> None:
    assert PRINCIPAL_CACHE_SECONDS <= 1.0
    log_id = new_log()
    auditor = token(log_id, "auditor")
    path = f"/v1/logs/{log_id}/checkpoint"
    read = f"/v1/logs/{log_id}/proofs/consistency?first=0&second=0"
    for app in (client, other_process):
        assert app.get(read, headers=auth(auditor)).status_code == 200  # cached in both
    with unit_of_work(engine) as conn:
        credential_id = authenticate(conn, auditor).credential_id
    with unit_of_work(engine) as conn:
        revoke_credential(
            conn,
            KeyRing.from_master(settings.master_key_bytes),
            credential_id,
            actor={"kind": "system", "id": "test"},
            now=datetime.now(UTC),
        )
    committed = time.monotonic()

    served_from_cache = 0
    while True:
        status = other_process.get(read, headers=auth(auditor)).status_code
        elapsed = time.monotonic() - committed
        if status != 200:
            break
        served_from_cache += 1
        assert elapsed < PRINCIPAL_CACHE_SECONDS + SLACK, "still served after a second"
        time.sleep(0.01)
    assert status == 401
    assert elapsed <= PRINCIPAL_CACHE_SECONDS + SLACK
    assert served_from_cache > 0  # the other process did hold it: the bound is what ended it
    assert client.get(read, headers=auth(auditor)).status_code == 401
    assert client.get(path).status_code == 200  # public reads are unaffected
