"""Master-key rotation: how fast it re-wraps, and what it costs concurrent ingest.

A fresh database with ``--conversations`` data keys (one event each, through the sequencer),
one ``ledger serve`` process holding the old master key and the new one, and ``--clients``
writers posting single events (a new conversation every ``--new-every`` events, so keys keep
being made) for the whole run. Phases: ``--baseline`` seconds of load alone; then
``ledger keys rotate-master`` (its own process) under that load; ``--baseline`` seconds of load
alone again (a machine whose speed drifted shows here); then a rotation onto a third key with no
load (the rate alone). Printed: keys re-wrapped per second with and without load, and ingest
events/s, p50 and p99 before, during and after the rotation.

    .venv/bin/python ops/bench_master_rotation.py [--conversations 100000] [--clients 16]
        [--max-rate KEYS_PER_SECOND]
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench, bench_verify
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import free_port
from bench_verify import ACTOR, MASTER_KEY, Filler, fresh_database, now

from ledger.domain import PreparedEvent
from ledger.services.admin.credentials import create_credential
from ledger.services.admin.logs import create_log
from ledger.storage.db import make_engine, unit_of_work
from ledger.storage.keystore import KeyRing
from ledger.storage.logs import get_log

ROOT = Path(__file__).resolve().parents[1]


class OneEventConversations(Filler):
    """``bench_verify``'s filler, one conversation (one data key) per event."""

    def event(self) -> PreparedEvent:
        event = super().event()
        conversation = f"fill-{self.n}"
        header = dataclasses.replace(event.header, conversation_id=conversation)
        return dataclasses.replace(event, header=header, scope=f"conversation:{conversation}")


def make_event(conversation: str, n: int) -> dict[str, Any]:
    """A small valid message.created event (as the tests' ``make_event``)."""
    return {
        "specversion": "1.0",
        "id": f"{conversation}-evt-{n}",
        "source": "urn:bench:rotation",
        "type": "handoff.message.created.v1",
        "time": "2026-11-20T09:14:01.000Z",
        "subject": f"conversations/{conversation}",
        "datacontenttype": "application/json",
        "data": {
            "message_id": f"m-{n}",
            "author": {"kind": "customer", "id": "cust-1"},
            "actor": {"kind": "customer", "id": "cust-1"},
            "visibility": "public",
            "outcome": "success",
            "content": {"parts": [{"type": "text", "content": f"hello {n}"}]},
        },
    }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class Writers:
    def __init__(self, url: str, token: str, clients: int, new_every: int) -> None:
        self.url, self.token, self.new_every = url, token, new_every
        self.stop = threading.Event()
        self.done: list[tuple[float, float, int]] = []
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(clients)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def _run(self, n: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=60) as http:
            i = 0
            while not self.stop.is_set():
                conversation = f"b{n}-{i // self.new_every}"
                t0 = time.monotonic()
                r = http.post("/v1/logs/bench/events", json=make_event(conversation, i))
                self.done.append((t0, time.monotonic() - t0, r.status_code))
                i += 1

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        rows = [d for d in self.done if t0 <= d[0] < t1]
        ok = [d[1] for d in rows if d[2] in (200, 201)]
        return {
            "events_per_s": len(ok) / (t1 - t0),
            "p50_ms": 1000 * _percentile(ok, 0.5),
            "p99_ms": 1000 * _percentile(ok, 0.99),
            "non_2xx": len(rows) - len(ok),
        }


ROTATE = [sys.executable, "-m", "ledger.cli", "keys", "rotate-master"]


