"""The no-database ceiling for ``ops/bench.py``: what this machine allows before any storage.

An ASGI app served by the same stack (uvicorn's loop and parser; for several workers our
supervisor, ``ledger/server/workers.py``) and worker count as the ledger, doing
for each ``POST`` exactly the ledger's work before its sequencer — read the body, parse it,
validate every event (envelope, limits, card-data guard, type model), and prepare it
(canonical payload, salt, commitment) — then answering 201 with a receipt-shaped body. No token
lookup, no sequencing, no signing, no database. The ledger's (c) and (d) cannot beat these rows;
the benchmark prints them next to the targets so the gap between "the ledger is slow" and "the
target is beyond this machine" is measured in the same run, not argued.

    python -m uvicorn --app-dir ops bench_ceiling:app                        # one worker
    python -m ledger.server.workers --app-dir ops --app bench_ceiling:app --workers N   # several
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from ledger.events import GuardPolicy
from ledger.services.ingest.prepare import IngestLimits, parse_body, prepare_all, validate_all

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

_POLICY = GuardPolicy()  # the bench log's policy: the default (cards rejected)
_KEY = b"bench-ceiling-fingerprint-key-32"
_LIMITS = IngestLimits()
_CHECKPOINT = "x" * 240  # a signed checkpoint note is about this long


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] != "POST":  # the readiness probe
        await _answer(send, 200, b'{"status":"ok"}')
        return
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    raws, batch = parse_body(b"".join(chunks), _LIMITS)
    prepared = prepare_all(
        validate_all(raws, batch=batch, policy=_POLICY, fingerprint_key=_KEY), batch=batch
    )
    receipts = [
        {"event_id": p.header.event_id, "seq": n, "leaf_hash": "A" * 44}
        for n, p in enumerate(prepared)
    ]
    await _answer(send, 201, orjson.dumps({"receipts": receipts, "checkpoint": _CHECKPOINT}))


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
