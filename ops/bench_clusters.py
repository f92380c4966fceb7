"""Logs over two PostgreSQL clusters, measured (issue 17 item 5): ingest into a log on each
cluster alone and on both at once, beside raw PostgreSQL doing the same on the same clusters;
the failover window of a synchronous pair; and the capacity model those figures give.

    .venv/bin/python ops/bench_clusters.py [--seconds 15] [--failovers 3] [--json out.json]

All in one run, on clusters this script makes (``initdb`` on free ports with the machine's
PostgreSQL binaries, as ``tests/pg_cluster.py`` does; nothing touches the PostgreSQL on 5432):

1. **Raw PostgreSQL**: ``COPY`` of ``ops/bench.py``'s entry-like rows (its (a): ~720 B entry +
   1.5 KB payload, 500 a transaction) into cluster A alone, B alone, then both at once, each
   writer a process of its own, for ``--seconds`` each. Both at once over the sum of the alone
   rates is what this machine gives two clusters, before any ledger code runs.
2. **The ledger**: one ``ledger serve`` (``ops/bench.py``'s ``LedgerServer``: uvicorn as
   ``ledger serve`` starts it, ``--workers`` of them) with ``LEDGER_DATABASE_URL`` on A and
   ``LEDGER_CLUSTERS`` naming B; ``ledger db upgrade`` then ``ledger logs create … --cluster``
   put log ``on-a`` on A and ``on-b`` on B. ``ops/bench.py``'s load generator posts batches of
   ``--batch`` ~1.5 KB events (``--clients`` in flight per log) to ``on-a`` alone, ``on-b``
   alone, then both at once (``--rounds`` times, every other round in the reverse order);
   then the same with a light
   load (one request of ``--light-batch`` events in flight per log: bound by each commit's
   round trips and WAL flush, not by CPU, so the two clusters' rates add up unless something
   the logs share serializes them). The same ratio as in 1; the server's CPU per event and
   cores in each (a rate moves with what else runs on the machine, CPU per event far less);
   where each log's entries are (each cluster holds its own log's, none of the other's); each
   checkpoint's size equals the events accepted.
3. **Trail reads**: ``--trail-conversations`` conversations of :data:`EVENTS_PER_TRAIL` events
   (the model's size) written to ``on-a`` after its ingest, then ``--read-clients`` clients
   reading their trails (each with its inclusion proofs, each read recorded in the system log
   first, as the API does) for ``--read-seconds``: the reads one cluster serves.
4. **Failover window** (``--failovers`` times): a primary and a synchronous standby
   (``tests.pg_cluster.replicated_pair``), ``ledger serve`` on the multi-host URL, writers
   posting single events (retrying the same event on a 503 or a lost connection), ``kill -9``
   of the primary, ``pg_ctl promote`` of the standby at once; the window is from the kill to
   the first 201 of a request sent after it. Checked: every acknowledged event is on the new
   primary.
5. **Capacity model** from those figures, for 10x and 1,000x the largest contact centre today
   (:data:`LARGEST_CONTACT_CENTRE`, with its public source), under the assumptions printed.

Two cores run the load generator, the server and both clusters here: both at once cannot be
the sum of the alone rates; the raw row says how far the machine itself falls short. Exit 0
whatever the figures (a measurement); 2 if it could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import itertools
import json
import math
import os
import platform
import pwd
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench
import orjson
import psycopg

from ledger.domain import MAIN_CLUSTER
from tests.pg_cluster import Node, postgres_bin, replicated_pair, run_as_postgres

T = TypeVar("T")
DATABASE = "ledger"
SECOND_CLUSTER = "b"  # its name in LEDGER_CLUSTERS; A is the main cluster (MAIN_CLUSTER)
LOG_ON_A, LOG_ON_B = "on-a", "on-b"
FAILOVER_LOG = "failover"
CLUSTER_SETTINGS = (
    # As the PostgreSQL on 5432 here (Debian's defaults), not pg_cluster's small test nodes.
    "shared_buffers=128MB",
    "max_connections=100",
)
ACKS_BEFORE_KILL = 50
RECOVERY_TIMEOUT = 60.0
EVENTS_PER_TRAIL = 40  # Assumptions.events_per_conversation: the trails read are this long
WARM_UP_SECONDS = 2.0
WARM_UP_GUESS = 5_000.0  # events/s, before anything is measured (the supply for the warm-up)
RETRY_PAUSE = 0.05  # a writer's pause before posting the same event again

LARGEST_CONTACT_CENTRE = 500_000
"""Seats (agents) of the largest contact-centre operator today, rounded up: Teleperformance,
"around 500,000 call center workers across nearly 100 countries" after buying Majorel (The Bear
Cave, 2024, https://thebearcave.substack.com/p/problems-at-teleperformance-tep); 410,000
employees in 2022 by its annual report (https://wikimili.com/en/Teleperformance), 420,000 by its
CEO in October 2022 (The Hindu, https://www.thehindu.com/business/teleperformance-plans-to-
double-headcount-in-india-in-3-years/article65976704.ece). Every employee counted as a seat."""
CONTACT_CENTRE_SOURCE = "Teleperformance, ~500,000 agents (The Bear Cave 2024; 410,000 in 2022)"


@dataclass(frozen=True)
class Assumptions:
    """The capacity model's inputs that are not measured here (printed with the model)."""

    events_per_conversation: int = EVENTS_PER_TRAIL
    """The example escalated conversation has 16 events (bot turns, tool calls, handoff,
    agent replies); 40 allows for longer conversations and more tool calls."""
    conversations_per_agent_hour: float = 8.0
    """Each seat's share, counting those the AI closes without it: a chat agent handles about
    three at once at ~20 minutes each (~9/hour), a voice agent 6-10 calls an hour."""
    busy_share: float = 1.0
    """Seats busy at the peak: all of them (no shift or occupancy discount)."""
    trail_reads_per_conversation: float = 1.0
    """Each conversation's trail read once (the agent taking it over, or QA), at the peak."""
    cluster_utilisation: float = 0.5
    """Clusters sized to run at half their measured rate: room for a failover's catch-up,
    bursts and the verifier's scans."""


# --- clusters ----------------------------------------------------------------------------


@contextlib.contextmanager
def standalone_clusters(count: int) -> Iterator[list[Node]]:
    """``count`` PostgreSQL clusters of their own (no replication), each with database
    ``ledger``, on free ports, made as ``tests.pg_cluster.replicated_pair`` makes its primary;
    stopped and removed on exit."""
    binaries = postgres_bin()
    if binaries is None:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
    root = Path(tempfile.mkdtemp(prefix="ledger-bench-clusters-"))
    if os.geteuid() == 0:  # PostgreSQL will not run as root: the tree is the postgres user's
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    nodes = [
        Node(binaries, root, f"cluster-{chr(ord('a') + i)}", bench.free_port())
        for i in range(count)
    ]
    try:
        for node in nodes:
            run_as_postgres(
                binaries / "initdb",
                "-D",
                node.datadir,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-instructions",
            )
            node.start(*CLUSTER_SETTINGS)
            with psycopg.connect(node.url("postgres"), autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {DATABASE}")
        yield nodes
    finally:
        for node in nodes:
            if (node.datadir / "postmaster.pid").exists():
                with contextlib.suppress(RuntimeError):
                    node.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def cluster_facts(node: Node) -> str:
    with psycopg.connect(node.url()) as conn:
        shown = [
            f"{name}={row[0]}"
            for name in ("synchronous_commit", "fsync", "shared_buffers", "max_connections")
            if (row := conn.execute(f"SHOW {name}").fetchone())
        ]
    return " ".join(shown)


# --- measurements ------------------------------------------------------------------------


@dataclass
class Rate:
    """Rows or events per second of one writer (a cluster, a log), over one or more rounds."""

    what: str
    count: int = 0
    seconds: float = 0.0
    errors: int = 0

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def add(self, more: Rate) -> None:
        self.count += more.count
        self.seconds += more.seconds
        self.errors += more.errors


@dataclass(frozen=True)
class Usage:
    server_cores: float
    machine_cores: float
    server_us_per_event: float


@dataclass
class Phase:
    """One load on A alone, on B alone, on both at once, in rounds (A, B, both; again), so
    that a machine whose other work comes and goes moves all three alike."""

    name: str
    unit: str
    a_alone: Rate = field(default_factory=lambda: Rate("A alone"))
    b_alone: Rate = field(default_factory=lambda: Rate("B alone"))
    both_a: Rate = field(default_factory=lambda: Rate("both: A"))
    both_b: Rate = field(default_factory=lambda: Rate("both: B"))
    round_ratios: list[float] = field(default_factory=list)
    usage: dict[str, list[Usage]] = field(default_factory=dict)
    """Per load ("A alone", ...): what the server and the machine used, each round."""

    def add_round(self, a_alone: Rate, b_alone: Rate, both: Sequence[Rate]) -> None:
        both_a, both_b = both
        for total, more in (
            (self.a_alone, a_alone),
            (self.b_alone, b_alone),
            (self.both_a, both_a),
            (self.both_b, both_b),
        ):
            total.add(more)
        alone = a_alone.per_second + b_alone.per_second
        together = both_a.per_second + both_b.per_second
        self.round_ratios.append(together / alone if alone else 0.0)

    @property
    def sum_alone(self) -> float:
        return self.a_alone.per_second + self.b_alone.per_second

    @property
    def both_total(self) -> float:
        return self.both_a.per_second + self.both_b.per_second

    @property
    def ratio(self) -> float:
        return self.both_total / self.sum_alone if self.sum_alone else 0.0

    def server_us_per_event(self, *loads: str) -> float:
        """The server's CPU per event over ``loads``' rounds (their mean)."""
        samples = [u.server_us_per_event for load in loads for u in self.usage.get(load, [])]
        return statistics.mean(samples) if samples else 0.0

    def server_cores(self, *loads: str) -> float:
        samples = [u.server_cores for load in loads for u in self.usage.get(load, [])]
        return statistics.mean(samples) if samples else 0.0

    def usage_line(self) -> str:
        """Per load, averaged over the rounds: cores the server used, cores busy machine-wide,
        and the server's CPU per event (which moves far less than a rate when other work
        shares the machine)."""
        parts = []
        for load, samples in self.usage.items():
            server = statistics.mean(u.server_cores for u in samples)
            machine = statistics.mean(u.machine_cores for u in samples)
            per_event = statistics.mean(u.server_us_per_event for u in samples)
            parts.append(
                f"{load}: server {server:.2f} cores, {per_event:.0f} µs/event; machine"
                f" {machine:.2f} cores"
            )
        return "; ".join(parts)


# --- 1. raw PostgreSQL COPY, one process per cluster ----------------------------------------


def copy_worker(libpq: str, start_at: float, seconds: float, batch: int) -> dict[str, Any]:
    """COPY ``batch`` rows a transaction from ``start_at`` (``time.time``) for ``seconds``.

    The rows are ``ops/bench.py``'s (built before the clock starts); each transaction gives
    them a log id of its own, so that every row is new to the primary key and the unique index,
    as the ledger's entries are."""
    rows = bench.raw_rows("raw", batch, 1_000)
    copy = f"COPY raw_entries ({bench.RAW_COLUMNS}) FROM STDIN"
    tag = secrets.token_hex(3)
    count = transactions = 0
    with psycopg.connect(libpq) as conn, conn.cursor() as cur:
        time.sleep(max(0.0, start_at - time.time()))
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            log_id = f"{tag}-{transactions}"
            with conn.transaction(), cur.copy(copy) as cp:
                for row in rows:
                    cp.write_row((log_id, *row[1:]))
            transactions += 1
            count += len(rows)
        elapsed = time.perf_counter() - started
    return {"rows": count, "seconds": elapsed}


def raw_copy(nodes: Sequence[Node], seconds: float, batch: int) -> list[Rate]:
    """One ``--copy-worker`` process per node, all starting at the same moment."""
    start_at = time.time() + 1.5  # time for each to import, build its rows and connect
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--copy-worker",
                node.url(),
                "--copy-start",
                str(start_at),
                "--seconds",
                str(seconds),
                "--batch",
                str(batch),
            ],
            stdout=subprocess.PIPE,
            cwd=bench.ROOT,
        )
        for node in nodes
    ]
    rates = []
    for node, proc in zip(nodes, procs, strict=True):
        out, _ = proc.communicate(timeout=seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"COPY into {node.name} failed (exit {proc.returncode})")
        done = json.loads(out)
        rates.append(Rate(node.name, int(done["rows"]), float(done["seconds"])))
    return rates


