"""The card-data guard's cost (issue 3: batch ingest with the guard on must stay >= 80% of the
same ingest with it off), measured two ways in one run:

1. validation alone on the example batch (guard on / mask everything / off);
2. the whole ingest path without HTTP — validate, prepare, and append in batches of 500 through
   the real sequencer into a fresh PostgreSQL database — guard on versus off.

Run: ``.venv/bin/python ops/bench_events.py`` (LEDGER_BENCH_DATABASE_URL: an admin URL, default
the local server). "Guard off" replaces the guard with a pass-through for the measurement only.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import psycopg

import ledger.events.validate as validate_module
from ledger.domain import AppendRequest, Principal
from ledger.events import GuardPolicy, validate_event
from ledger.events.guard import Guarded
from ledger.services.admin.logs import create_log
from ledger.services.ingest.prepare import prepare_all, validate_all
from ledger.storage.db import make_engine, unit_of_work, upgrade_schema
from ledger.storage.keystore import KeyRing
from ledger.storage.logs import get_log
from ledger.storage.sequencer import append_batch

SHARED = Path(os.environ.get("LEDGER_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
EXAMPLE = SHARED / "examples" / "escalated-conversation.json"
KEY = b"bench-fingerprint-key-0123456789"
ROUNDS = 400
BATCH = 500
BATCHES = 30
ACTOR = {"kind": "system", "id": "bench"}  # who creates the logs
ADMIN_URL = os.environ.get(
    "LEDGER_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _unguarded(data: dict[str, Any], **_: object) -> Guarded:
    """``guard`` taken out: ``data`` as posted, nothing redacted."""
    return Guarded(data)


@contextmanager
def guard_off() -> Iterator[None]:
    # validate.py calls the ``guard`` it imported: replace that name, restore it on the way out.
    with mock.patch.object(validate_module, "guard", _unguarded):
        yield


def validation_rate(events: list[dict[str, Any]], policy: GuardPolicy) -> float:
    for event in events:  # warm caches
        validate_event(event, policy=policy, fingerprint_key=KEY)
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(ROUNDS):
            for event in events:
                validate_event(event, policy=policy, fingerprint_key=KEY)
        best = max(best, ROUNDS * len(events) / (time.perf_counter() - start))
    return best


def batches(events: list[dict[str, Any]], tag: str) -> list[list[dict[str, Any]]]:
    out = []
    for b in range(BATCHES):
        batch = []
        for k in range(BATCH):
            event = copy.deepcopy(events[k % len(events)])
            event["id"] = f"{tag}-{b}-{k}"
            event["subject"] = f"conversations/{tag}-{b}-{k % 40}"
            batch.append(event)
        out.append(batch)
    return out


def ingest_rate(url: str, log_id: str, work: list[list[dict[str, Any]]]) -> float:
    """Events/s through validate → prepare → append_batch, one transaction per batch."""
    master = b"\x01" * 32
    engine = make_engine(url, pool_size=1)
    keys = KeyRing.from_master(master)
    principal = Principal(1, log_id, "writer", "bench")
    with unit_of_work(engine) as conn:
        create_log(
            conn, keys, log_id, origin_prefix="bench.test", actor=ACTOR, now=datetime.now(UTC)
        )
    with unit_of_work(engine) as conn:
        log = get_log(conn, log_id)
    start = time.perf_counter()
    for raw in work:
        prepared = prepare_all(
            validate_all(raw, batch=True, policy=GuardPolicy(), fingerprint_key=KEY), batch=True
        )
        with unit_of_work(engine) as conn:
            append_batch(
                conn,
                log,
                [AppendRequest(prepared, principal)],
                signers=keys.signers,
                data_keys=keys.data_keys,
                now=datetime.now(UTC),
            )
    rate = sum(len(b) for b in work) / (time.perf_counter() - start)
    engine.dispose()
    return rate


def with_database(run: Callable[[str], None]) -> None:
    name = f"ledger_bench_events_{secrets.token_hex(3)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade_schema(url)
        run(url)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    events = json.loads(EXAMPLE.read_text())["events"]
    rates = {
        "guard on, cards=reject": validation_rate(events, GuardPolicy()),
        "guard on, mask all": validation_rate(
            events, GuardPolicy(cards="mask", emails="mask", phones="mask", ssns="mask")
        ),
    }
    with guard_off():
        rates["guard off"] = validation_rate(events, GuardPolicy())
    print("validation alone (example batch, one core):")
    for label, rate in rates.items():
        share = rate / rates["guard off"]
        print(f"  {label:>24}: {rate:10,.0f} events/s  ({share:.0%} of guard off)")

    def measure(url: str) -> None:
        ingest_rate(url, "warmup", batches(events, "w")[:3])
        on_rates, off_rates = [], []
        for round_ in range(3):  # alternate, so drift on a shared machine hits both alike
            on_rates.append(ingest_rate(url, f"on-{round_}", batches(events, f"on{round_}")))
            with guard_off():
                off_rates.append(ingest_rate(url, f"off-{round_}", batches(events, f"off{round_}")))
        on, off = max(on_rates), max(off_rates)
        print(f"ingest without HTTP ({BATCHES} batches of {BATCH}, real PostgreSQL):")
        print(f"  {'guard on':>24}: {on:10,.0f} events/s")
        print(f"  {'guard off':>24}: {off:10,.0f} events/s")
        verdict = "PASS" if on / off >= 0.8 else "MISS"
        print(f"  guard on / guard off = {on / off:.0%}   target >= 80%   {verdict}")

    with_database(measure)


if __name__ == "__main__":
    main()
