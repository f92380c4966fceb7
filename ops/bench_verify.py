"""Verification and proof performance on big logs (separate from ops/bench.py, the ingest bench).

    .venv/bin/python ops/bench_verify.py [--entries 200000] [--incremental 10000]
                                         [--proof-entries 1000000] [--proof-requests 2000]
                                         [--trail-requests 300] [--profile] [--keep]

In one fresh database (``ledger_benchv_<hex>`` on ``LEDGER_BENCH_DATABASE_URL``, an admin URL,
default the PostgreSQL on 127.0.0.1:5432; dropped at the end unless ``--keep``) it measures:

1. fill: ``--entries`` events of ~1.5 KB of payload appended straight through the sequencer
   (``append_batch`` in ``unit_of_work``, 5,000 a batch, one checkpoint each), no HTTP;
2. full verification of that log (``ledger verify --full``'s code path): entries/s, and where
   the time goes: the bare server-side-cursor scan of the same rows, and with ``--profile`` the
   top functions of a cProfile run;
3. incremental verification after ``--incremental`` more entries (from the state the full run
   left);
4. a second log of ``--proof-entries`` small events (~0.5 KB entry, 40-byte payload): its full
   verification, incremental verification after ``--incremental`` more (the large-log case),
   then ``--proof-requests`` random inclusion and as many consistency proofs over HTTP/1.1
   keep-alive against ``uvicorn --factory api.main:create_app_from_env`` in its own process on
   127.0.0.1: p50 / p99 / max latency; and ``--trail-requests`` reads of the trail of a
   200-event conversation spread over that log (every 5,000th entry), each with its inclusion
   proofs and its durable access event.

Targets (printed PASS/MISS): full >= 100,000 entries/s, incremental < 2 s, proof p99 < 10 ms,
trail p99 < 100 ms.
Exit 0 whatever the figures (a measurement), 2 if it could not run.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import hashlib
import http.client
import io
import json
import os
import pstats
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from ledger.core.canonical import canonicalize
from ledger.core.commitment import new_salt, payload_commitment
from ledger.core.entry import EventHeader, writer_known_fields
from ledger.core.writer_signature import sign_statement, statement_bytes
from ledger.domain import AppendRequest, LogInfo, PreparedEvent, Principal
from ledger.services.admin.credentials import create_credential
from ledger.services.admin.logs import create_log
from ledger.services.verification.state import VerifierStateStore
from ledger.services.verification.verify import LogReport, save_states, verify_log
from ledger.storage.db import make_engine, sqlalchemy_url, unit_of_work, upgrade_schema
from ledger.storage.keystore import DataKeyStore, KeyRing, SignerCache
from ledger.storage.sequencer import append_batch

MASTER_KEY = bytes(range(32))
BATCH = 5000
ACTOR = {"kind": "system", "id": "bench"}  # who creates the logs and credentials
WORDS = (
    "refund",
    "charge",
    "card",
    "account",
    "billing",
    "agent",
    "customer",
    "escalate",
    "policy",
    "verified",
    "order",
    "shipping",
    "delay",
    "duplicate",
    "transaction",
    "support",
    "handoff",
    "summary",
    "sentiment",
)


def now() -> datetime:
    return datetime.now(UTC)


def libpq(url: str, database: str | None = None) -> str:
    u = make_url(sqlalchemy_url(url))
    if database:
        u = u.set(database=database)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def fresh_database() -> Iterator[str]:
    admin = os.environ.get(
        "LEDGER_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"ledger_benchv_{secrets.token_hex(4)}"
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = libpq(admin, name)
    try:
        upgrade_schema(url)
        yield url
    finally:
        if "--keep" not in sys.argv:
            with psycopg.connect(libpq(admin), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            print(f"kept database {name}")


TRAIL = "trail-200"


class Filler:
    """Appends events through the sequencer, as the group committer would, 5,000 a batch."""

    def __init__(
        self,
        engine: Engine,
        log: LogInfo,
        payload_bytes: int,
        trail_every: int | None = None,
        *,
        writer: tuple[int, Any] | None = None,
    ) -> None:
        """``writer``: ``(credential id, ledger.client.WriterSigningKey)``: each event is
        signed by that writer, as ingest would have checked and stored it."""
        self.engine = engine
        self.writer = writer
        self.trail_every = trail_every
        """Every ``trail_every``-th event goes to conversation TRAIL: a long trail spread over
        the whole log, the worst case for the trail read."""
        self.log = log
        self.payload_bytes = payload_bytes
        self.signers = SignerCache(MASTER_KEY)
        self.data_keys = DataKeyStore(MASTER_KEY)
        self.n = 0
        self.rng = random.Random(7)
        self.text = " ".join(self.rng.choice(WORDS) for _ in range(payload_bytes // 6))

    def event(self) -> PreparedEvent:
        n = self.n
        self.n += 1
        conversation = f"conv-{n // 20}"
        if self.trail_every and n % self.trail_every == 0:
            conversation = TRAIL
        data = canonicalize(
            {
                "message_id": f"m-{n}",
                "actor": {"kind": "customer", "id": "c-1"},
                "content": {"parts": [{"type": "text", "content": f"{n} {self.text}"}]},
            }
        )
        salt = new_salt()
        header = EventHeader(
            event_id=f"e-{n}",
            source="urn:bench:verify",
            type="handoff.message.created.v1",
            time="2026-11-20T09:14:01.000Z",
            conversation_id=conversation,
            actor={"kind": "customer", "id": "c-1"},
            outcome="success",
            resource=None,
        )
        commitment = payload_commitment(salt, data)
        signature = None
        if self.writer is not None:
            statement = statement_bytes(
                writer_known_fields(origin=self.log.origin, header=header, commitment=commitment)
            )
            signature = sign_statement(statement, self.writer[1].key)
        return PreparedEvent(
            header=header,
            scope=f"conversation:{conversation}",
            salt=salt,
            canonical_data=data,
            commitment=commitment,
            request_digest=hashlib.sha256(data).digest(),
            writer_signature=signature,
        )

    def append(self, count: int) -> float:
        started = time.perf_counter()
        credential = 1 if self.writer is None else self.writer[0]
        principal = Principal(credential, self.log.id, "writer", "bench")
        while count > 0:
            k = min(BATCH, count)
            events = [self.event() for _ in range(k)]
            with unit_of_work(self.engine) as conn:
                append_batch(
                    conn,
                    self.log,
                    [AppendRequest(events, principal)],
                    signers=self.signers,
                    data_keys=self.data_keys,
                    now=now(),
                )
            count -= k
        return time.perf_counter() - started


def run_verify(
    engine: Engine,
    log: LogInfo,
    states: VerifierStateStore,
    *,
    full: bool,
    jobs: int = 1,
    profile: bool = False,
) -> tuple[LogReport, float, str]:
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    with unit_of_work(engine) as conn:
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        if profiler:
            profiler.enable()
        report = verify_log(
            conn,
            log,
            data_keys=DataKeyStore(MASTER_KEY),
            trusted=states.load(log.id),
            anchor_dir=None,
            full=full,
            jobs=jobs,
        )
        if profiler:
            profiler.disable()
    elapsed = time.perf_counter() - started
    if report.failure is not None:
        raise SystemExit(f"verification failed: {report.failure}")
    from ledger.services.verification.verify import VerifyReport

    save_states(VerifyReport([report]), states, now=now())
    top = ""
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
        top = out.getvalue()
    return report, elapsed, top


def settle(url: str) -> str:
    """After a bulk fill, what the server would soon do anyway, so that it does not happen during
    the measurements: autovacuum's insert-triggered VACUUM of the freshly filled tables, and the
    checkpoint writing out the fill's WAL (its I/O stalls commits, such as a trail's durable
    access event). Returns the database size."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
        size = conn.execute(
            "SELECT pg_size_pretty(pg_database_size(current_database()))"
        ).fetchone()
    return str(size[0]) if size else "?"