def raw_phase(a: Node, b: Node, args: Args) -> Phase:
    for node in (a, b):
        bench.create_raw_table(node.url())
    phase = Phase("raw PostgreSQL COPY", "rows/s")
    nodes_by_load = {"A alone": [a], "B alone": [b], "both": [a, b]}
    for round_no in range(args.rounds):
        measured: dict[str, list[Rate]] = {}
        for name, nodes in in_round_order(round_no, nodes_by_load):
            measured[name] = raw_copy(nodes, args.seconds, args.batch)
        phase.add_round(measured["A alone"][0], measured["B alone"][0], measured["both"])
    return phase


def in_round_order(round_no: int, loads: dict[str, T]) -> list[tuple[str, T]]:
    """A alone, B alone, both in even rounds; both, B alone, A alone in odd ones: a machine
    whose other work grows or shrinks during the run moves each load alike."""
    ordered = list(loads.items())
    return ordered[::-1] if round_no % 2 else ordered


# --- 2. the ledger over two clusters ----------------------------------------------------------


def ledger_command(env: dict[str, str], *argv: str) -> str:
    """``ledger …`` as an operator runs it (its ``main``, with ``env`` as the environment, in
    this process: a command's own process would cost seconds of imports each); its stdout
    (a token, an origin)."""
    from ledger.cli import main as ledger_main

    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, env),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        status = ledger_main(list(argv))
    if status != 0:
        raise RuntimeError(f"ledger {' '.join(argv)}: exit {status}: {err.getvalue()[-800:]}")
    return out.getvalue().strip()


