"""Group commit across processes: two server processes, many concurrent clients, one log.

The sequence must come out 0..N-1 with no gap and no duplicate, the chain and tree must verify,
and every checkpoint handed out in a receipt must be consistent with the final one.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from ledger.core.checkpoint import open_checkpoint
from ledger.core.merkle import root_from_leaf_hashes, verify_consistency
from ledger.core.signing import NoteVerifier
from ledger.services.verification.verify import verify_log
from ledger.settings import Settings
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import DataKeyStore
from ledger.storage.logs import get_log
from tests.conftest import MASTER_KEY, free_port, make_event
from tests.servers import serving, uvicorn_command

CLIENTS = 32
EVENTS_PER_CLIENT = 12


@pytest.fixture(scope="module")
def servers(db_url: str) -> Iterator[list[str]]:
    env = {
        "LEDGER_DATABASE_URL": db_url,
        "LEDGER_MASTER_KEY": MASTER_KEY,
        "LEDGER_ORIGIN_PREFIX": "ledger.test",
    }
    with contextlib.ExitStack() as running:
        ports = [free_port() for _ in range(2)]
        yield [running.enter_context(serving(uvicorn_command(p), p, env)) for p in ports]


@pytest.mark.slow
def test_two_processes_many_clients_one_gapless_log(
    servers: list[str], new_log: Any, token: Any, engine: Engine, settings: Settings
) -> None:
    log_id = new_log()
    headers = {"Authorization": f"Bearer {token(log_id, 'writer')}"}
    run = secrets.token_hex(3)

    def client_work(n: int) -> list[tuple[str, int, str, str]]:
        out = []
        with httpx.Client(base_url=servers[n % 2], headers=headers, timeout=60) as http:
            for i in range(EVENTS_PER_CLIENT):
                if i % 4 == 3:  # mix in small batches
                    events = [make_event(f"{run}-c{n}", i * 10 + k) for k in range(3)]
                    r = http.post(f"/v1/logs/{log_id}/events", json={"events": events})
                else:
                    r = http.post(
                        f"/v1/logs/{log_id}/events", json=make_event(f"{run}-c{n}", i * 10)
                    )
                assert r.status_code == 201, r.text
                body = r.json()
                for rc in body["receipts"]:
                    out.append((rc["event_id"], rc["seq"], rc["leaf_hash"], body["checkpoint"]))
        return out

    with ThreadPoolExecutor(CLIENTS) as pool:
        receipts = [x for chunk in pool.map(client_work, range(CLIENTS)) for x in chunk]

    batches = EVENTS_PER_CLIENT // 4
    expected = CLIENTS * ((EVENTS_PER_CLIENT - batches) + batches * 3)
    assert len(receipts) == expected
    seqs = sorted(seq for _, seq, _, _ in receipts)
    assert seqs == list(range(expected)), "sequence numbers must be 0..N-1, no gap, no duplicate"
    assert len({eid for eid, _, _, _ in receipts}) == expected

    leaves = [b""] * expected
    for _, seq, leaf, _ in receipts:
        leaves[seq] = base64.b64decode(leaf)
    with unit_of_work(engine) as conn:
        info = get_log(conn, log_id)
        report = verify_log(
            conn,
            info,
            data_keys=DataKeyStore(settings.master_key_bytes),
            trusted=None,
            anchor_dir=None,
            full=True,
        )
    assert report.failure is None, str(report.failure)
    assert report.entries == expected

    with httpx.Client(base_url=servers[0]) as http:
        keys = http.get(f"/v1/logs/{log_id}/verifier-key").text.splitlines()
        verifiers = [NoteVerifier.from_verifier_key(k) for k in keys]
        final = open_checkpoint(http.get(f"/v1/logs/{log_id}/checkpoint").text, verifiers)
        assert final.size == expected
        assert final.root_hash == root_from_leaf_hashes(leaves)
        auditor = {"Authorization": f"Bearer {token(log_id, 'auditor')}"}
        for _, seq, _, note in receipts[:: max(1, expected // 40)]:
            cp = open_checkpoint(note, verifiers)
            assert cp.size > seq
            assert cp.root_hash == root_from_leaf_hashes(leaves[: cp.size])
            proof = http.get(
                f"/v1/logs/{log_id}/proofs/consistency",
                params={"first": cp.size, "second": final.size},
                headers=auditor,
            )
            assert proof.status_code == 200, proof.text
            verify_consistency(
                cp.size,
                final.size,
                [base64.b64decode(h) for h in proof.json()["hashes"]],
                cp.root_hash,
                final.root_hash,
            )
