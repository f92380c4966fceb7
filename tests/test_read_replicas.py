"""Reads from standbys (issue 17.3): the replay lag measured from the primary's WAL position,
the bound beyond which the primary answers, and ``ledger verify`` on a standby that has caught
up (else on the primary).

The standbys are real: a primary and a streaming standby on free ports (``tests/pg_cluster``).
A standby falls behind on demand with ``pg_wal_replay_pause()``: it keeps receiving WAL but
applies none of it, exactly a standby whose replay cannot keep up.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.metrics import REGISTRY, observe_replicas
from ledger.client import InclusionProof, LedgerClient, Receipt
from ledger.core.signing import NoteVerifier
from ledger.errors import ConfigurationError
from ledger.services.admin.credentials import create_credential
from ledger.services.trails.verify import parse_trail, verify_trail
from ledger.services.verification import parallel as verify_parallel
from ledger.services.verification import range as verify_range
from ledger.services.verification.parallel import Part
from ledger.storage.db import hosts_of, make_engine, unit_of_work, url_for_host
from ledger.storage.keystore import KeyRing
from ledger.storage.replicas import (
    ANSWER_SECONDS,
    ReadReplicas,
    ReplicaStatus,
    WalSample,
    measure_lag,
)
from tests.conftest import MASTER_KEY, TEST_ACTOR, make_event
from tests.pg_cluster import Node, Pair, _parent_of, postgres_bin, replicated_pair
from tests.test_failover import (
    ORIGIN_PREFIX,
    LogSetup,
    app_settings,
    base_env,
    ledger_command,
    post,
    set_up_log,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        postgres_bin() is None,
        reason="no PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) under"
        " /usr/lib/postgresql",
    ),
]

BOUND = 1.0
"""The tests' ``read_max_lag_seconds``: small, so a paused standby passes it quickly."""
PROBE = 0.2


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    """One asynchronous pair for the tests that leave it as they found it (replay running,
    standby up): commits on the primary never wait for a paused standby."""
    with replicated_pair(synchronous=False) as made:
        yield made


@pytest.fixture
def primary(pair: Pair) -> Iterator[Engine]:
    engine = make_engine(pair.primary.url(), pool_size=1)
    yield engine
    engine.dispose()


def replicas(primary: Engine, read_url: str, **more: object) -> ReadReplicas:
    return ReadReplicas(
        primary,
        read_url,
        role=None,
        max_lag_seconds=BOUND,
        probe_seconds=PROBE,
        **more,  # type: ignore[arg-type]
    )


def host(node: Node) -> str:
    return f"127.0.0.1:{node.port}"