class ClusteredServer(bench.LedgerServer):
    """``ops/bench.py``'s server process, with more clusters than the main one."""

    def __init__(
        self,
        db: bench.BenchDatabase,
        master_key_b64: str,
        workers: int,
        log_dir: Path,
        clusters: dict[str, dict[str, str]],
    ) -> None:
        super().__init__(db, master_key_b64, workers, log_dir)
        if clusters:
            self._env["LEDGER_CLUSTERS"] = json.dumps(clusters)


def bench_database(url: str) -> bench.BenchDatabase:
    """What ``bench.LedgerServer`` takes, for a database this script made (never dropped)."""
    return bench.BenchDatabase(admin=url, name=DATABASE, url=url, libpq=url)


@dataclass
class LogLoad:
    """One log's writer: its token and a maker of its batches."""

    log_id: str
    token: str
    factory: bench.EventFactory

    def requests(self, server: bench.LedgerServer, count: int, batch: int) -> list[bytes]:
        path = f"/v1/logs/{self.log_id}/events"
        return [
            bench.post_request(
                server.host, server.port, path, self.token, self.factory.batch_body(batch)
            )
            for _ in range(count)
        ]


async def drive_logs(
    server: bench.LedgerServer, loads: dict[str, list[bytes]], clients: int, seconds: float
) -> dict[str, bench.LoadOutcome]:
    """``ops/bench.py``'s load generator, once per log, all at once in this event loop."""
    outcomes = await asyncio.gather(
        *(
            bench.drive(server.host, server.port, requests, clients, seconds)
            for requests in loads.values()
        )
    )
    return dict(zip(loads, outcomes, strict=True))


@dataclass(frozen=True)
class Shape:
    """A load on one log: ``clients`` requests in flight, each of ``batch`` events."""

    name: str
    clients: int
    batch: int
    seconds: float


def shapes(args: Args) -> list[Shape]:
    """The heavy load (batches, several in flight: what one log takes at most, bound by CPU
    here) and the light one (one small batch at a time: bound by each commit's round trips
    and WAL flush, not by CPU, so two clusters' rates add up unless something the logs share
    serializes them)."""
    heavy = Shape("ledger batch ingest", args.clients, args.batch, args.seconds)
    light = Shape("ledger light load", 1, args.light_batch, args.light_seconds)
    return [heavy, light] if args.light_seconds > 0 else [heavy]


def ingest(
    server: bench.LedgerServer,
    logs: Sequence[LogLoad],
    shape: Shape,
    expected_rate: float,
) -> tuple[list[Rate], Usage]:
    """``shape``'s load on every log in ``logs`` at once: each log's rate, and what the server
    and the machine used meanwhile. Requests are built before the clock starts: enough for
    ``expected_rate`` events/s (twice over), so that the time limit, not the supply, ends the
    phase."""
    seconds = shape.seconds
    count = max(2 * shape.clients, math.ceil(2 * expected_rate * seconds / shape.batch))
    loads = {log.log_id: log.requests(server, count, shape.batch) for log in logs}
    meter, used = bench.CpuMeter(server.pid), bench.Measurement("", "", 0, 0.0)
    outcomes = asyncio.run(drive_logs(server, loads, shape.clients, seconds))
    meter.finish(used)
    rates = []
    for log_id, out in outcomes.items():
        errors = sum(out.errors.values())
        if out.error_samples:
            print(f"  {log_id}: errors {out.error_samples[:2]}", file=sys.stderr)
        rates.append(Rate(log_id, out.events, out.seconds, errors))
        if out.events and len(loads[log_id]) * shape.batch <= out.events:
            print(f"  {log_id}: ran out of requests; the rate is still events/s", file=sys.stderr)
    server_cores, wall = used.server_cpu or 0.0, max(out.seconds for out in outcomes.values())
    events = sum(out.events for out in outcomes.values())
    per_event = server_cores * wall / events * 1e6 if events else 0.0
    return rates, Usage(server_cores, used.machine_cpu or 0.0, per_event)


def entries_on(node: Node, log_id: str) -> int:
    with psycopg.connect(node.url()) as conn:
        row = conn.execute("SELECT count(*) FROM entries WHERE log_id = %s", (log_id,)).fetchone()
    return int(row[0]) if row else 0


def checkpoint_size(server: bench.LedgerServer, log_id: str) -> int:
    """The size of the log's latest signed checkpoint (a public read)."""
    status, body = server.get(f"/v1/logs/{log_id}/checkpoint")
    if status != 200:
        raise RuntimeError(f"GET {log_id} checkpoint: HTTP {status} {body[:200]!r}")
    return int(body.decode().split("\n")[1])


@dataclass
class LedgerResult:
    phases: list[Phase]
    """The heavy load's first (the capacity model's), then the light one's."""
    checks: list[str] = field(default_factory=list)
    trail: TrailReads | None = None
    server_output: list[str] = field(default_factory=list)


def ledger_phase(a: Node, b: Node, args: Args, log_dir: Path) -> LedgerResult:
    master_b64 = base64.b64encode(secrets.token_bytes(32)).decode()
    clusters = {SECOND_CLUSTER: {"url": b.url()}}
    env = {
        "LEDGER_DATABASE_URL": a.url(),
        "LEDGER_CLUSTERS": json.dumps(clusters),
        "LEDGER_MASTER_KEY": master_b64,
        "LEDGER_ORIGIN_PREFIX": bench.ORIGIN_PREFIX,
        "LEDGER_DATA_DIR": str(log_dir / "data"),
    }
    ledger_command(env, "db", "upgrade")
    tokens: dict[str, str] = {}
    for log_id, cluster in ((LOG_ON_A, MAIN_CLUSTER), (LOG_ON_B, SECOND_CLUSTER)):
        ledger_command(
            env, "logs", "create", log_id, "--tenant", f"t-{log_id}", "--cluster", cluster
        )
        tokens[log_id] = ledger_command(
            env, "credentials", "create", "--log", log_id, "--role", "writer", "--label", "bench"
        )
    auditor = ledger_command(
        env,
        "credentials",
        "create",
        "--log",
        LOG_ON_A,
        "--role",
        "auditor",
        "--label",
        "bench trails",
    )
    templates = bench.event_templates()
    loads = {
        log_id: LogLoad(log_id, tokens[log_id], bench.EventFactory(templates, args.conversations))
        for log_id in (LOG_ON_A, LOG_ON_B)
    }
    server = ClusteredServer(bench_database(a.url()), master_b64, args.workers, log_dir, clusters)
    result: LedgerResult
    try:
        server.start()
        # Warm every worker's caches for each log, and learn roughly how fast a log goes.
        accepted: dict[str, int] = {}
        loaded = shapes(args)
        expected = dict.fromkeys(loaded, WARM_UP_GUESS)
        warm_up = Shape("warm-up", args.clients, args.batch, WARM_UP_SECONDS)
        for load in loads.values():
            (warm,), _ = ingest(server, [load], warm_up, WARM_UP_GUESS)
            accepted[warm.what] = warm.count
            expected[loaded[0]] = max(expected[loaded[0]], warm.per_second)
        phases = [Phase(shape.name, "events/s") for shape in loaded]
        for round_no in range(args.rounds):
            for shape, phase in zip(loaded, phases, strict=True):
                measured: dict[str, list[Rate]] = {}
                together_by_load = {
                    "A alone": [loads[LOG_ON_A]],
                    "B alone": [loads[LOG_ON_B]],
                    "both": list(loads.values()),
                }
                for name, together in in_round_order(round_no, together_by_load):
                    step(f"{shape.name}, round {round_no + 1}: {name}")
                    rates, usage = ingest(server, together, shape, expected[shape])
                    phase.usage.setdefault(name, []).append(usage)
                    for rate in rates:
                        accepted[rate.what] += rate.count
                        expected[shape] = max(expected[shape], rate.per_second)
                        print(f"  {rate.what}: {rate.per_second:,.0f} events/s", file=sys.stderr)
                    measured[name] = rates
                phase.add_round(measured["A alone"][0], measured["B alone"][0], measured["both"])
        step(
            f"{args.trail_conversations} conversations of {EVENTS_PER_TRAIL} events on {LOG_ON_A},"
            " for the trail reads"
        )
        trails, written = write_conversations(
            server, loads[LOG_ON_A].token, templates, args.trail_conversations, args.batch
        )
        accepted[LOG_ON_A] += written
        result = LedgerResult(phases)
        errors = sum(r.errors for p in phases for r in (p.a_alone, p.b_alone, p.both_a, p.both_b))
        result.checks.append(
            f"non-2xx answers or transport errors during ingest: {errors}"
            f" {'OK' if errors == 0 else 'MISMATCH  <<<'}"
        )
        for log_id, home, other in ((LOG_ON_A, a, b), (LOG_ON_B, b, a)):
            size = checkpoint_size(server, log_id)
            held, stray = entries_on(home, log_id), entries_on(other, log_id)
            ok = size == accepted[log_id] == held and stray == 0
            result.checks.append(
                f"{log_id}: checkpoint size {size:,}, events accepted {accepted[log_id]:,},"
                f" entries on {home.name} {held:,}, on {other.name} {stray:,}:"
                f" {'OK' if ok else 'MISMATCH  <<<'}"
            )
        step("trail reads")
        result.trail = asyncio.run(read_trails(server, LOG_ON_A, auditor, trails, args))
    finally:
        server.stop()
        output = server.log_problems()
    result.server_output = output
    return result


