"""A real server in its own process, for the tests that need one (several workers, clients on
other threads, a server holding keys while a command changes them): start it, wait until it
answers ``/healthz``, stop it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def uvicorn_command(port: int) -> list[str]:
    """The API under uvicorn on ``port``, configured from the environment (as in production)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "api.main:create_app_from_env",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def wait_until_healthy(
    url: str,
    proc: subprocess.Popen[bytes],
    *,
    timeout: float = 30.0,
    log: Path | None = None,
) -> None:
    """Return once ``url/healthz`` answers 200; ``RuntimeError`` (with the tail of ``log``) if
    ``proc`` exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            said = "" if log is None else ":\n" + log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"server {url} did not start{said}")
        time.sleep(0.2)


@contextmanager
def serving(
    command: Sequence[str],
    port: int,
    env: Mapping[str, str],
    *,
    log: Path | None = None,
    timeout: float = 30.0,
    stop_timeout: float = 10.0,
) -> Iterator[str]:
    """Run ``command`` (a server listening on ``port``) from the repository root, with ``env``
    over this process's environment and its output in ``log`` (else this process's); yield its
    URL once it is healthy; stop it (SIGTERM, then wait) however the block ends."""
    out = None if log is None else log.open("wb")
    try:
        proc = subprocess.Popen(
            list(command),
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=None if out is None else subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(url, proc, timeout=timeout, log=log)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=stop_timeout)
    finally:
        if out is not None:
            out.close()
