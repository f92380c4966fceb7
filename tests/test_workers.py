"""``ledger/server/workers.py``: several workers behind one port, connections dealt in turn."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


def _start(app: str, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ledger.server.workers",
            "--app",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
    )
    return proc, port


def _pid_of(conn: http.client.HTTPConnection) -> int:
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.status == 200
    return int(response.read())


def _worker_pids(port: int) -> set[int]:
    """Both workers' pids: two new connections are dealt one to each."""
    pids = set()
    for _ in range(2):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        pids.add(_pid_of(conn))
        conn.close()
    assert len(pids) == 2
    return pids


def _wait_until_serving(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, "the supervisor exited"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            _pid_of(conn)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        else:
            return
        finally:
            conn.close()


@pytest.fixture
def pool() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    proc, port = _start("tests.pid_app:app", workers=2)
    try:
        _wait_until_serving(proc, port)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_connections_made_together_are_dealt_evenly(
    pool: tuple[subprocess.Popen[bytes], int],
) -> None:
    """Four keep-alive clients connecting at once: two per worker (uvicorn's shared socket
    tends to give all four to one), and each keeps its worker for every request."""
    _, port = pool
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(4)]
    try:
        for conn in conns:
            conn.connect()
        pids = [_pid_of(conn) for conn in conns]
        assert sorted(Counter(pids).values()) == [2, 2]
        for conn, pid in zip(conns, pids, strict=True):
            assert {_pid_of(conn) for _ in range(5)} == {pid}
    finally:
        for conn in conns:
            conn.close()


def test_a_dead_worker_is_replaced(pool: tuple[subprocess.Popen[bytes], int]) -> None:
    _, port = pool
    before = _worker_pids(port)
    victim = before.pop()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        seen = set()
        for _ in range(4):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            with contextlib.suppress(OSError):  # dealt to the dead worker before it was noticed
                seen.add(_pid_of(conn))
            conn.close()
        if len(seen) == 2 and victim not in seen:
            break
        assert time.monotonic() < deadline, f"no replacement worker: {seen}"
        time.sleep(0.2)


def test_sigterm_stops_the_supervisor_and_its_workers(
    pool: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, port = pool
    workers = _worker_pids(port)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass


def test_a_worker_that_cannot_start_stops_everything_with_status_3() -> None:
    proc, port = _start("tests.no_such_module:app", workers=2)
    try:
        assert proc.wait(timeout=60) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass
