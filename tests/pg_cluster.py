"""PostgreSQL clusters of the tests' own: a primary and a streaming standby on free ports, made
with this machine's PostgreSQL binaries (``initdb``, ``pg_basebackup -R``, ``pg_ctl``), in a
temporary directory owned by the ``postgres`` user when the tests run as root (PostgreSQL
refuses to run as root). Used by the failover tests (``tests/test_failover.py``).

The synchronous standby is named on the primary once the standby is copied (``ALTER SYSTEM``
after ``pg_basebackup``): a promoted standby that still waited for a synchronous standby of its
own would hang every commit (a failover manager clears it too: Patroni's ``synchronous_mode``,
non-strict).
"""

from __future__ import annotations

import contextlib
import os
import pwd
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


def run_as_postgres(*argv: str | Path) -> None:
    result = subprocess.run(
        [*_as_postgres(), *map(str, argv)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr[-2000:]}")


def _parent_of(stat: Path) -> int | None:
    try:
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


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
            "-c max_connections=40",
            "-c shared_buffers=16MB",
            "-c wal_keep_size=128MB",  # the WAL pg_rewind reads back on a former primary
            *(f"-c {s}" for s in settings),
        ]
        log = self.root / f"{self.name}.log"
        run_as_postgres(
            self.bin / "pg_ctl",
            "-D",
            self.datadir,
            "-l",
            log,
            "-w",
            "-o",
            " ".join(options),
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        run_as_postgres(self.bin / "pg_ctl", "-D", self.datadir, "-m", mode, "-w", "stop")

    def postmaster_pid(self) -> int:
        return int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])

    def kill9(self) -> float:
        """``kill -9`` of the postmaster, then of every process it started: the machine died
        (no backend lingers to finish a reply or hold the shared memory). Returns when the
        postmaster was killed (``time.monotonic``)."""
        pid = self.postmaster_pid()
        children = [
            int(stat.parent.name)
            for stat in Path("/proc").glob("[0-9]*/stat")
            if _parent_of(stat) == pid
        ]
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{p}").exists() for p in (pid, *children)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} still runs after kill -9")
            time.sleep(0.02)
        return killed_at

    def promote(self) -> None:
        run_as_postgres(self.bin / "pg_ctl", "-D", self.datadir, "-w", "promote")

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
        run_as_postgres(self.bin / "pg_rewind", "-D", self.datadir, "--source-server", source, "-R")
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
        # Data checksums: pg_rewind may rejoin a former primary (the fencing step).
        run_as_postgres(
            binaries / "initdb",
            "-D",
            primary.datadir,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "--no-instructions",
            "--data-checksums",
        )
        primary.start()
        with psycopg.connect(primary.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE ledger")
        run_as_postgres(
            binaries / "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            standby.datadir,
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-d",
            f"application_name={STANDBY_NAME}",
        )
        standby.start()
        pair = Pair(primary, standby)
        if synchronous:
            with psycopg.connect(primary.url("postgres"), autocommit=True) as conn:
                conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
                conn.execute("ALTER SYSTEM SET synchronous_commit = 'on'")
                conn.execute("SELECT pg_reload_conf()")
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
