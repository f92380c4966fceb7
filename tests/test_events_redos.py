"""No detector of the card-data guard is worse than linear: a 256 KiB hostile string costs
milliseconds, not minutes (a regular-expression denial of service would show as seconds here).
Throughput is measured by ``ops/bench_events.py``, not asserted in tests.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ledger.events import GuardPolicy, validate_event

EXAMPLE = Path(__file__).resolve().parents[1].parent / "shared/examples/escalated-conversation.json"
KEY = b"bench-fingerprint-key-0123456789"


PATHOLOGICAL = {
    "no digits": "a " * (128 * 1024),
    "one long number": "7" * (256 * 1024),
    "groups of three": "123 " * (64 * 1024),
    "card-shaped groups": "4111 " * (52 * 1024),
    "single digits": "1 " * (128 * 1024),
    "many emails": "a@b.co " * (37 * 1024),
    "json with pin": "[" + '"pin",' * (43 * 1024) + "1]",
}


@pytest.mark.slow
@pytest.mark.parametrize("text", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_a_256_kib_string_costs_linear_time(text: str) -> None:
    """Every detector is linear in the string; a quadratic slip shows here as seconds."""
    event = next(e for e in json.loads(EXAMPLE.read_text())["events"] if "content" in e["data"])
    event["data"]["content"]["parts"][0]["content"] = text[: 256 * 1024]
    policy = GuardPolicy(cards="mask", emails="mask", phones="mask", ssns="mask")
    start = time.perf_counter()
    validate_event(event, policy=policy, fingerprint_key=KEY)
    assert time.perf_counter() - start < 3.0
