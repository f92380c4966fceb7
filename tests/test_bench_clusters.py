"""``ops/bench_clusters.py`` keeps working: the whole harness at a tiny size (two clusters of
its own, the ledger over both, trail reads, one failover, the capacity model), with its
correctness checks holding: each log's entries on its own cluster only, every checkpoint the
size of what was accepted, no acknowledged event lost in the failover."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pg_cluster import postgres_bin

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        postgres_bin() is None,
        reason="no PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) under"
        " /usr/lib/postgresql",
    ),
]

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--seconds", "1", "--rounds", "1", "--batch", "50", "--clients", "2", "--workers", "1",
    "--conversations", "20", "--read-seconds", "1", "--read-clients", "2",
    "--trail-conversations", "5", "--failovers", "1", "--failover-writers", "3",
    "--light-seconds", "1", "--light-batch", "5",
]  # fmt: skip


def test_the_two_cluster_benchmark_runs_and_its_checks_hold(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "ops/bench_clusters.py", *TINY, "--json", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    report = json.loads(results.read_text())
    printed = done.stdout

    raw, ledger = report["raw"], report["ledger"]
    assert len(ledger["phases"]) == 2  # the heavy load and the light one
    for phase in (raw, *ledger["phases"]):
        for rate in ("a_alone", "b_alone", "both_a", "both_b"):
            assert phase[rate]["count"] > 0, (rate, phase)
    assert "raw PostgreSQL COPY, rows/s" in printed
    assert "ledger batch ingest, events/s" in printed
    assert "ledger light load, events/s" in printed

    # Each log on its cluster alone, every accepted event in its checkpoint, no error answer.
    checks = ledger["checks"]
    assert len(checks) == 3, checks
    assert all(line.endswith("OK") for line in checks), checks
    assert "<<<" not in printed
    assert ledger["trail_reads_per_second"] > 0

    (failover,) = report["failovers"]
    assert not report["failover_error"]
    assert failover["lost"] == 0
    assert 0 < failover["window"] < 60
    assert "window min / median / max" in printed

    assert [s["multiple"] for s in report["scales"]] == [1, 10, 1_000]
    assert all(s["clusters"] >= 1 and s["replicas"] >= 1 for s in report["scales"])
    assert "capacity model" in printed
