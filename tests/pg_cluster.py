"""PostgreSQL clusters of the tests' own: a primary and a streaming standby on free ports, made
with this machine's PostgreSQL binaries (``initdb``, ``pg_basebackup -R``, ``pg_ctl``), in a
temporary directory owned by the ``postgres`` user when the tests run as root (PostgreSQL
refuses to run as root). Used by the failover tests (``tests/test_failover.py``).

The synchronous standby is named on the primary's command line, not in its configuration
files: ``pg_basebackup`` copies those, and a promoted standby that still waited for a
synchronous standby of its own would hang every commit (a failover manager clears it too:
Patroni's ``synchronous_mode``, non-strict).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.conftest import free_port

STANDBY_NAME = "standby1"


def postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with the tools the tests need."""
    found = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        tools = ("initdb", "pg_ctl", "pg_basebackup", "pg_rewind", "postgres")
        if all((path / tool).is_file() for tool in tools) and path.parent.name.isdigit():
            found.append((int(path.parent.name), path))
    return max(found)[1] if found else None


def _as_postgres() -> list[str]:
    """Run as the ``postgres`` OS user when we are root (PostgreSQL will not run as root)."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


def _run(*argv: str | Path) -> None:
    result = subprocess.run(  # noqa: S603 - the machine's own PostgreSQL tools
        [*_as_postgres(), *map(str, argv)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr[-2000:]}")


@dataclass
class Node:
    bin: Path
    root: Path
    name: str
    port: int

    @property
    def datadir(self) -> Path:
        return self.root / self.name

    def url(self, database: str = "ledger") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, *settings: str) -> None:
        """``pg_ctl start`` on this node's port; ``settings``: ``name=value`` given as ``-c``."""
        options = [
            f"-p {self.port}",
            f"-k {self.root}",
            "-c listen_addresses=127.0.0.1",
            "-c wal_log_hints=on",  # pg_rewind may rejoin a former primary (the fencing step)
            "-c max_connections=40",
            "-c shared_buffers=16MB",
            *(f"-c {s}" for s in settings),
        ]
        log = self.root / f"{self.name}.log"
        _run(self.bin / "pg_ctl", "-D", self.datadir, "-l", log, "-w", "-o", " ".join(options),
             "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        _run(self.bin / "pg_ctl", "-D", self.datadir, "-m", mode, "-w", "stop")

    def postmaster_pid(self) -> int:
        return int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])

    def kill9(self) -> None:
        """``kill -9`` of the postmaster: the machine's crash, as the standby sees it."""
        os.kill(self.postmaster_pid(), signal.SIGKILL)
        # Its backends notice the postmaster is gone and exit; wait until the port is free.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=1).close()
            except psycopg.OperationalError:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} still answers after kill -9")

    def promote(self) -> None:
        _run(self.bin / "pg_ctl", "-D", self.datadir, "-w", "promote")

    def is_standby(self) -> bool:
        with psycopg.connect(self.url("postgres"), connect_timeout=3) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        return bool(row and row[0])

    def rejoin_as_standby_of(self, primary: Node) -> None:
        """The fencing step for a former primary (what Patroni does with ``use_pg_rewind``):
        stopped, rewound to the new primary's timeline and started as its standby, so it can
        never again take a write."""
        with contextlib.suppress(RuntimeError):
            self.stop()
        source = f"host=127.0.0.1 port={primary.port} user=postgres dbname=postgres"
        _run(self.bin / "pg_rewind", "-D", self.datadir, "--source-server", source, "-R")
        self.start()


@dataclass
class Pair:
    primary: Node
    standby: Node

    def multi_host_url(self, database: str = "ledger") -> str:
        """libpq's failover URL: the first host that takes writes."""
        return (
            f"postgresql://postgres@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
            f"/{database}?target_session_attrs=read-write&connect_timeout=2"
        )

    def wait_replayed(self, timeout: float = 10) -> None:
        """Until the standby has replayed everything the primary wrote so far."""
        with psycopg.connect(self.primary.url("postgres"), autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.standby.url("postgres"), autocommit=True) as conn:
            while True:
                done = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (row[0],)
                ).fetchone()
                if done and done[0]:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError("the standby did not catch up")
                time.sleep(0.05)


@contextlib.contextmanager
def replicated_pair(*, synchronous: bool) -> Iterator[Pair]:
    """A primary with database ``ledger`` and a streaming standby; ``synchronous``: every
    COMMIT waits for the standby to have flushed it (``synchronous_commit = on`` with the
    standby named in ``synchronous_standby_names``). Torn down (``-m immediate``) on exit."""
    binaries = postgres_bin()
    if binaries is None:
        raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql")
    root = Path(tempfile.mkdtemp(prefix="ledger-failover-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    primary = Node(binaries, root, "primary", free_port())
    standby = Node(binaries, root, "standby", free_port())
    try:
        _run(binaries / "initdb", "-D", primary.datadir, "-A", "trust", "-U", "postgres",
             "--no-sync", "--no-instructions")  # fmt: skip
        primary.start(
            *((f"synchronous_standby_names={STANDBY_NAME}",) if synchronous else ()),
            "synchronous_commit=on",
        )
        with psycopg.connect(primary.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE ledger")
        _run(binaries / "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port),
             "-U", "postgres", "-D", standby.datadir, "-R", "-X", "stream", "-c", "fast",
             "-d", f"application_name={STANDBY_NAME}")  # fmt: skip
        standby.start()
        pair = Pair(primary, standby)
        if synchronous:
            _wait_sync(primary)
        yield pair
    finally:
        for node in (standby, primary):
            if (node.datadir / "postmaster.pid").exists():
                with contextlib.suppress(RuntimeError):
                    node.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def _wait_sync(primary: Node, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(primary.url("postgres"), autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s",
                (STANDBY_NAME,),
            ).fetchone()
            if row and row[0] == "sync":
                return
            time.sleep(0.05)
    raise RuntimeError("the standby did not become synchronous")


def version_of(binaries: Path) -> str:
    out = subprocess.run(  # noqa: S603 - the machine's own postgres binary
        [str(binaries / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"\d+(\.\d+)?", out)
    return match.group(0) if match else out.strip()