# --- 3. trail reads --------------------------------------------------------------------------


@dataclass
class TrailReads:
    reads: int
    seconds: float
    entries: int
    errors: int
    latencies: list[float] = field(default_factory=list, repr=False)

    @property
    def per_second(self) -> float:
        return self.reads / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies) or [0.0]
        return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def write_conversations(
    server: bench.LedgerServer,
    token: str,
    templates: list[dict[str, Any]],
    conversations: int,
    batch: int,
) -> tuple[list[str], int]:
    """``conversations`` conversations of :data:`EVENTS_PER_TRAIL` events each (the capacity
    model's size) posted to ``LOG_ON_A`` in batches, so that the trail reads read trails of the
    size the model assumes, in a log as big as ingest made it. Their ids and the events
    accepted."""
    factory = bench.EventFactory(templates, conversations)
    events = [factory.make() for _ in range(conversations * EVENTS_PER_TRAIL)]
    path = f"/v1/logs/{LOG_ON_A}/events"
    requests = [
        bench.post_request(
            server.host, server.port, path, token, orjson.dumps({"events": events[i : i + batch]})
        )
        for i in range(0, len(events), batch)
    ]
    out = asyncio.run(bench.drive(server.host, server.port, requests, 2, RECOVERY_TIMEOUT))
    if out.errors or out.events != len(events):
        raise RuntimeError(f"conversations for the trail reads: {out.error_samples[:2]}")
    ids = {event["subject"].split("/", 1)[1] for event in events}
    return sorted(ids), out.events


async def read_trails(
    server: bench.LedgerServer, log_id: str, token: str, conversations: list[str], args: Args
) -> TrailReads:
    """``args.read_clients`` keep-alive connections (``ops/bench.py``'s client) reading
    trails of ``conversations`` in turn for ``args.read_seconds``."""
    out = TrailReads(0, 0.0, 0, 0)
    turn = itertools.count()
    deadline = time.perf_counter() + args.read_seconds

    def request(conversation: str) -> bytes:
        return (
            f"GET /v1/logs/{log_id}/conversations/{conversation}/trail HTTP/1.1\r\n"
            f"Host: {server.host}:{server.port}\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()

    async def client() -> None:
        conn = bench.KeepAlive(server.host, server.port)
        try:
            while time.perf_counter() < deadline:
                conversation = conversations[next(turn) % len(conversations)]
                t0 = time.perf_counter()
                try:
                    status, body = await conn.request(request(conversation))
                except (OSError, bench.HttpError, asyncio.IncompleteReadError):
                    conn.close()
                    out.errors += 1
                    continue
                if status == 200:
                    out.reads += 1
                    out.entries += len(orjson.loads(body)["entries"])
                    out.latencies.append(time.perf_counter() - t0)
                else:
                    out.errors += 1
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(args.read_clients)))
    out.seconds = time.perf_counter() - started
    return out


# --- 4. failover window ------------------------------------------------------------------------


@dataclass
class Failover:
    window: float  # kill -9 -> first 201 of a request sent after it
    promoted: float  # kill -9 -> pg_ctl promote returned
    acked: int
    refused: int  # answers after the kill other than 201/200 (503, lost connections)
    lost: int  # acknowledged events not on the new primary (must be 0)


@dataclass
class Writers:
    """Writers posting single events, each retrying the same event until it is acknowledged
    (as the README tells integrations to), noting when each request went and its answer."""

    server: bench.LedgerServer
    log_id: str
    token: str
    factory: bench.EventFactory
    count: int
    acked: list[str] = field(default_factory=list)
    answers: list[tuple[float, float, int]] = field(default_factory=list)
    """(sent, answered, status) by time.monotonic; status 0: no answer (connection lost)."""
    stop: threading.Event = field(default_factory=threading.Event)

    def first_created_after(self, moment: float) -> float | None:
        done = [t for sent, t, status in list(self.answers) if sent > moment and status == 201]
        return min(done) if done else None

    def run(self) -> None:
        asyncio.run(self._all())

    async def _all(self) -> None:
        await asyncio.gather(*(self._writer() for _ in range(self.count)))

    async def _writer(self) -> None:
        conn = bench.KeepAlive(self.server.host, self.server.port)
        path = f"/v1/logs/{self.log_id}/events"
        try:
            while not self.stop.is_set():
                event = self.factory.make()
                data = bench.post_request(
                    self.server.host, self.server.port, path, self.token, orjson.dumps(event)
                )
                while not self.stop.is_set():
                    sent = time.monotonic()
                    try:
                        status, _ = await asyncio.wait_for(conn.request(data), RECOVERY_TIMEOUT)
                    except (OSError, bench.HttpError, asyncio.IncompleteReadError, TimeoutError):
                        conn.close()
                        status = 0
                    self.answers.append((sent, time.monotonic(), status))
                    if status in (200, 201):
                        self.acked.append(event["id"])
                        break
                    await asyncio.sleep(RETRY_PAUSE)  # the same event again: stored once
        finally:
            conn.close()


