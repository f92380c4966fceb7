"""A long range verified by several processes, all reading one snapshot.

One Python process checks entries at the speed of one core; the verifier's work per entry
(parse, three hashes, a decryption, and reading the rows) is CPU-bound, so a long run is split
into ``jobs`` contiguous parts. The caller's process checks the first part from the true
starting state; each other part runs in a process of its own, in a repeatable-read
transaction importing the caller's snapshot (``pg_export_snapshot``), so every part sees
exactly the rows the caller sees. A process forked from the caller never touches the caller's
connections: it opens its own, and ends with ``os._exit`` (multiprocessing's), so no finalizer
closes an inherited one.

A part that does not start at the beginning starts from the state the database claims there:
the stored perfect nodes that tile ``[0, start)`` and the stored leaf hash of ``start - 1``.
That claim is not trusted: the part before recomputes every node completed in its range and
every leaf hash, and its final frontier and last leaf must equal the next part's starting
state, or the run fails. The first failure in log order is the one reported.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from typing import Any

from sqlalchemy import Connection

from ledger.core.merkle import range_nodes
from ledger.domain import LogInfo
from ledger.errors import IntegrityFailure, WorkerFailed
from ledger.services.verification.range import (
    CHUNK,
    Progress,
    RangeChecker,
    RangeResult,
    SigningKey,
)
from ledger.storage.entries import stored_leaf_hash
from ledger.storage.keystore import DataKeyStore
from ledger.storage.proofs import fetch_nodes
from ledger.storage.verification import export_snapshot, read_in_snapshot, transaction_isolation

PARALLEL_MIN = 200_000
"""Entries below which one process is faster than starting others (~0.5 s each)."""


@dataclass(frozen=True)
class Part:
    index: int
    start: int
    end: int
    frontier: list[bytes]
    prev: bytes


@dataclass(frozen=True)
class Job:
    """What a verification process is handed (pickled): where to read, and its part."""

    url: str
    snapshot: str
    log: LogInfo
    data_keys: DataKeyStore
    keys: dict[bytes, SigningKey]
    erased_keys: frozenset[int]
    """Data key ids a signed erasure record names (``ErasureRecords``), loaded once per log."""
    part: Part


def split(start: int, end: int, jobs: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut into up to ``jobs`` ranges of whole chunks, or one range when the
    run is too short to be worth more processes."""
    jobs = max(1, min(jobs, (end - start) // (PARALLEL_MIN // 2)))
    if jobs == 1:
        return [(start, end)]
    step = -(-(end - start) // jobs // CHUNK) * CHUNK
    bounds = [start + i * step for i in range(jobs)] + [end]
    return [(lo, hi) for lo, hi in itertools.pairwise(bounds) if lo < hi]


def check_range(
    conn: Connection,
    log: LogInfo,
    *,
    data_keys: DataKeyStore,
    keys: dict[bytes, SigningKey],
    start: int,
    end: int,
    frontier: list[bytes],
    prev: bytes,
    jobs: int,
    erased_keys: frozenset[int] = frozenset(),
    progress: Progress | None = None,
) -> RangeResult:
    """``RangeChecker(...).run()`` over ``[start, end)``, in ``jobs`` processes when long."""
    isolation = transaction_isolation(conn)
    ranges = split(start, end, jobs if isolation in ("repeatable read", "serializable") else 1)
    later = [_claimed_start(conn, log, i, lo, hi) for i, (lo, hi) in enumerate(ranges) if i]
    if len(ranges) == 1 or any(part is None for part in later):
        # A missing node or entry at a boundary: one process finds and names it.
        return RangeChecker(
            conn,
            log,
            data_keys=data_keys,
            keys=keys,
            start=start,
            end=end,
            frontier=frontier,
            prev=prev,
            erased_keys=erased_keys,
        ).run(progress)
    parts: list[Part] = [p for p in later if p is not None]
    snapshot = export_snapshot(conn)
    url = conn.engine.url.render_as_string(hide_password=False)
    ctx = _context()
    done = ctx.Array("q", len(parts), lock=False)  # entries checked by each process
    workers = []
    for part in parts:
        mine, theirs = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_work,
            name=f"verify-{log.id}-{part.index}",
            daemon=True,
            args=(theirs, done, Job(url, snapshot, log, data_keys, keys, erased_keys, part)),
        )
        proc.start()
        theirs.close()
        workers.append((proc, mine))

    def show(log_id: str, size: int, _end: int) -> None:
        if progress is not None:
            progress(log_id, size + sum(done), end)

    try:
        # A failure here is the first in log order: raised at once, the others are stopped.
        first = RangeChecker(
            conn,
            log,
            data_keys=data_keys,
            keys=keys,
            start=start,
            end=ranges[0][1],
            frontier=frontier,
            prev=prev,
            erased_keys=erased_keys,
            part=True,
        ).run(show)
        results = [first] + [_receive(proc, pipe, log) for proc, pipe in workers]
    finally:
        for proc, pipe in workers:
            if proc.is_alive():
                proc.terminate()
            proc.join()
            pipe.close()
    return _combine(log, results, parts)


def _context() -> multiprocessing.context.ForkContext | multiprocessing.context.SpawnContext:
    """Fork starts a process at once; a process with other threads (whose locks a child could
    inherit held) spawns a fresh interpreter instead (~0.4 s of imports)."""
    if threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _claimed_start(conn: Connection, log: LogInfo, index: int, start: int, end: int) -> Part | None:
    """The state the database claims at ``start``, or None if part of it is missing."""
    coords = range_nodes(0, start)
    nodes = fetch_nodes(conn, log.id, coords)
    prev = stored_leaf_hash(conn, log.id, start - 1)
    if prev is None or any(c not in nodes for c in coords):
        return None
    return Part(index, start, end, [nodes[c] for c in coords], prev)


def _combine(
    log: LogInfo, results: Sequence[RangeResult | IntegrityFailure], parts: Sequence[Part]
) -> RangeResult:
    """The parts' results joined in log order; the first failure, or the first seam where a
    part does not end in the state the next one started from, is raised."""
    total = results[0]
    if isinstance(total, IntegrityFailure):
        raise total
    for part, result in zip(parts, results[1:], strict=True):
        if total.size != part.start or total.last_leaf != part.prev:
            raise IntegrityFailure(
                "recomputed leaf hash differs from the stored one where"
                " verification processes meet",
                log=log.id,
                seq=part.start - 1,
            )
        if total.frontier != part.frontier:
            raise IntegrityFailure(
                "recomputed tree differs from the stored nodes where verification processes meet",
                log=log.id,
                seq=part.start,
            )
        if isinstance(result, IntegrityFailure):
            raise result
        result.entries += total.entries
        result.checkpoints += total.checkpoints
        result.erased_payloads += total.erased_payloads
        total = result
    return total


def _receive(proc: Any, pipe: Pipe, log: LogInfo) -> RangeResult | IntegrityFailure:
    try:
        kind, value = pipe.recv()
    except EOFError:
        proc.join()
        raise WorkerFailed(
            f"verification process for log {log.id} exited with code"
            f" {proc.exitcode} before reporting"
        ) from None
    if kind == "ok":
        return RangeResult(**value)
    if kind == "failure":
        return IntegrityFailure(value.pop("what"), **value)
    raise WorkerFailed(f"verification process for log {log.id} could not run: {value}")


def _work(pipe: Pipe, done: Any, job: Job) -> None:
    """A spawned process: one part, in the parent's snapshot; reports through ``pipe``."""
    from ledger.storage.db import make_engine

    part = job.part

    def show(_log: str, size: int, _end: int) -> None:
        done[part.index - 1] = size - part.start

    message: tuple[str, Any]
    engine = make_engine(job.url, pool_size=1, system="verifier")  # as the parent: every tenant
    try:
        with engine.connect() as conn:
            read_in_snapshot(conn, job.snapshot)
            result = RangeChecker(
                conn,
                job.log,
                data_keys=job.data_keys,
                keys=job.keys,
                start=part.start,
                end=part.end,
                frontier=part.frontier,
                prev=part.prev,
                erased_keys=job.erased_keys,
                part=True,
            ).run(show)
            conn.rollback()
        message = ("ok", vars(result))
    except IntegrityFailure as failure:
        message = (
            "failure",
            {
                "what": failure.what,
                "log": failure.log,
                "seq": failure.seq,
                "expected": failure.expected,
                "found": failure.found,
            },
        )
    except Exception as exc:  # reported to the parent, which exits 2: nothing was proven
        message = ("error", f"{type(exc).__name__}: {exc}")
    finally:
        engine.dispose()
    pipe.send(message)
    pipe.close()
