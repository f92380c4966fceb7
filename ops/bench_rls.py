"""What tenant row security costs (migration 0011): ingest and trail reads with the policies on,
against the same with them off, alternating on one server and one database in one run.

    .venv/bin/python ops/bench_rls.py [--quick] [--rounds N]

The server runs as production runs it, as ``ledger_app`` (row security never binds the superuser
``ops/bench.py`` connects as), with one worker. Each round runs, once with the policies enabled
and once with them disabled (``ALTER TABLE … DISABLE ROW LEVEL SECURITY`` on every table that
has one; the order alternates between rounds):

- ``ops/bench.py``'s two ingest loads: (c) HTTP batches of 500 ~1.5 KB events, (d) single events
  from 64 clients (``--quick``: its smaller plan);
- trail reads: ``GET …/conversations/{id}/trail`` of the log's largest conversation, one client,
  p50 / p99 (each read also records its durable access event, as always);
- the trail's own query (the conversation's entries and payloads) as ``ledger_app`` scoped to
  the tenant, timed in the database (``EXPLAIN ANALYZE``), to see the policy apart from HTTP.

Both modes pay for the ``SET LOCAL`` that scopes each unit of work (the code does it either
way); its cost is measured on its own: empty transactions with and without a scope.

Environment as ``ops/bench.py`` (``LEDGER_BENCH_DATABASE_URL``, ``LEDGER_SHARED_DIR``). Exits 0
whatever the figures; 2 if it could not run.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import secrets
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import (
    FULL,
    LOG_ID,
    QUICK,
    BenchDatabase,
    EventFactory,
    LedgerServer,
    Plan,
    admin_url,
    batch_and_single,
    bench_copy,
    create_raw_table,
    event_templates,
    stop_embedded,
    warm_up,
)

TENANT = LOG_ID  # bench.py's log is created without a tenant: its own id
TRAIL_READS = 200
SCOPE_ROUNDS = 2_000


def set_policies(libpq: str, enabled: bool) -> list[str]:
    """Enable or disable row security on every table that has a tenant policy."""
    verb = "ENABLE" if enabled else "DISABLE"
    with psycopg.connect(libpq, autocommit=True) as conn:
        tables = [
            str(t)
            for (t,) in conn.execute(
                "SELECT DISTINCT polrelid::regclass::text FROM pg_policy ORDER BY 1"
            )
        ]
        for table in tables:
            conn.execute(f"ALTER TABLE {table} {verb} ROW LEVEL SECURITY")
    return tables


def auditor_token(db: BenchDatabase, master_key: bytes) -> str:
    from ledger.services.admin.credentials import create_credential
    from ledger.storage.db import make_engine, unit_of_work
    from ledger.storage.keystore import KeyRing

    engine = make_engine(db.url, pool_size=1, system="operator")
    try:
        with unit_of_work(engine) as conn:
            return create_credential(
                conn,
                KeyRing.from_master(master_key),
                log_id=LOG_ID,
                role="auditor",
                label="bench auditor",
                actor={"kind": "system", "id": "bench"},
                now=datetime.now(UTC),
            ).token
    finally:
        engine.dispose()


def largest_conversation(libpq: str) -> tuple[str, int]:
    with psycopg.connect(libpq) as conn:
        row = conn.execute(
            "SELECT conversation_id, count(*) FROM entries WHERE log_id = %s"
            " GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1",
            (LOG_ID,),
        ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def trail_reads(server: LedgerServer, token: str, conversation: str, n: int) -> list[float]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    path = f"/v1/logs/{LOG_ID}/conversations/{conversation}/trail"
    headers = {"Authorization": f"Bearer {token}"}
    took = []
    try:
        for _ in range(n):
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            took.append(time.perf_counter() - started)
            if response.status != 200:
                raise RuntimeError(f"trail read answered {response.status}")
    finally:
        conn.close()
    return took


TRAIL_QUERY = (
    "SELECT e.seq, e.entry, p.sealed FROM entries e JOIN payloads p"
    " ON p.log_id = e.log_id AND p.seq = e.seq"
    " WHERE e.log_id = %s AND e.conversation_id = %s ORDER BY e.seq"
)


def trail_query_ms(libpq: str, conversation: str, n: int = 50) -> float:
    """The median execution time PostgreSQL reports for the trail's query, as ledger_app
    scoped to the log's tenant."""
    times = []
    with psycopg.connect(libpq) as conn:
        for _ in range(n):
            with conn.transaction():
                conn.execute("SET LOCAL ROLE ledger_app")
                conn.execute(f"SET LOCAL ledger.scope = 'tenant:{TENANT}'")
                plan = conn.execute(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + TRAIL_QUERY, (LOG_ID, conversation)
                ).fetchone()
            assert plan is not None
            times.append(float(plan[0][0]["Execution Time"]))
    return statistics.median(times)