def _rotate(
    env: dict[str, str], to: Path, batch: int, max_rate: float | None = None
) -> subprocess.CompletedProcess[str]:
    limit = [] if max_rate is None else ["--max-rate", str(max_rate)]
    return subprocess.run(
        [*ROTATE, "--to", f"file:{to}", "--batch", str(batch), *limit],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def raw_rewrap_rate(engine: Engine, batch: int) -> tuple[int, float]:
    """The raw-PostgreSQL baseline of the same run: every data key's row given new bytes of the
    same length, ``batch`` rows a transaction, on a plain copy of ``data_keys`` (same rows, a
    primary key, no trigger, no row security), with nothing of the ledger: no unwrap or wrap,
    no compare-and-set, no system-log record. Returns (rows, rows per second)."""
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_raw_rewrap"))
        conn.execute(text("CREATE TABLE bench_raw_rewrap AS SELECT id, wrapped FROM data_keys"))
        conn.execute(text("ALTER TABLE bench_raw_rewrap ADD PRIMARY KEY (id)"))
        rows = [
            (int(i), len(w))
            for i, w in conn.execute(text("SELECT id, wrapped FROM bench_raw_rewrap ORDER BY id"))
        ]
    started = time.monotonic()
    for low in range(0, len(rows), batch):
        chunk = rows[low : low + batch]
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE bench_raw_rewrap AS t SET wrapped = v.w"
                    " FROM unnest(CAST(:ids AS bigint[]), CAST(:ws AS bytea[])) AS v(id, w)"
                    " WHERE t.id = v.id"
                ),
                {"ids": [i for i, _ in chunk], "ws": [os.urandom(n) for _, n in chunk]},
            )
    seconds = time.monotonic() - started
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE bench_raw_rewrap"))
    return len(rows), len(rows) / seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--conversations", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--new-every", type=int, default=4)
    ap.add_argument("--baseline", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--max-rate", type=float, help="the rotation under load's --max-rate")
    args = ap.parse_args()

    b64 = {
        "old": base64.b64encode(MASTER_KEY).decode(),  # bench_verify's Filler wraps under it
        "new": base64.b64encode(secrets.token_bytes(32)).decode(),
        "third": base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    with fresh_database() as url, tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        files = {}
        for k, v in b64.items():
            files[k] = tmp / f"{k}.key"
            files[k].write_text(v)
        env = {
            **os.environ,
            "LEDGER_DATABASE_URL": url,
            "LEDGER_ORIGIN_PREFIX": "bench.local",
            "LEDGER_DATA_DIR": str(tmp / "data"),
        }
        engine = make_engine(url, pool_size=2)
        ring = KeyRing.from_master(MASTER_KEY)
        with unit_of_work(engine) as conn:
            log = create_log(
                conn, ring, "bench", origin_prefix="bench.local", actor=ACTOR, now=now()
            )
        with unit_of_work(engine) as conn:
            token = create_credential(
                conn, ring, log_id="bench", role="writer", label="bench", actor=ACTOR, now=now()
            ).token
            log = get_log(conn, "bench")
        t = time.monotonic()
        OneEventConversations(engine, log, payload_bytes=200).append(args.conversations)
        print(f"filled {args.conversations} conversations in {time.monotonic() - t:.1f} s")
        raw_rows, raw_rate = raw_rewrap_rate(engine, args.batch)
        engine.dispose()

        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env={
                **env,
                "LEDGER_MASTER_KEY": b64["old"],
                "LEDGER_EXTRA_KEY_PROVIDERS": f"file:{files['new']}",
            },
        )
        try:
            http_url = f"http://127.0.0.1:{port}"
            for _ in range(150):
                try:
                    if httpx.get(http_url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            writers = Writers(http_url, token, args.clients, args.new_every)
            writers.start()
            time.sleep(2)  # warm up
            t0 = time.monotonic()
            time.sleep(args.baseline)
            t1 = time.monotonic()
            loaded = _rotate(
                {**env, "LEDGER_MASTER_KEY": b64["old"]}, files["new"], args.batch, args.max_rate
            )
            t2 = time.monotonic()
            time.sleep(args.baseline)  # the same load after: did the machine drift?
            t3 = time.monotonic()
            writers.finish()
        finally:
            server.terminate()
            server.wait(timeout=30)
        idle = _rotate({**env, "LEDGER_MASTER_KEY": b64["new"]}, files["third"], args.batch)
    base, during, after = writers.window(t0, t1), writers.window(t1, t2), writers.window(t2, t3)
    print(
        f"rotation under load ({args.clients} clients):"
        f" {loaded.stdout.strip()} [exit {loaded.returncode}]"
    )
    print(f"rotation alone: {idle.stdout.strip()} [exit {idle.returncode}]")
    print(
        f"raw PostgreSQL baseline, same run: {raw_rows} rows of data_keys given new bytes,"
        f" {args.batch} a transaction, no ledger work: {raw_rate:,.0f} rows/s"
    )
    for label, w in (("before", base), ("during rotation", during), ("after", after)):
        print(
            f"ingest {label}: {w['events_per_s']:.0f} events/s, p50 {w['p50_ms']:.1f} ms,"
            f" p99 {w['p99_ms']:.1f} ms, non-2xx {w['non_2xx']}"
        )
    around = (base["events_per_s"] + after["events_per_s"]) / 2
    print(f"ingest during / mean of before and after: {during['events_per_s'] / around:.2f}")
    print(f"rotation wall time under load {t2 - t1:.1f} s")
    return 0 if loaded.returncode == 0 and idle.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
