"""What a new user trips on (issue 16, class 12): /docs and /redoc load nothing from outside the
ledger, so they work offline and under a Content-Security-Policy of 'self'; the first start says
what it is doing."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_documentation_pages_load_only_the_ledgers_own_assets(client: Any, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    urls = re.findall(r'(?:src|href)="([^"]+)"', r.text) + re.findall(r"url: '([^']+)'", r.text)
    assert urls
    for url in urls:
        assert url.startswith("/"), f"{page} loads {url} from outside the ledger"
        assert client.get(url).status_code == 200, url
    assert "cdn" not in r.text.lower()
    assert "fonts.googleapis" not in r.text


@pytest.mark.slow
def test_the_first_start_says_what_it_is_doing() -> None:
    """``make run``'s first start (a new embedded PostgreSQL, the schema, the demo log) prints a
    line per step before the server listens, each with the seconds since the start."""
    # Not under pytest's tmp_path: another pytest session starting on the machine makes its
    # parent unreadable to the embedded PostgreSQL's own user.
    data = Path(tempfile.mkdtemp(prefix="ledger-first-start-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_DATA_DIR"] = str(data / "data")
    serve = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "serve", "--demo", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    try:
        assert serve.stderr is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("listening" in x for x in lines):
            line = serve.stderr.readline()
            assert line, "".join(lines)  # the server stopped before it listened
            lines.append(line)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
        if serve.stderr is not None:
            serve.stderr.close()
        shutil.rmtree(data, ignore_errors=True)
    steps = [
        line for line in lines if re.match(r"\[ *\d+\.\d s\] ", line)
    ]  # "[ 3.0 s] bringing the database schema up to date…"
    assert [s.split("] ", 1)[1].split(" ")[0] for s in steps] == [
        "creating",
        "bringing",
        "preparing",
    ]
    assert "embedded PostgreSQL" in steps[0]
