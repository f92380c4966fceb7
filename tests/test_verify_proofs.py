"""The proof endpoints read O(log n) stored nodes in one query, never rehash the log, and their
proofs verify (RFC 9162) against roots recomputed from every leaf, at many tree sizes."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine

from ledger.core.merkle import root_from_leaf_hashes, verify_consistency, verify_inclusion
from ledger.services.admin.logs import create_log
from ledger.settings import Settings
from ledger.storage import proofs
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import KeyRing
from tests.conftest import TEST_ACTOR, now

SIZES = [1, 2, 3, 7, 8, 9, 64, 100, 257, 1000]


@pytest.fixture
def big_log(new_log: Any, append_direct: Any, engine: Engine) -> tuple[str, list[bytes]]:
    log_id: str = new_log()
    append_direct(log_id, max(SIZES), batch=250)
    with unit_of_work(engine) as conn:
        leaves = [
            bytes(r[0])
            for r in conn.exec_driver_sql(
                "SELECT leaf_hash FROM entries WHERE log_id = %(log)s ORDER BY seq", {"log": log_id}
            )
        ]
    return log_id, leaves


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many nodes each call of ``fetch_nodes`` (one SQL query) asked for."""
    seen: list[int] = []
    real = proofs.fetch_nodes

    def counting(
        conn: Connection, log_id: str, coords: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        wanted = list(coords)
        seen.append(len(set(wanted)))
        return real(conn, log_id, wanted)

    monkeypatch.setattr(proofs, "fetch_nodes", counting)
    return seen


def _hashes(body: dict[str, Any]) -> list[bytes]:
    return [base64.b64decode(h) for h in body["hashes"]]


def test_inclusion_proofs_at_many_sizes(
    client: Any, token: Any, big_log: tuple[str, list[bytes]], reads: list[int]
) -> None:
    log_id, leaves = big_log
    auth = {"Authorization": f"Bearer {token(log_id, 'verifier')}"}
    for size in SIZES:
        root = root_from_leaf_hashes(leaves[:size])
        for seq in sorted({0, size // 2, size - 1}):
            reads.clear()
            r = client.get(
                f"/v1/logs/{log_id}/proofs/inclusion",
                params={"seq": seq, "tree_size": size},
                headers=auth,
            )
            assert r.status_code == 200, r.text
            verify_inclusion(leaves[seq], seq, size, _hashes(r.json()), root)
            assert len(reads) == 1  # one query
            assert reads[0] <= 2 * size.bit_length()  # O(log n) nodes


def test_consistency_proofs_at_many_sizes(
    client: Any, token: Any, big_log: tuple[str, list[bytes]], reads: list[int]
) -> None:
    log_id, leaves = big_log
    auth = {"Authorization": f"Bearer {token(log_id, 'auditor')}"}
    for second in SIZES:
        root2 = root_from_leaf_hashes(leaves[:second])
        for first in sorted({1, second // 3, second - 1, second}):
            reads.clear()
            r = client.get(
                f"/v1/logs/{log_id}/proofs/consistency",
                params={"first": first, "second": second},
                headers=auth,
            )
            assert r.status_code == 200, r.text
            verify_consistency(
                first, second, _hashes(r.json()), root_from_leaf_hashes(leaves[:first]), root2
            )
            assert len(reads) == 1
            assert reads[0] <= 2 * second.bit_length()


@pytest.fixture
def stale_engine(admin_url: str) -> Iterator[Engine]:
    from ledger.storage.db import make_engine, upgrade_schema
    from tests.conftest import create_database, drop_database

    name = f"ledger_stale_{secrets.token_hex(4)}"
    url = create_database(admin_url, name)
    upgrade_schema(url)
    eng = make_engine(url, pool_size=1)
    yield eng
    eng.dispose()
    drop_database(admin_url, name)


def test_a_proof_reads_log_n_rows_even_with_stale_statistics(
    stale_engine: Engine, append_direct: Any, settings: Settings
) -> None:
    """Counted by PostgreSQL itself (table rows read in this transaction). The
    statistics are taken while another log is big and this one empty, as for any log that
    grows fast between two autovacuum ANALYZE runs: the planner then believes this log has a
    row or two and that scanning all of it is the cheapest plan."""
    size = 3000
    with unit_of_work(stale_engine) as conn:
        for log_id in ("big", "fast"):
            create_log(
                conn,
                KeyRing.from_master(settings.master_key_bytes),
                log_id,
                origin_prefix="ledger.test",
                actor=TEST_ACTOR,
                now=now(),
            )
    append_direct("big", size, batch=size, on=stale_engine)
    with stale_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")
    append_direct("fast", size, batch=size, on=stale_engine)
    with unit_of_work(stale_engine) as conn:
        for seq in (0, 1234, size - 1):
            proofs.inclusion_proof(conn, "fast", seq, size)
        proofs.consistency_proof(conn, "fast", 1000, size)
        rows = conn.exec_driver_sql(  # rows read by sequential scans + index entries read
            "SELECT sum(pg_stat_get_xact_tuples_returned(r)) FROM (SELECT indexrelid FROM"
            " pg_index WHERE indrelid IN ('entries'::regclass, 'tree_nodes'::regclass)"
            " UNION ALL VALUES ('entries'::regclass), ('tree_nodes'::regclass)) AS x(r)"
        ).scalar_one()
    assert rows <= 4 * 2 * size.bit_length()  # four proofs, O(log n) rows each