def one_failover(args: Args, log_dir: Path, templates: list[dict[str, Any]]) -> Failover:
    master_b64 = base64.b64encode(secrets.token_bytes(32)).decode()
    with replicated_pair(synchronous=True) as pair:
        env = {
            "LEDGER_DATABASE_URL": pair.primary.url(),
            "LEDGER_MASTER_KEY": master_b64,
            "LEDGER_ORIGIN_PREFIX": bench.ORIGIN_PREFIX,
            "LEDGER_DATA_DIR": str(log_dir / "data"),
        }
        ledger_command(env, "db", "upgrade")
        ledger_command(env, "logs", "create", FAILOVER_LOG, "--tenant", "t-failover")
        token = ledger_command(
            env,
            "credentials",
            "create",
            "--log",
            FAILOVER_LOG,
            "--role",
            "writer",
            "--label",
            "bench failover",
        )
        server = bench.LedgerServer(
            bench_database(pair.multi_host_url()), master_b64, args.workers, log_dir
        )
        try:
            server.start()
            writers = Writers(
                server,
                FAILOVER_LOG,
                token,
                bench.EventFactory(templates, args.conversations),
                args.failover_writers,
            )
            thread = threading.Thread(target=writers.run, name="writers", daemon=True)
            thread.start()
            deadline = time.monotonic() + RECOVERY_TIMEOUT
            while len(writers.acked) < ACKS_BEFORE_KILL:
                if time.monotonic() > deadline or not thread.is_alive():
                    raise RuntimeError(f"no load before the kill: {writers.answers[-3:]}")
                time.sleep(0.01)
            killed_at = pair.primary.kill9()
            pair.standby.promote()
            promoted_at = time.monotonic()
            deadline = time.monotonic() + RECOVERY_TIMEOUT
            while (first := writers.first_created_after(killed_at)) is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("no 201 within a minute of the kill")
                time.sleep(0.02)
            time.sleep(0.5)  # a few more acknowledged after the failover, then stop
            writers.stop.set()
            thread.join(timeout=RECOVERY_TIMEOUT + 10)
        finally:
            server.stop()
        with psycopg.connect(pair.standby.url()) as conn:
            row = conn.execute(
                "SELECT count(*) FROM entries WHERE log_id = %s AND event_id = ANY(%s)",
                (FAILOVER_LOG, writers.acked),
            ).fetchone()
        stored = int(row[0]) if row else 0
        refused = sum(
            1
            for sent, _, status in writers.answers
            if sent > killed_at and status not in (200, 201)
        )
        return Failover(
            window=first - killed_at,
            promoted=promoted_at - killed_at,
            acked=len(writers.acked),
            refused=refused,
            lost=len(set(writers.acked)) - stored,
        )


# --- 5. capacity model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInputs:
    """What the capacity model takes from this run."""

    per_log: float
    """Events/s of one log's batch ingest, its cluster to itself (the mean of A alone and B
    alone): one log's sequencer is serial, so no log goes faster than this on this hardware."""
    logs_per_cluster: int
    """Logs one cluster carries at that rate: 1 here, where one log's ingest already keeps
    both cores busy (the usage line); a cluster on a larger machine holds more (not measured)."""
    server_us_per_event: float
    """The ledger server's CPU per event ingested (one log alone): the cores of servers the
    ledger needs in front of its clusters."""
    reads_per_replica: float
    """Trail reads/s one cluster served (the trail API with its proofs, each read recorded
    first); a standby serving reads is assumed to serve as many."""

    @property
    def per_cluster(self) -> float:
        return self.per_log * self.logs_per_cluster


@dataclass
class Scale:
    multiple: int
    seats: int
    events_per_second: float
    reads_per_second: float
    clusters: int
    logs: int
    replicas: int
    server_cores: float


def capacity(inputs: ModelInputs, assume: Assumptions) -> list[Scale]:
    """Per-log rate x logs per cluster x clusters >= the peak events/s (each cluster run at
    ``cluster_utilisation``), and trail reads/s / reads per replica, for 1x, 10x and 1,000x
    the largest contact centre. Clusters add up because logs are independent (issue 17's
    premise; one machine running every cluster cannot show it: see both/sum)."""
    out = []
    usable = inputs.per_cluster * assume.cluster_utilisation
    for multiple in (1, 10, 1_000):
        seats = LARGEST_CONTACT_CENTRE * multiple
        conversations = seats * assume.busy_share * assume.conversations_per_agent_hour / 3600
        events = conversations * assume.events_per_conversation
        reads = conversations * assume.trail_reads_per_conversation
        clusters = max(1, math.ceil(events / usable)) if usable else 0
        replicas = (
            max(1, math.ceil(reads / inputs.reads_per_replica)) if inputs.reads_per_replica else 0
        )
        out.append(
            Scale(
                multiple,
                seats,
                events,
                reads,
                clusters,
                clusters * inputs.logs_per_cluster,
                replicas,
                events * inputs.server_us_per_event / 1e6 / assume.cluster_utilisation,
            )
        )
    return out


# --- report ------------------------------------------------------------------------------------


