"""Operator mistakes must not look like tampering (issue 16, class 10): a command that cannot run
says so in one line and exits 2, never 1, and a read-only command never creates a database or a
key where it happens to run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_ledger(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", *argv],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ("verify",),
        ("verify", "--full", "--json"),
        ("trail", "demo", "c-1"),
        ("logs", "list"),
        ("keys", "list", "--log", "demo"),
        ("export", "--log", "demo", "--profile", "soc2-population", "-o", "x.zip"),
    ],
)
def test_a_read_only_command_in_the_wrong_folder_cannot_run_and_creates_nothing(
    tmp_path: Path, argv: tuple[str, ...]
) -> None:
    done = run_ledger(*argv, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "no database" in done.stderr or "no master key" in done.stderr
    assert "LEDGER_DATA_DIR" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_configured_database_without_its_master_key_cannot_run(
    tmp_path: Path, db_url: str, new_log: object
) -> None:
    """With the database reachable but the key missing, verification would find every payload
    undecryptable: it must stop first, with exit 2 and no key made up."""
    done = run_ledger("verify", "--full", cwd=tmp_path, LEDGER_DATABASE_URL=db_url)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no master key" in done.stderr
    assert not (tmp_path / ".ledger").exists()


def test_the_standalone_verifier_without_pynacl_cannot_run(tmp_path: Path) -> None:
    script = ROOT / "ops" / "verify_trail_standalone.py"
    no_nacl = (
        "import runpy, sys; sys.modules['nacl'] = None; "
        f"sys.argv = ['verify_trail_standalone.py', {str(tmp_path / 't.json')!r}]; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", no_nacl], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "verify_trail_standalone: cannot run: PyNaCl is not installed (pip install pynacl)"
    )


def test_ledger_piped_into_head_ends_quietly(tmp_path: Path, db_url: str, new_log: Any) -> None:
    """`ledger … | head`: the reader leaves early; no BrokenPipeError traceback."""
    for _ in range(3):
        new_log()  # something to list
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(PYTHONPATH=str(ROOT), LEDGER_DATABASE_URL=db_url)
    ledger = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "logs", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    assert ledger.stdout is not None
    ledger.stdout.close()  # as `head` does once it has its lines
    _, err = ledger.communicate(timeout=60)
    assert b"Traceback" not in err
    assert ledger.returncode == 0


def test_credentials_are_listed_without_tokens(
    ledger_cli: object, new_log: object, token: object
) -> None:
    log_id = new_log()  # type: ignore[operator]
    secret = token(log_id, "auditor")  # type: ignore[operator]
    code, out, _ = ledger_cli("credentials", "list", "--log", log_id)  # type: ignore[operator]
    assert code == 0
    [line] = out.splitlines()
    assert "\tauditor\ttest auditor\t" in line
    assert line.endswith("\tactive")
    assert secret not in out
