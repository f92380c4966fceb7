"""Handoff Ledger performance benchmark: one command, one process tree, one fresh database.

    .venv/bin/python ops/bench.py [--quick] [--json out.json] [--workers 1,2]

Measures, on this machine:

(a)  raw PostgreSQL ``COPY`` of entry-like rows (+ a ~1.5 KB payload), 500 rows a transaction;
(b)  raw one-commit-per-row ``INSERT``s of the same rows from one connection, and (b') from
     many concurrent connections (threads), for context;
(c)  HTTP batch ingest (500 realistic ~1.5 KB events a request, a few requests in flight);
(d)  HTTP single-event ingest from 64 concurrent clients;
(c0), (d0)  the same two loads against the no-database ceiling (``ops/bench_ceiling.py``): the
     same uvicorn doing only the ledger's work before its sequencer — parse, validate, prepare;

with the ledger server as a separate process started as ``ledger serve`` starts it (uvicorn for one
worker, ``python -m ledger.server.workers`` for more; 1 and 2 workers), sampling
the server's RSS (the whole process tree) every 0.2 s. It then prints the ratios against the
targets — (c)/(a) >= 0.5, (d)/(b) >= 3.0, max server RSS < 300 MB — each PASS or MISS, where
the ceiling puts each target, checks
that the log's final checkpoint size equals the number of events accepted, and drops the
database. It exits 0 whatever the figures (a measurement, not a test); 2 only if it could not run.

The HTTP load comes from a minimal asyncio HTTP/1.1 keep-alive client over raw sockets with
pre-serialized requests, so that the client takes as little as possible of the CPU the server
needs (two cores here: client, server and PostgreSQL share them; the CPU columns say who used
what).

Environment: ``LEDGER_BENCH_DATABASE_URL`` (admin URL; default the local PostgreSQL on 5432,
else an embedded one), ``LEDGER_SHARED_DIR`` (default ``../shared``), and
``LEDGER_BENCH_PROFILE=FILE``: after the normal runs, run (c) and (d) once more against a
1-worker server under cProfile plus per-thread CPU accounting (see :class:`ServerProfiler`),
print the reports and write them to FILE. Profiled rows carry a ``*`` and count for no target
(cProfile slows the server down several times).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import dataclasses
import hashlib
import http.client
import itertools
import json
import math
import os
import platform
import pstats
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from unittest import mock

import orjson
import psycopg

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LEDGER_SHARED_DIR", ROOT.parent / "shared"))
EXAMPLE = SHARED / "examples" / "escalated-conversation.json"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOG_ID = "bench"
BENCH_ACTOR = {"kind": "system", "id": "bench"}  # who creates the log and credential
ORIGIN_PREFIX = "bench.handoff-ledger.localhost"
EVENT_TARGET_BYTES = 1536  # "~1.5 KB" serialized event
PAYLOAD_BYTES = 1536  # raw-PostgreSQL payload column, the sealed-payload equivalent
ENTRY_BYTES = 720  # a real canonical entry header is ~715 B (origin, ids, hashes, actor, ...)
RSS_INTERVAL = 0.2
EXIT_COULD_NOT_RUN = 2

LEDGER_PHASES = ("c", "d")  # the rows measured against the ledger server (not the ceiling)
TARGET_BATCH_VS_COPY = 0.5
TARGET_SINGLE_VS_INSERT = 3.0
TARGET_RSS_MB = 300.0


# --- the plan -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How much of everything. ``FULL`` takes about a minute on two cores (two with
    LEDGER_BENCH_PROFILE); ``QUICK`` a few seconds, for smoke tests."""

    name: str
    copy_rows: int
    copy_batch: int
    insert_rows: int
    insert_threads: int
    insert_rows_per_thread: int
    batch_events: int
    batch_requests: int
    batch_clients: int
    batch_seconds: float
    single_clients: int
    single_requests: int
    single_seconds: float
    conversations: int
    workers: tuple[int, ...]


FULL = Plan(
    name="full",
    copy_rows=50_000,
    copy_batch=500,
    insert_rows=3_000,
    insert_threads=64,
    insert_rows_per_thread=50,
    batch_events=500,
    batch_requests=120,
    batch_clients=4,
    batch_seconds=20.0,
    single_clients=64,
    single_requests=40_000,
    single_seconds=15.0,
    conversations=5_000,
    workers=(1, 2),
)
QUICK = Plan(
    name="quick",
    copy_rows=2_000,
    copy_batch=500,
    insert_rows=200,
    insert_threads=8,
    insert_rows_per_thread=10,
    batch_events=100,
    batch_requests=4,
    batch_clients=2,
    batch_seconds=10.0,
    single_clients=16,
    single_requests=160,
    single_seconds=5.0,
    conversations=200,
    workers=(1,),
)


# --- results --------------------------------------------------------------------------------


@dataclass
class Measurement:
    """One row of the table. ``latencies`` are seconds per unit (row, request, transaction)."""

    key: str
    label: str
    count: int
    seconds: float
    latencies: list[float] = field(default_factory=list, repr=False)
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    rss_max_mb: float | None = None
    rss_processes_mb: list[float] = field(default_factory=list)  # at the peak, per process
    created: int | None = None  # HTTP: events answered 201 (new), of ``count`` accepted
    pg_sessions: str = ""  # HTTP: what the server's PostgreSQL sessions were doing, on average
    server_cpu: float | None = None  # cores used by the server process tree
    client_cpu: float | None = None  # cores used by this (benchmark) process
    machine_cpu: float | None = None  # cores busy machine-wide (PostgreSQL is the rest)
    workers: int | None = None
    profiled: bool = False

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "latencies"}
        out.update(
            rate=self.rate,
            p50_ms=_ms(self.percentile(0.5)),
            p99_ms=_ms(self.percentile(0.99)),
            errors=dict(self.errors),
            error_count=sum(self.errors.values()),
        )
        return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


# --- CPU and memory from /proc (no psutil: not a dependency of the project) --------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants, via /proc/<pid>/task/*/children."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return pids


