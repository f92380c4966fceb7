"""Retention (issue 14.4) on real PostgreSQL: expired conversations are crypto-shredded through
the erasure's own path, never their entries; unexpired and held ones are untouched; every run is
a signed record the verifier accepts exactly as it accepts an erasure record; the log still
verifies in full, its trails offline, and a bundle over the period shows the payloads erased by
retention. A policy changes only with two admins.

Entries are appended through the sequencer stamped at a chosen time (``append_at``), so a
conversation can be 40 days old without a test waiting for it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine

from ledger.core.canonical import canonicalize
from ledger.core.commitment import new_salt
from ledger.core.entry import EventHeader
from ledger.domain import AppendRequest, Principal
from ledger.errors import InvalidRequest, TwoPersonRule
from ledger.services.ingest.prepare import prepared_event
from ledger.services.privacy.approve import approve
from ledger.services.privacy.requests import request_hold
from ledger.services.privacy.retention import (
    PROFILES,
    parse_retention,
    request_retention_change,
    retention_policy,
    run_retention,
)
from ledger.services.privacy.scopes import Scope
from ledger.settings import Settings
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import KeyRing
from ledger.storage.logs import get_log
from ledger.storage.sequencer import append_batch
from tests.conftest import now as clock
from tests.test_ingest_api import auth, system_entries
from tests.test_verify_tamper import Cli, _libpq, assert_caught, verify

UNRECORDED = "data key destroyed without an erasure record"
ACTOR = {"kind": "system", "id": "test:retention"}
DAY = timedelta(days=1)


@pytest.fixture
def keys(settings: Settings) -> KeyRing:
    return KeyRing.from_master(settings.master_key_bytes)


@pytest.fixture
def cli(ledger_cli: Cli, verifier_env: Any) -> Cli:
    return ledger_cli


def append_at(
    engine: Engine, keys: KeyRing, log_id: str, at: datetime, *said: tuple[str, str, int]
) -> None:
    """Append ``(conversation, customer, n)`` messages in one batch, received at ``at``."""
    events = []
    for conversation, customer, n in said:
        who = {"kind": "customer", "id": customer}
        data = canonicalize({"text": f"{conversation} says {n}", "actor": who})
        header = EventHeader(
            event_id=f"{conversation}-{n}",
            source="urn:test:retention",
            type="handoff.message.created.v1",
            time="2026-11-20T09:14:01.000Z",
            conversation_id=conversation,
            actor=who,
            outcome="success",
            resource=None,
        )
        events.append(
            prepared_event(
                header,
                scope=f"conversation:{conversation}",
                canonical_data=data,
                envelope_bytes=canonicalize([conversation, n]),
                salt=new_salt(),
            )
        )
    with unit_of_work(engine) as conn:
        outcome = append_batch(
            conn,
            get_log(conn, log_id),
            [AppendRequest(events, Principal(0, log_id, "writer", "test"))],
            signers=keys.signers,
            data_keys=keys.data_keys,
            now=at,
        )
    assert not isinstance(outcome.results[0], Exception), outcome.results[0]


def admins(engine: Engine, keys: KeyRing, token: Any, log_id: str) -> tuple[Principal, Principal]:
    from ledger.services.admin.credentials import authenticate

    with unit_of_work(engine) as conn:
        return authenticate(conn, token(log_id, "admin")), authenticate(
            conn, token(log_id, "admin")
        )


def key_state(db_url: str, log_id: str, conversation: str) -> tuple[bool, str | None]:
    """(destroyed, destroyed_by) of the conversation's data key."""
    with psycopg.connect(_libpq(db_url)) as conn:
        row = conn.execute(
            "SELECT wrapped IS NULL, destroyed_by FROM data_keys WHERE log_id = %s AND scope = %s",
            (log_id, f"conversation:{conversation}"),
        ).fetchone()
    assert row is not None
    return bool(row[0]), row[1]


def entry_rows(db_url: str, log_id: str) -> list[tuple[int, bytes, bytes]]:
    with psycopg.connect(_libpq(db_url)) as conn:
        return [
            (int(r[0]), bytes(r[1]), bytes(r[2]))
            for r in conn.execute(
                "SELECT seq, entry, leaf_hash FROM entries WHERE log_id = %s ORDER BY seq",
                (log_id,),
            )
        ]


def retention_records(client: Any, token: Any, log_id: str) -> list[dict[str, Any]]:
    return [
        e["payload"]
        for e in system_entries(client, token, log_id)
        if e["entry"]["event"]["type"] == "ledger.retention.executed.v1"
    ]


