"""Verification split over processes (``ledger verify --jobs``) proves exactly what one process
proves: same counts and state on an intact log, the same first failure on a tampered one, in
whichever part it lies, with forked or spawned processes."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.domain import LogInfo
from ledger.errors import IntegrityFailure
from ledger.services.verification import parallel as verify_parallel
from ledger.services.verification import range as verify_range
from ledger.services.verification.parallel import Part, _combine, split
from ledger.services.verification.range import RangeResult
from tests.test_verify_tamper import Cli, assert_caught, tamper, tamper_many, verify

ENTRIES = 120


@pytest.fixture
def cli(ledger_cli: Cli, verifier_env: Any) -> Cli:
    return ledger_cli


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 10 and parts from 40 entries, so a 120-entry log splits in three."""
    monkeypatch.setattr(verify_range, "CHUNK", 10)
    monkeypatch.setattr(verify_parallel, "CHUNK", 10)
    monkeypatch.setattr(verify_parallel, "PARALLEL_MIN", 80)


@pytest.fixture
def long_log(new_log: Any, append_direct: Any) -> str:
    log_id: str = new_log()
    append_direct(log_id, ENTRIES, batch=7)  # checkpoints off the part boundaries, and on some
    return log_id


def test_split_covers_the_range_in_whole_chunks(small_parts: None) -> None:
    assert split(0, 120, 3) == [(0, 40), (40, 80), (80, 120)]
    assert split(0, 125, 2) == [(0, 70), (70, 125)]
    assert split(30, 200, 4) == [(30, 80), (80, 130), (130, 180), (180, 200)]
    assert split(0, 79, 4) == [(0, 79)]  # too short to be worth a second process
    assert split(0, 120, 1) == [(0, 120)]


@pytest.mark.parametrize("threads", [1, 2], ids=["forked", "spawned"])
def test_parallel_run_proves_what_one_process_proves(
    cli: Cli, long_log: str, small_parts: None, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    code, single = verify(cli, long_log, "--full", "--jobs", "1")
    assert code == 0, single
    monkeypatch.setattr(
        "ledger.services.verification.parallel.threading.active_count", lambda: threads
    )
    started: list[int] = []
    claimed = verify_parallel._claimed_start

    def spy(*args: Any) -> Part | None:
        part = claimed(*args)
        started.append(part.start if part else -1)
        return part

    monkeypatch.setattr(verify_parallel, "_claimed_start", spy)
    code, parallel = verify(cli, long_log, "--full", "--jobs", "3")
    assert code == 0, parallel
    assert started == [40, 80]  # two more processes, from the database's state there
    assert parallel == single
    assert parallel["entries"] == ENTRIES
    assert parallel["checkpoints"] == single["checkpoints"] > 0


def test_tampering_in_a_later_part_is_named(
    cli: Cli, long_log: str, small_parts: None, db_url: str
) -> None:
    tamper(
        db_url,
        "payloads",
        "UPDATE payloads SET sealed = set_byte(sealed, 20,"
        " get_byte(sealed, 20) # 1) WHERE log_id = %s AND seq = 95",
        long_log,
    )
    assert_caught(
        verify(cli, long_log, "--full", "--jobs", "3"), "payload does not decrypt", seq=95
    )


def test_the_first_failure_in_log_order_wins(
    cli: Cli, long_log: str, small_parts: None, db_url: str
) -> None:
    flip = (
        "UPDATE payloads SET sealed = set_byte(sealed, 20, get_byte(sealed, 20) # 1)"
        " WHERE log_id = %s AND seq = %s"
    )
    tamper_many(db_url, ["payloads"], [(flip, (long_log, 90)), (flip, (long_log, 50))])
    assert_caught(
        verify(cli, long_log, "--full", "--jobs", "3"), "payload does not decrypt", seq=50
    )


def test_tampering_in_the_first_part_stops_the_others(
    cli: Cli, long_log: str, small_parts: None, db_url: str
) -> None:
    flip = (
        "UPDATE payloads SET sealed = set_byte(sealed, 20, get_byte(sealed, 20) # 1)"
        " WHERE log_id = %s AND seq = %s"
    )
    tamper_many(db_url, ["payloads"], [(flip, (long_log, 10)), (flip, (long_log, 100))])
    assert_caught(
        verify(cli, long_log, "--full", "--jobs", "3"), "payload does not decrypt", seq=10
    )


def test_entry_deleted_at_a_part_boundary(
    cli: Cli, long_log: str, small_parts: None, db_url: str
) -> None:
    # The part starting at 80 cannot take its start from entry 79: one process runs and names
    # the gap.
    tamper(db_url, "entries", "DELETE FROM entries WHERE log_id = %s AND seq = 79", long_log)
    assert_caught(verify(cli, long_log, "--full", "--jobs", "3"), "sequence gap", seq=79)


def test_leaf_hash_rewritten_at_a_part_boundary(
    cli: Cli, long_log: str, small_parts: None, db_url: str
) -> None:
    # The part starting at 40 starts from this forged leaf hash; the part before recomputes it.
    tamper(
        db_url,
        "entries",
        "UPDATE entries SET leaf_hash = sha256(leaf_hash) WHERE log_id = %s AND seq = 39",
        long_log,
    )
    assert_caught(
        verify(cli, long_log, "--full", "--jobs", "3"),
        "leaf hash does not match the stored entry bytes",
        seq=39,
    )


def test_parts_that_do_not_meet_fail() -> None:
    log = LogInfo("l", "example.test/l", "t", "events")
    first = RangeResult(size=40, root=b"r", frontier=[b"a" * 32], last_leaf=b"x" * 32)
    later = RangeResult(size=80, root=b"r", frontier=[b"b" * 32], last_leaf=b"y" * 32)
    with pytest.raises(IntegrityFailure, match="leaf hash differs"):
        _combine(log, [first, later], [Part(1, 40, 80, [b"a" * 32], b"z" * 32)])
    with pytest.raises(IntegrityFailure, match="tree differs"):
        _combine(log, [first, later], [Part(1, 40, 80, [b"c" * 32], b"x" * 32)])
    combined = _combine(log, [first, later], [Part(1, 40, 80, [b"a" * 32], b"x" * 32)])
    assert combined.size == 80
