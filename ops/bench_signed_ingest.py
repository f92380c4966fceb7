"""Writer signatures, measured: ingest with signatures required against the same load unsigned,
and ``ledger verify``'s rate over signed entries against unsigned ones, in one run.

    .venv/bin/python ops/bench_signed_ingest.py [--quick] [--rounds N] [--json out.json]

One fresh database, one ledger server started as ``ledger serve`` starts it (1 worker), two
logs: ``bench`` (policy ``optional``, posted unsigned) and ``signed`` (policy ``required``, a
writer key registered for its writer credential). The same events (``ops/bench.py``'s ~1.5 KB
padded example conversation, 500 a batch, 4 clients in flight) are posted to each, unsigned
and signed (signatures made by ``ledger.client`` before the clock starts: signing is the
writer's cost, not the ledger's). Phases alternate (unsigned, signed, unsigned, signed, ...)
so that a shared, noisy machine moves both sides alike; the ratio is per round and overall.
Then ``ledger verify --full --jobs 1`` over each log (same entries, one process) gives entries/s
with and without writer-signature checks.

The target (issue 18): batches signed >= 0.8 of unsigned. Exits 0 whatever the figures; 2 only
if it could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench
import orjson

SIGNED_LOG = "signed"
TARGET = 0.8


def set_up_signed_log(db: bench.BenchDatabase, master_key: bytes) -> tuple[str, Any, str]:
    """Log ``signed`` (signatures required), a writer credential and its registered key:
    ``(token, signing key, origin)``."""
    from ledger.client import generate_signing_key
    from ledger.services.admin.credentials import create_credential
    from ledger.services.admin.logs import create_log
    from ledger.services.admin.writer_keys import add_writer_key, set_signature_policy
    from ledger.storage.db import make_engine, unit_of_work
    from ledger.storage.keystore import KeyRing

    engine = make_engine(db.url, pool_size=1)
    keys = KeyRing.from_master(master_key)
    key = generate_signing_key()
    try:
        with unit_of_work(engine) as conn:
            now = datetime.now(UTC)
            info = create_log(
                conn,
                keys,
                SIGNED_LOG,
                origin_prefix=bench.ORIGIN_PREFIX,
                actor=bench.BENCH_ACTOR,
                now=now,
                tenant=bench.LOG_ID,
            )
            writer = create_credential(
                conn,
                keys,
                log_id=SIGNED_LOG,
                role="writer",
                label="bench signed writer",
                actor=bench.BENCH_ACTOR,
                now=now,
            )
            add_writer_key(
                conn,
                keys,
                log_id=SIGNED_LOG,
                credential_id=writer.id,
                public_key=key.public_key_b64url,
                actor=bench.BENCH_ACTOR,
                now=now,
            )
            set_signature_policy(
                conn, keys, log_id=SIGNED_LOG, policy="required", actor=bench.BENCH_ACTOR, now=now
            )
    finally:
        engine.dispose()
    return writer.token, key, info.origin


def bodies(
    factory: bench.EventFactory, batches: int, size: int, *, origin: str, key: Any
) -> tuple[list[bytes], list[bytes]]:
    """The same events twice: as posted unsigned, and signed for ``origin`` with ``key``."""
    from ledger.client import sign_event

    plain, signed = [], []
    for _ in range(batches):
        events = [factory.make() for _ in range(size)]
        plain.append(orjson.dumps({"events": events}))
        signed.append(
            orjson.dumps({"events": [sign_event(e, origin=origin, key=key) for e in events]})
        )
    return plain, signed


def load(
    server: bench.LedgerServer, log_id: str, token: str, payloads: list[bytes], plan: bench.Plan
) -> tuple[float, int, int, float]:
    """``(events/s, events accepted, non-2xx answers, server CPU µs per event)`` of posting
    ``payloads`` as batches. The server's CPU per event (its process tree, all threads) moves
    far less than its rate when other work shares the machine."""
    path = f"/v1/logs/{log_id}/events"
    requests = [bench.post_request(server.host, server.port, path, token, b) for b in payloads]
    pids = bench.tree_pids(server.pid)
    cpu_before = sum(bench.cpu_seconds(p) for p in pids)
    outcome = asyncio.run(
        bench.drive(server.host, server.port, requests, plan.batch_clients, plan.batch_seconds)
    )
    cpu = sum(bench.cpu_seconds(p) for p in pids) - cpu_before
    errors = sum(outcome.errors.values())
    if outcome.error_samples:
        print("  errors:", outcome.error_samples[:2], file=sys.stderr)
    per_event = cpu / outcome.events * 1e6 if outcome.events else 0.0
    return outcome.events / outcome.seconds, outcome.events, errors, per_event


def verify_rate(db: bench.BenchDatabase, master_b64: str, log_id: str) -> tuple[float, int]:
    """``(entries/s, entries)`` of ``ledger verify --full --jobs 1`` over one log."""
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as state:
        env = {
            **os.environ,
            "LEDGER_DATABASE_URL": db.url,
            "LEDGER_MASTER_KEY": master_b64,
            "LEDGER_VERIFIER_STATE_DIR": state,
            "LEDGER_DATA_DIR": state,
        }
        env.pop("LEDGER_ANCHOR_DIR", None)
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "ledger.cli",
                "verify",
                "--log",
                log_id,
                "--full",
                "--json",
                "--jobs",
                "1",
            ],
            env=env,
            capture_output=True,
            check=False,
            cwd=bench.ROOT,
        )
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"ledger verify {log_id}: exit {done.returncode}: {done.stderr[-500:]!r}"
        )
    report = json.loads(done.stdout)
    entries = sum(int(r["entries"]) for r in report["logs"])
    return entries / seconds, entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--requests", type=int, default=30, help="batches per phase (a round: two phases)"
    )
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()
    plan = bench.QUICK if args.quick else bench.FULL
    master = os.urandom(32)
    master_b64 = base64.b64encode(master).decode()
    try:
        admin, where, embedded_dir = bench.admin_url()
        db = bench.BenchDatabase.create(admin)
    except Exception as exc:
        print(f"bench_signed_ingest: cannot run: {exc}", file=sys.stderr)
        return bench.EXIT_COULD_NOT_RUN
    log_dir = Path(tempfile.mkdtemp(prefix="bench-signed-"))
    server = None
    results: dict[str, Any] = {"plan": plan.name, "database": where, "rounds": []}
    try:
        db.set_up_ledger(master)
        # (a) of ops/bench.py, in this run: the raw-PostgreSQL baseline both loads are read
        # against (COPY of equivalent rows, 500 a transaction).
        bench.create_raw_table(db.libpq)
        raw = bench.bench_copy(db.libpq, plan)
        results["raw_copy"] = raw.rate
        print(f"(a) raw PostgreSQL COPY of equivalent rows: {raw.rate:,.0f} rows/s (baseline)")
        token, key, origin = set_up_signed_log(db, master)
        factory = bench.EventFactory(bench.event_templates(), plan.conversations)
        per_phase = args.requests if not args.quick else plan.batch_requests
        server = bench.LedgerServer(db, master_b64, 1, log_dir)
        server.start()
        # A warm-up of each (first requests pay for imports, caches, the first data keys).
        warm_plain, warm_signed = bodies(factory, 2, plan.batch_events, origin=origin, key=key)
        load(server, bench.LOG_ID, db.writer_token, warm_plain, plan)
        load(server, SIGNED_LOG, token, warm_signed, plan)
        totals = {"unsigned": [0.0, 0], "signed": [0.0, 0]}
        ratios, cpu_ratios = [], []
        for round_no in range(args.rounds):
            plain, signed = bodies(factory, per_phase, plan.batch_events, origin=origin, key=key)
            # Alternate which goes first, so that neither always follows the other's writes.
            order = [("unsigned", plain), ("signed", signed)]
            if round_no % 2:
                order.reverse()
            got: dict[str, tuple[float, int, int, float]] = {}
            for name, payloads in order:
                log_id, writer = (
                    (bench.LOG_ID, db.writer_token) if name == "unsigned" else (SIGNED_LOG, token)
                )
                got[name] = load(server, log_id, writer, payloads, plan)
            (rate_u, n_u, err_u, cpu_u), (rate_s, n_s, err_s, cpu_s) = (
                got["unsigned"],
                got["signed"],
            )
            totals["unsigned"][0] += n_u / rate_u if rate_u else 0.0
            totals["unsigned"][1] += n_u
            totals["signed"][0] += n_s / rate_s if rate_s else 0.0
            totals["signed"][1] += n_s
            ratio = rate_s / rate_u if rate_u else 0.0
            cpu_ratio = cpu_u / cpu_s if cpu_s else 0.0
            ratios.append(ratio)
            cpu_ratios.append(cpu_ratio)
            results["rounds"].append(
                {
                    "unsigned": rate_u,
                    "signed": rate_s,
                    "ratio": ratio,
                    "server_cpu_us_per_event": {"unsigned": cpu_u, "signed": cpu_s},
                    "errors": err_u + err_s,
                }
            )
            print(
                f"round {round_no + 1}: batches of {plan.batch_events}, {plan.batch_clients} "
                f"clients: unsigned {rate_u:,.0f} events/s ({cpu_u:.0f} µs server CPU/event), "
                f"signed {rate_s:,.0f} events/s ({cpu_s:.0f} µs): rate ratio {ratio:.2f}, "
                f"CPU ratio {cpu_ratio:.2f} (errors {err_u + err_s})"
            )
        overall_u = totals["unsigned"][1] / totals["unsigned"][0]
        overall_s = totals["signed"][1] / totals["signed"][0]
        ratio = overall_s / overall_u
        median, cpu_median = statistics.median(ratios), statistics.median(cpu_ratios)
        results.update(
            unsigned=overall_u,
            signed=overall_s,
            ratio=ratio,
            median_ratio=median,
            median_cpu_ratio=cpu_median,
        )
        print(
            f"ingest, all rounds: unsigned {overall_u:,.0f} events/s, signed {overall_s:,.0f}"
            f" events/s: {ratio:.2f} of unsigned (median of rounds {median:.2f}; by server CPU"
            f" per event {cpu_median:.2f}); target >= {TARGET}: "
            f"{'MET' if median >= TARGET else 'MISSED'}"
        )
        print(
            f"against (a) raw COPY: unsigned {overall_u / raw.rate:.2f}x, "
            f"signed {overall_s / raw.rate:.2f}x"
        )
        server.stop()
        server = None
        v_u, e_u = verify_rate(db, master_b64, bench.LOG_ID)
        v_s, e_s = verify_rate(db, master_b64, SIGNED_LOG)
        results.update(verify_unsigned=v_u, verify_signed=v_s, verify_entries=[e_u, e_s])
        print(
            f"ledger verify --full --jobs 1: unsigned log {v_u:,.0f} entries/s ({e_u} entries),"
            f" signed log {v_s:,.0f} entries/s ({e_s} entries): {v_s / v_u:.2f} of unsigned"
        )
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(results, indent=2))
    finally:
        if server is not None:
            server.stop()
        db.drop()
        if embedded_dir is not None:
            bench.stop_embedded(embedded_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
