"""The backup and point-in-time-restore drill (``ops/restore_drill.py``) keeps working: a
restore to a time before the last anchored checkpoint is reported by ``ledger verify --full``
against the anchors (exit 1), a restore to the end of the archived WAL verifies intact (exit 0).
Runs on this machine's PostgreSQL binaries, in its own clusters on free ports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ops.restore_drill import postgres_bin

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    postgres_bin() is None, reason="no PostgreSQL binaries (initdb, pg_ctl, pg_basebackup)"
)


def test_restore_drill_reports_the_rollback_then_verifies_the_complete_restore() -> None:
    result = subprocess.run(
        [sys.executable, "ops/restore_drill.py", "--conversations", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    # The point-in-time restore: caught by the anchor, not by the (fresh) verifier state.
    rolled_back = out.split("restore to the target time", 1)[1].split("restore to the end", 1)[0]
    assert "exit 1:" in rolled_back, out
    assert "anchored checkpoint" in rolled_back, out
    assert "beyond the database's latest checkpoint" in rolled_back, out
    complete = out.split("restore to the end", 1)[1]
    assert "exit 0: status intact" in complete, out
    assert "drill passed" in out
