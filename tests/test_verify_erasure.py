"""An unreadable payload must be covered by a signed erasure record: a data key destroyed by a
two-admin erasure verifies (its payloads counted as erased); one destroyed behind the ledger's
back, with no ``ledger.erasure.executed.v1`` naming it in the tenant's system log, is
tampering."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from ledger.services.verification import parallel as verify_parallel
from ledger.services.verification.parallel import Part
from tests.test_privacy import Ledger, data_key, ledger, said_by
from tests.test_verify_parallel import small_parts
from tests.test_verify_tamper import Cli, _libpq, assert_caught, verify

__all__ = ["ledger", "small_parts"]  # fixtures

UNRECORDED = "data key destroyed without an erasure record"


@pytest.fixture
def cli(ledger_cli: Cli, verifier_env: Any) -> Cli:
    return ledger_cli


def destroy_key(db_url: str, log_id: str, conversation: str) -> int:
    """What an erasure does to the key, with no request, approval or record: the application
    role's UPDATE is enough (no trigger guards it)."""
    with psycopg.connect(_libpq(db_url)) as conn:
        row = conn.execute(
            "UPDATE data_keys SET wrapped = NULL, destroyed_at = now()"
            " WHERE log_id = %s AND scope = %s RETURNING id",
            (log_id, f"conversation:{conversation}"),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_key_destroyed_without_an_erasure_record_is_tampering(
    ledger: Ledger, cli: Cli, db_url: str
) -> None:
    # Fixture: a at 0-2, b at 3-5, a at 6, c at 7-8, b at 9, a at 10.
    done = ledger.approved(ledger.erase(conversation="b"))
    assert data_key(db_url, ledger.log, "b")[0] is None
    code, report = verify(cli, ledger.log, "--full")
    assert code == 0, report
    assert report["erased_payloads"] == 4

    key_id = destroy_key(db_url, ledger.log, "c")
    assert key_id not in done["erasure"]["destroyed_keys"]
    code, report = verify(cli, ledger.log, "--full")
    assert_caught((code, report), UNRECORDED, seq=7)
    failure = report["failure"]
    assert failure["log"] == ledger.log
    assert f"data key {key_id}" in failure["expected"]
    assert f"data key {key_id} destroyed" in failure["found"]


def test_incremental_runs_catch_it_in_their_range_only(
    ledger: Ledger, cli: Cli, db_url: str
) -> None:
    ledger.approved(ledger.erase(conversation="b"))
    assert verify(cli, ledger.log)[0] == 0  # baseline at size 11 (first sight: full)
    r = ledger.post(said_by("cust-b", "c", 5), said_by("cust-a", "a", 5))
    assert r.status_code == 201, r.text  # c at 11, a at 12

    # c has entries in the incremental range [11, 13): caught there, at its first one.
    destroy_key(db_url, ledger.log, "c")
    assert_caught(verify(cli, ledger.log), UNRECORDED, seq=11)


def test_a_key_destroyed_for_old_entries_only_is_the_full_runs_to_find(
    ledger: Ledger, cli: Cli, db_url: str
) -> None:
    assert verify(cli, ledger.log)[0] == 0  # baseline at size 11
    r = ledger.post(said_by("cust-a", "a", 5))
    assert r.status_code == 201, r.text
    destroy_key(db_url, ledger.log, "c")  # entries 7-8, before the incremental range
    code, report = verify(cli, ledger.log)
    assert code == 0, report  # an incremental run reads only [11, 12)
    assert_caught(verify(cli, ledger.log, "--full"), UNRECORDED, seq=7)


def test_parallel_parts_get_the_erasure_records(
    ledger: Ledger,
    cli: Cli,
    db_url: str,
    small_parts: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 11 + 90 + 10 entries: with the small parts, [0, 60) here and [60, 111) in a process.
    for start in range(0, 90, 30):
        r = ledger.post(*[said_by("cust-a", "a", n) for n in range(100 + start, 130 + start)])
        assert r.status_code == 201, r.text
    for conversation in ("d", "e"):
        r = ledger.post(*[said_by(f"cust-{conversation}", conversation, n) for n in range(5)])
        assert r.status_code == 201, r.text
    started: list[int] = []
    claimed = verify_parallel._claimed_start

    def spy(*args: Any) -> Part | None:
        part = claimed(*args)
        started.append(part.start if part else -1)
        return part

    monkeypatch.setattr(verify_parallel, "_claimed_start", spy)
    ledger.approved(ledger.erase(conversation="d"))  # 101-105
    code, report = verify(cli, ledger.log, "--full", "--jobs", "3")
    assert code == 0, report
    assert report["erased_payloads"] == 5
    assert started == [60]  # the erased entries are the other process's

    destroy_key(db_url, ledger.log, "e")  # 106-110, in the other process's part
    assert_caught(verify(cli, ledger.log, "--full", "--jobs", "3"), UNRECORDED, seq=106)
