"""`ledger anchor` and the server's anchoring interval: checkpoints published to a directory
(atomically, never overwritten) and a webhook, each anchoring an event; the verifier checks the
database against what was anchored (PCI DSS 10.3.3)."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from ledger.settings import Settings
from ledger.storage.db import unit_of_work
from tests.test_ingest_api import system_entries
from tests.test_verify_alerts import Receiver
from tests.test_verify_tamper import Cli, verify


@pytest.fixture
def cli(ledger_cli: Cli, verifier_env: dict[str, Path]) -> Cli:
    return ledger_cli


def latest_note(engine: Engine, log_id: str) -> tuple[int, str]:
    with unit_of_work(engine) as conn:
        row = conn.exec_driver_sql(
            "SELECT size, note FROM checkpoints WHERE log_id = %(log)s ORDER BY size DESC LIMIT 1",
            {"log": log_id},
        ).one()
    return int(row[0]), str(row[1])


def anchored(verifier_env: dict[str, Path], log_id: str) -> dict[int, str]:
    folder = verifier_env["anchors"] / log_id
    return {int(p.name.split(".")[0]): p.read_text() for p in sorted(folder.glob("*.checkpoint"))}


def test_anchor_publishes_to_directory_and_webhook_and_records_it(
    cli: Cli,
    verifier_env: dict[str, Path],
    new_log: Any,
    append_direct: Any,
    engine: Engine,
    client: Any,
    token: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = Receiver()
    monkeypatch.setenv("LEDGER_ANCHOR_WEBHOOK_URL", hook.url)
    try:
        log_id = new_log()
        append_direct(log_id, 8, batch=4)
        code, out, _ = cli("anchor", "--log", log_id)
        assert code == 0
        size, note = latest_note(engine, log_id)
        assert anchored(verifier_env, log_id) == {size: note}
        assert out.count(" ok\n") == 2
        [(_, headers, body)] = hook.requests
        assert body.decode() == note
        assert headers["Content-Type"].startswith("text/plain")
        assert (headers["X-Ledger-Log"], headers["X-Ledger-Tree-Size"]) == (log_id, "8")

        events = [
            e
            for e in system_entries(client, token, log_id)
            if e["entry"]["event"]["type"] == "ledger.checkpoint.anchored.v1"
        ]
        assert [e["payload"]["size"] for e in events] == [8]
        assert {s["outcome"] for s in events[0]["payload"]["sinks"]} == {"success"}

        assert cli("anchor", "--log", log_id)[0] == 0  # nothing new: nothing sent
        assert len(hook.requests) == 1
        append_direct(log_id, 2)
        assert cli("anchor", "--log", log_id)[0] == 0
        assert set(anchored(verifier_env, log_id)) == {8, 10}
    finally:
        hook.close()


def test_a_quiet_system_log_is_not_anchored_again(
    cli: Cli, new_log: Any, verifier_env: dict[str, Path]
) -> None:
    """Anchoring records an event in the system log; that event alone is not news."""
    log_id = new_log()
    system = f"{log_id}.system"
    assert cli("anchor", "--log", system)[0] == 0
    assert cli("anchor", "--log", system)[2].strip() == "nothing new to anchor"
    assert len(anchored(verifier_env, system)) == 1  # its log.created, anchored once


def test_a_different_checkpoint_at_an_anchored_size_is_a_fork(
    cli: Cli, new_log: Any, append_direct: Any, verifier_env: dict[str, Path]
) -> None:
    log_id = new_log()
    append_direct(log_id, 3)
    folder = verifier_env["anchors"] / log_id
    folder.mkdir(parents=True)
    forged = folder / f"{3:020d}.checkpoint"
    forged.write_text("another history\n")
    code, out, _ = cli("anchor", "--log", log_id)
    assert code == 1
    assert "FORK" in out
    assert forged.read_text() == "another history\n"  # never overwritten


def test_failing_sink_exits_2_and_is_recorded(
    cli: Cli, new_log: Any, client: Any, token: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = Receiver(status=503)
    monkeypatch.setenv("LEDGER_ANCHOR_WEBHOOK_URL", hook.url)
    try:
        log_id = new_log()
        code, out, _ = cli("anchor", "--log", log_id)
        assert code == 2
        assert "FAILURE: anchor webhook answered 503" in out
        [event] = [
            e
            for e in system_entries(client, token, log_id)
            if e["entry"]["event"]["type"] == "ledger.checkpoint.anchored.v1"
        ]
        assert event["entry"]["outcome"] == "failure"
    finally:
        hook.close()


def test_no_sink_configured_exits_2(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_ANCHOR_DIR")
    code, _, err = cli("anchor")
    assert code == 2
    assert "no sink configured" in err


def test_the_verifier_checks_every_new_anchor(
    cli: Cli, new_log: Any, append_direct: Any, verifier_env: dict[str, Path]
) -> None:
    log_id = new_log()
    append_direct(log_id, 5)
    assert cli("anchor", "--log", log_id)[0] == 0
    code, report = verify(cli, log_id)
    assert (code, report["anchors"]) == (0, 1)
    append_direct(log_id, 5)
    assert cli("anchor", "--log", log_id)[0] == 0
    code, report = verify(cli, log_id)  # incremental: anchors at or after size 5
    assert (code, report["anchors"]) == (0, 2)
    assert verify(cli, log_id, "--full")[1]["anchors"] == 2

    # An anchor file must hold the checkpoint its name gives.
    folder = verifier_env["anchors"] / log_id
    (folder / f"{12:020d}.checkpoint").write_text((folder / f"{10:020d}.checkpoint").read_text())
    code, report = verify(cli, log_id)
    assert code == 1
    assert "holds a checkpoint of another size" in report["failure"]["message"]


@pytest.fixture
def own_database(admin_url: str) -> Iterator[str]:
    """A database of its own: the server anchors every log it holds."""
    from ledger.storage.db import upgrade_schema
    from tests.conftest import create_database, drop_database

    name = f"ledger_anchor_{secrets.token_hex(4)}"
    url = create_database(admin_url, name)
    upgrade_schema(url)
    yield url
    drop_database(admin_url, name)


def test_the_server_anchors_on_an_interval(
    settings: Settings, own_database: str, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from ledger.services.admin.credentials import create_credential
    from ledger.services.admin.logs import create_log
    from ledger.storage.db import make_engine
    from ledger.storage.keystore import KeyRing
    from tests.conftest import TEST_ACTOR, make_event, now

    configured = settings.model_copy(
        update={
            "database_url": own_database,
            "anchor_dir": tmp_path,
            "anchor_interval_seconds": 0.05,
        }
    )
    engine = make_engine(own_database, pool_size=1)
    with unit_of_work(engine) as conn:
        keys = KeyRing.from_master(settings.master_key_bytes)
        create_log(conn, keys, "a", origin_prefix="ledger.test", actor=TEST_ACTOR, now=now())
        writer = create_credential(
            conn, keys, log_id="a", role="writer", label="w", actor=TEST_ACTOR, now=now()
        ).token
    engine.dispose()
    with TestClient(create_app(configured)) as client:
        r = client.post(
            "/v1/logs/a/events",
            json=make_event("c", 1),
            headers={"Authorization": f"Bearer {writer}"},
        )
        assert r.status_code == 201
        anchor = tmp_path / "a" / f"{1:020d}.checkpoint"
        deadline = time.monotonic() + 10
        while not anchor.exists() or not _every_anchoring_recorded(own_database):
            assert time.monotonic() < deadline, "nothing anchored"
            time.sleep(0.02)
    assert anchor.read_text() == r.json()["checkpoint"]


def _every_anchoring_recorded(url: str) -> bool:
    """One ``ledger.checkpoint.anchored.v1`` event per anchoring (one sink here)."""
    from ledger.storage.db import make_engine

    engine = make_engine(url, pool_size=1)
    try:
        with unit_of_work(engine) as conn:
            return bool(
                conn.exec_driver_sql(
                    "SELECT (SELECT count(*) FROM anchorings) = (SELECT count(*) FROM entries"
                    " WHERE event_type = 'ledger.checkpoint.anchored.v1')"
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_secrets_in_sink_urls_are_never_recorded_or_printed(
    cli: Cli,
    new_log: Any,
    append_direct: Any,
    engine: Engine,
    client: Any,
    token: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A webhook URL's user, password and query key are used to send, and appear nowhere the
    ledger records or prints: not the system log, not the anchorings table, not the output."""
    hook = Receiver()
    secret = f"s3cr3t-{secrets.token_hex(8)}"
    url = hook.url.replace("http://", f"http://anchor:{secret}@") + f"?key={secret}-q"
    monkeypatch.setenv("LEDGER_ANCHOR_WEBHOOK_URL", url)
    try:
        log_id = new_log()
        append_direct(log_id, 3)
        code, out, err = cli("anchor", "--log", log_id)
        assert code == 0, out + err
        [(path, headers, _)] = hook.requests
        assert path == f"/hook?key={secret}-q"  # sent: the sink gets what it was configured
        assert secret in base64.b64decode(headers["Authorization"].split()[1]).decode()
        assert secret not in out + err
        with unit_of_work(engine) as conn:
            rows = conn.exec_driver_sql("SELECT * FROM anchorings").all()
        assert rows
        assert secret not in repr(rows)
        for e in system_entries(client, token, log_id):
            assert secret not in json.dumps(e)
    finally:
        hook.close()
