"""The auditor console's performance on a big log (issue 15): the trail view in a real browser,
the conversation search, and beside them the bare trail API call, all in the same run.

    .venv/bin/python ops/bench_console.py [--entries 1000000] [--loads 20] [--searches 50]
                                          [--keep]

In one fresh database (``ledger_benchv_<hex>`` on ``LEDGER_BENCH_DATABASE_URL``, as
``ops/bench_verify.py``) it:

1. fills a log with ``--entries`` small events through the sequencer (bench_verify's filler:
   conversations of 20 events; every 5,000th event goes to one conversation, ``trail-200``, a
   200-event trail spread over the whole log; one conversation in ten is handed off);
2. reads the log into the console's search index (``catch_up`` until done): entries/s;
3. starts ``uvicorn --factory api.main:create_app_from_env`` in its own process and measures
   over HTTP/1.1 keep-alive: the bare trail API call of ``trail-200`` (``--loads`` times), and
   ``--searches`` conversation searches of each kind (newest page; by data subject; handed off;
   by event type; a time range): p50 / p95 / max;
4. drives Debian's chromium (Playwright): ``--loads`` loads of the trail view's address, each
   timed from navigation to ``data-verification`` being set (page, scripts, the API call,
   every SHA-256, inclusion proof, Ed25519 check and commitment, and the rendered timeline).

Targets (printed PASS/MISS): trail view p95 < 1 s; search p95 < 200 ms.
Exit 0 whatever the figures (a measurement), 2 if it could not run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_verify import MASTER_KEY, TRAIL, Filler, fresh_database, settle, start_uvicorn

from ledger.core.entry import EventHeader
from ledger.domain import LogInfo, PreparedEvent
from ledger.services.admin.credentials import create_credential
from ledger.services.admin.logs import create_log
from ledger.services.console.index import catch_up
from ledger.storage.db import make_engine, unit_of_work
from ledger.storage.keystore import DataKeyStore, KeyRing
from ledger.storage.logs import get_log

ACTOR = {"kind": "system", "id": "bench-console"}
ORIGIN_PREFIX = "bench.test"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TRAIL_VIEW_TARGET_S = 1.0
SEARCH_TARGET_MS = 200.0


class ConsoleFiller(Filler):
    """bench_verify's events, with one conversation in ten handed off (its 10th event a
    ``handoff.requested``) and customers spread over 1,000 ids, so that every search filter
    has something to find."""

    def event(self) -> PreparedEvent:
        n = self.n
        prepared = super().event()
        header = prepared.header
        customer = f"cust-{(n // 20) % 1000}"
        handoff = n % 200 == 10 and header.conversation_id != TRAIL
        replaced = EventHeader(
            event_id=header.event_id,
            source=header.source,
            type="handoff.handoff.requested.v1" if handoff else header.type,
            time=header.time,
            conversation_id=header.conversation_id,
            actor={"kind": "customer", "id": customer}
            if not handoff
            else {"kind": "ai_agent", "id": "bot"},
            outcome=header.outcome,
            resource=header.resource,
        )
        return PreparedEvent(
            header=replaced,
            scope=prepared.scope,
            salt=prepared.salt,
            canonical_data=prepared.canonical_data,
            commitment=prepared.commitment,
            request_digest=prepared.request_digest,
        )


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(ordered[len(ordered) // 2], 1),
        "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 1),
        "max": round(ordered[-1], 1),
        "n": len(ordered),
    }


def timed_get(conn: http.client.HTTPConnection, path: str, token: str) -> float:
    started = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise SystemExit(f"{path}: HTTP {response.status}")
    return (time.perf_counter() - started) * 1000


def api_latencies(port: int, log_id: str, token: str, loads: int, searches: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    trail = f"/v1/logs/{log_id}/conversations/{TRAIL}/trail"
    timed_get(conn, trail, token)  # warm-up
    out: dict[str, Any] = {
        "trail_api_ms": percentiles([timed_get(conn, trail, token) for _ in range(loads)])
    }
    kinds = {
        "newest": {},
        "subject": {"subject": "cust-417"},
        "handed_off": {"handed_off": "true"},
        "event_type": {"event_type": "handoff.handoff.requested.v1"},
        "time_range": {"from": "2020-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"},
        "subject_and_handed_off": {"subject": "cust-417", "handed_off": "true"},
    }
    for name, query in kinds.items():
        path = f"/v1/logs/{log_id}/conversations?{urlencode({**query, 'limit': 25})}"
        timed_get(conn, path, token)
        out[f"search_{name}_ms"] = percentiles(
            [timed_get(conn, path, token) for _ in range(searches)]
        )
    conn.close()
    return out


def browser_loads(port: int, log_id: str, token: str, loads: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{port}"
    address = f"{base}/console/logs/{log_id}/conversations/{TRAIL}"
    wall: list[float] = []
    in_page: list[float] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/console/")
        page.evaluate("(t) => sessionStorage.setItem('handoff-ledger.token', t)", token)
        for i in range(loads + 2):  # two warm-up loads (key pinned, caches warm)
            started = time.perf_counter()
            page.goto(address)
            page.wait_for_selector(
                "#trail[data-verification=verified], #trail[data-verification=failed]",
                timeout=60_000,
            )
            elapsed = (time.perf_counter() - started) * 1000
            verdict = page.get_attribute("#trail", "data-verification")
            if verdict != "verified":
                raise SystemExit(f"the trail did not verify in the browser: {verdict}")
            if i >= 2:
                wall.append(elapsed)
                in_page.append(float(page.get_attribute("#trail", "data-elapsed-ms") or 0))
        entries = page.locator(".timeline > li").count()
        browser.close()
    return {
        "trail_view_ms": percentiles(wall),
        "trail_view_in_page_ms": percentiles(in_page),
        "trail_entries": entries,
    }


class Args(argparse.Namespace):
    entries: int
    loads: int
    searches: int
    keep: bool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--searches", type=int, default=50)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(namespace=Args())
    if not Path(CHROMIUM).exists():
        print(
            "cannot run: /usr/bin/chromium is missing (apt-get install chromium)", file=sys.stderr
        )
        return 2
    results: dict[str, Any] = {"entries": args.entries}
    with fresh_database() as url:
        engine = make_engine(url, pool_size=2)
        keys = KeyRing.from_master(MASTER_KEY)
        log_id = "console-bench"
        with unit_of_work(engine) as conn:
            create_log(conn, keys, log_id, origin_prefix=ORIGIN_PREFIX, actor=ACTOR, now=_now())
            token = create_credential(
                conn, keys, log_id=log_id, role="auditor", label="bench", actor=ACTOR, now=_now()
            ).token
            log: LogInfo = get_log(conn, log_id)
        filler = ConsoleFiller(engine, log, payload_bytes=40, trail_every=5000)
        seconds = filler.append(args.entries)
        results["fill"] = {"seconds": round(seconds, 1), "per_s": round(args.entries / seconds)}
        print(f"filled {args.entries} entries in {seconds:.1f} s", flush=True)
        started = time.perf_counter()
        data_keys = DataKeyStore(MASTER_KEY)
        while True:
            with unit_of_work(engine) as conn:
                state = catch_up(conn, log, data_keys, budget=100_000)
            if state.indexed >= state.tree_size:
                break
        seconds = time.perf_counter() - started
        results["index"] = {"seconds": round(seconds, 1), "per_s": round(args.entries / seconds)}
        print(f"indexed in {seconds:.1f} s", flush=True)
        results["database_size"] = settle(url)
        engine.dispose()
        server, port = start_uvicorn(url)
        try:
            results.update(api_latencies(port, log_id, token, args.loads, args.searches))
            results.update(browser_loads(port, log_id, token, args.loads))
        finally:
            server.terminate()
            server.wait(timeout=30)
    view = results["trail_view_ms"]["p95"] / 1000
    search = max(v["p95"] for k, v in results.items() if k.startswith("search_"))
    results["targets"] = {
        "trail_view_p95_under_1s": "PASS" if view < TRAIL_VIEW_TARGET_S else "MISS",
        "search_p95_under_200ms": "PASS" if search < SEARCH_TARGET_MS else "MISS",
    }
    print(json.dumps(results, indent=2))
    return 0


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


if __name__ == "__main__":
    sys.exit(main())
