"""`ledger verify` as the scheduled job: incremental from the state it keeps outside the
database, read-only database role, runs recorded through the server, re-baselining."""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from ledger.settings import Settings
from ledger.storage.db import sqlalchemy_url
from tests.test_ingest_api import system_entries
from tests.test_verify_tamper import Cli, _libpq, verify


@pytest.fixture
def cli(ledger_cli: Cli, verifier_env: dict[str, Path]) -> Cli:
    return ledger_cli


def test_first_run_is_full_then_only_the_new_entries_are_read(
    cli: Cli, new_log: Any, append_direct: Any, verifier_env: dict[str, Path]
) -> None:
    log_id = new_log()
    append_direct(log_id, 30, batch=10)
    code, report = verify(cli, log_id)
    assert code == 0
    assert (
        report["mode"],
        report["from_size"],
        report["to_size"],
        report["entries"],
        report["checkpoints"],
    ) == ("full", 0, 30, 30, 4)
    state = json.loads((verifier_env["state"] / f"{log_id}.json").read_text())
    assert state["format"] == "handoff-ledger/verifier-state/v1"
    assert state["checkpoint"].split("\n")[1] == "30"

    append_direct(log_id, 7)
    code, report = verify(cli, log_id)
    assert code == 0
    # 7 entries read; checkpoints 30 (the starting point) and 37.
    assert (
        report["mode"],
        report["from_size"],
        report["to_size"],
        report["entries"],
        report["checkpoints"],
    ) == ("incremental", 30, 37, 7, 2)

    code, report = verify(cli, log_id)  # nothing new
    assert code == 0
    assert (report["from_size"], report["to_size"], report["entries"]) == (37, 37, 0)
    code, report = verify(cli, log_id, "--full")
    assert (code, report["mode"], report["entries"]) == (0, "full", 37)


def test_a_corrupt_state_file_means_could_not_run(
    cli: Cli, new_log: Any, verifier_env: dict[str, Path]
) -> None:
    log_id = new_log()
    assert verify(cli, log_id)[0] == 0
    path = verifier_env["state"] / f"{log_id}.json"
    path.write_text(path.read_text().replace('"keys": [', '"keys": ["junk", '))
    code, out, err = cli("verify", "--log", log_id, "--json")
    assert code == 2
    assert "is corrupt" in json.loads(out)["error"]
    assert "could not run" in err


def test_rebaseline_sets_the_old_state_aside(
    cli: Cli, new_log: Any, append_direct: Any, verifier_env: dict[str, Path]
) -> None:
    log_id = new_log()
    append_direct(log_id, 3)
    assert verify(cli, log_id)[0] == 0
    assert cli("verify", "--rebaseline", "--json")[0] == 2  # one log at a time
    code, out, err = cli("verify", "--log", log_id, "--rebaseline", "--json")
    assert code == 0
    assert json.loads(out)["logs"][0]["mode"] == "full"
    assert "previous state moved to" in err
    assert len(list(verifier_env["state"].glob(f"{log_id}.json.*.superseded"))) == 1


def test_progress_on_a_terminal_only(
    cli: Cli, new_log: Any, monkeypatch: pytest.MonkeyPatch, append_direct: Any
) -> None:
    log_id = new_log()
    append_direct(log_id, 3)
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    _, out, err = cli("verify", "--log", log_id, "--full")
    assert f"\r{log_id}: 3/3 entries" in err
    assert f"{log_id}: full [0, 3), 3 entries, 2 checkpoints, 0 anchors: intact" in out
    _, _, err = cli("verify", "--log", log_id, "--full", "--json")
    assert "entries" not in err


# --- a read-only role, runs recorded through the server ----------------------------------------


@pytest.fixture
def readonly_url(db_url: str) -> Iterator[str]:
    """A login role that is a member of ``ledger_readonly`` and nothing else."""
    role = f"ledger_verifier_{secrets.token_hex(4)}"
    with psycopg.connect(_libpq(db_url), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN IN ROLE ledger_readonly")
    try:
        yield (
            make_url(sqlalchemy_url(db_url))
            .set(username=role, password=None)
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(_libpq(db_url), autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


@pytest.fixture
def live_server(settings: Settings) -> Iterator[str]:
    """The API on a real socket (127.0.0.1, ephemeral port) for clients that are not in-process."""
    import uvicorn

    from api.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_read_only_role_verifies_and_the_run_is_recorded_through_the_server(
    cli: Cli,
    new_log: Any,
    append_direct: Any,
    readonly_url: str,
    live_server: str,
    token: Any,
    client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log_id = new_log()
    append_direct(log_id, 12, batch=4)
    monkeypatch.setenv("LEDGER_DATABASE_URL", readonly_url)
    monkeypatch.setenv("LEDGER_VERIFY_RECORD_URL", live_server)
    monkeypatch.setenv("LEDGER_VERIFY_RECORD_TOKEN", token(f"{log_id}.system", "verifier"))
    code, out, err = cli("verify", "--tenant", log_id, "--json")
    assert code == 0, err
    assert {r["log"] for r in json.loads(out)["logs"]} == {log_id, f"{log_id}.system"}

    runs = [
        e
        for e in system_entries(client, token, log_id)
        if e["entry"]["event"]["type"] == "ledger.verification.run.v1"
    ]
    assert len(runs) == 1
    run = runs[0]
    assert run["entry"]["outcome"] == "success"
    assert run["payload"]["status"] == "intact"
    assert run["payload"]["actor"]["role"] == "verifier"
    assert {r["log"]: r["to_size"] for r in run["payload"]["logs"]}[log_id] == 12


def test_a_run_that_cannot_be_recorded_exits_2(
    cli: Cli, new_log: Any, live_server: str, token: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_id, other = new_log(), new_log()
    monkeypatch.setenv("LEDGER_VERIFY_RECORD_URL", live_server)
    monkeypatch.setenv("LEDGER_VERIFY_RECORD_TOKEN", token(f"{other}.system", "verifier"))
    code, out, err = cli("verify", "--log", log_id, "--json")
    assert code == 2
    assert "run not recorded for tenant" in err
    assert json.loads(out)["status"] == "intact"


def test_the_record_endpoint_accepts_only_a_verifier_of_that_tenant(
    client: Any, new_log: Any, token: Any
) -> None:
    log_id, other = new_log(), new_log()
    run = {
        "status": "intact",
        "intact": True,
        "mode": "full",
        "host": "h",
        "started_at": "2026-11-27T10:00:00Z",
        "finished_at": "2026-11-27T10:00:01Z",
        "logs": [
            {
                "log": log_id,
                "intact": True,
                "mode": "full",
                "from_size": 0,
                "to_size": 0,
                "entries": 0,
                "checkpoints": 1,
                "anchors": 0,
                "erased_payloads": 0,
            }
        ],
    }

    def post(path_log: str, tok: str, body: dict[str, Any]) -> int:
        r = client.post(
            f"/v1/logs/{path_log}/verifications",
            json=body,
            headers={"Authorization": f"Bearer {tok}"},
        )
        return int(r.status_code)

    system = f"{log_id}.system"
    assert post(system, token(system, "verifier"), run) == 201
    assert post(system, token(system, "writer"), run) == 403
    assert post(system, token(f"{other}.system", "verifier"), run) == 403
    assert post(log_id, token(log_id, "verifier"), run) == 400  # runs go to the system log
    foreign = {**run, "logs": [{**run["logs"][0], "log": other}]}
    assert post(system, token(system, "verifier"), foreign) == 403
    assert post(system, token(system, "verifier"), {**run, "status": "fine"}) == 422