@pytest.fixture
def aged_log(engine: Engine, keys: KeyRing, new_log: Any, token: Any) -> dict[str, Any]:
    """A log kept 30 days, where at ``now``:

    - ``old`` (cust-o) was last written 40 days ago: expired;
    - ``running`` (cust-r) started 40 days ago and was written to yesterday: not expired;
    - ``held`` (cust-h) and ``subj`` (cust-s) are 40 days old, under a conversation hold and a
      data-subject hold;
    - ``fresh`` (cust-o again: a subject's conversations expire one by one) is from today."""
    log_id = new_log()
    now = clock()
    first, second = admins(engine, keys, token, log_id)

    def approved(request: Callable[..., Any], target: object, basis: str, reference: str) -> None:
        """``first`` asks, ``second`` approves (two units of work, as over HTTP)."""
        with unit_of_work(engine) as conn:
            pending = request(
                conn,
                keys,
                get_log(conn, log_id),
                target,
                legal_basis=basis,
                reference=reference,
                requester=first,
                now=now,
            )
        with unit_of_work(engine) as conn:
            approve(conn, keys, get_log(conn, log_id), pending.id, approver=second, now=now)

    approved(request_retention_change, 30, "data minimisation", "RET-1")
    old = now - 40 * DAY
    append_at(engine, keys, log_id, old, ("old", "cust-o", 0), ("running", "cust-r", 0))
    append_at(engine, keys, log_id, old, ("held", "cust-h", 0), ("subj", "cust-s", 0))
    append_at(engine, keys, log_id, old, ("old", "cust-o", 1), ("held", "cust-h", 1))
    append_at(engine, keys, log_id, now - DAY, ("running", "cust-r", 1))
    append_at(engine, keys, log_id, now, ("fresh", "cust-o", 0))
    for scope in (Scope.of(conversation="held"), Scope.of(subject="cust-s")):
        approved(request_hold, scope, "litigation", "CASE-1")
    return {"log": log_id, "now": now, "admins": (first, second)}


def test_expired_conversations_are_shredded_and_nothing_else(
    aged_log: dict[str, Any],
    engine: Engine,
    keys: KeyRing,
    db_url: str,
    client: Any,
    token: Any,
    cli: Cli,
    tmp_path: Path,
) -> None:
    log_id = aged_log["log"]
    before = entry_rows(db_url, log_id)
    [run] = run_retention(engine, keys, now=aged_log["now"], actor=ACTOR, log_ids=[log_id])

    assert run.policy.days == 30
    assert run.as_json()["conversations"] == ["old"]
    assert key_state(db_url, log_id, "old") == (True, "retention")
    for kept in ("running", "held", "subj", "fresh"):
        assert key_state(db_url, log_id, kept) == (False, None), kept
    assert sorted(run.as_json()["held"]) == ["held", "subj"]
    assert entry_rows(db_url, log_id) == before  # entries are never touched

    # The run's record names the key, the conversation and its seqs (0 and 4).
    [record] = retention_records(client, token, log_id)
    assert record["destroyed_keys"] == run.destroyed_keys
    assert record["seqs"] == [[0, 0], [4, 4]]
    assert record["policy"] == {"days": 30, "set_by": record["policy"]["set_by"]}
    assert record["held"] == ["held", "subj"]

    # Reads say what happened.
    auditor = token(log_id, "auditor")
    r = client.get(f"/v1/logs/{log_id}/conversations/old/trail", headers=auth(auditor))
    assert r.status_code == 200, r.text
    trail = r.json()
    assert {e["payload_status"] for e in trail["entries"]} == {"erased"}
    assert all(e["erasure"]["by"] == "retention" for e in trail["entries"])
    assert all(e["erasure"]["request"] is None for e in trail["entries"])

    # The log verifies in full, the erased payloads covered by the retention record.
    code, report = verify(cli, log_id, "--full")
    assert code == 0, report
    assert report["erased_payloads"] == 2

    # The trail verifies offline.
    keys_file = tmp_path / "keys"
    keys_file.write_text(client.get(f"/v1/logs/{log_id}/verifier-key").text)
    saved = tmp_path / "trail.json"
    saved.write_text(json.dumps(trail))
    code, out, err = cli("verify-trail", str(saved), "--verifier-keys-file", str(keys_file))
    assert code == 0, out + err

    # A bundle over the period verifies, and shows the payloads erased by retention.
    r = client.post(
        f"/v1/logs/{log_id}/exports",
        json={"profile": "soc2-population", "start_seq": 0, "end_seq": 5},
        headers=auth(auditor),
    )
    assert r.status_code == 200, r.text
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(r.content)
    both = tmp_path / "both.keys"  # the log's keys and its system log's, for the records
    both.write_text(
        keys_file.read_text() + client.get(f"/v1/logs/{log_id}.system/verifier-key").text
    )
    code, out, err = cli("verify-bundle", str(bundle), "--verifier-keys-file", str(both), "--json")
    assert code == 0, out + err
    report = json.loads(out)
    assert report["format"] == "handoff-ledger/evidence-bundle/v2"
    assert report["erasures"] == {"by_erasure": 0, "by_retention": 2, "records": 1}
    # Without the system log's key the records cannot be checked: could not run.
    code, out, err = cli("verify-bundle", str(bundle), "--verifier-keys-file", str(keys_file))
    assert code == 2, out + err


