"""Credential expiry (``credentials create --expires-in``): an expired credential is refused like
a revoked one, a server's principal cache never serves one past its expiry, and the expiry is
recorded in ``credential.created`` and shown by ``credentials list``."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from ledger.cli import main
from ledger.cli.admin import expires_in
from ledger.core.entry import format_time
from ledger.errors import InvalidRequest
from ledger.services.admin.credentials import create_credential, revoke_credential, token_hash
from ledger.settings import Settings
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import KeyRing
from tests.conftest import TEST_ACTOR, now


def auth(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def credential(
    engine: Engine,
    settings: Settings,
    log_id: str,
    *,
    at: datetime,
    expires_at: datetime | None,
    role: str = "auditor",
    revoke: bool = False,
) -> str:
    keys = KeyRing.from_master(settings.master_key_bytes)
    with unit_of_work(engine) as conn:
        new = create_credential(
            conn,
            keys,
            log_id=log_id,
            role=role,
            label="expiry test",
            actor=TEST_ACTOR,
            now=at,
            expires_at=expires_at,
        )
        if revoke:
            revoke_credential(conn, keys, new.id, actor=TEST_ACTOR, now=at)
    return new.token


def test_an_expired_credential_is_refused_like_a_revoked_one(
    client: Any, new_log: Any, engine: Engine, settings: Settings
) -> None:
    log_id = new_log()
    then = now() - timedelta(days=2)
    expired = credential(engine, settings, log_id, at=then, expires_at=then + timedelta(days=1))
    revoked = credential(engine, settings, log_id, at=now(), expires_at=None, revoke=True)
    live = credential(engine, settings, log_id, at=now(), expires_at=now() + timedelta(days=1))
    path = f"/v1/logs/{log_id}/entries"
    assert client.get(path, headers=auth(live)).status_code == 200
    refusals = [client.get(path, headers=auth(t)) for t in (expired, revoked, "hlt_forged")]
    assert [r.status_code for r in refusals] == [401, 401, 401]
    # One answer for every reason: the caller cannot tell expired from revoked or unknown.
    assert refusals[0].json() == refusals[1].json() == refusals[2].json()


def test_a_cached_principal_is_not_served_past_its_expiry(
    client: Any, new_log: Any, engine: Engine, settings: Settings
) -> None:
    log_id = new_log()
    expires_at = now() + timedelta(seconds=1.5)
    tok = credential(engine, settings, log_id, at=now(), expires_at=expires_at)
    path = f"/v1/logs/{log_id}/entries"
    assert client.get(path, headers=auth(tok)).status_code == 200  # cached now, for up to 5 s
    state = client.app.state.ledger
    assert state.principals.peek(token_hash(tok)) is not None
    time.sleep(max(0.0, (expires_at - now()).total_seconds()) + 0.2)
    assert state.principals.peek(token_hash(tok)) is None
    assert client.get(path, headers=auth(tok)).status_code == 401


def test_an_expiry_must_follow_the_creation(
    new_log: Any, engine: Engine, settings: Settings
) -> None:
    log_id = new_log()
    at = now()
    for expires_at in (at, at - timedelta(seconds=1)):
        with pytest.raises(InvalidRequest, match="expires_at must be after"):
            credential(engine, settings, log_id, at=at, expires_at=expires_at)


@pytest.mark.parametrize(
    ("value", "duration"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("1d", timedelta(days=1)),
        ("3650d", timedelta(days=3650)),
    ],
)
def test_expires_in_parses(value: str, duration: timedelta) -> None:
    assert expires_in(value) == duration


@pytest.mark.parametrize(
    "value",
    [
        "",
        "90",
        "d",
        "0d",
        "00d",
        "-1d",
        "+1d",
        "1.5h",
        "90D",
        "90 d",
        " 90d",
        "90d ",
        "90days",
        "1w",
        "10s",
        "1h30m",
        "\u0669\u0660d",  # Arabic-Indic digits
        "3651d",
        "87601h",
        "99999999d",
    ],
)
def test_a_bad_expires_in_exits_2_saying_why(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # "--expires-in=-1d": else argparse takes "-1d" for an option (also exit 2, not as clear).
    argv = ["credentials", "create", "--log", "x", "--role", "auditor", f"--expires-in={value}"]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--expires-in" in err
    assert "duration" in err or "at most 3650d" in err
    assert "Traceback" not in err


def test_expires_in_is_recorded_and_listed(
    ledger_cli: Any, new_log: Any, token: Any, client: Any, engine: Engine, settings: Settings
) -> None:
    log_id = new_log()
    before = datetime.now(UTC)
    code, out, err = ledger_cli(
        "credentials", "create", "--log", log_id, "--role", "writer", "--expires-in", "90d"
    )
    after = datetime.now(UTC)
    assert code == 0
    assert out.startswith("hlt_")
    assert ", expires " in err
    then = now() - timedelta(hours=2)
    credential(engine, settings, log_id, at=then, expires_at=then + timedelta(hours=1))

    code, out, _ = ledger_cli("credentials", "list", "--log", log_id)
    assert code == 0
    live, expired = (line.split("\t") for line in out.splitlines())
    assert live[1] == "writer"
    assert live[5] == "active"
    listed = datetime.fromisoformat(live[4])
    assert before + timedelta(days=90) <= listed <= after + timedelta(days=90)
    assert expired[5] == "expired"
    assert expired[4] == format_time(then + timedelta(hours=1))

    # The system log's credential.created carries the expiry, as listed (null: never).
    system = f"{log_id}.system"
    r = client.get(f"/v1/logs/{system}/entries", headers=auth(token(system, "auditor")))
    assert r.status_code == 200, r.text
    created = [
        e["payload"]
        for e in r.json()["entries"]
        if e["entry"]["event"]["type"] == "ledger.credential.created.v1"
        and e["payload"]["log"] == log_id
    ]
    assert [c["expires_at"] for c in created] == [live[4], expired[4]]


def test_a_credential_without_expiry_is_listed_as_never(ledger_cli: Any, new_log: Any) -> None:
    log_id = new_log()
    assert ledger_cli("credentials", "create", "--log", log_id, "--role", "auditor")[0] == 0
    code, out, _ = ledger_cli("credentials", "list", "--log", log_id)
    assert code == 0
    [line] = out.splitlines()
    assert line.endswith("\tnever\tactive")