def rss_bytes(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (all its threads); 0 once it is gone."""
    try:
        return cpu_seconds_of(Path(f"/proc/{pid}/stat"))
    except (OSError, ValueError):
        return 0.0


def cpu_seconds_of(stat_path: Path) -> float:
    """User + system CPU seconds from a /proc/.../stat file (of a process or of a thread)."""
    stat = stat_path.read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds spent not idle, all cores, since boot (first line of /proc/stat)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


class CpuMeter:
    """CPU used during a phase: by a process tree (the server), by us, by the whole machine.

    A tree's CPU is summed over the pids seen at the start and at the end (uvicorn's workers
    live for the whole run, so nothing that matters is missed).
    """

    def __init__(self, server_pid: int | None) -> None:
        self._server_pid = server_pid
        self._pids = tree_pids(server_pid) if server_pid else []
        self._server0 = {p: cpu_seconds(p) for p in self._pids}
        self._client0 = _own_cpu()
        self._machine0 = machine_busy_seconds()
        self._wall0 = time.perf_counter()

    def finish(self, m: Measurement) -> None:
        wall = time.perf_counter() - self._wall0
        if wall <= 0:
            return
        if self._server_pid:
            pids = set(self._pids) | set(tree_pids(self._server_pid))
            used = sum(cpu_seconds(p) - self._server0.get(p, 0.0) for p in pids)
            m.server_cpu = used / wall
        m.client_cpu = (_own_cpu() - self._client0) / wall
        m.machine_cpu = (machine_busy_seconds() - self._machine0) / wall


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


class RssSampler:
    """Samples the summed VmRSS of a process tree every ``interval`` seconds, keeps the max."""

    def __init__(self, root_pid: int, interval: float = RSS_INTERVAL) -> None:
        self._root = root_pid
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.max_bytes = 0
        self.at_max: list[int] = []  # each process's RSS in the peak sample, largest first
        self.samples = 0

    def __enter__(self) -> RssSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        each = sorted((rss_bytes(p) for p in tree_pids(self._root)), reverse=True)
        if sum(each) > self.max_bytes:
            self.max_bytes, self.at_max = sum(each), each
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()


class PgActivitySampler:
    """Samples what the database's sessions (the server's) are doing every ``interval`` s,
    from pg_stat_activity: running, waiting for a lock, for WAL flush, idle in transaction..."""

    def __init__(self, libpq: str, interval: float = RSS_INTERVAL) -> None:
        self._libpq = libpq
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-sampler", daemon=True)
        self.counts: Counter[str] = Counter()
        self.samples = 0

    def __enter__(self) -> PgActivitySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self._libpq, autocommit=True) as conn:
            while not self._stop.wait(self._interval):
                rows = conn.execute(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend'"
                ).fetchall()
                self.samples += 1
                for state, wait_type, wait in rows:
                    if state == "idle":
                        continue
                    what = state if wait_type is None else f"{state}: {wait_type}/{wait}"
                    self.counts[what] += 1

    def summary(self) -> str:
        """Average number of sessions in each non-idle state, busiest first."""
        if not self.samples:
            return ""
        return ", ".join(f"{what} {n / self.samples:.2f}" for what, n in self.counts.most_common(5))


# --- database setup -------------------------------------------------------------------------


def _libpq(url: str) -> str:
    from ledger.storage.db import sqlalchemy_url

    return sqlalchemy_url(url).replace("postgresql+psycopg://", "postgresql://", 1)


def admin_url() -> tuple[str, str, Path | None]:
    """``(admin URL, where it came from, embedded data dir or None)``: the env, else :5432,
    else an embedded server in a temporary directory (see :func:`stop_embedded`)."""
    url = os.environ.get("LEDGER_BENCH_DATABASE_URL")
    if url:
        return url, "LEDGER_BENCH_DATABASE_URL", None
    try:
        psycopg.connect(DEFAULT_ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError:
        from ledger.embedded import embedded_database_url

        data_dir = Path(tempfile.mkdtemp(prefix="ledger-bench-pg-"))
        return embedded_database_url(data_dir), "embedded PostgreSQL", data_dir
    return DEFAULT_ADMIN_URL, "127.0.0.1:5432", None


def stop_embedded(data_dir: Path) -> None:
    """Stop the embedded server now (pgserver would at exit) and remove its directory."""
    from ledger import embedded

    for server in embedded._servers:  # the handles ledger.embedded keeps alive
        server.cleanup()
    embedded._servers.clear()
    shutil.rmtree(data_dir, ignore_errors=True)


@dataclass
class BenchDatabase:
    admin: str
    name: str
    url: str  # SQLAlchemy form, what the ledger takes
    libpq: str  # for psycopg
    writer_token: str = ""

    @classmethod
    def create(cls, admin: str) -> BenchDatabase:
        from sqlalchemy.engine import make_url

        from ledger.storage.db import sqlalchemy_url

        name = f"ledger_bench_{secrets.token_hex(4)}"
        with psycopg.connect(_libpq(admin), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = (
            make_url(sqlalchemy_url(admin)).set(database=name).render_as_string(hide_password=False)
        )
        return cls(admin, name, url, _libpq(url))

    def set_up_ledger(self, master_key: bytes) -> None:
        """Migrations, log ``bench``, a writer credential (as tests/conftest.py does)."""
        from ledger.services.admin.credentials import create_credential
        from ledger.services.admin.logs import create_log
        from ledger.storage.db import make_engine, unit_of_work, upgrade_schema
        from ledger.storage.keystore import KeyRing

        upgrade_schema(self.url)
        engine = make_engine(self.url, pool_size=1)
        keys = KeyRing.from_master(master_key)
        try:
            with unit_of_work(engine) as conn:
                now = datetime.now(UTC)
                create_log(
                    conn, keys, LOG_ID, origin_prefix=ORIGIN_PREFIX, actor=BENCH_ACTOR, now=now
                )
                self.writer_token = create_credential(
                    conn,
                    keys,
                    log_id=LOG_ID,
                    role="writer",
                    label="bench writer",
                    actor=BENCH_ACTOR,
                    now=now,
                ).token
        finally:
            engine.dispose()

    def drop(self) -> None:
        with psycopg.connect(_libpq(self.admin), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def server_facts(libpq: str) -> dict[str, str]:
    with psycopg.connect(libpq) as conn:
        facts = {}
        for setting in (
            "server_version",
            "synchronous_commit",
            "fsync",
            "shared_buffers",
            "max_connections",
            "wal_level",
        ):
            row = conn.execute(f"SHOW {setting}").fetchone()
            facts[setting] = str(row[0]) if row else "?"
    return facts


# --- (a), (b), (b'): raw PostgreSQL -----------------------------------------------------------

RAW_TABLE = """
CREATE TABLE raw_entries (
    log_id text NOT NULL,
    seq bigint NOT NULL,
    leaf_hash bytea NOT NULL,
    entry bytea NOT NULL,
    source text NOT NULL,
    event_id text NOT NULL,
    event_type text NOT NULL,
    conversation_id text NOT NULL,
    received_at timestamptz NOT NULL,
    request_digest bytea NOT NULL,
    payload bytea NOT NULL,
    PRIMARY KEY (log_id, seq),
    UNIQUE (log_id, source, event_id)
);
CREATE INDEX raw_entries_conversation ON raw_entries (log_id, conversation_id, seq);
-- The storage the ledger gives its payloads (migration 0005): rows stay inline, ciphertext is
-- never compressed. Same setting on both sides, so the ratio measures the ledger's own cost.
ALTER TABLE raw_entries SET (toast_tuple_target = 8160);
ALTER TABLE raw_entries ALTER COLUMN payload SET STORAGE EXTERNAL;
"""
RAW_COLUMNS = (
    "log_id, seq, leaf_hash, entry, source, event_id, event_type, conversation_id,"
    " received_at, request_digest, payload"
)
RAW_INSERT = f"INSERT INTO raw_entries ({RAW_COLUMNS}) VALUES ({', '.join(['%s'] * 11)})"
EVENT_TYPES = (
    "handoff.message.created.v1",
    "handoff.agent.reply.v1",
    "handoff.tool.call.v1",
    "handoff.reasoning.step.v1",
    "handoff.data.access.v1",
    "handoff.handoff.requested.v1",
)


RawRow = tuple[str, int, bytes, bytes, str, str, str, str, datetime, bytes, bytes]
"""One ``raw_entries`` row, in :data:`RAW_COLUMNS` order."""


def raw_rows(log_id: str, count: int, conversations: int) -> list[RawRow]:
    """Rows shaped like ``entries`` plus the payload. Built up front: not part of the timing.

    Payloads are random (a sealed payload is AES-GCM output: incompressible, so TOAST cannot
    shrink it either); a pool of them is reused, PostgreSQL does not care.
    """
    pool = [os.urandom(PAYLOAD_BYTES) for _ in range(256)]
    now = datetime.now(UTC)
    filler = b"x" * ENTRY_BYTES
    rows: list[RawRow] = []
    for seq in range(count):
        event_id = f"{log_id}-{seq:09d}"
        entry = b'{"format":"handoff-ledger/entry/v1","seq":%d,"event":"%s",' % (
            seq,
            event_id.encode(),
        )
        entry = (entry + filler)[:ENTRY_BYTES]
        rows.append(
            (
                log_id,
                seq,
                hashlib.sha256(b"\x00" + entry).digest(),
                entry,
                "urn:bot:bench",
                event_id,
                EVENT_TYPES[seq % len(EVENT_TYPES)],
                f"c-{(seq * 7919) % conversations}",
                now,
                hashlib.sha256(entry).digest(),
                pool[seq % len(pool)],
            )
        )
    return rows


def create_raw_table(libpq: str) -> None:
    """The raw baseline's table (``RAW_TABLE``), in the database ``libpq`` names: every
    harness's raw-PostgreSQL rows go there."""
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(RAW_TABLE)