def bare_scan(url: str, log_id: str, size: int) -> float:
    """The verifier's reads (entries and payloads by primary-key range, 5,000 seqs a chunk),
    fetched and dropped: the floor set by PostgreSQL and the transfer."""
    started = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor(binary=True) as cur:
        for low in range(0, size, 5000):
            cur.execute(
                "SELECT seq, leaf_hash, entry, source, event_id, conversation_id"
                " FROM entries WHERE log_id = %s AND seq >= %s AND seq < %s"
                " ORDER BY seq",
                (log_id, low, low + 5000),
            )
            cur.fetchall()
            cur.execute(
                "SELECT seq, data_key_id, sealed FROM payloads WHERE log_id = %s"
                " AND seq >= %s AND seq < %s",
                (log_id, low, low + 5000),
            )
            cur.fetchall()
    return time.perf_counter() - started


class Latencies(TypedDict):
    p50_ms: float
    p99_ms: float
    max_ms: float


def start_uvicorn(url: str) -> tuple[subprocess.Popen[bytes], int]:
    """The API under ``uvicorn`` in its own process (as ``ledger serve`` runs one worker) on
    the database ``url`` and a free port, once it accepts connections; the caller stops it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": url,
        "LEDGER_ORIGIN_PREFIX": "bench.test",
        "LEDGER_MASTER_KEY": base64.b64encode(MASTER_KEY).decode(),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "api.main:create_app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            if time.monotonic() > deadline:
                server.terminate()
                server.wait(timeout=30)
                raise
            time.sleep(0.1)
        else:
            return server, port


def proof_latencies(
    url: str, log_id: str, tokens: dict[str, str], size: int, requests: int, trail_requests: int
) -> dict[str, Latencies]:
    """Random proofs over HTTP/1.1 keep-alive against ``uvicorn`` in its own process (as
    ``ledger serve`` runs it), so the client does not share the server's interpreter."""
    server, port = start_uvicorn(url)
    rng = random.Random(11)
    out: dict[str, Latencies] = {}
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for kind in ("inclusion", "consistency", "trail"):
            latencies: list[float] = []
            role = "auditor" if kind == "trail" else "verifier"
            headers = {"Authorization": f"Bearer {tokens[role]}"}
            for i in range((trail_requests if kind == "trail" else requests) + 50):
                if kind == "trail":  # the whole trail, its proofs and its durable access event
                    path = f"/v1/logs/{log_id}/conversations/{TRAIL}/trail"
                elif kind == "inclusion":
                    tree = rng.randint(1, size)
                    path = (
                        f"/v1/logs/{log_id}/proofs/inclusion?seq={rng.randrange(tree)}"
                        f"&tree_size={tree}"
                    )
                else:
                    second = rng.randint(1, size)
                    path = (
                        f"/v1/logs/{log_id}/proofs/consistency?first="
                        f"{rng.randint(1, second)}&second={second}"
                    )
                started = time.perf_counter()
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise SystemExit(f"{path}: {response.status}")
                if i >= 50:  # warm-up excluded
                    latencies.append((time.perf_counter() - started) * 1000)
            latencies.sort()
            out[kind] = {
                "p50_ms": latencies[len(latencies) // 2],
                "p99_ms": latencies[int(len(latencies) * 0.99)],
                "max_ms": latencies[-1],
            }
        conn.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return out


class Rate(TypedDict):
    entries: int
    seconds: float
    per_s: float


class FullRun(Rate):
    bare_scan_seconds: float


class IncrementalRun(TypedDict):
    entries: int
    log_size: int
    seconds: float


class Results(TypedDict, total=False):
    """The figures printed as JSON at the end, filled in as they are measured."""

    fill: Rate
    database_size: str
    full: FullRun
    incremental: IncrementalRun
    full_small: Rate
    full_signed: Rate
    incremental_large: IncrementalRun
    proofs: dict[str, int | Latencies]  # "log_size", then one entry per kind of request


class Args(argparse.Namespace):
    entries: int
    incremental: int
    proof_entries: int
    proof_requests: int
    trail_requests: int
    jobs: int
    profile: bool
    keep: bool
    signed: int


def verify_signed(
    engine: Engine, keys: KeyRing, url: str, states: VerifierStateStore, args: Args
) -> Rate:
    """A log of ``args.signed`` writer-signed entries, verified in full like the unsigned one:
    the same checks plus each entry's Ed25519 writer signature."""
    from ledger.client import generate_signing_key
    from ledger.services.admin.writer_keys import add_writer_key

    key = generate_signing_key()
    with unit_of_work(engine) as conn:
        log = create_log(conn, keys, "signed", origin_prefix="bench.test", actor=ACTOR, now=now())
        writer = create_credential(
            conn, keys, log_id="signed", role="writer", label="b", actor=ACTOR, now=now()
        )
        add_writer_key(
            conn,
            keys,
            log_id="signed",
            credential_id=writer.id,
            public_key=key.public_key_b64url,
            actor=ACTOR,
            now=now(),
        )
    t = Filler(engine, log, payload_bytes=1500, writer=(writer.id, key)).append(args.signed)
    print(f"signed log: {args.signed} writer-signed entries in {t:.1f} s", flush=True)
    settle(url)
    report, t, _ = run_verify(engine, log, states, full=True, jobs=args.jobs)
    print(
        f"full verify, writer-signed entries: {report.entries} in {t:.2f} s"
        f" ({report.entries / t:,.0f}/s, each signature checked)",
        flush=True,
    )
    return {"entries": report.entries, "seconds": t, "per_s": report.entries / t}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--incremental", type=int, default=10_000)
    parser.add_argument("--proof-entries", type=int, default=1_000_000)
    parser.add_argument("--proof-requests", type=int, default=2000)
    parser.add_argument("--trail-requests", type=int, default=300)
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="verification processes, as ledger verify --jobs (default: CPUs)",
    )
    parser.add_argument(
        "--signed",
        type=int,
        default=0,
        help="also fill a log of this many writer-signed entries (~1.5 KB) and verify it in full,"
        " beside the unsigned one (issue 18)",
    )
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(namespace=Args())
    results: Results = {}
    with fresh_database() as url, tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(url, pool_size=2)
        keys = KeyRing.from_master(MASTER_KEY)
        with unit_of_work(engine) as conn:
            log = create_log(conn, keys, "big", origin_prefix="bench.test", actor=ACTOR, now=now())
            proof_log = create_log(
                conn, keys, "proofs", origin_prefix="bench.test", actor=ACTOR, now=now()
            )
            tokens = {
                role: create_credential(
                    conn, keys, log_id="proofs", role=role, label="b", actor=ACTOR, now=now()
                ).token
                for role in ("verifier", "auditor")
            }
        states = VerifierStateStore(Path(tmp) / "verifier")

        filler = Filler(engine, log, payload_bytes=1500)
        t = filler.append(args.entries)
        results["fill"] = {"entries": args.entries, "seconds": t, "per_s": args.entries / t}
        print(
            f"fill: {args.entries} entries (~1.5 KB payload) in {t:.1f} s"
            f" ({args.entries / t:,.0f}/s)",
            flush=True,
        )
        results["database_size"] = settle(url)

        scan = bare_scan(url, "big", args.entries)
        report, t, top = run_verify(
            engine, log, states, full=True, jobs=args.jobs, profile=args.profile
        )
        results["full"] = {
            "entries": report.entries,
            "seconds": t,
            "per_s": report.entries / t,
            "bare_scan_seconds": scan,
        }
        print(
            f"full verify: {report.entries} entries in {t:.2f} s"
            f" ({report.entries / t:,.0f}/s); bare cursor scan of the same rows {scan:.2f} s",
            flush=True,
        )
        if top:
            print(top)

        if args.signed:
            results["full_signed"] = verify_signed(engine, keys, url, states, args)

        filler.append(args.incremental)
        report, t, _ = run_verify(engine, log, states, full=False)
        results["incremental"] = {
            "entries": report.entries,
            "log_size": report.to_size,
            "seconds": t,
        }
        print(
            f"incremental verify: {report.entries} new entries on a log of"
            f" {report.to_size} in {t:.2f} s",
            flush=True,
        )

        proof_filler = Filler(
            engine, proof_log, payload_bytes=40, trail_every=max(1, args.proof_entries // 200)
        )
        t = proof_filler.append(args.proof_entries)
        print(f"proof log: {args.proof_entries} small entries in {t:.1f} s", flush=True)
        settle(url)
        report, t, _ = run_verify(engine, proof_log, states, full=True, jobs=args.jobs)
        results["full_small"] = {
            "entries": report.entries,
            "seconds": t,
            "per_s": report.entries / t,
        }
        print(
            f"full verify of the proof log ({report.entries} entries of ~0.5 KB):"
            f" {t:.1f} s ({report.entries / t:,.0f}/s)",
            flush=True,
        )
        proof_filler.append(args.incremental)
        report, t, _ = run_verify(engine, proof_log, states, full=False)
        results["incremental_large"] = {
            "entries": report.entries,
            "log_size": report.to_size,
            "seconds": t,
        }
        print(
            f"incremental verify: {report.entries} new entries on a log of"
            f" {report.to_size} in {t:.2f} s",
            flush=True,
        )
        lat = proof_latencies(
            url, "proofs", tokens, args.proof_entries, args.proof_requests, args.trail_requests
        )
        results["proofs"] = {"log_size": args.proof_entries, **lat}
        for kind, figures in lat.items():
            what = "trail of a 200-event conversation" if kind == "trail" else f"{kind} proofs"
            print(
                f"{what} at {args.proof_entries}: p50 {figures['p50_ms']:.2f} ms,"
                f" p99 {figures['p99_ms']:.2f} ms, max {figures['max_ms']:.2f} ms"
            )
        engine.dispose()

    checks = [
        ("full >= 100,000 entries/s", results["full"]["per_s"] >= 100_000),
        (
            "incremental < 2 s",
            max(results["incremental"]["seconds"], results["incremental_large"]["seconds"]) < 2,
        ),
        ("proof p99 < 10 ms", max(lat[k]["p99_ms"] for k in ("inclusion", "consistency")) < 10),
        ("trail p99 < 100 ms", lat["trail"]["p99_ms"] < 100),
    ]
    for name, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {name}")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
