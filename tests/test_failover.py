"""Replication and failover (issue 17): PostgreSQL's own streaming replication, a multi-host
database URL, and the fence that keeps the ledger from signing on the wrong database.

Each test builds its own primary and standby on free ports with this machine's PostgreSQL
binaries (``tests/pg_cluster.py``); ``pg_ctl promote`` stands in for the failover manager
(Patroni does the same promotion, after its leader key expires).

1. Synchronous standby, a real ``ledger serve`` on the multi-host URL, writers under load,
   ``kill -9`` of the primary, promotion: every acknowledged receipt is on the new primary at
   its seq with its leaf hash, each event stored once after the writers' retries, ingest back
   without a restart, ``ledger verify --full`` intact against anchors from before and after.
2. Asynchronous standby that fell behind: the new primary lacks acknowledged entries. The
   ledger refuses to sign on it (503 ``checkpoint-fork``, an ERROR line, the alert), a new
   process too (it learns the anchors), and ``ledger verify`` reports the rollback (exit 1).
3. Split brain: the old primary back on its own, read-write. No process signs on it (the
   anchored checkpoint is the fence); the fencing step (``pg_rewind``, back as a standby)
   puts it behind ``target_session_attrs=read-write`` again.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.services.admin.credentials import create_credential
from ledger.services.admin.logs import create_log
from ledger.services.anchoring.anchor import DirectorySink, anchor
from ledger.settings import Settings
from ledger.storage.db import make_engine, unit_of_work, upgrade_schema
from ledger.storage.keystore import KeyRing
from ledger.storage.logs import list_logs
from tests.conftest import MASTER_KEY, TEST_ACTOR, free_port, make_event
from tests.pg_cluster import Node, postgres_bin, replicated_pair

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        postgres_bin() is None,
        reason="no PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup, pg_rewind) under"
        " /usr/lib/postgresql",
    ),
]

ROOT = Path(__file__).resolve().parents[1]
ORIGIN_PREFIX = "ledger.test"
FORK = "urn:handoff-ledger:problem:checkpoint-fork"


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class LogSetup:
    log_id: str
    writer: str


def set_up_log(url: str) -> LogSetup:
    """Schema, a log and a writer credential, made on the primary (replicated from there)."""
    upgrade_schema(url)
    engine = make_engine(url, pool_size=1)
    keys = KeyRing.from_master(base64.b64decode(MASTER_KEY))
    log_id = f"fo-{secrets.token_hex(4)}"
    try:
        with unit_of_work(engine) as conn:
            create_log(conn, keys, log_id, origin_prefix=ORIGIN_PREFIX, actor=TEST_ACTOR, now=now())
            writer = create_credential(
                conn, keys, log_id=log_id, role="writer", label="load", actor=TEST_ACTOR, now=now()
            ).token
    finally:
        engine.dispose()
    return LogSetup(log_id, writer)


def stored_entries(node: Node, log_id: str) -> dict[str, tuple[int, str]]:
    """event id -> (seq, base64 leaf hash) of every entry of the log on ``node`` (as the
    superuser, whom row security does not bind)."""
    with psycopg.connect(node.url()) as conn:
        rows = conn.execute(
            "SELECT event_id, seq, leaf_hash FROM entries WHERE log_id = %s", (log_id,)
        ).fetchall()
    assert len(rows) == len({r[0] for r in rows}), "an event id is stored twice"
    return {r[0]: (r[1], base64.b64encode(r[2]).decode()) for r in rows}


def largest_checkpoint(node: Node, log_id: str) -> int:
    with psycopg.connect(node.url()) as conn:
        row = conn.execute(
            "SELECT coalesce(max(size), -1) FROM checkpoints WHERE log_id = %s", (log_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def ledger_command(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", *argv],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def base_env(url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "LEDGER_DATABASE_URL": url,
        "LEDGER_MASTER_KEY": MASTER_KEY,
        "LEDGER_ORIGIN_PREFIX": ORIGIN_PREFIX,
        "LEDGER_DATA_DIR": str(tmp_path / "data"),
        "LEDGER_ANCHOR_DIR": str(tmp_path / "anchors"),
        "LEDGER_VERIFIER_STATE_DIR": str(tmp_path / "verifier"),
    }


def anchored_sizes(anchor_dir: Path, log_id: str) -> set[int]:
    folder = anchor_dir / log_id
    return (
        {int(p.name.split(".")[0]) for p in folder.glob("*.checkpoint")}
        if folder.is_dir()
        else set()
    )


# --- 1. synchronous standby: kill -9 of the primary under load --------------------------------

CLIENTS = 6
KILL_AFTER_ACKS = 50
ACKS_AFTER_KILL = 30


@dataclass
class Load:
    """Writers that retry a 503 or a broken connection with the same event, as the README
    tells them to, and keep every receipt and when each answer came."""

    url: str
    log_id: str
    token: str
    run: str
    receipts: dict[str, tuple[int, str]] = field(default_factory=dict)
    answers: list[tuple[float, float, int]] = field(default_factory=list)
    """(sent, answered, status) by time.monotonic."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    """Set: each writer finishes the event it is on (until it is acknowledged) and stops."""

    def acked(self) -> int:
        with self.lock:
            return len(self.receipts)

    def created_after(self, moment: float) -> list[float]:
        """When each 201 to a request sent after ``moment`` came, in order."""
        with self.lock:
            return sorted(
                done for sent, done, status in self.answers if sent > moment and status == 201
            )

    def client(self, n: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=60) as http:
            for i in itertools.count():
                if self.stop.is_set():
                    return
                event = make_event(f"{self.run}-c{n}", i)
                deadline = time.monotonic() + 60
                while True:
                    sent = time.monotonic()
                    try:
                        r = http.post(f"/v1/logs/{self.log_id}/events", json=event)
                        status = r.status_code
                    except httpx.TransportError:
                        status = 0
                    with self.lock:
                        self.answers.append((sent, time.monotonic(), status))
                    if status in (200, 201):
                        (receipt,) = r.json()["receipts"]
                        with self.lock:
                            self.receipts[receipt["event_id"]] = (
                                receipt["seq"],
                                receipt["leaf_hash"],
                            )
                        break
                    if status not in (0, 503) or time.monotonic() > deadline:
                        with self.lock:
                            self.errors.append(f"{event['id']}: {status}")
                        return
                    time.sleep(0.05)  # the same event again: stored once, whatever happened


@contextmanager
def ledger_server(
    env: dict[str, str], port: int, log_file: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log_file.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, log_file.read_text()
                assert time.monotonic() < deadline, "ledger serve did not start"
                time.sleep(0.1)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_kill_9_of_the_primary_under_load_loses_no_acknowledged_event(tmp_path: Path) -> None:
    with replicated_pair(synchronous=True) as pair:
        setup = set_up_log(pair.primary.url())
        env = {
            **base_env(pair.multi_host_url(), tmp_path),
            "LEDGER_DB_ROLE": "ledger_app",
            "LEDGER_ANCHOR_INTERVAL_SECONDS": "1",
        }
        anchors = tmp_path / "anchors"
        port = free_port()
        with ledger_server(env, port, tmp_path / "serve.log") as server:
            load = Load(f"http://127.0.0.1:{port}", setup.log_id, setup.writer, "fo")
            clients = [threading.Thread(target=load.client, args=(n,)) for n in range(CLIENTS)]
            for thread in clients:
                thread.start()
            deadline = time.monotonic() + 60
            while load.acked() < KILL_AFTER_ACKS or not anchored_sizes(anchors, setup.log_id):
                assert time.monotonic() < deadline, f"no load: {load.errors}"
                time.sleep(0.01)
            anchored_before = anchored_sizes(anchors, setup.log_id)
            acked_before = load.acked()

            killed_at = pair.primary.kill9()
            pair.standby.promote()
            promoted_at = time.monotonic()

            deadline = time.monotonic() + 60
            while len(load.created_after(killed_at)) < ACKS_AFTER_KILL:
                assert time.monotonic() < deadline, f"ingest did not come back: {load.errors}"
                time.sleep(0.05)
            load.stop.set()
            for thread in clients:
                thread.join(timeout=120)
            assert not load.errors, load.errors
            total = len(load.receipts)
            # Ingest came back in the same server process: no restart.
            assert server.poll() is None
            window = load.created_after(killed_at)[0] - killed_at
            refused = sum(
                1
                for sent, _, status in load.answers
                if sent > killed_at and status != 201 and status != 200
            )
            # The anchoring schedule anchors the new primary's log too.
            deadline = time.monotonic() + 20
            while max(anchored_sizes(anchors, setup.log_id)) < total:
                assert time.monotonic() < deadline, "nothing anchored after the failover"
                time.sleep(0.2)

        stored = stored_entries(pair.standby, setup.log_id)
        # Every acknowledged receipt, at its seq with its leaf hash; nothing else, nothing twice.
        assert {event_id: stored.get(event_id) for event_id in load.receipts} == load.receipts
        assert len(stored) == total
        assert sorted(seq for seq, _ in stored.values()) == list(range(total))

        verified = ledger_command(env, "verify", "--full", "--log", setup.log_id, "--json")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        report = json.loads(verified.stdout)["logs"][0]
        assert report["intact"]
        assert report["to_size"] == total
        # The anchors from before the kill and from after it, all consistent with the new primary.
        assert report["anchors"] == len(anchored_sizes(anchors, setup.log_id))
        assert anchored_before
        assert max(anchored_sizes(anchors, setup.log_id)) > max(anchored_before)

        print(
            f"\nfailover: {acked_before} acknowledged before kill -9; kill -> promoted"
            f" {promoted_at - killed_at:.2f} s; kill -> first 201 {window:.2f} s;"
            f" {refused} attempts refused (503 or connection lost) and retried"
        )


# --- 2. asynchronous standby that fell behind ----------------------------------------------------


def app_settings(url: str, tmp_path: Path, **more: Any) -> Settings:
    return Settings(
        database_url=url,
        master_key=MASTER_KEY,
        data_dir=tmp_path / "data",
        origin_prefix=ORIGIN_PREFIX,
        db_role="ledger_app",
        anchor_dir=tmp_path / "anchors",
        anchor_interval_seconds=0,  # anchored by hand below (``ledger anchor``'s service)
        **more,
    )


def anchor_now(url: str, log_id: str, anchor_dir: Path) -> int:
    """What ``ledger anchor`` does: every log's latest checkpoint (the tenant's system log
    included) to the directory sink. Returns the size anchored of ``log_id``."""
    engine = make_engine(url, pool_size=1)
    keys = KeyRing.from_master(base64.b64decode(MASTER_KEY))
    try:
        with unit_of_work(engine, system="anchoring") as conn:
            done = anchor(conn, keys, list_logs(conn), [DirectorySink(anchor_dir)], now=now())
    finally:
        engine.dispose()
    assert all(anchoring.ok for anchoring in done)
    (size,) = [a.checkpoint.size for a in done if a.log.id == log_id]
    return size


def post(client: TestClient, setup: LogSetup, event: dict[str, Any], *, until: int) -> Any:
    """POST ``event`` again while the answer is a 503 of a database not there yet (a broken
    pooled connection, the standby not promoted yet), for up to 20 s."""
    deadline = time.monotonic() + 20
    while True:
        r = client.post(
            f"/v1/logs/{setup.log_id}/events",
            json=event,
            headers={"Authorization": f"Bearer {setup.writer}"},
        )
        if r.status_code != 503 or r.json()["type"] == FORK or time.monotonic() > deadline:
            assert r.status_code == until, r.text
            return r.json()
        time.sleep(0.1)


def test_a_failover_that_lost_acknowledged_entries_is_refused_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    alert = tmp_path / "alert.json"
    with replicated_pair(synchronous=False) as pair:
        setup = set_up_log(pair.primary.url())
        url = pair.multi_host_url()
        settings = app_settings(url, tmp_path, alert_command=f"sh -c 'cat > {alert}'")
        with TestClient(create_app(settings)) as process_a:
            for n in range(5):
                post(process_a, setup, make_event("async", n), until=201)
            pair.wait_replayed()
            # Asynchronous replication acknowledges without the standby: it falls behind.
            pair.standby.stop()
            for n in range(5, 10):
                post(process_a, setup, make_event("async", n), until=201)
            assert anchor_now(url, setup.log_id, settings.anchor_dir) == 10
            env = base_env(url, tmp_path)
            assert ledger_command(env, "verify", "--log", setup.log_id).returncode == 0

            pair.primary.kill9()
            pair.standby.start()
            pair.standby.promote()
            assert largest_checkpoint(pair.standby, setup.log_id) == 5  # 5 acknowledged, lost

            caplog.clear()
            with caplog.at_level(logging.ERROR):
                refused = post(process_a, setup, make_event("async", 10), until=503)
            assert refused["type"] == FORK
            assert "does not extend a checkpoint this ledger already signed" in refused["detail"]
            assert any(
                r.levelno == logging.ERROR
                and "behind a checkpoint this ledger signed" in r.getMessage()
                for r in caplog.records
            ), caplog.text
            deadline = time.monotonic() + 10
            while not alert.is_file() or not alert.read_text():
                assert time.monotonic() < deadline, "no alert"
                time.sleep(0.05)
            report = json.loads(alert.read_text())
            assert report["status"] == "tampered"
            assert report["logs"][0]["failure"]["expected"].startswith("size 10 ")

        # A process that never signed on this log learns the anchored checkpoint first.
        with TestClient(create_app(app_settings(url, tmp_path))) as process_b:
            refused = post(process_b, setup, make_event("async", 10), until=503)
            assert refused["type"] == FORK
        assert largest_checkpoint(pair.standby, setup.log_id) == 5  # nothing was signed
        assert len(stored_entries(pair.standby, setup.log_id)) == 5

        # The verifier reports the rollback against its state and the anchors.
        for argv in (
            ("verify", "--log", setup.log_id),
            ("verify", "--full", "--log", setup.log_id),
        ):
            verified = ledger_command(env, *argv, "--json")
            assert verified.returncode == 1, verified.stdout + verified.stderr
            failure = json.loads(verified.stdout)["logs"][0]["failure"]
            assert "rolled back" in failure["what"]
            assert failure["found"] == "size 5"


# --- 3. split brain: the old primary back on its own --------------------------------------------


def test_an_old_primary_back_on_its_own_signs_nothing_and_is_fenced(tmp_path: Path) -> None:
    with replicated_pair(synchronous=True) as pair:
        setup = set_up_log(pair.primary.url())
        url = pair.multi_host_url()
        settings = app_settings(url, tmp_path)
        with TestClient(create_app(settings)) as process_a:
            for n in range(5):
                post(process_a, setup, make_event("split", n), until=201)
            pair.primary.kill9()
            pair.standby.promote()
            for n in range(5, 10):
                post(process_a, setup, make_event("split", n), until=201)
            # The procedure after a promotion: anchor, so the new primary's log is outside.
            assert anchor_now(url, setup.log_id, settings.anchor_dir) == 10

            # The old primary restarts on its own: read-write, first in the URL's host list, and
            # (worst case) without the synchronous standby it was configured with, which would
            # otherwise keep every COMMIT on it waiting, unacknowledged.
            pair.primary.start("synchronous_standby_names=''")
            assert not pair.primary.is_standby()
            at_old = largest_checkpoint(pair.primary, setup.log_id)
            assert at_old == 5

            # A process that signed size 10 refuses the old primary's log ...
            with TestClient(create_app(app_settings(pair.primary.url(), tmp_path))) as on_old:
                on_old.app.state.ledger.keys.signers.given.remember(
                    setup.log_id, *process_a_given(process_a, setup.log_id), how="signed"
                )
                assert post(on_old, setup, make_event("split", 10), until=503)["type"] == FORK
            # ... and so does a new one, from the anchored checkpoint, through the multi-host
            # URL that now reaches the old primary first.
            with TestClient(create_app(app_settings(url, tmp_path))) as fresh:
                assert post(fresh, setup, make_event("split", 10), until=503)["type"] == FORK
            assert largest_checkpoint(pair.primary, setup.log_id) == at_old  # nothing signed

            env = base_env(pair.primary.url(), tmp_path)
            verified = ledger_command(env, "verify", "--full", "--log", setup.log_id, "--json")
            assert verified.returncode == 1, verified.stdout + verified.stderr

            # The fencing step: the old primary rewound and back as the new one's standby.
            pair.primary.rejoin_as_standby_of(pair.standby)
            assert pair.primary.is_standby()
            with TestClient(create_app(app_settings(url, tmp_path))) as fresh:
                receipt = post(fresh, setup, make_event("split", 10), until=201)["receipts"][0]
            assert receipt["seq"] == 10
            assert stored_entries(pair.standby, setup.log_id)[receipt["event_id"]][0] == 10


def process_a_given(client: TestClient, log_id: str) -> tuple[int, bytes]:
    given = client.app.state.ledger.keys.signers.given.get(log_id)
    assert given is not None
    return given.size, given.root
