"""Zero configuration: with no LEDGER_DATABASE_URL the CLI runs a real embedded PostgreSQL in
the data directory (the path `make run` takes on a fresh machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_cli_on_the_embedded_database(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_DATA_DIR"] = str(tmp_path / "data")

    def ledger(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ledger.cli", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert ledger("db", "upgrade").returncode == 0
    created = ledger("logs", "create", "acme")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "handoff-ledger.localhost/acme"
    token = ledger("credentials", "create", "--log", "acme", "--role", "writer")
    assert token.stdout.startswith("hlt_")
    verified = ledger("verify", "--full", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert (tmp_path / "data" / "pgdata" / "PG_VERSION").exists()
    assert (tmp_path / "data" / "master.key").stat().st_mode & 0o077 == 0
