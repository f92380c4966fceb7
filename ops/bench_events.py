"""Validation throughput on the example batch, guard on and off (issue 3: the guard must keep
batch ingest >= 80% of the same ingest without it). Run: ``.venv/bin/python ops/bench_events.py``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import ledger.events.validate as validate_module
from ledger.events import GuardPolicy, validate_event
from ledger.events.guard import Guarded

EXAMPLE = Path(__file__).resolve().parents[2] / "shared/examples/escalated-conversation.json"
KEY = b"bench-fingerprint-key-0123456789"
ROUNDS = 400


def events_per_second(events: list[dict[str, Any]], policy: GuardPolicy) -> float:
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


def main() -> None:
    events = json.loads(EXAMPLE.read_text())["events"]
    rates = {
        "guard on, cards=reject": events_per_second(events, GuardPolicy()),
        "guard on, mask all": events_per_second(
            events, GuardPolicy(cards="mask", emails="mask", phones="mask", ssns="mask")
        ),
    }
    real_guard = validate_module.guard
    validate_module.guard = lambda data, **_: Guarded(data)  # type: ignore[assignment]
    try:
        rates["guard off"] = events_per_second(events, GuardPolicy())
    finally:
        validate_module.guard = real_guard
    for label, rate in rates.items():
        share = rate / rates["guard off"]
        print(f"{label:>24}: {rate:10,.0f} events/s  ({share:.0%} of guard off)")


if __name__ == "__main__":
    main()
