"""Backup and point-in-time-restore drill, with the rollback check against the anchors.

Runs here, on this machine's PostgreSQL binaries, in a temporary directory, on free ports (the
same steps as ``ops/RUNBOOK.md`` "Backup and point-in-time restore"):

1. ``initdb`` a primary with WAL archiving (``archive_mode = on``, ``archive_command`` copying
   each segment to an archive folder), database ``ledger``, ``ledger db upgrade``, a log;
2. append (``ledger demo``) and anchor (``ledger anchor``, ``LEDGER_ANCHOR_DIR``); take a base
   backup (``pg_basebackup``);
3. append and anchor again; note the database's clock (the restore target); append and anchor
   a third time; switch and archive the last WAL segment; the primary "dies" (``-m immediate``);
4. restore the base backup to the noted time (``recovery_target_time``): ``ledger verify --full``
   with the anchor directory must report the rollback past the last anchored checkpoint,
   exit 1;
5. restore the base backup to the end of the archived WAL: ``ledger verify --full``, exit 0.

Each verification uses a fresh verifier state directory, so what finds the rollback is the
anchors alone. Prints the timings of each step; exit 0 when the drill behaved as above, 1 when
it did not, 2 when it could not run (no PostgreSQL binaries).

    python ops/restore_drill.py [--conversations N] [--keep]

As root (the tests' container), PostgreSQL runs as the ``postgres`` OS user (it refuses root);
the ledger commands run as the caller and reach it over TCP.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
LOG_ID = "drill"
PG_TOOLS = ("initdb", "pg_ctl", "pg_basebackup", "postgres")


class _DrillFailed(Exception):
    """The drill ran but something did not behave as the runbook says."""


def postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding the tools the drill needs."""
    found = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        if all((path / tool).is_file() for tool in PG_TOOLS) and path.parent.name.isdigit():
            found.append((int(path.parent.name), path))
    return max(found)[1] if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres() -> list[str]:
    # PostgreSQL refuses to run as root; as anyone else, it runs as the caller.
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _pg(*argv: str | Path) -> None:
    result = subprocess.run(
        [*_as_postgres(), *map(str, argv)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise _DrillFailed(f"{Path(argv[0]).name} failed: {result.stderr.strip()[-1500:]}")


@dataclass
class Timings:
    steps: list[tuple[str, float]] = field(default_factory=list)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        elapsed = time.monotonic() - started
        self.steps.append((name, elapsed))
        print(f"  {elapsed:6.2f} s  {name}", flush=True)


@dataclass
class Drill:
    bin: Path
    root: Path
    conversations: int
    timings: Timings = field(default_factory=Timings)

    @property
    def archive(self) -> Path:
        return self.root / "wal-archive"

    @property
    def anchors(self) -> Path:
        return self.root / "anchors"

    # --- PostgreSQL ---------------------------------------------------------------------

    def start(self, datadir: Path, port: int, *settings: str) -> None:
        options = [
            f"-p {port}",
            f"-k {self.root}",
            "-c listen_addresses=127.0.0.1",
            "-c max_connections=30",
            "-c shared_buffers=16MB",
            # pg_ctl hands -o to the postmaster through /bin/sh: values with spaces are quoted.
            *(f"-c {s}" for s in settings),
        ]
        log = self.root / f"{datadir.name}.log"
        _pg(self.bin / "pg_ctl", "-D", datadir, "-l", log, "-w", "-t", "60",
            "-o", " ".join(options), "start")  # fmt: skip

    def stop(self, datadir: Path, mode: str = "fast") -> None:
        if (datadir / "postmaster.pid").exists():
            _pg(self.bin / "pg_ctl", "-D", datadir, "-m", mode, "-w", "stop")

    @staticmethod
    def url(port: int, database: str = "ledger") -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{database}"

    def sql(self, port: int, query: str, database: str = "postgres") -> str:
        with psycopg.connect(self.url(port, database), autocommit=True, connect_timeout=5) as c:
            cursor = c.execute(query)  # the drill's own fixed SQL, no input in it
            row = cursor.fetchone() if cursor.description else None
        return "" if row is None else str(row[0])

    def restore(self, base: Path, name: str, port: int, target_time: str | None) -> Path:
        """A copy of the base backup recovering from the archive, up to ``target_time`` (or to
        the end of the archived WAL), then promoted: the database as it was at that time."""
        datadir = self.root / name
        _pg("cp", "-a", base, datadir)
        (self.root / "recovery.signal").touch()
        _pg("cp", self.root / "recovery.signal", datadir / "recovery.signal")
        settings = [f"restore_command='cp {self.archive}/%f %p'", "archive_mode=off"]
        if target_time is not None:
            settings += [
                f"recovery_target_time='{target_time}'",
                "recovery_target_action=promote",
            ]
        self.start(datadir, port, *settings)
        deadline = time.monotonic() + 60
        while self.sql(port, "SELECT pg_is_in_recovery()") != "False":
            if time.monotonic() > deadline:
                raise _DrillFailed(f"{name} did not finish recovery within 60 s")
            time.sleep(0.1)
        return datadir

    # --- the ledger -----------------------------------------------------------------------

    def ledger(self, port: int, *argv: str, state: Path | None = None) -> tuple[int, str]:
        env = {
            **os.environ,
            "LEDGER_DATABASE_URL": self.url(port),
            "LEDGER_MASTER_KEY": MASTER_KEY,
            "LEDGER_DATA_DIR": str(self.root / "ledger-data"),
            "LEDGER_ANCHOR_DIR": str(self.anchors),
            "LEDGER_VERIFIER_STATE_DIR": str(state or self.root / "verifier"),
        }
        result = subprocess.run(
            [sys.executable, "-m", "ledger.cli", *argv],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        return result.returncode, result.stdout + result.stderr

    def must(self, port: int, *argv: str) -> str:
        code, out = self.ledger(port, *argv)
        if code != 0:
            raise _DrillFailed(f"ledger {' '.join(argv)} exited {code}: {out.strip()[-1500:]}")
        return out

    def append_and_anchor(self, port: int, seed: int) -> int:
        """Append conversations, anchor; the log's size now anchored."""
        self.must(port, "demo", "--log", LOG_ID, "--conversations", str(self.conversations),
                  "--seed", str(seed))  # fmt: skip
        self.must(port, "anchor")
        return max(int(p.stem) for p in (self.anchors / LOG_ID).glob("*.checkpoint"))

    def verify(self, port: int, label: str) -> tuple[int, dict[str, object]]:
        """``ledger verify --full --json`` with a fresh state directory: only the anchors
        remember what was acknowledged."""
        state = Path(tempfile.mkdtemp(prefix=f"verifier-{label}-", dir=self.root))
        code, out = self.ledger(port, "verify", "--full", "--json", state=state)
        try:
            report = json.loads(out[out.index("{") :])
        except ValueError:
            report = {"output": out.strip()[-1500:]}
        return code, report

    # --- the drill --------------------------------------------------------------------------

    def run(self) -> None:
        t = self.timings
        primary, base = self.root / "primary", self.root / "base"
        port = _free_port()
        self.archive.mkdir()
        self.anchors.mkdir()
        if os.geteuid() == 0:
            postgres = pwd.getpwnam("postgres")
            os.chown(self.archive, postgres.pw_uid, postgres.pw_gid)
        with t.step("initdb, start a primary archiving its WAL"):
            _pg(self.bin / "initdb", "-D", primary, "-A", "trust", "-U", "postgres",
                "--no-sync", "--no-instructions")  # fmt: skip
            # test ! -f: an archived segment is never overwritten (PostgreSQL's own advice).
            archive_command = f"test ! -f {self.archive}/%f && cp %p {self.archive}/%f"
            self.start(primary, port, "wal_level=replica", "archive_mode=on",
                       f"archive_command='{archive_command}'")  # fmt: skip
            self.sql(port, "CREATE DATABASE ledger")
        with t.step("ledger db upgrade, logs create"):
            self.must(port, "db", "upgrade")
            self.must(port, "logs", "create", LOG_ID, "--tenant", "drill")
        with t.step(f"append {self.conversations} conversations, anchor"):
            first = self.append_and_anchor(port, seed=1)
        with t.step("pg_basebackup (the nightly base backup)"):
            _pg(self.bin / "pg_basebackup", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                "-D", base, "-X", "stream", "-c", "fast")  # fmt: skip
        with t.step(f"append {self.conversations} more, anchor"):
            second = self.append_and_anchor(port, seed=2)
        time.sleep(1.1)  # commit timestamps on either side of the target are then apart
        target = self.sql(port, "SELECT clock_timestamp()::text")
        time.sleep(1.1)
        with t.step(f"append {self.conversations} more, anchor (after the restore target)"):
            third = self.append_and_anchor(port, seed=3)
        with t.step("switch WAL, wait for the archiver; the primary dies (-m immediate)"):
            segment = self.sql(port, "SELECT pg_walfile_name(pg_switch_wal())")
            deadline = time.monotonic() + 30
            while not (self.archive / segment).exists():
                if time.monotonic() > deadline:
                    raise _DrillFailed(f"WAL segment {segment} was not archived within 30 s")
                time.sleep(0.1)
            self.stop(primary, "immediate")
        print(f"  anchored sizes of log {LOG_ID}: {first}, {second}, {third};"
              f" restore target {target}")  # fmt: skip

        to_point = _free_port()
        with t.step("restore to the target time (recovery_target_time), promoted"):
            datadir = self.restore(base, "restored-to-point", to_point, target)
        size = self.sql(
            to_point, f"SELECT max(size) FROM checkpoints WHERE log_id = '{LOG_ID}'", "ledger"
        )
        print(f"  restored log {LOG_ID} holds checkpoints up to size {size}")
        if int(size) != second:
            raise _DrillFailed(f"restored to size {size}, expected {second} (the target)")
        with t.step("ledger verify --full on it (with the anchors)"):
            code, report = self.verify(to_point, "point")
        print(f"  exit {code}: {_failure_line(report)}")
        if code != 1:
            raise _DrillFailed(f"the rolled-back restore verified with exit {code}, expected 1")
        self.stop(datadir)

        to_end = _free_port()
        with t.step("restore to the end of the archived WAL, promoted"):
            datadir = self.restore(base, "restored-to-end", to_end, None)
        size = self.sql(
            to_end, f"SELECT max(size) FROM checkpoints WHERE log_id = '{LOG_ID}'", "ledger"
        )
        print(f"  restored log {LOG_ID} holds checkpoints up to size {size}")
        with t.step("ledger verify --full on it (with the anchors)"):
            code, report = self.verify(to_end, "end")
        print(f"  exit {code}: status {report.get('status')}")
        if code != 0:
            raise _DrillFailed(f"the complete restore verified with exit {code}: {report}")
        self.stop(datadir)


def _failure_line(report: dict[str, object]) -> str:
    """The first failure of a verification report, one line."""
    for log in report.get("logs", []) or []:  # type: ignore[attr-defined]
        failure = log.get("failure") if isinstance(log, dict) else None
        if isinstance(failure, dict):
            return str(failure.get("message", failure))
    return json.dumps(report)[:600]


MASTER_KEY = base64.b64encode(bytes(range(32))).decode()  # a drill's own, never a real one


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=5, help="per append (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    binaries = postgres_bin()
    if binaries is None:
        print("no PostgreSQL binaries under /usr/lib/postgresql", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="ledger-restore-drill-"))
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        os.chown(root, postgres.pw_uid, postgres.pw_gid)
    drill = Drill(binaries, root, args.conversations)
    print(f"restore drill in {root} (PostgreSQL {binaries.parent.name})", flush=True)
    started = time.monotonic()
    try:
        drill.run()
    except _DrillFailed as exc:
        print(f"DRILL FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        for datadir in root.iterdir():
            if (datadir / "postmaster.pid").exists():
                with contextlib.suppress(_DrillFailed):
                    drill.stop(datadir, "immediate")
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"drill passed in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