def scope_cost_us(db: BenchDatabase) -> tuple[float, float]:
    """Median microseconds of a one-statement unit of work without and with a tenant scope."""
    from sqlalchemy import text

    from ledger.storage.db import make_engine, unit_of_work

    engine = make_engine(db.url, role="ledger_app", pool_size=1)
    try:
        results: dict[bool, list[float]] = {False: [], True: []}
        for i in range(SCOPE_ROUNDS):
            scoped = i % 2 == 1
            started = time.perf_counter()
            with unit_of_work(engine, tenant=TENANT if scoped else None) as conn:
                conn.execute(text("SELECT 1"))
            results[scoped].append(time.perf_counter() - started)
    finally:
        engine.dispose()
    return statistics.median(results[False]) * 1e6, statistics.median(results[True]) * 1e6


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def run(plan: Plan, rounds: int) -> int:
    master_key = secrets.token_bytes(32)
    admin, source, embedded_dir = admin_url()
    db = BenchDatabase.create(admin)
    print(f"bench_rls: database {db.name} on {source}, plan {plan.name}", file=sys.stderr)
    rows: list[tuple[int, str, float, float, float, float, float, float]] = []
    try:
        # (a) of ops/bench.py, in this run: the raw-PostgreSQL baseline the loads are read against.
        create_raw_table(db.libpq)
        raw = bench_copy(db.libpq, plan)
        print(
            f"(a) raw PostgreSQL COPY of equivalent rows: {raw.rate:,.0f} rows/s", file=sys.stderr
        )
        db.set_up_ledger(master_key)
        auditor = auditor_token(db, master_key)
        factory = EventFactory(event_templates(), plan.conversations)
        with tempfile.TemporaryDirectory(prefix="ledger-bench-rls-") as tmp:
            server = LedgerServer(db, base64.b64encode(master_key).decode(), 1, Path(tmp))
            server._env["LEDGER_DB_ROLE"] = "ledger_app"  # as production: row security binds
            server.start()
            try:
                warm_up(server, factory, f"/v1/logs/{LOG_ID}/events")
                for r in range(rounds):
                    for enabled in (True, False) if r % 2 == 0 else (False, True):
                        tables = set_policies(db.libpq, enabled)
                        mode = "on" if enabled else "off"
                        warm_up(server, factory, f"/v1/logs/{LOG_ID}/events")
                        (c, _), (d, _) = batch_and_single(
                            server, plan, factory, db.writer_token, ("c", "d"), ("c", "d")
                        )
                        conversation, size = largest_conversation(db.libpq)
                        trail_reads(server, auditor, conversation, 10)  # warm
                        took = trail_reads(server, auditor, conversation, TRAIL_READS)
                        query = trail_query_ms(db.libpq, conversation)
                        rows.append(
                            (
                                r,
                                mode,
                                c.rate,
                                d.rate,
                                pct(took, 0.5),
                                pct(took, 0.99),
                                query,
                                float(size),
                            )
                        )
                        if c.errors or d.errors:  # a figure of failures measures nothing
                            raise RuntimeError(
                                f"policies {mode}: non-2xx answers {dict(c.errors + d.errors)}"
                                f" {c.error_samples + d.error_samples}"
                            )
                        print(
                            f"  round {r} policies {mode}: (c) {c.rate:,.0f} ev/s, (d) "
                            f"{d.rate:,.0f} ev/s, trail of {size} p50 {pct(took, 0.5):.1f} ms "
                            f"p99 {pct(took, 0.99):.1f} ms, query {query:.2f} ms",
                            file=sys.stderr,
                            flush=True,
                        )
            finally:
                set_policies(db.libpq, True)
                server.stop()
        bare, scoped = scope_cost_us(db)
    finally:
        db.drop()
        if embedded_dir is not None:
            stop_embedded(embedded_dir)

    print(f"row security on {len(tables)} tables; server as ledger_app, 1 worker\n")
    print(
        "| round | policies | (c) events/s | (d) events/s | trail p50 ms | trail p99 ms |"
        " trail query ms | trail entries |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for round_, mode, c_rate, d_rate, p50, p99, query, entries in rows:
        print(
            f"| {round_} | {mode} | {c_rate:,.0f} | {d_rate:,.0f} | {p50:.1f} | {p99:.1f} |"
            f" {query:.2f} | {entries:.0f} |"
        )

    def mean(mode: str, index: int) -> float:
        return statistics.fmean(row[index] for row in rows if row[1] == mode)  # type: ignore[misc]

    print(
        f"\n(a) raw PostgreSQL COPY, same run: {raw.rate:,.0f} rows/s; (c) against it: policies"
        f" on {mean('on', 2) / raw.rate:.2f}x, off {mean('off', 2) / raw.rate:.2f}x"
    )
    print("\non / off (means over rounds):")
    for name, index in (
        ("(c) events/s", 2),
        ("(d) events/s", 3),
        ("trail p50", 4),
        ("trail p99", 5),
        ("trail query", 6),
    ):
        print(f"  {name}: {mean('on', index) / mean('off', index):.3f}")
    print(
        f"a unit of work's scope (one SET LOCAL): {bare:.0f} µs unscoped, "
        f"{scoped:.0f} µs scoped (median of {SCOPE_ROUNDS // 2} each)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="bench.py's quick plan")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of on+off (default 2)")
    args = parser.parse_args(argv)
    try:
        return run(QUICK if args.quick else FULL, args.rounds)
    except Exception as exc:
        traceback.print_exc()
        print(f"bench_rls: could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
