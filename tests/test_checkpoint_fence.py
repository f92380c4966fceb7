"""The sequencer never signs a checkpoint inconsistent with one this process gave out
(``SignerCache.given``): a tree behind it or beside it is a ``CheckpointFork``, refused before
anything is written. The failover tests (``tests/test_failover.py``) show it against real
replicas; these pin the rule itself on the suite's database."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from ledger.core.canonical import canonicalize
from ledger.core.commitment import new_salt, payload_commitment
from ledger.core.entry import EventHeader
from ledger.domain import AppendRequest, PreparedEvent, Principal
from ledger.errors import CheckpointFork
from ledger.services.anchoring.anchor import DirectorySink, anchor, latest_anchor
from ledger.services.anchoring.fence import ForkAlerts, learn_anchored
from ledger.settings import Settings
from ledger.storage.checkpoints import GivenCheckpoints, latest_checkpoint
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import KeyRing
from ledger.storage.logs import get_log
from ledger.storage.sequencer import append_batch
from tests.conftest import make_event, now

_ids = itertools.count()


def _event() -> PreparedEvent:
    n = next(_ids)
    data = canonicalize({"text": f"fence {n}"})
    salt = new_salt()
    return PreparedEvent(
        header=EventHeader(
            event_id=f"fence-{n}",
            source="urn:test:fence",
            type="handoff.message.created.v1",
            time="2026-11-20T09:14:01.000Z",
            conversation_id="fence",
            actor={"kind": "customer", "id": "c"},
            outcome="success",
            resource=None,
        ),
        scope="conversation:fence",
        salt=salt,
        canonical_data=data,
        commitment=payload_commitment(salt, data),
        request_digest=hashlib.sha256(data).digest(),
    )


@pytest.fixture
def keys(settings: Settings) -> KeyRing:
    """One process's keys (and its memory of what it signed)."""
    return KeyRing.from_master(settings.master_key_bytes)


def append(engine: Engine, keys: KeyRing, log_id: str, n: int = 1) -> None:
    with unit_of_work(engine) as conn:
        log = get_log(conn, log_id)
        append_batch(
            conn,
            log,
            [AppendRequest([_event() for _ in range(n)], Principal(0, log_id, "writer", "t"))],
            signers=keys.signers,
            data_keys=keys.data_keys,
            now=now(),
        )


def latest(engine: Engine, log_id: str) -> tuple[int, bytes]:
    with unit_of_work(engine) as conn:
        cp = latest_checkpoint(conn, log_id)
    return cp.size, cp.root


def test_a_process_remembers_what_it_signed_once_it_committed(
    engine: Engine, keys: KeyRing, new_log: Any
) -> None:
    log_id = new_log()
    append(engine, keys, log_id, 3)
    given = keys.signers.given.get(log_id)
    assert given is not None
    assert (given.size, given.root) == latest(engine, log_id)
    assert given.how == "signed"

    # A batch that rolls back was never given out: the memory stays where it was.
    def append_then_fail() -> None:
        with unit_of_work(engine) as conn:
            append_batch(
                conn,
                get_log(conn, log_id),
                [AppendRequest([_event()], Principal(0, log_id, "writer", "t"))],
                signers=keys.signers,
                data_keys=keys.data_keys,
                now=now(),
            )
            raise RuntimeError("the unit of work fails after the append")

    with pytest.raises(RuntimeError):
        append_then_fail()
    assert keys.signers.given.get(log_id) == given


def test_another_process_appending_in_between_is_no_fork(
    engine: Engine, settings: Settings, keys: KeyRing, new_log: Any
) -> None:
    log_id = new_log()
    append(engine, keys, log_id)
    other = KeyRing.from_master(settings.master_key_bytes)
    append(engine, other, log_id, 2)  # the tree grew past what ``keys`` signed: it extends it
    append(engine, keys, log_id)
    assert latest(engine, log_id)[0] == 4


def test_a_log_behind_what_was_signed_is_refused_and_nothing_is_written(
    engine: Engine, keys: KeyRing, new_log: Any
) -> None:
    log_id = new_log()
    append(engine, keys, log_id, 2)
    size, root = latest(engine, log_id)
    # As after a failover to a standby that lacked the last batches: this process signed more.
    keys.signers.given.remember(log_id, size + 3, b"\x01" * 32, how="signed")
    with pytest.raises(CheckpointFork, match="behind a checkpoint this ledger signed") as refused:
        append(engine, keys, log_id)
    assert refused.value.expected is not None
    assert refused.value.expected.startswith(f"size {size + 3} ")
    assert latest(engine, log_id) == (size, root)