def bench_copy(libpq: str, plan: Plan) -> Measurement:
    rows = raw_rows("copy", plan.copy_rows, plan.conversations)
    m = Measurement("a", f"raw COPY, {plan.copy_batch} rows/txn (p = per txn)", len(rows), 0.0)
    with psycopg.connect(libpq) as conn, conn.cursor() as cur:
        cpu = CpuMeter(None)
        started = time.perf_counter()
        for i in range(0, len(rows), plan.copy_batch):
            t0 = time.perf_counter()
            with conn.transaction(), cur.copy(f"COPY raw_entries ({RAW_COLUMNS}) FROM STDIN") as cp:
                for row in rows[i : i + plan.copy_batch]:
                    cp.write_row(row)
            m.latencies.append(time.perf_counter() - t0)
        m.seconds = time.perf_counter() - started
        cpu.finish(m)
    return m


def bench_insert_one(libpq: str, plan: Plan) -> Measurement:
    rows = raw_rows("single", plan.insert_rows, plan.conversations)
    m = Measurement("b", "raw INSERT, 1 commit/row, 1 conn (p = per commit)", len(rows), 0.0)
    with psycopg.connect(libpq, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(RAW_INSERT, rows[0])  # warm: prepare + connection caches
        cpu = CpuMeter(None)
        started = time.perf_counter()
        for row in rows[1:]:
            t0 = time.perf_counter()
            cur.execute(RAW_INSERT, row)  # autocommit: each statement is its own commit
            m.latencies.append(time.perf_counter() - t0)
        m.seconds = time.perf_counter() - started
        m.count = len(rows) - 1
        cpu.finish(m)
    return m


def bench_insert_many(libpq: str, plan: Plan) -> Measurement:
    """One commit per row from many connections at once: what PostgreSQL's own group commit
    of WAL flushes gives concurrent committers, without any application batching."""
    threads = plan.insert_threads
    rows = raw_rows("multi", threads * plan.insert_rows_per_thread, plan.conversations)
    m = Measurement("b'", f"raw INSERT, 1 commit/row, {threads} conns (p = per commit)", 0, 0.0)
    barrier = threading.Barrier(threads + 1)
    lock = threading.Lock()

    def work(index: int) -> None:
        mine = rows[index::threads]
        lat: list[float] = []
        done = 0
        try:
            conn = psycopg.connect(libpq, autocommit=True)
        except psycopg.Error as exc:
            with lock:
                m.errors[f"connect: {type(exc).__name__}"] += 1
                m.error_samples.append(str(exc).strip()[:200])
            barrier.wait()
            return
        with conn:
            barrier.wait()
            for row in mine:
                t0 = time.perf_counter()
                try:
                    conn.execute(RAW_INSERT, row)
                except psycopg.Error as exc:
                    with lock:
                        m.errors[type(exc).__name__] += 1
                    continue
                lat.append(time.perf_counter() - t0)
                done += 1
        with lock:
            m.latencies.extend(lat)
            m.count += done

    pool = [threading.Thread(target=work, args=(i,), name=f"insert-{i}") for i in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()  # every connection is open: start the clock
    cpu = CpuMeter(None)
    started = time.perf_counter()
    for t in pool:
        t.join()
    m.seconds = time.perf_counter() - started
    cpu.finish(m)
    return m


# --- realistic events -----------------------------------------------------------------------

PADDING_TEXT = (
    "the customer asked about the renewal and the agent explained the proration of the plan "
    "before checking the account history for duplicate charges on the statement while the "
    "assistant summarised the previous conversation and proposed a refund to the original "
    "payment method pending approval from the billing team lead"
)  # words only: no digits, emails or phone numbers for the card/PII guard to act on


def _padding(size: int) -> str:
    words = itertools.cycle(PADDING_TEXT.split())
    out: list[str] = []
    length = 0
    while length < size:
        word = next(words)
        out.append(word)
        length += len(word) + 1
    return " ".join(out)[:size]


def _pad_event(event: dict[str, Any], extra: int) -> dict[str, Any]:
    """A copy of ``event`` with about ``extra`` more bytes of free text where its type has
    some (message text, reasoning, tool arguments, summaries, platform references)."""
    ev: dict[str, Any] = json.loads(json.dumps(event))
    data = ev["data"]
    text = _padding(extra)
    content = data.get("content")
    if isinstance(content, dict) and content.get("parts"):
        for part in content["parts"]:
            if part.get("type") == "text" and isinstance(part.get("content"), str):
                part["content"] += " " + text
                return ev
    if isinstance(data.get("arguments"), dict):
        data["arguments"]["note"] = text
        return ev
    package = data.get("context_package")
    if isinstance(package, dict) and isinstance(package.get("summary"), str):
        package["summary"] += " " + text
        return ev
    if isinstance(data.get("platform_refs"), dict):
        data["platform_refs"]["crm"] = {"note": text}
        return ev
    for key in ("explanation", "rationale", "purpose", "reason", "summary", "resolution"):
        if isinstance(data.get(key), str):
            data[key] += " " + text
            return ev
    return ev


def event_templates() -> list[dict[str, Any]]:
    """The example conversation's events (every type), padded so that they average ~1.5 KB.

    Some types have no free text (``handoff.accepted``, ``sentiment.scored``, ...) and stay
    small, as they are in real traffic; the others carry the difference. Every template is
    checked with the ledger's own validator, so the run cannot fail on a bad template.
    """
    from ledger.errors import EventInvalid
    from ledger.events import GuardPolicy, validate_event

    examples: list[dict[str, Any]] = orjson.loads(EXAMPLE.read_bytes())["events"]
    key = b"\x01" * 32

    def padded_to(event: dict[str, Any], size: int) -> dict[str, Any] | None:
        extra = size - len(orjson.dumps(event))
        if extra <= 0:
            return None
        candidate = _pad_event(event, extra)
        if candidate == event:
            return None  # nowhere to put free text
        try:
            validate_event(candidate, policy=GuardPolicy(cards="reject"), fingerprint_key=key)
        except EventInvalid:
            return None
        return candidate

    paddable = [padded_to(e, EVENT_TARGET_BYTES) is not None for e in examples]
    fixed = sum(len(orjson.dumps(e)) for e, p in zip(examples, paddable, strict=True) if not p)
    share = (EVENT_TARGET_BYTES * len(examples) - fixed) // max(1, sum(paddable))
    return [(padded_to(e, share) or e) if p else e for e, p in zip(examples, paddable, strict=True)]


class EventFactory:
    """Unique ids, conversations spread over ``conversations`` (stride-mixed so consecutive
    events, and so every batch, touch many conversations), types cycling through the example."""

    def __init__(self, templates: list[dict[str, Any]], conversations: int) -> None:
        self._templates = templates
        self._conversations = conversations
        self._run = secrets.token_hex(3)
        self._next = 0

    def make(self) -> dict[str, Any]:
        n = self._next
        self._next += 1
        event = dict(self._templates[n % len(self._templates)])  # shallow: data is shared
        event["id"] = f"bench-{self._run}-{n:09d}"
        event["subject"] = f"conversations/bench-{self._run}-{(n * 7919) % self._conversations}"
        return event

    def batch_body(self, size: int) -> bytes:
        return orjson.dumps({"events": [self.make() for _ in range(size)]})

    def single_body(self) -> bytes:
        return orjson.dumps(self.make())


# --- a minimal HTTP/1.1 keep-alive client ---------------------------------------------------


def post_request(host: str, port: int, path: str, token: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


class HttpError(Exception):
    pass


class KeepAlive:
    """One keep-alive connection: write pre-serialized bytes, read status, headers and body."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, data: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._reader, self._writer
        assert reader is not None
        writer.write(data)
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            raise HttpError("connection closed before the status line")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = None, False, False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            body = await self._read_chunked(reader)
        elif length is not None:
            body = await reader.readexactly(length)
        else:
            body = await reader.read()
            close = True
        if close:
            self.close()
        return status, body

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readline()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


@dataclass
class LoadOutcome:
    events: int = 0  # receipts returned with a 2xx (events the ledger says it holds)
    created: int = 0  # receipts from 201 answers (new events)
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)


async def drive(
    host: str,
    port: int,
    requests: Sequence[bytes],
    clients: int,
    seconds: float,
    timeout: float = 120.0,
) -> LoadOutcome:
    """``clients`` connections each take the next request from a shared queue until it is empty
    or ``seconds`` have passed; a request in flight at the deadline is still awaited."""
    todo = deque(requests)
    out = LoadOutcome()
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        conn = KeepAlive(host, port)
        try:
            while todo and time.perf_counter() < deadline:
                data = todo.popleft()
                t0 = time.perf_counter()
                try:
                    status, body = await asyncio.wait_for(conn.request(data), timeout)
                except (OSError, HttpError, asyncio.IncompleteReadError, TimeoutError) as exc:
                    conn.close()
                    out.requests += 1
                    out.errors[f"transport: {type(exc).__name__}"] += 1
                    if len(out.error_samples) < 5:
                        out.error_samples.append(f"{type(exc).__name__}: {exc}"[:300])
                    continue
                out.latencies.append(time.perf_counter() - t0)
                out.requests += 1
                if 200 <= status < 300:
                    receipts = len(orjson.loads(body)["receipts"])
                    out.events += receipts
                    if status == 201:
                        out.created += receipts
                else:
                    out.errors[f"HTTP {status}"] += 1
                    if len(out.error_samples) < 5:
                        out.error_samples.append(f"HTTP {status}: {body[:300]!r}")
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    out.seconds = time.perf_counter() - started
    return out


# --- the server process ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LedgerServer:
    """The ledger's server as a child process, started the way ``ledger serve`` starts it."""

    host = "127.0.0.1"

    def __init__(
        self,
        db: BenchDatabase,
        master_key_b64: str,
        workers: int,
        log_dir: Path,
        profile_to: Path | None = None,
    ) -> None:
        self.db = db
        self.workers = workers
        self.port = free_port()
        self.profile_to = profile_to
        self.log_path = log_dir / f"server-w{workers}{'-profiled' if profile_to else ''}.log"
        self._env = {
            **os.environ,
            "LEDGER_DATABASE_URL": db.url,
            "LEDGER_MASTER_KEY": master_key_b64,
            "LEDGER_ORIGIN_PREFIX": ORIGIN_PREFIX,
        }
        self._env.pop("LEDGER_DB_ROLE", None)
        self._log: TextIO | None = None
        self._profiles = 0
        self.reports: dict[str, str] = {}  # phase key -> profile report
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> list[str]:
        if self.profile_to is not None:  # same app and settings, wrapped in our sampler
            return [
                sys.executable,
                str(Path(__file__).resolve()),
                "--serve-profiled",
                str(self.profile_to),
                "--port",
                str(self.port),
            ]
        return self.serve_command(["--factory", "api.main:create_app_from_env"])

    def serve_command(self, app: list[str]) -> list[str]:
        """What ``ledger serve`` runs: uvicorn itself for one worker, else our supervisor
        (``ledger/server/workers.py``), which deals connections to the workers in turn."""
        where = ["--host", self.host, "--port", str(self.port)]
        if self.workers == 1:
            return [
                sys.executable,
                "-m",
                "uvicorn",
                *app,
                *where,
                "--log-level",
                "warning",
                "--no-access-log",
            ]
        *options, target = app
        return [
            sys.executable,
            "-m",
            "ledger.server.workers",
            *options,
            "--app",
            target,
            *where,
            "--workers",
            str(self.workers),
        ]

    def start(self, timeout: float = 60.0) -> None:
        cmd = self.command()
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self._env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}; see {self.log_path}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                if self.get("/healthz")[0] == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not become ready; see {self.log_path}")
            time.sleep(0.2)

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def profile(self, phase: str | None) -> str | None:
        """With a profiled server: ``profile(name)`` starts profiling, ``profile(None)`` ends it
        and returns the report. Without one: nothing, None."""
        if self.profile_to is None:
            return None
        if phase is not None:
            self._profiles += 1
            os.kill(self.pid, signal.SIGUSR1)
            return None
        os.kill(self.pid, signal.SIGUSR2)
        part = self.profile_to.with_name(f"{self.profile_to.name}.{self._profiles}")
        deadline = time.monotonic() + 30
        while not part.exists():
            if time.monotonic() > deadline:
                return f"(no profile report appeared at {part})"
            time.sleep(0.1)
        report = part.read_text()
        part.unlink()
        return report

    def checkpoint_size(self) -> int:
        status, body = self.get(f"/v1/logs/{LOG_ID}/checkpoint")
        if status != 200:
            raise RuntimeError(f"GET checkpoint: HTTP {status} {body[:200]!r}")
        return int(body.decode().split("\n")[1])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # graceful; stops the workers too
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                for pid in reversed(tree_pids(self.proc.pid)):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_problems(self) -> list[str]:
        """Lines of the server's output that look like trouble (it logs at WARNING and up)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [ln for ln in lines if ln.strip()]


# --- (c), (d): HTTP ingest --------------------------------------------------------------------


def http_phase(
    server: LedgerServer, key: str, label: str, requests: list[bytes], clients: int, seconds: float
) -> tuple[Measurement, LoadOutcome]:
    server.profile(key)
    cpu = CpuMeter(server.pid)
    with RssSampler(server.pid) as rss, PgActivitySampler(server.db.libpq) as pg:
        outcome = asyncio.run(drive(server.host, server.port, requests, clients, seconds))
    report = server.profile(None)
    if report is not None:
        server.reports[key] = report
    m = Measurement(
        key,
        label,
        outcome.events,
        outcome.seconds,
        outcome.latencies,
        outcome.errors,
        outcome.error_samples,
        rss.max_bytes / 2**20,
        [round(b / 2**20, 1) for b in rss.at_max],
        outcome.created,
        workers=server.workers,
        profiled=server.profile_to is not None,
        pg_sessions=pg.summary(),
    )
    cpu.finish(m)
    return m, outcome


def warm_up(server: LedgerServer, factory: EventFactory, path: str) -> int:
    """A few small batches on several connections, so every worker has its caches (token, log,
    signing key, validators) loaded before the clock runs. Returns the events accepted."""
    reqs = [
        post_request(server.host, server.port, path, server.db.writer_token, factory.batch_body(16))
        for _ in range(4 * server.workers)
    ]
    out = asyncio.run(drive(server.host, server.port, reqs, 2 * server.workers, 30.0))
    if out.errors:
        raise RuntimeError(f"warm-up failed: {dict(out.errors)} {out.error_samples}")
    return out.events


@dataclass
class HttpRun:
    """What one server lifetime gave: (c) and (d), the events it accepted (warm-up included),
    the checkpoint size it served at the end, its profiles, its output."""

    results: list[Measurement] = field(default_factory=list)
    accepted: int = 0
    checkpoint_size: int | None = None
    profiles: dict[str, str] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)
    output_name: str = ""


Load = tuple[Callable[[], bytes], int, int, float]
"""One load: a request body maker, how many requests, clients in flight, seconds at most."""


def batch_and_single(
    server: LedgerServer,
    plan: Plan,
    factory: EventFactory,
    token: str,
    keys: tuple[str, str],
    labels: tuple[str, str],
) -> list[tuple[Measurement, LoadOutcome]]:
    """The two loads, (c)'s batches then (d)'s single events, against a running server; the
    requests of each are built just before it (not timed) and dropped after."""
    path = f"/v1/logs/{LOG_ID}/events"
    loads: tuple[Load, Load] = (
        (
            lambda: factory.batch_body(plan.batch_events),
            plan.batch_requests,
            plan.batch_clients,
            plan.batch_seconds,
        ),
        (factory.single_body, plan.single_requests, plan.single_clients, plan.single_seconds),
    )
    out = []
    for key, label, (body, count, clients, seconds) in zip(keys, labels, loads, strict=True):
        requests = [
            post_request(server.host, server.port, path, token, body()) for _ in range(count)
        ]
        out.append(http_phase(server, key, label, requests, clients, seconds))
        del requests
    return out


def run_http(
    db: BenchDatabase,
    plan: Plan,
    master_key_b64: str,
    workers: int,
    factory: EventFactory,
    log_dir: Path,
    profile_to: Path | None,
) -> HttpRun:
    """Start a server, warm it, run (c) then (d), read the checkpoint, stop it."""
    server = LedgerServer(db, master_key_b64, workers, log_dir, profile_to)
    print(
        f"  server: {workers} worker(s){' (profiled)' if profile_to else ''}, port "
        f"{server.port} ...",
        file=sys.stderr,
        flush=True,
    )
    run = HttpRun(output_name=server.log_path.name)
    try:
        server.start()
        run.accepted += warm_up(server, factory, f"/v1/logs/{LOG_ID}/events")
        for m, out in batch_and_single(
            server,
            plan,
            factory,
            db.writer_token,
            ("c", "d"),
            (
                f"HTTP batch {plan.batch_events} ev, {plan.batch_clients} in flight, "
                f"W={workers} (p = per req)",
                f"HTTP single event, {plan.single_clients} clients, W={workers} (p = per req)",
            ),
        ):
            run.results.append(m)
            run.accepted += out.events
            print(f"  ({m.key}) W={workers}: {m.rate:,.0f} events/s", file=sys.stderr, flush=True)
        run.checkpoint_size = server.checkpoint_size()
    finally:
        server.stop()
        run.output = server.log_problems()
        run.profiles = server.reports
    return run


class CeilingServer(LedgerServer):
    """``ops/bench_ceiling.py``: the same uvicorn doing only the ledger's work before its
    sequencer (parse, validate, prepare), with no database."""

    def __init__(self, db: BenchDatabase, workers: int, log_dir: Path) -> None:
        super().__init__(db, "", workers, log_dir)
        self.log_path = log_dir / f"ceiling-w{workers}.log"

    def command(self) -> list[str]:
        return self.serve_command(["--app-dir", str(ROOT / "ops"), "bench_ceiling:app"])


def run_ceiling(
    db: BenchDatabase, plan: Plan, workers: int, factory: EventFactory, log_dir: Path
) -> list[Measurement]:
    """(c0) and (d0): the loads of (c) and (d) against :class:`CeilingServer`."""
    server = CeilingServer(db, workers, log_dir)
    try:
        server.start()
        warm_up(server, factory, f"/v1/logs/{LOG_ID}/events")
        results = [
            m
            for m, _ in batch_and_single(
                server,
                plan,
                factory,
                "-",
                ("c0", "d0"),
                (
                    f"ceiling: (c) with no database, W={workers}",
                    f"ceiling: (d) with no database, W={workers}",
                ),
            )
        ]
    finally:
        server.stop()
    print(
        "  " + ", ".join(f"({m.key}) W={workers}: {m.rate:,.0f} events/s" for m in results),
        file=sys.stderr,
        flush=True,
    )
    return results


# --- the server profiler (only with LEDGER_BENCH_PROFILE) ------------------------------------


def _thread_group(name: str) -> str:
    if name == "MainThread":
        return "event loop (MainThread)"
    if name.startswith(("AnyIO worker", "asyncio_")):
        return "worker threads (sync deps)"
    return name


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/lib/python3.", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def _thread_cpu() -> dict[int, float]:
    """CPU seconds of each thread of this process, by native thread id."""
    out = {}
    for task in Path("/proc/self/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            out[int(task.name)] = cpu_seconds_of(task / "stat")
    return out


StatsTable = dict[tuple[str, int, str], tuple[int, int, float, float, object]]
"""pstats' table: (file, line, function) -> (primitive calls, calls, own s, cumulative s,
callers)."""


def _stats_table(prof: cProfile.Profile) -> StatsTable:
    """The table ``pstats.Stats`` builds from ``prof``, which its printing methods read."""
    # Stats.stats is a plain attribute set in Stats.__init__ (print_stats reads it), but
    # typeshed's pstats.pyi does not declare it.
    table: StatsTable = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    return table


def _top(prof: cProfile.Profile, key: str, limit: int, total: float) -> list[str]:
    """The ``limit`` functions with the most ``key`` time ("tottime" or "cumtime")."""
    stats = _stats_table(prof)
    own = key == "tottime"
    rows = sorted(stats.items(), key=lambda kv: -(kv[1][2] if own else kv[1][3]))[:limit]
    out = []
    for (filename, line, func), (_cc, calls, tottime, cumtime, _callers) in rows:
        where = f"{_short(filename)}:{line}({func})" if line else func
        shown = tottime if own else cumtime
        out.append(f"    {shown:7.2f}s {shown / total if total else 0:6.1%} {calls:>9,}  {where}")
    return out


class ServerProfiler:
    """Inside the profiled server process, between :meth:`begin` and :meth:`end`:

    * every thread's CPU time (from /proc/self/task: exact, whatever the threads do);
    * cProfile of the event loop thread, timed in *thread CPU time* (its own work only);
    * cProfile of the group-commit thread inside ``GroupCommitter._commit``, timed in *wall*
      time: that thread is a serial pipeline, its waits on PostgreSQL are the point.

    cProfile slows call-heavy Python code down, so absolute figures are inflated; shares are
    what to read. The commit hook wraps a method of the server's class in this process only.
    """

    def __init__(self) -> None:
        self._loop: cProfile.Profile | None = None
        self._commit: cProfile.Profile | None = None
        self._cpu0: dict[int, float] = {}
        self._wall0 = 0.0
        self._install_commit_hook()

    def _install_commit_hook(self) -> None:
        from ledger.storage.group_commit import GroupCommitter, _Pending

        original = GroupCommitter._commit
        profiler = self

        def _commit(committer: GroupCommitter, items: list[_Pending]) -> None:
            prof = profiler._commit
            if prof is None:
                original(committer, items)
            else:
                prof.runcall(original, committer, items)

        # For the life of this process (never stopped). patch.object rather than an assignment,
        # which mypy refuses for any method (python/mypy#2427).
        mock.patch.object(GroupCommitter, "_commit", _commit).start()

    def begin(self) -> None:
        """Called in the main (event loop) thread: cProfile hooks the calling thread."""
        self._cpu0 = _thread_cpu()
        self._wall0 = time.perf_counter()
        self._commit = cProfile.Profile()
        self._loop = cProfile.Profile(time.thread_time)
        self._loop.enable()

    def end(self, top: int = 25) -> str:
        if self._loop is None or self._commit is None:
            return "(profiling was not started)"
        self._loop.disable()
        loop, commit = self._loop, self._commit
        self._loop = self._commit = None
        wall = time.perf_counter() - self._wall0
        cpu1 = _thread_cpu()
        names = {t.native_id: t.name for t in threading.enumerate()}
        by_group: dict[str, float] = {}
        for tid, seconds in cpu1.items():
            group = _thread_group(names.get(tid, f"thread {tid}"))
            by_group[group] = by_group.get(group, 0.0) + seconds - self._cpu0.get(tid, 0.0)
        lines = [f"{wall:.1f} s wall; CPU by thread (cores = CPU s / wall s):"]
        for group, seconds in sorted(by_group.items(), key=lambda kv: -kv[1]):
            if seconds > 0:
                lines.append(f"  {seconds / wall:5.2f} cores  {seconds:6.1f} s  {group}")
        loop_cpu = sum(v for k, v in by_group.items() if k.startswith("event loop"))
        loop_total = sum(v[2] for v in _stats_table(loop).values())
        lines.append(
            f"\nevent loop thread, cProfile in thread CPU time ({loop_total:.1f} s "
            f"profiled; /proc says {loop_cpu:.1f} s): by own time"
        )
        lines += _top(loop, "tottime", top, loop_total)
        lines.append("  ... by cumulative time")
        lines += _top(loop, "cumtime", top, loop_total)
        commit_stats = _stats_table(commit) if commit.getstats() else None
        if commit_stats is not None:
            inside = max((v[3] for v in commit_stats.values()), default=0.0)
            lines.append(
                f"\ngroup-commit thread, cProfile in wall time: {inside:.1f} s of "
                f"{wall:.1f} s inside GroupCommitter._commit; by cumulative time"
            )
            lines += _top(commit, "cumtime", top, inside)
            lines.append("  ... by own time")
            lines += _top(commit, "tottime", top // 2, inside)
        return "\n".join(lines)


def serve_profiled(report_path: Path, port: int) -> int:
    """Run the ledger app (1 worker) exactly as ``python -m uvicorn --factory`` would, with a
    :class:`ServerProfiler`. SIGUSR1 starts a profile; SIGUSR2 ends it and writes its report
    to ``report_path.N`` (N = 1, 2, ...), so the benchmark profiles each phase on its own."""
    sys.path.insert(0, str(ROOT))
    import uvicorn

    profiler = ServerProfiler()
    written = 0

    def begin(_signum: int, _frame: FrameType | None) -> None:
        profiler.begin()  # Python runs signal handlers in the main thread: the event loop's

    def end(_signum: int, _frame: FrameType | None) -> None:
        nonlocal written
        text = profiler.end()
        written += 1
        part = report_path.with_name(f"{report_path.name}.{written}")
        tmp = part.with_name(part.name + ".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(part)  # the benchmark waits for this name: make it appear complete

    def exit_quietly(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGUSR1, begin)
    signal.signal(signal.SIGUSR2, end)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it to the handler that was there
    # before: the default one would kill the process with a traceback-less 143.
    signal.signal(signal.SIGTERM, exit_quietly)
    uvicorn.run(
        "api.main:create_app_from_env",
        factory=True,
        host=LedgerServer.host,
        port=port,
        workers=1,
        log_level="warning",
        access_log=False,
    )
    return 0


# --- the report -------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{spec}}"


def print_table(results: list[Measurement], out: TextIO) -> None:
    header = (
        f"{'':5}{'measurement':58}{'count':>8}{'secs':>7}{'rate/s':>10}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'errs':>6}{'RSS MB':>8}{'srv':>6}{'cli':>6}{'all':>6}"
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    for m in results:
        key = f"({m.key})" + ("*" if m.profiled else "")
        print(
            f"{key:5}{m.label[:57]:58}{m.count:>8,}{m.seconds:>7.1f}{m.rate:>10,.0f}"
            f"{_fmt(_ms(m.percentile(0.5)), '.1f', 9)}{_fmt(_ms(m.percentile(0.99)), '.1f', 9)}"
            f"{sum(m.errors.values()):>6}{_fmt(m.rss_max_mb, '.0f', 8)}"
            f"{_fmt(m.server_cpu, '.2f', 6)}{_fmt(m.client_cpu, '.2f', 6)}"
            f"{_fmt(m.machine_cpu, '.2f', 6)}",
            file=out,
        )
    print(
        "CPU columns: cores used during the phase by the server tree (srv), this benchmark "
        "process (cli), the whole machine (all; PostgreSQL ~ all - srv - cli)",
        file=out,
    )
    peaks: dict[int, Measurement] = {}
    for m in results:
        if (
            m.key in LEDGER_PHASES
            and not m.profiled
            and m.workers is not None
            and (m.workers not in peaks or (m.rss_max_mb or 0) > (peaks[m.workers].rss_max_mb or 0))
        ):
            peaks[m.workers] = m
    for m in results:
        if m.pg_sessions:
            print(
                f"PG sessions ({m.key}){'*' if m.profiled else ''} W={m.workers}: {m.pg_sessions}",
                file=out,
            )
    for workers, m in sorted(peaks.items()):
        print(
            f"RSS peak W={workers}: {m.rss_max_mb or 0:.0f} MB = "
            f"{' + '.join(f'{mb:.0f}' for mb in m.rss_processes_mb)} MB "
            f"({len(m.rss_processes_mb)} processes, during ({m.key}))",
            file=out,
        )


@dataclass
class Verdict:
    name: str
    value: float | None
    target: str
    passed: bool | None

    def line(self) -> str:
        if self.value is None:
            shown = "n/a"
        else:
            shown = f"{self.value:,.0f}" if float(self.value).is_integer() else f"{self.value:,.2f}"
        state = "n/a" if self.passed is None else ("PASS" if self.passed else "MISS  <<<")
        return f"  {self.name:44} {shown:>10}   target {self.target:9} {state}"


def verdicts(results: list[Measurement]) -> list[Verdict]:
    def best(key: str) -> Measurement | None:
        ok = [m for m in results if m.key == key and m.count and not m.profiled]
        return max(ok, key=lambda m: m.rate) if ok else None

    a, b, c, d = best("a"), best("b"), best("c"), best("d")
    out = []
    ratio = c.rate / a.rate if a and c and a.rate else None
    where = f" (c W={c.workers})" if c else ""
    out.append(
        Verdict(
            f"(c)/(a) batch HTTP vs raw COPY{where}",
            ratio,
            f">= {TARGET_BATCH_VS_COPY}",
            None if ratio is None else ratio >= TARGET_BATCH_VS_COPY,
        )
    )
    ratio = d.rate / b.rate if b and d and b.rate else None
    where = f" (d W={d.workers})" if d else ""
    out.append(
        Verdict(
            f"(d)/(b) single HTTP vs 1 commit/row{where}",
            ratio,
            f">= {TARGET_SINGLE_VS_INSERT}",
            None if ratio is None else ratio >= TARGET_SINGLE_VS_INSERT,
        )
    )
    rss = [
        m.rss_max_mb
        for m in results
        if m.key in LEDGER_PHASES and m.rss_max_mb is not None and not m.profiled
    ]
    peak = max(rss) if rss else None
    out.append(
        Verdict(
            "max server RSS, MB (process tree)",
            peak,
            f"< {TARGET_RSS_MB:.0f}",
            None if peak is None else peak < TARGET_RSS_MB,
        )
    )
    errors = sum(sum(m.errors.values()) for m in results if m.key in LEDGER_PHASES)  # all runs
    out.append(Verdict("HTTP errors (non-2xx, transport)", errors, "= 0", errors == 0))
    return out


def ceilings(results: list[Measurement]) -> list[str]:
    """How the targets compare with the no-database ceiling measured in the same run."""

    def best(key: str) -> Measurement | None:
        ok = [m for m in results if m.key == key and m.count and not m.profiled]
        return max(ok, key=lambda m: m.rate) if ok else None

    lines = []
    for ceiling, base, ledger, target in (
        ("c0", "a", "c", TARGET_BATCH_VS_COPY),
        ("d0", "b", "d", TARGET_SINGLE_VS_INSERT),
    ):
        top, ref, got = best(ceiling), best(base), best(ledger)
        if top is None or ref is None or not ref.rate:
            continue
        line = (
            f"  ({ceiling}) {top.rate:,.0f} events/s (W={top.workers}) = "
            f"{top.rate / ref.rate:.2f} x ({base}); the target {target} x ({base}) is "
            f"{target * ref.rate:,.0f}/s"
        )
        if got is not None:
            line += f"; the ledger's ({ledger}) reached {got.rate / top.rate:.0%} of the ceiling"
        lines.append(line)
    return lines


def uvicorn_flavour() -> str:
    """Which event loop and HTTP parser uvicorn will pick ("auto" prefers the fast ones)."""
    import importlib.util

    import uvicorn

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"uvicorn {uvicorn.__version__} loop={loop} http={parser}"


# --- main -------------------------------------------------------------------------------------


class Args(argparse.Namespace):
    quick: bool
    json: Path | None
    workers: str | None
    serve_profiled: Path | None
    port: int | None


def parse_args(argv: Sequence[str] | None) -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a much smaller run (seconds)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    parser.add_argument(
        "--workers", help="server worker counts to try, e.g. 1,2 (default: 1,2; --quick: 1)"
    )
    parser.add_argument("--serve-profiled", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv, namespace=Args())


def choose_plan(args: Args) -> Plan:
    plan = QUICK if args.quick else FULL
    if args.workers:
        workers = tuple(int(w) for w in args.workers.split(",") if w.strip())
        if not workers or min(workers) < 1:
            raise SystemExit("--workers: positive integers, comma-separated")
        plan = dataclasses.replace(plan, workers=workers)
    return plan


def step(message: str) -> Callable[[], None]:
    """Print a progress line to stderr; the returned callable prints how long it took."""
    started = time.perf_counter()
    print(f"- {message} ...", file=sys.stderr, flush=True)

    def done() -> None:
        print(f"  done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)

    return done


@dataclass
class Report:
    plan: Plan
    admin_source: str
    facts: dict[str, str] = field(default_factory=dict)
    event_sizes: list[int] = field(default_factory=list)
    results: list[Measurement] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    server_output: dict[str, list[str]] = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)
    background_cpu: float = 0.0  # cores busy in the second before the run
    seconds: float = 0.0

    def print(self, out: TextIO) -> None:
        sizes = self.event_sizes or [0]
        print(
            f"\nHandoff Ledger benchmark ({self.plan.name}) on {os.cpu_count()} CPUs "
            f"({self.background_cpu:.2f} cores busy before the run, load avg "
            f"{os.getloadavg()[0]:.2f} after); Python {platform.python_version()}; "
            f"{uvicorn_flavour()}",
            file=out,
        )
        facts = self.facts
        print(
            f"PostgreSQL {facts.get('server_version', '?')} ({self.admin_source}): "
            f"synchronous_commit={facts.get('synchronous_commit', '?')} "
            f"fsync={facts.get('fsync', '?')} shared_buffers={facts.get('shared_buffers', '?')}"
            f" max_connections={facts.get('max_connections', '?')}",
            file=out,
        )
        print(
            f"events: {len(sizes)} types from {EXAMPLE.name}, {min(sizes)}-{max(sizes)} B "
            f"(avg {sum(sizes) / len(sizes):,.0f} B), over {self.plan.conversations:,} "
            f"conversations; raw rows: {ENTRY_BYTES} B entry + {PAYLOAD_BYTES} B payload\n",
            file=out,
        )
        print_table(self.results, out)
        print("\ntargets (best run of each; profiled runs * not counted)", file=out)
        for v in verdicts(self.results):
            print(v.line(), file=out)
        print(
            "\nwhat this machine allows: the no-database ceiling (same server stack and load,"
            " parse + validate + prepare only)",
            file=out,
        )
        for line in ceilings(self.results) or ["  (not measured)"]:
            print(line, file=out)
        print("\ncorrectness", file=out)
        for line in self.checks or ["no checkpoint read (the HTTP phases did not run)"]:
            print(f"  {line}", file=out)
        for m in self.results:
            for sample in m.error_samples[:3]:
                print(f"  ({m.key}) W={m.workers}: {sample}", file=out)
        if self.server_output:
            print("\nserver output (it logs at WARNING and above only)", file=out)
            for name, lines in self.server_output.items():
                print(f"  {name}: {len(lines)} lines; first ones:", file=out)
                for line in lines[:12]:
                    print(f"    {line[:200]}", file=out)
        for phase, text in self.profiles.items():
            print(f"\n=== server profile during ({phase}) ===\n{text.rstrip()}", file=out)
        print(f"\ntotal {self.seconds:.0f} s", file=out)

    def as_json(self) -> dict[str, Any]:
        return {
            "plan": asdict(self.plan),
            "postgres": self.facts,
            "admin": self.admin_source,
            "event_sizes": self.event_sizes,
            "results": [m.as_json() for m in self.results],
            "verdicts": [asdict(v) for v in verdicts(self.results)],
            "ceilings": ceilings(self.results),
            "checks": self.checks,
            "server_output": self.server_output,
            "profiles": self.profiles,
            "background_cpu": self.background_cpu,
            "seconds": self.seconds,
        }


def run(plan: Plan, profile_path: Path | None) -> Report:
    started = time.perf_counter()
    master_key = secrets.token_bytes(32)
    master_key_b64 = base64.b64encode(master_key).decode()
    admin, admin_source, embedded_dir = admin_url()
    report = Report(plan, admin_source)
    busy0, wall0 = machine_busy_seconds(), time.perf_counter()
    time.sleep(1.0)  # what the machine does without us: other work skews every figure
    report.background_cpu = (machine_busy_seconds() - busy0) / (time.perf_counter() - wall0)
    done = step(f"creating a fresh database on {admin_source}")
    db = BenchDatabase.create(admin)
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        try:
            db.set_up_ledger(master_key)
            report.facts = server_facts(db.libpq)
            create_raw_table(db.libpq)
            templates = event_templates()
            report.event_sizes = [len(orjson.dumps(t)) for t in templates]
            done()

            done = step(f"(a) COPY {plan.copy_rows:,} rows")
            report.results.append(bench_copy(db.libpq, plan))
            done()
            done = step(f"(b) {plan.insert_rows:,} single-row commits, 1 connection")
            report.results.append(bench_insert_one(db.libpq, plan))
            done()
            done = step(f"(b') single-row commits, {plan.insert_threads} connections")
            report.results.append(bench_insert_many(db.libpq, plan))
            done()

            # One log across every server run: the final checkpoint covers them all.
            factory = EventFactory(templates, plan.conversations)
            accepted = 0
            final_size: int | None = None
            runs: list[tuple[int, Path | None]] = [(w, None) for w in plan.workers]
            if profile_path is not None:  # an extra run: the sampler costs the server CPU
                runs.append((1, profile_path))
            for workers, profile_to in runs:
                done = step(
                    f"(c) + (d) against the server with {workers} worker(s)"
                    + (", profiled" if profile_to else "")
                )
                http = run_http(db, plan, master_key_b64, workers, factory, Path(tmp), profile_to)
                report.results.extend(http.results)
                accepted += http.accepted
                final_size = http.checkpoint_size
                if http.output:
                    report.server_output[http.output_name] = http.output
                report.profiles.update(http.profiles)
                done()
            for workers in plan.workers:
                done = step(f"(c0) + (d0): the no-database ceiling with {workers} worker(s)")
                report.results.extend(run_ceiling(db, plan, workers, factory, Path(tmp)))
                done()
            phases = [m for m in report.results if m.key in LEDGER_PHASES]
            new = sum(m.created or 0 for m in phases)
            answered = sum(m.count for m in phases)
            report.checks.append(
                f"every receipt of (c) and (d) is for a new event (201): {new:,} of {answered:,}"
                f" {'OK' if new == answered else 'MISMATCH  <<<'}"
            )
            if final_size is not None:
                ok = final_size == accepted
                report.checks.append(
                    f"checkpoint size {final_size:,} {'==' if ok else '!='} events accepted "
                    f"{accepted:,} (warm-ups included): {'OK' if ok else 'MISMATCH  <<<'}"
                )
        finally:
            db.drop()
            if embedded_dir is not None:
                stop_embedded(embedded_dir)
    if profile_path is not None:
        profile_path.write_text(
            "".join(
                f"=== server profile during ({k}) ===\n{v}\n" for k, v in report.profiles.items()
            )
        )
    report.seconds = time.perf_counter() - started
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_profiled is not None:
        if args.port is None:  # LedgerServer.command always passes both
            raise SystemExit("--serve-profiled: needs --port")
        return serve_profiled(args.serve_profiled, args.port)
    plan = choose_plan(args)
    if not EXAMPLE.is_file():
        print(
            f"bench: example events not found at {EXAMPLE} (set LEDGER_SHARED_DIR)", file=sys.stderr
        )
        return EXIT_COULD_NOT_RUN
    profile_env = os.environ.get("LEDGER_BENCH_PROFILE")
    try:
        report = run(plan, Path(profile_env).resolve() if profile_env else None)
    except Exception as exc:  # a measurement that could not be made: say why, exit 2
        traceback.print_exc()
        print(f"bench: could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    report.print(sys.stdout)
    if args.json:
        args.json.write_text(json.dumps(report.as_json(), indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