def test_a_shredded_conversation_takes_no_more_events(
    aged_log: dict[str, Any], engine: Engine, keys: KeyRing, client: Any, token: Any
) -> None:
    log_id = aged_log["log"]
    run_retention(engine, keys, now=aged_log["now"], actor=ACTOR, log_ids=[log_id])
    from tests.conftest import make_event

    r = client.post(
        f"/v1/logs/{log_id}/events",
        json=make_event("old", 9),
        headers=auth(token(log_id, "writer")),
    )
    assert r.status_code == 409, r.text
    assert r.json()["type"].endswith("conversation-erased")


def test_runs_are_idempotent_and_safe_side_by_side(
    aged_log: dict[str, Any],
    engine: Engine,
    keys: KeyRing,
    settings: Settings,
    client: Any,
    token: Any,
    cli: Cli,
) -> None:
    log_id = aged_log["log"]
    later = aged_log["now"] + 35 * DAY  # running, held, subj and fresh: 35+ days old now
    results: list[Any] = []

    def run() -> None:
        results.extend(
            run_retention(
                engine,
                KeyRing.from_master(settings.master_key_bytes),
                now=later,
                actor=ACTOR,
                log_ids=[log_id],
            )
        )

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first, second = (r.as_json() for r in results)
    # Each key destroyed once, by one of the two; holds still win.
    assert sorted(first["conversations"] + second["conversations"]) == ["fresh", "old", "running"]
    assert not set(first["destroyed_keys"]) & set(second["destroyed_keys"])
    assert sorted(first["held"]) == sorted(second["held"]) == ["held", "subj"]

    again = run_retention(engine, keys, now=later, actor=ACTOR, log_ids=[log_id])[0].as_json()
    assert again["destroyed_keys"] == []
    assert again["conversations"] == []
    records = retention_records(client, token, log_id)
    assert len(records) == 3  # every run is on the record, also when nothing expired
    assert records[-1]["destroyed_keys"] == []
    code, report = verify(cli, log_id, "--full")
    assert code == 0, report
    assert report["erased_payloads"] == 5


def test_nothing_expired_is_recorded_too(
    engine: Engine, keys: KeyRing, new_log: Any, client: Any, token: Any
) -> None:
    log_id = new_log()
    append_at(engine, keys, log_id, clock(), ("c", "cust-c", 0))
    [run] = run_retention(engine, keys, now=clock(), actor=ACTOR, log_ids=[log_id])
    assert run.policy.days == PROFILES["hipaa"]
    assert run.policy.set_by == "log creation"
    assert run.destroyed_keys == []
    [record] = retention_records(client, token, log_id)
    assert record["destroyed_keys"] == []
    assert record["entries"] == 0


def test_small_batches_cover_every_expired_conversation(
    engine: Engine, keys: KeyRing, new_log: Any, client: Any, token: Any, cli: Cli
) -> None:
    log_id = new_log()
    at = clock() - 3000 * DAY
    append_at(engine, keys, log_id, at, *[(f"c{i}", "cust", 0) for i in range(7)])
    [run] = run_retention(engine, keys, now=clock(), actor=ACTOR, log_ids=[log_id], batch=3)
    assert sorted(run.as_json()["conversations"]) == [f"c{i}" for i in range(7)]
    assert len(run.batches) == 3  # 3 + 3 + 1
    assert verify(cli, log_id, "--full")[0] == 0


def test_a_key_destroyed_with_neither_record_is_still_tampering(
    aged_log: dict[str, Any], engine: Engine, keys: KeyRing, db_url: str, cli: Cli
) -> None:
    log_id = aged_log["log"]
    run_retention(engine, keys, now=aged_log["now"], actor=ACTOR, log_ids=[log_id])
    assert verify(cli, log_id, "--full")[0] == 0
    with psycopg.connect(_libpq(db_url)) as conn:  # as retention would, but unrecorded
        conn.execute(
            "UPDATE data_keys SET wrapped = NULL, destroyed_at = now(), destroyed_by = 'retention'"
            " WHERE log_id = %s AND scope = 'conversation:running'",
            (log_id,),
        )
    assert_caught(verify(cli, log_id, "--full"), UNRECORDED, seq=1)