@dataclass
class Report:
    args: dict[str, Any]
    machine: str = ""
    postgres: str = ""
    raw: Phase | None = None
    ledger: LedgerResult | None = None
    failovers: list[Failover] = field(default_factory=list)
    failover_error: str = ""
    scales: list[Scale] = field(default_factory=list)
    assumptions: Assumptions = field(default_factory=Assumptions)
    model_inputs: ModelInputs | None = None
    seconds: float = 0.0

    def print(self, out: TextIO) -> None:
        print(
            f"\nLogs over two clusters (issue 17): {self.machine}, {os.getloadavg()[0]:.2f} at"
            " the end",
            file=out,
        )
        print(f"PostgreSQL: {self.postgres}", file=out)
        print(
            f"sizes: {self.args['rounds']} rounds of A alone, B alone, both, each"
            f" {self.args['seconds']:g} s; batches of {self.args['batch']}"
            f" ~1.5 KB events, {self.args['clients']} in flight per log; server workers"
            f" {self.args['workers']}\n",
            file=out,
        )
        phases = ([self.raw] if self.raw else []) + (self.ledger.phases if self.ledger else [])
        if phases:
            head = (
                f"{'':30} {'A alone':>9} {'B alone':>9} {'sum':>9} {'both: A':>9}"
                f" {'both: B':>9} {'both':>9} {'both/sum':>9}  rounds' both/sum"
            )
            print(head, file=out)
            for p in phases:
                print(
                    f"{p.name + ', ' + p.unit:30.30} {p.a_alone.per_second:>9,.0f}"
                    f" {p.b_alone.per_second:>9,.0f} {p.sum_alone:>9,.0f}"
                    f" {p.both_a.per_second:>9,.0f} {p.both_b.per_second:>9,.0f}"
                    f" {p.both_total:>9,.0f} {p.ratio:>9.2f}  "
                    + ", ".join(f"{r:.2f}" for r in p.round_ratios),
                    file=out,
                )
            for p in phases:
                if p.usage:
                    print(f"during {p.name}: {p.usage_line()}", file=out)
            if self.raw and self.ledger:
                lr, rr = self.ledger.phases[0].ratio, self.raw.ratio
                print(
                    f"\nledger both-at-once / sum {lr:.2f} beside raw PostgreSQL's {rr:.2f}:"
                    f" the ledger keeps {lr / rr if rr else 0:.0%} of what this machine gives"
                    " two clusters; ledger alone on A = "
                    f"{self.ledger.phases[0].a_alone.per_second / self.raw.a_alone.per_second:.2f}"
                    " x raw COPY alone on A",
                    file=out,
                )
            for phase in self.ledger.phases if self.ledger else []:
                alone = phase.server_us_per_event("A alone", "B alone")
                both = phase.server_us_per_event("both")
                ratio = both / alone if alone else 0.0
                print(
                    f"{phase.name}, server CPU per event: {alone:.0f} µs for one log on one"
                    f" cluster, {both:.0f}"
                    f" µs for both logs on both clusters at once ({ratio:.2f} x); server cores"
                    f" {phase.server_cores('A alone', 'B alone'):.2f} alone,"
                    f" {phase.server_cores('both'):.2f} both at once",
                    file=out,
                )
        if self.ledger:
            for line in self.ledger.checks:
                print(f"  {line}", file=out)
            t = self.ledger.trail
            if t:
                print(
                    f"\ntrail reads ({LOG_ON_A} on cluster A, {self.args['read_clients']}"
                    f" clients, {t.seconds:.0f} s): {t.per_second:,.1f} reads/s,"
                    f" {t.entries / max(t.reads, 1):.0f} entries a trail, p50"
                    f" {t.percentile(0.5) * 1000:.0f} ms p95 {t.percentile(0.95) * 1000:.0f} ms,"
                    f" errors {t.errors}",
                    file=out,
                )
            if self.ledger.server_output:
                print(f"  server output: {len(self.ledger.server_output)} lines; first:", file=out)
                for line in self.ledger.server_output[:5]:
                    print(f"    {line[:200]}", file=out)
        if self.failovers or self.failover_error:
            print(
                f"\nfailover: synchronous standby, kill -9 of the primary under"
                f" {self.args['failover_writers']} writers, pg_ctl promote at once",
                file=out,
            )
            for n, f in enumerate(self.failovers, 1):
                print(
                    f"  {n}: kill -> first 201 {f.window:.2f} s (kill -> promoted"
                    f" {f.promoted:.2f} s); {f.acked} acknowledged, {f.refused} answers 503 or"
                    f" lost and retried; acknowledged but not on the new primary: {f.lost}"
                    f" {'OK' if f.lost == 0 else 'LOST  <<<'}",
                    file=out,
                )
            if self.failovers:
                windows = [f.window for f in self.failovers]
                print(
                    f"  window min / median / max: {min(windows):.2f} / "
                    f"{statistics.median(windows):.2f} / {max(windows):.2f} s",
                    file=out,
                )
            if self.failover_error:
                print(f"  could not finish: {self.failover_error}", file=out)
        if self.scales:
            self.print_model(out)
        print(f"\ntotal {self.seconds:.0f} s", file=out)

    def print_model(self, out: TextIO) -> None:
        a, i = self.assumptions, self.model_inputs
        if i is None:
            return
        print("\ncapacity model", file=out)
        print(
            f"  measured here: per-log rate {i.per_log:,.0f} events/s (one log, batch ingest,"
            f" its cluster to itself); logs per cluster {i.logs_per_cluster} (one log keeps"
            f" this machine busy); per-cluster rate {i.per_cluster:,.0f} events/s; server CPU"
            f" {i.server_us_per_event:.0f} µs an event; trail reads per replica"
            f" {i.reads_per_replica:,.1f}/s ({EVENTS_PER_TRAIL}-event trails)",
            file=out,
        )
        print(
            f"  assumed: largest contact centre {LARGEST_CONTACT_CENTRE:,} seats"
            f" ({CONTACT_CENTRE_SOURCE}); {a.events_per_conversation} events a conversation;"
            f" {a.conversations_per_agent_hour:g} conversations a seat-hour; {a.busy_share:.0%}"
            f" of seats busy at the peak; {a.trail_reads_per_conversation:g} trail read a"
            f" conversation; clusters run at {a.cluster_utilisation:.0%} of the measured rate",
            file=out,
        )
        print(
            f"  {'scale':>7} {'seats':>13} {'events/s':>13} {'trail reads/s':>14}"
            f" {'clusters':>10} {'logs':>10} {'replicas':>10} {'server cores':>13}",
            file=out,
        )
        for s in self.scales:
            print(
                f"  {str(s.multiple) + 'x':>7} {s.seats:>13,} {s.events_per_second:>13,.0f}"
                f" {s.reads_per_second:>14,.0f} {s.clusters:>10,} {s.logs:>10,}"
                f" {s.replicas:>10,} {s.server_cores:>13,.0f}",
                file=out,
            )
        print(
            "  clusters = events/s / (per-log rate x logs per cluster x utilisation); logs ="
            " clusters x logs per cluster; replicas = trail reads/s / reads per replica; server"
            " cores = events/s x server CPU an event / utilisation. A cluster here is 2 cores"
            " shared by PostgreSQL, the server and the load generator.",
            file=out,
        )

    def as_json(self) -> dict[str, Any]:
        def phase(p: Phase | None) -> dict[str, Any] | None:
            if p is None:
                return None
            return {
                **asdict(p),
                "sum_alone": p.sum_alone,
                "both_total": p.both_total,
                "ratio": p.ratio,
            }

        return {
            "args": self.args,
            "machine": self.machine,
            "postgres": self.postgres,
            "raw": phase(self.raw),
            "ledger": None
            if self.ledger is None
            else {
                "phases": [phase(p) for p in self.ledger.phases],
                "checks": self.ledger.checks,
                "trail_reads_per_second": self.ledger.trail.per_second
                if self.ledger.trail
                else None,
            },
            "failovers": [asdict(f) for f in self.failovers],
            "failover_error": self.failover_error,
            "model_inputs": None if self.model_inputs is None else asdict(self.model_inputs),
            "assumptions": asdict(self.assumptions),
            "scales": [asdict(s) for s in self.scales],
            "seconds": self.seconds,
        }