def write_on(node: Node) -> None:
    """A write on the primary (its WAL position moves on)."""
    with psycopg.connect(node.url("postgres"), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS scratch (n int)")
        conn.execute("INSERT INTO scratch VALUES (1)")


def set_replay(standby: Node, *, paused: bool) -> None:
    """Pause or resume WAL replay on the standby (superuser only)."""
    with psycopg.connect(standby.url("postgres"), autocommit=True) as conn:
        conn.execute(f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()")


@pytest.fixture
def replay_paused(pair: Pair) -> Iterator[None]:
    set_replay(pair.standby, paused=True)
    try:
        yield
    finally:
        set_replay(pair.standby, paused=False)


def probe_until(
    rr: ReadReplicas, done: Callable[[ReplicaStatus], bool], timeout: float = 15
) -> ReplicaStatus:
    """Probe every PROBE seconds until ``done(status)`` holds for the (only) standby."""
    deadline = time.monotonic() + timeout
    while True:
        (status,) = rr.probe()
        if done(status):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(PROBE)


# --- the host list --------------------------------------------------------------------------


def test_each_host_of_a_multi_host_url_is_a_url_of_its_own() -> None:
    url = "postgresql://reader:pw@s1:5432,s2:6543/ledger?sslmode=require"
    assert hosts_of(url) == ["s1:5432", "s2:6543"]
    assert url_for_host(url, "s2:6543") == "postgresql://reader:pw@s2:6543/ledger?sslmode=require"
    assert hosts_of("postgresql://u@only:5432/db") == ["only:5432"]
    with pytest.raises(ValueError, match="not one of"):
        url_for_host(url, "s3:5432")


def test_lag_is_the_age_of_the_oldest_wal_position_the_standby_lacks() -> None:
    samples = [WalSample(10.0, 100), WalSample(11.0, 200), WalSample(12.0, 300)]
    assert measure_lag(samples, 300, now=20.0) == (0.0, True)  # replayed the newest: idle lag 0
    assert measure_lag(samples, 250, now=20.0) == (8.0, True)  # lacks what was there at 12.0
    assert measure_lag(samples, 150, now=20.0) == (9.0, True)
    # Behind every sample: the primary had what it lacks before 10.0, so at least 10 s.
    assert measure_lag(samples, 50, now=20.0) == (10.0, False)


def test_a_read_url_that_names_no_standby_is_refused_at_start(
    pair: Pair, primary: Engine, ledger_cli: Any, verifier_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match="naming its standbys"):
        replicas(primary, "host=s1 port=5432 dbname=ledger")
    with pytest.raises(ConfigurationError, match="twice"):
        replicas(primary, "postgresql://u@s1:5432,s1:5432/ledger")
    monkeypatch.setenv("LEDGER_DATABASE_URL", pair.primary.url())
    monkeypatch.setenv("LEDGER_READ_DATABASE_URL", "standby.example:5432")
    code, out, err = ledger_cli("verify", "--json")
    assert code == 2
    assert "the read database URL must be a libpq URL" in err
    assert "Traceback" not in out + err


# --- lag on a real pair ------------------------------------------------------------------------


def test_an_idle_caught_up_standby_has_no_lag_and_a_paused_one_passes_the_bound(
    pair: Pair, primary: Engine
) -> None:
    rr = replicas(primary, pair.standby.url())
    try:
        assert rr.engine() is None  # not measured yet: nobody reads it
        (first,) = rr.probe()
        time.sleep(0.6)
        (idle,) = rr.probe()
        # Idle primary, standby caught up: lag 0 however long the primary stays idle (where
        # now() - pg_last_xact_replay_timestamp() would grow).
        # (0 exactly unless the primary's background writer logged something in between.)
        assert idle.usable, (first, idle)
        assert idle.lag_seconds is not None
        assert idle.lag_seconds < 0.05, (first, idle)
        standby_engine = rr.engine()
        assert standby_engine is not None
        assert standby_engine.url.port == pair.standby.port

        set_replay(pair.standby, paused=True)
        try:
            write_on(pair.primary)
            lags: list[float] = []
            deadline = time.monotonic() + BOUND + 3
            while True:
                (behind,) = rr.probe()
                if behind.lag_seconds is not None:
                    lags.append(behind.lag_seconds)
                if not behind.usable:
                    break
                assert time.monotonic() < deadline, behind
                time.sleep(PROBE)
            assert behind.lag_seconds is not None
            assert behind.lag_seconds > BOUND, behind
            assert "behind" in behind.reason
            assert rr.engine() is None  # the primary answers
            assert lags == sorted(lags)  # grows while replay stays paused
            assert len(lags) >= 3
            # As the wall clock says: the write is just past the bound old, not more.
            assert lags[-1] < BOUND + PROBE + 0.5
        finally:
            set_replay(pair.standby, paused=False)
        back = probe_until(rr, lambda s: s.usable)
        assert back.lag_seconds is not None
        assert back.lag_seconds < PROBE + 0.1
        assert rr.engine() is not None
    finally:
        rr.stop()


def test_a_standby_behind_every_measure_waits_for_a_known_lag(
    pair: Pair, primary: Engine, replay_paused: None
) -> None:
    """The first probe after the standby fell behind knows only that its lag is at least 0:
    unknown, not 'about 0'."""
    write_on(pair.primary)
    rr = replicas(primary, pair.standby.url())
    try:
        (status,) = rr.probe()
        assert not status.usable
        assert status.lag_seconds is None
        assert "unknown" in status.reason
        assert rr.engine() is None
    finally:
        rr.stop()


def test_engine_stops_trusting_a_measure_that_stopped_coming(pair: Pair, primary: Engine) -> None:
    rr = replicas(primary, pair.standby.url())
    try:
        rr.probe()
        assert rr.engine() is not None
        # No probe since: the standby might have fallen behind by as long as that.
        time.sleep(BOUND + 0.1)
        assert rr.engine() is None
    finally:
        rr.stop()


def test_reads_spread_over_standbys_about_as_close_and_skip_one_that_is_down(
    pair: Pair, primary: Engine
) -> None:
    # The same standby under two names, and a host where nothing listens.
    from tests.conftest import free_port

    dead = f"127.0.0.1:{free_port()}"
    read_url = (
        f"postgresql://postgres@127.0.0.1:{pair.standby.port},localhost:{pair.standby.port},"
        f"{dead}/ledger"
    )
    rr = replicas(primary, read_url)
    try:
        statuses = {s.host: s for s in rr.probe()}
        assert statuses[dead].usable is False
        assert statuses[dead].reason.startswith("does not answer")
        assert statuses[host(pair.standby)].usable
        chosen = {rr.engine().url.host for _ in range(4)}  # type: ignore[union-attr]
        assert chosen == {"127.0.0.1", "localhost"}
    finally:
        rr.stop()


def test_a_standby_that_is_down_serves_no_reads_and_is_logged_once(
    pair: Pair, primary: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    rr = replicas(primary, pair.standby.url())
    try:
        assert rr.probe()[0].usable
        pair.standby.stop()
        try:
            with caplog.at_level(logging.INFO, logger="ledger.replicas"):
                for _ in range(3):
                    (status,) = rr.probe()  # never raises
                    assert not status.usable
                    assert status.lag_seconds is None
                    assert "does not answer" in status.reason
                    assert rr.engine() is None
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1, caplog.text  # one per change of state
            assert "serves no reads" in warnings[0].getMessage()
            assert warnings[0].exc_info is None  # no traceback
        finally:
            pair.standby.start()
        # Back: the pooled connection to the old server is dropped and a new one made.
        with caplog.at_level(logging.INFO, logger="ledger.replicas"):
            probe_until(rr, lambda s: s.usable)
        assert "serves reads again" in caplog.records[-1].getMessage()
    finally:
        rr.stop()


def frozen(node: Node) -> contextlib.AbstractContextManager[None]:
    """Every process of ``node`` stopped (SIGSTOP): a server that takes connections into its
    kernel backlog but answers nothing, as a hung machine does."""

    @contextlib.contextmanager
    def freeze() -> Iterator[None]:
        pid = node.postmaster_pid()
        pids = [pid] + [
            int(stat.parent.name)
            for stat in Path("/proc").glob("[0-9]*/stat")
            if _parent_of(stat) == pid
        ]
        for p in pids:
            os.kill(p, signal.SIGSTOP)
        try:
            yield
        finally:
            for p in pids:
                os.kill(p, signal.SIGCONT)

    return freeze()


def test_a_standby_that_hangs_holds_up_no_probe(pair: Pair, primary: Engine) -> None:
    rr = replicas(primary, pair.standby.url())
    try:
        assert rr.probe()[0].usable
        with frozen(pair.standby):
            started = time.monotonic()
            (status,) = rr.probe()
            took = time.monotonic() - started
            assert not status.usable
            assert status.reason == f"does not answer within {ANSWER_SECONDS:g} s"
            assert took < ANSWER_SECONDS + 1
            # Still hung: not asked again, and the round does not wait for it.
            started = time.monotonic()
            (status,) = rr.probe()
            assert time.monotonic() - started < 1
            assert "still on an earlier probe" in status.reason
            assert rr.engine() is None
        probe_until(rr, lambda s: s.usable)
    finally:
        rr.stop()


def test_the_probe_thread_feeds_the_metrics(pair: Pair, primary: Engine) -> None:
    rr = replicas(primary, pair.standby.url(), cluster="east", on_probe=observe_replicas)
    rr.start()
    try:
        deadline = time.monotonic() + 5
        while rr.engine() is None:
            assert time.monotonic() < deadline, rr.status()
            time.sleep(0.05)
        labels = {"cluster": "east", "replica": host(pair.standby)}
        lag = REGISTRY.get_sample_value("ledger_replica_lag_seconds", labels)
        assert lag is not None
        assert lag < 0.05
        assert REGISTRY.get_sample_value("ledger_replica_usable", labels) == 1.0
    finally:
        rr.stop()
    observe_replicas("east", [ReplicaStatus("east", "down:1", None, False, "does not answer")])
    down = {"cluster": "east", "replica": "down:1"}
    assert math.isnan(REGISTRY.get_sample_value("ledger_replica_lag_seconds", down) or 0.0)
    assert REGISTRY.get_sample_value("ledger_replica_usable", down) == 0.0


# --- caught up -----------------------------------------------------------------------------------


def test_caught_up_engine_waits_for_the_primary_position_of_the_call(
    pair: Pair, primary: Engine
) -> None:
    rr = replicas(primary, pair.standby.url())
    try:
        set_replay(pair.standby, paused=True)
        try:
            write_on(pair.primary)
            started = time.monotonic()
            assert rr.caught_up_engine(timeout=0.5) is None
            assert time.monotonic() - started >= 0.5
        finally:
            set_replay(pair.standby, paused=False)
        caught_up = rr.caught_up_engine(timeout=5)
        assert caught_up is not None
        assert caught_up.url.port == pair.standby.port
        with caught_up.connect() as conn:  # what the primary held is there
            assert conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar_one()
    finally:
        rr.stop()


# --- a promoted standby ----------------------------------------------------------------------


def test_a_promoted_standby_serves_no_reads() -> None:
    with replicated_pair(synchronous=False) as own:
        primary = make_engine(own.primary.url(), pool_size=1)
        rr = replicas(primary, own.standby.url())
        try:
            assert rr.probe()[0].usable
            own.standby.promote()
            # Split brain: both take writes now; the promoted one may have diverged.
            (status,) = rr.probe()
            assert not status.usable
            assert "not in recovery" in status.reason
            assert rr.engine() is None
            assert rr.caught_up_engine(timeout=0.3) is None
        finally:
            rr.stop()
            primary.dispose()


def test_while_the_primary_is_unseen_a_standby_serves_only_within_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What a standby lacks was written after the primary's last measure: its lag is at most
    the time since. Past the bound, nobody can say: the primary (or its failover) answers."""
    with replicated_pair(synchronous=False) as own:
        primary = make_engine(own.primary.url(), pool_size=1)
        rr = replicas(primary, own.standby.url())
        try:
            assert rr.probe()[0].usable
            own.primary.stop()
            with caplog.at_level(logging.WARNING, logger="ledger.replicas"):
                (status,) = rr.probe()  # never raises
                assert status.usable  # measured caught up an instant ago
                time.sleep(BOUND + 0.1)
                for _ in range(2):
                    (status,) = rr.probe()
                    assert not status.usable
                    assert "the primary not measured for" in status.reason
            assert rr.engine() is None
            primary_down = [r for r in caplog.records if "primary does not answer" in r.message]
            assert len(primary_down) == 1, caplog.text
            assert primary_down[0].exc_info is None
            own.primary.start()
            probe_until(rr, lambda s: s.usable)
        finally:
            rr.stop()
            primary.dispose()


# --- ledger verify on a standby ------------------------------------------------------------


def entries_scans_on(standby: Node) -> int:
    """How often the standby's own backends have scanned the entries table (its statistics are
    its own: what the primary reads is not counted there)."""
    with psycopg.connect(standby.url()) as conn:
        row = conn.execute(
            "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables"
            " WHERE relname = 'entries'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_ledger_verify_reads_a_caught_up_standby_else_the_primary(
    pair: Pair, primary: Engine, append_direct: Any, tmp_path: Path
) -> None:
    setup = set_up_log(pair.primary.url())
    append_direct(setup.log_id, 5, batch=2, on=primary)
    env = {
        **base_env(pair.primary.url(), tmp_path),
        "LEDGER_READ_DATABASE_URL": pair.standby.url(),
        "LEDGER_READ_MAX_LAG_SECONDS": str(BOUND),
    }

    def verify(*argv: str) -> tuple[dict[str, Any], str]:
        done = ledger_command(env, "verify", "--log", setup.log_id, "--json", *argv)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)["logs"][0], done.stderr

    scans = entries_scans_on(pair.standby)
    report, said = verify("--full")
    assert report["intact"]
    assert report["to_size"] == 5
    assert f"reading standby {host(pair.standby)}" in said
    assert entries_scans_on(pair.standby) > scans  # it read the standby

    set_replay(pair.standby, paused=True)
    try:
        append_direct(setup.log_id, 3, on=primary)
        scans = entries_scans_on(pair.standby)
        # The standby lacks what the primary holds: the primary is read, all of it.
        report, said = verify("--full")
        assert "reading the primary" in said
        assert report["to_size"] == 8
        assert entries_scans_on(pair.standby) == scans
        # Incremental from that run's checkpoint: a standby behind it would look like a
        # rollback (exit 1); it is not read.
        report, said = verify()
        assert "reading the primary" in said
        assert report["to_size"] == 8
    finally:
        set_replay(pair.standby, paused=False)
    report, said = verify()
    assert f"reading standby {host(pair.standby)}" in said
    assert report["to_size"] == 8
    assert report["intact"]


def test_a_verification_split_over_processes_runs_in_the_standby_snapshot(
    pair: Pair,
    primary: Engine,
    append_direct: Any,
    ledger_cli: Any,
    verifier_env: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The parts of a long run import the first process's snapshot, exported on the standby."""
    monkeypatch.setattr(verify_range, "CHUNK", 10)
    monkeypatch.setattr(verify_parallel, "CHUNK", 10)
    monkeypatch.setattr(verify_parallel, "PARALLEL_MIN", 80)
    setup = set_up_log(pair.primary.url())
    append_direct(setup.log_id, 120, batch=7, on=primary)
    monkeypatch.setenv("LEDGER_DATABASE_URL", pair.primary.url())
    monkeypatch.setenv("LEDGER_READ_DATABASE_URL", pair.standby.url())
    monkeypatch.setenv("LEDGER_ORIGIN_PREFIX", ORIGIN_PREFIX)
    started: list[int] = []
    claimed = verify_parallel._claimed_start

    def spy(*args: Any) -> Part | None:
        part = claimed(*args)
        started.append(part.start if part else -1)
        return part

    monkeypatch.setattr(verify_parallel, "_claimed_start", spy)
    scans = entries_scans_on(pair.standby)
    code, out, err = ledger_cli("verify", "--full", "--log", setup.log_id, "--json", "--jobs", "3")
    assert code == 0, out + err
    assert f"reading standby {host(pair.standby)}" in err
    report = json.loads(out)["logs"][0]
    assert report["intact"]
    assert report["entries"] == 120
    assert started == [40, 80]  # two more processes, in the standby's snapshot
    assert entries_scans_on(pair.standby) > scans


# --- the server's reads (the lead's wiring: LedgerState.read) ---------------------------------

METRICS_TOKEN = "metrics-token-for-the-replica-tests"
SERVED_BOUND = 5.0
"""The server's bound: a standby paused at the start of a test stays usable throughout it."""


@dataclass
class Served:
    client: TestClient
    setup: LogSetup
    auditor: dict[str, str]
    """The Authorization header of an auditor of the log."""
    checkpoints: Callable[[], dict[int, bytes]]
    """size -> root of every checkpoint the primary holds for the log (what it signed)."""


def metric(client: TestClient, name: str, **labels: str) -> float:
    """One sample of ``/metrics`` (0 when absent)."""
    text = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and line.split("}")[0] == f"{name}{{{wanted}":
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def served(pair: Pair, primary: Engine, tmp_path: Path) -> Iterator[Served]:
    """A server on the pair's primary with the standby as its read URL, once the standby
    serves reads; a log, its writer and an auditor."""
    setup = set_up_log(pair.primary.url())
    keys = KeyRing.from_master(base64.b64decode(MASTER_KEY))
    with unit_of_work(primary) as conn:
        auditor = create_credential(
            conn, keys, log_id=setup.log_id, role="auditor", label="audit", actor=TEST_ACTOR,
            now=datetime.now(UTC),
        ).token  # fmt: skip

    def checkpoints() -> dict[int, bytes]:
        with psycopg.connect(pair.primary.url()) as conn:
            rows = conn.execute(
                "SELECT size, root FROM checkpoints WHERE log_id = %s", (setup.log_id,)
            ).fetchall()
        return {int(size): bytes(root) for size, root in rows}

    settings = app_settings(
        pair.primary.url(),
        tmp_path,
        read_database_url=pair.standby.url(),
        read_max_lag_seconds=SERVED_BOUND,
        read_lag_probe_seconds=PROBE,
        metrics_token=METRICS_TOKEN,
    )
    with TestClient(create_app(settings)) as client:
        replica = {"cluster": "main", "replica": host(pair.standby)}
        deadline = time.monotonic() + 10
        while metric(client, "ledger_replica_usable", **replica) != 1:
            assert time.monotonic() < deadline, "the standby never became usable"
            time.sleep(PROBE)
        yield Served(client, setup, {"Authorization": f"Bearer {auditor}"}, checkpoints)


def reads(served: Served, by: str) -> float:
    return metric(served.client, "ledger_reads_total", cluster="main", served_by=by)


def check_inclusion(served: Served, receipt: dict[str, Any], checkpoint_note: str) -> None:
    """The receipt's proof, as served, leads to the root of ``checkpoint_note``, which is
    signed by the log's key and is a checkpoint the primary holds."""
    size = int(checkpoint_note.split("\n")[1])
    r = served.client.get(
        f"/v1/logs/{served.setup.log_id}/proofs/inclusion",
        params={"seq": receipt["seq"], "tree_size": size},
        headers=served.auditor,
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    proof = InclusionProof(
        doc["leaf_index"], doc["tree_size"], [base64.b64decode(h) for h in doc["hashes"]]
    )
    opened = LedgerClient.check_receipt(
        Receipt(receipt["event_id"], receipt["seq"], base64.b64decode(receipt["leaf_hash"])),
        proof,
        checkpoint_note,
        verifier_key=verifier_key_of(served),
    )
    assert served.checkpoints().get(opened.size) == opened.root_hash


def verifier_key_of(served: Served) -> str:
    r = served.client.get(f"/v1/logs/{served.setup.log_id}/verifier-key")
    assert r.status_code == 200, r.text
    return r.text.splitlines()[0]


def test_a_read_right_after_a_write_is_answered_though_the_standby_lacks_it(
    pair: Pair, served: Served, replay_paused: None
) -> None:
    replica = {"cluster": "main", "replica": host(pair.standby)}
    answer = post(served.client, served.setup, make_event("fresh", 0), until=201)
    (receipt,) = answer["receipts"]
    by_primary, by_replica = reads(served, "primary"), reads(served, "replica")
    # The standby is within the bound (paused just now), so it is asked first, but it has not
    # replayed the entry: its answer is not the answer, the primary's is.
    assert metric(served.client, "ledger_replica_usable", **replica) == 1
    check_inclusion(served, receipt, answer["checkpoint"])
    trail = served.client.get(
        f"/v1/logs/{served.setup.log_id}/conversations/fresh/trail", headers=served.auditor
    )
    assert trail.status_code == 200, trail.text
    assert [e["seq"] for e in trail.json()["entries"]] == [receipt["seq"]]
    entry = served.client.get(
        f"/v1/logs/{served.setup.log_id}/entries/{receipt['seq']}", headers=served.auditor
    )
    assert entry.status_code == 200, entry.text
    assert entry.json()["leaf_hash"] == receipt["leaf_hash"]
    assert metric(served.client, "ledger_replica_usable", **replica) == 1
    assert reads(served, "primary") >= by_primary + 3
    assert reads(served, "replica") == by_replica


def test_a_fresh_standby_serves_reads_and_every_proof_is_against_a_signed_checkpoint(
    pair: Pair, served: Served
) -> None:
    receipts = []
    for n in range(5):
        answer = post(served.client, served.setup, make_event("served", n), until=201)
        receipts += answer["receipts"]
    pair.wait_replayed()
    time.sleep(2 * PROBE)  # a probe after the replay: the standby is measured as caught up
    before = reads(served, "replica")
    trail = served.client.get(
        f"/v1/logs/{served.setup.log_id}/conversations/served/trail", headers=served.auditor
    )
    assert trail.status_code == 200, trail.text
    assert reads(served, "replica") == before + 1  # the standby answered
    body = trail.json()
    assert [e["seq"] for e in body["entries"]] == [r["seq"] for r in receipts]
    # The trail as an auditor checks it offline, with the key the log publishes ...
    report = verify_trail(
        parse_trail(trail.content),
        [NoteVerifier.from_verifier_key(verifier_key_of(served))],
    )
    assert report.intact, report
    # ... and its checkpoint is one the primary signed (not one the standby made up).
    size = int(body["checkpoint"].split("\n")[1])
    assert size in served.checkpoints()
    for receipt in receipts:
        check_inclusion(served, receipt, body["checkpoint"])
    assert reads(served, "replica") >= before + 1 + len(receipts)