def test_a_policy_changes_only_with_two_admins(
    engine: Engine, keys: KeyRing, new_log: Any, token: Any, client: Any
) -> None:
    log_id = new_log()
    first, second = admins(engine, keys, token, log_id)
    now = clock()
    with unit_of_work(engine) as conn:
        log = get_log(conn, log_id)
        assert retention_policy(conn, log).days == PROFILES["hipaa"]
        with pytest.raises(InvalidRequest, match="already"):
            request_retention_change(
                conn, keys, log, PROFILES["hipaa"], legal_basis="x", reference="y",
                requester=first, now=now,
            )  # fmt: skip
    with unit_of_work(engine) as conn:
        pending = request_retention_change(
            conn, keys, get_log(conn, log_id), 366, legal_basis="PCI DSS 10.5.1",
            reference="RET-2", requester=first, now=now,
        )  # fmt: skip
    with unit_of_work(engine) as conn:
        assert retention_policy(conn, get_log(conn, log_id)).days == PROFILES["hipaa"]
        with pytest.raises(TwoPersonRule):
            approve(conn, keys, get_log(conn, log_id), pending.id, approver=first, now=now)
    with unit_of_work(engine) as conn:
        done = approve(conn, keys, get_log(conn, log_id), pending.id, approver=second, now=now)
    assert "366 days (was 2192)" in done.done
    with unit_of_work(engine) as conn:
        policy = retention_policy(conn, get_log(conn, log_id))
    assert (policy.days, policy.set_by) == (366, f"request {pending.id}")
    changed = [
        e["payload"]
        for e in system_entries(client, token, log_id)
        if e["entry"]["event"]["type"] == "ledger.retention.changed.v1"
    ]
    assert [(c["retention_days"], c["previous_days"]) for c in changed] == [(366, 2192)]
    assert changed[0]["requested_by"] == first.credential_id
    assert changed[0]["approved_by"] == second.credential_id


def test_parse_retention() -> None:
    assert parse_retention("365d") == 365
    assert parse_retention("pci-dss") == 366
    assert parse_retention("hipaa") == 2192
    for bad in ("0d", "12m", "365", "-1d", "99999999d", "pci", ""):
        with pytest.raises(InvalidRequest):
            parse_retention(bad)


def test_cli(cli: Cli, new_log: Any, token: Any, engine: Engine, keys: KeyRing) -> None:
    code, out, err = cli("logs", "create", "ret-cli", "--retention", "30d")
    assert code == 0, err
    code, out, err = cli("retention", "show", "--log", "ret-cli")
    assert (code, out.split("\t")[:2]) == (0, ["ret-cli", "30d"])
    append_at(engine, keys, "ret-cli", clock() - 31 * DAY, ("gone", "cust-g", 0))
    append_at(engine, keys, "ret-cli", clock(), ("kept", "cust-k", 0))
    code, out, err = cli("retention", "run", "--log", "ret-cli", "--json")
    assert code == 0, err
    [run] = json.loads(out)
    assert run["conversations"] == ["gone"]
    assert run["entries"] == 1
    with pytest.raises(SystemExit) as refused:  # argparse: exit 2, nothing created
        cli("logs", "create", "ret-bad", "--retention", "12 months")
    assert refused.value.code == 2

    admin1, admin2 = token("ret-cli", "admin"), token("ret-cli", "admin")
    code, out, err = cli(
        "retention", "set", "--log", "ret-cli", "--retention", "pci-dss",
        "--legal-basis", "PCI DSS 10.5.1", "--reference", "RET-3", "--token", admin1,
    )  # fmt: skip
    assert code == 0, err
    request_id = json.loads(out)["id"]
    assert json.loads(out)["retention_days"] == 366
    assert cli("approve", str(request_id), "--log", "ret-cli", "--token", admin1)[0] != 0
    code, out, err = cli("approve", str(request_id), "--log", "ret-cli", "--token", admin2)
    assert code == 0, err
    assert cli("retention", "show", "--log", "ret-cli")[1].split("\t")[1] == "366d"


def test_the_application_role_may_run_retention(
    aged_log: dict[str, Any], db_url: str, keys: KeyRing, cli: Cli
) -> None:
    """What a run writes (data keys, the system log) is within ``ledger_app``'s grants, under
    row security as the ``ledger`` commands run (the operator's scope)."""
    from ledger.storage.db import make_engine

    app_engine = make_engine(db_url, role="ledger_app", pool_size=1, system="operator")
    try:
        [run] = run_retention(
            app_engine, keys, now=aged_log["now"], actor=ACTOR, log_ids=[aged_log["log"]]
        )
    finally:
        app_engine.dispose()
    assert run.as_json()["conversations"] == ["old"]
    assert key_state(db_url, aged_log["log"], "old") == (True, "retention")
    assert verify(cli, aged_log["log"], "--full")[0] == 0