# --- main ----------------------------------------------------------------------------------------


class Args(argparse.Namespace):
    seconds: float
    rounds: int
    batch: int
    clients: int
    workers: int
    conversations: int
    light_seconds: float
    light_batch: int
    read_seconds: float
    read_clients: int
    trail_conversations: int
    failovers: int
    failover_writers: int
    json: Path | None
    copy_worker: str | None
    copy_start: float


def parse_args(argv: Sequence[str] | None) -> Args:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="each ingest phase")
    parser.add_argument("--rounds", type=int, default=2, help="of A alone, B alone, both")
    parser.add_argument("--batch", type=int, default=500, help="events a request, rows a COPY")
    parser.add_argument("--clients", type=int, default=4, help="requests in flight per log")
    parser.add_argument("--workers", type=int, default=2, help="the server's workers")
    parser.add_argument("--conversations", type=int, default=5_000, help="per log")
    parser.add_argument(
        "--light-seconds", type=float, default=8.0, help="each light-load phase (0: none)"
    )
    parser.add_argument("--light-batch", type=int, default=20, help="events a light request")
    parser.add_argument("--read-seconds", type=float, default=10.0)
    parser.add_argument("--read-clients", type=int, default=4)
    parser.add_argument(
        "--trail-conversations",
        type=int,
        default=200,
        help=f"conversations of {EVENTS_PER_TRAIL} events written for the trail reads",
    )
    parser.add_argument("--failovers", type=int, default=3)
    parser.add_argument("--failover-writers", type=int, default=6)
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results")
    parser.add_argument("--copy-worker", help=argparse.SUPPRESS)
    parser.add_argument("--copy-start", type=float, default=0.0, help=argparse.SUPPRESS)
    return parser.parse_args(argv, namespace=Args())


def step(message: str) -> None:
    print(f"- {message} ...", file=sys.stderr, flush=True)


def run(args: Args) -> Report:
    started = time.perf_counter()
    report = Report(
        {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        machine=f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start;"
        f" Python {platform.python_version()}; {bench.uvicorn_flavour()}",
    )
    with tempfile.TemporaryDirectory(prefix="bench-clusters-") as tmp:
        step("making clusters A and B")
        with standalone_clusters(2) as (a, b):
            with psycopg.connect(a.url()) as conn:
                row = conn.execute("SHOW server_version").fetchone()
            report.postgres = (
                f"{row[0] if row else '?'}, two clusters made here, each: {cluster_facts(a)}"
            )
            step(f"raw COPY into A, B, both ({args.seconds:g} s each)")
            report.raw = raw_phase(a, b, args)
            step("the ledger over A and B")
            report.ledger = ledger_phase(a, b, args, Path(tmp))
        templates = bench.event_templates()
        for n in range(args.failovers):
            step(f"failover {n + 1} of {args.failovers}")
            try:
                report.failovers.append(one_failover(args, Path(tmp), templates))
            except RuntimeError as exc:  # say what could not be measured; keep the rest
                report.failover_error = str(exc)
                break
            print(f"  window {report.failovers[-1].window:.2f} s", file=sys.stderr)
    ledger = report.ledger
    if ledger is not None and ledger.trail is not None:
        phase = ledger.phases[0]
        report.model_inputs = ModelInputs(
            per_log=phase.sum_alone / 2,
            logs_per_cluster=1,
            server_us_per_event=phase.server_us_per_event("A alone", "B alone"),
            reads_per_replica=ledger.trail.per_second,
        )
        report.scales = capacity(report.model_inputs, report.assumptions)
    report.seconds = time.perf_counter() - started
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.copy_worker:
        done = copy_worker(args.copy_worker, args.copy_start, args.seconds, args.batch)
        print(json.dumps(done))
        return 0
    # Stopped (SIGTERM): unwind, so that the clusters and servers made here are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(bench.EXIT_COULD_NOT_RUN))
    if not bench.EXAMPLE.is_file():
        print(f"bench_clusters: no example events at {bench.EXAMPLE}", file=sys.stderr)
        return bench.EXIT_COULD_NOT_RUN
    try:
        report = run(args)
    except Exception as exc:  # a measurement that could not be made: say why, exit 2
        traceback.print_exc()
        print(f"bench_clusters: could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return bench.EXIT_COULD_NOT_RUN
    report.print(sys.stdout)
    if args.json:
        args.json.write_text(json.dumps(report.as_json(), indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