def test_a_log_beside_what_was_signed_is_refused(
    engine: Engine, keys: KeyRing, new_log: Any
) -> None:
    log_id = new_log()
    append(engine, keys, log_id, 2)
    size, root = latest(engine, log_id)
    changed = bytes([root[0] ^ 1]) + root[1:]  # one bit: the root another primary signed
    keys.signers.given = GivenCheckpoints()
    keys.signers.given.remember(log_id, size, changed, how="signed")
    with pytest.raises(CheckpointFork, match="does not extend the checkpoint"):
        append(engine, keys, log_id)
    assert latest(engine, log_id) == (size, root)
    # The same size with the root it has is the log as it was given out: appends go on.
    keys.signers.given = GivenCheckpoints()
    keys.signers.given.remember(log_id, size, root, how="signed")
    append(engine, keys, log_id)
    assert latest(engine, log_id)[0] == size + 1


def test_a_new_process_learns_the_anchored_checkpoint(
    engine: Engine, settings: Settings, keys: KeyRing, new_log: Any, tmp_path: Path
) -> None:
    log_id = new_log()
    append(engine, keys, log_id, 2)
    with unit_of_work(engine) as conn:
        log = get_log(conn, log_id)
        done = anchor(conn, keys, [log], [DirectorySink(tmp_path)], now=now())
    assert done[0].ok
    size, root = latest(engine, log_id)
    assert keys.signers.given.get(log_id) is not None  # anchoring tells the anchoring process

    fresh = KeyRing.from_master(settings.master_key_bytes)
    with unit_of_work(engine) as conn:
        learn_anchored(conn, fresh.signers, log, tmp_path)
    learnt = fresh.signers.given.get(log_id)
    assert learnt is not None
    assert (learnt.size, learnt.root) == (size, root)
    assert learnt.how.startswith("anchored (")

    # An anchor file whose signature does not verify teaches nothing (the verifier reports it).
    anchored = latest_anchor(tmp_path, log_id)
    assert anchored is not None
    forged = Path(anchored.source).with_name(f"{size + 1:020d}.checkpoint")
    forged.write_text(anchored.note.replace(f"\n{size}\n", f"\n{size + 1}\n", 1))
    other = KeyRing.from_master(settings.master_key_bytes)
    with unit_of_work(engine) as conn:
        learn_anchored(conn, other.signers, log, tmp_path)
    assert other.signers.given.get(log_id) is None


def test_fork_alerts_go_out_once_per_log_per_interval(tmp_path: Path) -> None:
    clock = itertools.count(0.0, 10.0)  # every call ten seconds later
    alerts = ForkAlerts(
        webhook_url=None,
        command=f"""sh -c 'cat > "$(mktemp -p {tmp_path} alert.XXXX)"'""",
        timeout=10,
        interval=60,
        clock=lambda: next(clock),
    )
    failure = CheckpointFork("behind", log="l1", expected="size 9 root x", found="size 5")
    sent = [alerts.refused("l1", failure) for _ in range(8)]  # at 0, 10, ..., 70 s
    for thread in sent:
        if thread is not None:
            thread.join(10)
    assert [thread is not None for thread in sent] == [True] + [False] * 5 + [True, False]
    reports = [json.loads(path.read_text()) for path in tmp_path.glob("alert.*")]
    assert len(reports) == 2
    assert reports[0]["status"] == "tampered"
    assert reports[0]["logs"][0]["failure"]["found"] == "size 5"


def test_a_checkpoint_served_is_one_given_out(client: Any, new_log: Any, token: Any) -> None:
    log_id = new_log()
    headers = {"Authorization": f"Bearer {token(log_id, 'writer')}"}
    posted = client.post(f"/v1/logs/{log_id}/events", json=make_event("served"), headers=headers)
    assert posted.status_code == 201
    signers = client.app.state.ledger.keys.signers
    signers.given = GivenCheckpoints()  # forget the signing: keep only what is served next
    note = client.get(f"/v1/logs/{log_id}/checkpoint").text
    served = signers.given.get(log_id)
    assert served is not None
    assert served.how == "served"
    assert note.split("\n")[1] == str(served.size)
    assert served.size == 1
