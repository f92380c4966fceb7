"""A failed verification alerts (PCI DSS 10.3.4, 10.7.2): the JSON report is POSTed to the
webhook and piped to the command; an intact run alerts no one."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.test_verify_tamper import Cli, tamper


class Receiver:
    """A local HTTP endpoint (127.0.0.1 only) that keeps what it is sent."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.status = status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((self.path, dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def alerting(
    ledger_cli: Cli,
    verifier_env: dict[str, Path],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> tuple[Cli, Path]:
    out = tmp_path / "alert.json"
    monkeypatch.setenv("LEDGER_ALERT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("LEDGER_ALERT_COMMAND", f"sh -c 'cat > {out}'")
    return ledger_cli, out


def test_tampering_alerts_by_webhook_and_command(
    alerting: tuple[Cli, Path],
    receiver: Receiver,
    new_log: Any,
    append_direct: Any,
    db_url: str,
) -> None:
    cli, out = alerting
    log_id = new_log()
    append_direct(log_id, 10)
    assert cli("verify", "--log", log_id)[0] == 0
    assert receiver.requests == []
    assert not out.exists()

    tamper(db_url, "payloads", "DELETE FROM payloads WHERE log_id = %s AND seq = 4", log_id)
    code, _, _ = cli("verify", "--log", log_id, "--full")
    assert code == 1
    [(path, headers, body)] = receiver.requests
    assert path == "/hook"
    assert headers["Content-Type"] == "application/json"
    report = json.loads(body)
    assert report["status"] == "tampered"
    assert report["logs"][0]["failure"]["seq"] == 4
    assert report["logs"][0]["failure"]["what"] == "payload is missing"
    assert json.loads(out.read_text()) == report


def test_could_not_run_alerts_too(
    alerting: tuple[Cli, Path], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli, out = alerting
    monkeypatch.setenv("LEDGER_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert cli("verify", "--json")[0] == 2
    assert json.loads(out.read_text())["status"] == "error"
    assert len(receiver.requests) == 1


def test_an_undeliverable_alert_is_reported(
    alerting: tuple[Cli, Path],
    receiver: Receiver,
    new_log: Any,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli, _ = alerting
    receiver.status = 500
    monkeypatch.setenv("LEDGER_ALERT_COMMAND", "false")
    log_id = new_log()
    tamper(db_url, "checkpoints", "DELETE FROM checkpoints WHERE log_id = %s", log_id)
    code, out, err = cli("verify", "--log", log_id, "--json")
    assert code == 1  # the finding stands; the delivery problems are reported beside it
    assert "alert webhook answered 500" in err
    assert "alert command failed" in err
    assert len(json.loads(out)["problems"]) == 2
