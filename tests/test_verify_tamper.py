"""The tamper matrix: every edit a superuser makes behind the append-only triggers is found by
`ledger verify` with exit 1 and a message naming it (PCI DSS 10.3.2 / 10.3.4, HIPAA
164.312(c)(2)); appends alone, thousands of them, are not (exit 0, no alert).

One test per row. Each log holds 20 entries in 4 signed batches (checkpoints 5, 10, 15, 20) and
three interleaved conversations. "Baseline" means a verifier run (which pins the keys and keeps
the last verified checkpoint in its state directory) and an anchoring run (directory sink) made
before the edit, as the scheduled jobs would have.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from ledger.cli import main
from ledger.core.checkpoint import Checkpoint, sign_checkpoint
from ledger.core.merkle import EMPTY_ROOT, frontier_extend, frontier_root, pack_frontier
from ledger.core.signing import NoteSigner
from ledger.core.types import RootHash
from ledger.settings import Settings
from ledger.storage.db import sqlalchemy_url, unit_of_work
from ledger.storage.keystore import SignerCache, create_signing_key
from tests.conftest import MASTER_KEY, now

TRIGGERS = {
    "entries": ("entries_no_update_delete",),
    "payloads": ("payloads_no_update_delete",),
    "checkpoints": ("checkpoints_no_update_delete",),
    "tree_nodes": ("tree_nodes_no_update_delete",),
    "signing_keys": ("signing_keys_retire_only", "signing_keys_no_delete"),
    "key_rotations": ("key_rotations_no_update_delete",),
}

Cli = Callable[..., tuple[int, str, str]]


def _libpq(url: str) -> str:
    return (
        make_url(sqlalchemy_url(url))
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )


def tamper_many(
    db_url: str, tables: Sequence[str], statements: Sequence[tuple[str, Sequence[Any]]]
) -> None:
    """As a superuser, in one transaction: switch the tables' append-only triggers off, run the
    statements, switch the triggers back on (ENABLE ALWAYS, as the migration left them)."""
    with psycopg.connect(_libpq(db_url)) as conn:
        for table in tables:
            for trigger in TRIGGERS[table]:
                conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
        for sql, params in statements:
            conn.execute(sql, params)
        for table in tables:
            for trigger in TRIGGERS[table]:
                conn.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger}")


def tamper(db_url: str, table: str, sql: str, *params: Any) -> None:
    """One statement on one table (see ``tamper_many``)."""
    tamper_many(db_url, [table], [(sql, params)])


@pytest.fixture
def cli(ledger_cli: Cli, verifier_env: dict[str, Path]) -> Cli:
    return ledger_cli


@pytest.fixture
def filled(new_log: Any, append_direct: Any) -> str:
    log_id: str = new_log()
    append_direct(log_id, 20, batch=5)
    return log_id


@pytest.fixture
def baselined(cli: Cli, filled: str) -> str:
    """``filled``, verified once (state kept) and anchored once."""
    assert verify(cli, filled)[0] == 0
    code, _, err = cli("anchor", "--log", filled)
    assert code == 0, err
    return filled


def verify(cli: Cli, log_id: str, *flags: str) -> tuple[int, dict[str, Any]]:
    code, out, err = cli("verify", "--log", log_id, "--json", *flags)
    assert out, err
    return code, json.loads(out)["logs"][0]


def assert_caught(result: tuple[int, dict[str, Any]], message: str, seq: int | None = None) -> None:
    code, report = result
    assert code == 1, report
    assert report["intact"] is False
    assert message in report["failure"]["message"], report["failure"]
    if seq is not None:
        assert report["failure"]["seq"] == seq


# --- the matrix ------------------------------------------------------------------------------


def test_payload_byte_changed(cli: Cli, baselined: str, db_url: str) -> None:
    tamper(
        db_url,
        "payloads",
        "UPDATE payloads SET sealed = set_byte(sealed, 20,"
        " get_byte(sealed, 20) # 1) WHERE log_id = %s AND seq = 7",
        baselined,
    )
    assert_caught(verify(cli, baselined, "--full"), "payload does not decrypt", seq=7)


def test_entry_header_field_changed_and_rehashed(cli: Cli, baselined: str, db_url: str) -> None:
    # The attacker also rewrites the stored leaf hash: the next entry's `prev` still names the
    # original one.
    tamper(
        db_url,
        "entries",
        "UPDATE entries SET entry = e.new, leaf_hash = sha256('\\x00'::bytea || e.new)"
        " FROM (SELECT convert_to(replace(convert_from(entry, 'UTF8'),"
        ' \'"outcome":"success"\', \'"outcome":"failure"\'), \'UTF8\') AS new'
        " FROM entries WHERE log_id = %s AND seq = 3) e WHERE log_id = %s AND seq = 3",
        baselined,
        baselined,
    )
    assert_caught(verify(cli, baselined, "--full"), "hash chain broken", seq=4)


def test_entry_deleted_in_the_middle(cli: Cli, baselined: str, db_url: str) -> None:
    tamper(db_url, "entries", "DELETE FROM entries WHERE log_id = %s AND seq = 9", baselined)
    assert_caught(verify(cli, baselined, "--full"), "sequence gap", seq=9)


def test_tail_truncated_and_rewound(
    cli: Cli, baselined: str, db_url: str, verifier_env: dict[str, Path]
) -> None:
    """Entries 15..19 deleted and head, checkpoints and tree nodes rewound to size 15: the
    database is a consistent log of 15 entries. Only what lives outside it can tell."""
    _truncate(db_url, baselined, keep=15)
    assert_caught(
        verify(cli, baselined),
        "the last verified checkpoint (verifier state) has"
        " size 20, beyond the database's latest checkpoint",
    )
    # A verifier with no memory of this log still has the anchors...
    fresh = verifier_env["state"].with_name("fresh-verifier")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LEDGER_VERIFIER_STATE_DIR", str(fresh))
        assert_caught(
            verify(cli, baselined),
            "00000000000000000020.checkpoint has size 20, beyond the database's latest checkpoint",
        )
        # ...without them, the shortened log is indistinguishable from an honest one.
        mp.delenv("LEDGER_ANCHOR_DIR")
        mp.setenv("LEDGER_VERIFIER_STATE_DIR", str(fresh.with_name("blank-verifier")))
        assert verify(cli, baselined)[0] == 0


def test_two_entries_swapped(cli: Cli, baselined: str, db_url: str) -> None:
    tamper_many(
        db_url,
        ["entries"],
        [
            ("UPDATE entries SET seq = -1 WHERE log_id = %s AND seq = 4", (baselined,)),
            ("UPDATE entries SET seq = 4 WHERE log_id = %s AND seq = 5", (baselined,)),
            ("UPDATE entries SET seq = 5 WHERE log_id = %s AND seq = -1", (baselined,)),
        ],
    )
    assert_caught(verify(cli, baselined, "--full"), "entry header disagrees with its seq", seq=4)


def test_log_rewritten_rechained_and_resigned_with_a_new_key(
    cli: Cli,
    baselined: str,
    db_url: str,
    engine: Engine,
    settings: Settings,
    append_direct: Any,
    verifier_env: dict[str, Path],
) -> None:
    """Everything deleted, a new signing key, 20 other entries appended by the real sequencer:
    a log that verifies perfectly on its own."""
    tamper_many(
        db_url,
        ["entries", "payloads", "tree_nodes", "checkpoints", "signing_keys"],
        [
            (f"DELETE FROM {table} WHERE log_id = %s", (baselined,))
            for table in ("entries", "payloads", "tree_nodes", "checkpoints", "signing_keys")
        ]
        + [
            (
                "UPDATE log_heads SET size = 0, root = %s, frontier = '', last_leaf = %s"
                " WHERE log_id = %s",
                (EMPTY_ROOT, bytes(32), baselined),
            )
        ],
    )
    origin = f"{settings.origin_prefix}/{baselined}"
    with unit_of_work(engine) as conn:
        signer = create_signing_key(
            conn, log_id=baselined, origin=origin, master_key=settings.master_key_bytes, now=now()
        )
        conn.exec_driver_sql(
            "INSERT INTO checkpoints (log_id, size, root, note, key_id, signed_at)"
            " VALUES (%(log)s, 0, %(root)s, %(note)s, %(kid)s, now())",
            {
                "log": baselined,
                "root": EMPTY_ROOT,
                "kid": signer.key_id,
                "note": sign_checkpoint(Checkpoint(origin, 0, EMPTY_ROOT), signer),
            },
        )
    append_direct(baselined, 20, batch=5)

    assert_caught(verify(cli, baselined), "pinned verifier key is no longer in the database")
    with pytest.MonkeyPatch.context() as mp:  # a verifier that never saw the log: the anchor
        mp.setenv("LEDGER_VERIFIER_STATE_DIR", str(verifier_env["state"].with_name("fresh")))
        assert_caught(verify(cli, baselined, "--full"), "is not signed by a pinned key")


def test_checkpoint_signature_altered(cli: Cli, baselined: str, db_url: str) -> None:
    tamper(
        db_url,
        "checkpoints",
        "UPDATE checkpoints SET note = regexp_replace(note, '— (\\S+) (.)', '— \\1 A')"
        " WHERE log_id = %s AND size = 10",
        baselined,
    )
    assert_caught(verify(cli, baselined, "--full"), "checkpoint at size 10 does not verify")


def test_extra_checkpoint_with_forked_root(
    cli: Cli, baselined: str, db_url: str, engine: Engine, settings: Settings
) -> None:
    """Validly signed by the log's own key (the attacker has it), at a size never published."""
    with unit_of_work(engine) as conn:
        kid = conn.exec_driver_sql(
            "SELECT key_id FROM signing_keys WHERE log_id = %(log)s", {"log": baselined}
        ).scalar_one()
        signer = SignerCache(settings.master_key_bytes).get(conn, baselined, bytes(kid))
    forked = RootHash(bytes(range(32)))
    note = sign_checkpoint(Checkpoint(signer.name, 7, forked), signer)
    tamper(
        db_url,
        "checkpoints",
        "INSERT INTO checkpoints (log_id, size, root, note, key_id,"
        " signed_at) VALUES (%s, 7, %s, %s, %s, now())",
        baselined,
        forked,
        note,
        signer.key_id,
    )
    assert_caught(
        verify(cli, baselined, "--full"),
        "checkpoint at size 7: root differs from the recomputed tree",
    )


def test_payload_deleted_without_erasure_record(cli: Cli, baselined: str, db_url: str) -> None:
    tamper(db_url, "payloads", "DELETE FROM payloads WHERE log_id = %s AND seq = 12", baselined)
    assert_caught(verify(cli, baselined, "--full"), "payload is missing", seq=12)


def test_data_key_deleted_behind_the_triggers(cli: Cli, baselined: str, db_url: str) -> None:
    # A destroyed key (erasure) keeps its row with no key material; a row deleted outright, by
    # a table owner who first switched its no-delete trigger off, is tampering, not erasure.
    with psycopg.connect(_libpq(db_url)) as conn:
        conn.execute("ALTER TABLE data_keys DISABLE TRIGGER data_keys_no_delete")
        row = conn.execute(
            "SELECT data_key_id, (SELECT min(seq) FROM payloads q WHERE"
            " q.log_id = p.log_id AND q.data_key_id = p.data_key_id)"
            " FROM payloads p WHERE log_id = %s AND seq = 12",
            (baselined,),
        ).fetchone()
        assert row is not None
        key_id, first = row
        conn.execute("DELETE FROM data_keys WHERE id = %s", (key_id,))
        conn.execute("ALTER TABLE data_keys ENABLE ALWAYS TRIGGER data_keys_no_delete")
    assert_caught(
        verify(cli, baselined, "--full"), f"the payload's data key {key_id} is missing", seq=first
    )


def test_wrapped_data_key_changed(cli: Cli, baselined: str, db_url: str) -> None:
    with psycopg.connect(_libpq(db_url)) as conn:
        conn.execute(
            "UPDATE data_keys SET wrapped = set_byte(wrapped, 20, get_byte(wrapped, 20)"
            " # 1) WHERE log_id = %s",
            (baselined,),
        )
    assert_caught(verify(cli, baselined, "--full"), "does not unwrap under the master key", seq=0)


def test_verifier_key_replaced(cli: Cli, baselined: str, db_url: str) -> None:
    other = NoteSigner.generate(f"ledger.test/{baselined}")
    tamper(
        db_url,
        "signing_keys",
        "UPDATE signing_keys SET verifier_key = %s, key_id = %s WHERE log_id = %s",
        other.verifier_key(),
        other.key_id,
        baselined,
    )
    assert_caught(verify(cli, baselined), "pinned verifier key is no longer in the database")


def test_tree_node_changed(cli: Cli, baselined: str, db_url: str) -> None:
    tamper(
        db_url,
        "tree_nodes",
        "UPDATE tree_nodes SET hash = sha256(hash) WHERE log_id = %s AND level = 2 AND idx = 1",
        baselined,
    )
    assert_caught(verify(cli, baselined, "--full"), "tree node (2, 1) differs", seq=7)


def test_entry_inserted_behind_the_sequencer(cli: Cli, baselined: str, db_url: str) -> None:
    """INSERT is the one thing the append-only tables allow, even the application role: a row
    far past the head, with no checkpoint, is still found."""
    tamper(
        db_url,
        "entries",
        "INSERT INTO entries (log_id, seq, leaf_hash, entry, source,"
        " event_id, event_type, conversation_id, received_at, request_digest)"
        " SELECT log_id, 90000, leaf_hash, entry, source, 'forged', event_type,"
        " conversation_id, received_at, request_digest FROM entries"
        " WHERE log_id = %s AND seq = 3",
        baselined,
    )
    assert_caught(verify(cli, baselined), "entry beyond the latest signed checkpoint", seq=90000)


def test_thousands_of_appends_between_runs_pass_without_alert(
    cli: Cli,
    baselined: str,
    append_direct: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    alert_file = tmp_path / "alert.json"
    monkeypatch.setenv("LEDGER_ALERT_COMMAND", f"sh -c 'cat > {alert_file}'")
    append_direct(baselined, 3000)
    code, report = verify(cli, baselined)
    assert code == 0, report
    assert (report["mode"], report["from_size"], report["to_size"]) == ("incremental", 20, 3020)
    assert report["entries"] == 3000
    assert not alert_file.exists()


def test_incremental_run_catches_an_edit_among_the_new_entries(
    cli: Cli, baselined: str, append_direct: Any, db_url: str
) -> None:
    append_direct(baselined, 10, batch=5)
    tamper(
        db_url,
        "entries",
        "UPDATE entries SET leaf_hash = sha256(leaf_hash) WHERE log_id = %s AND seq = 25",
        baselined,
    )
    code, report = verify(cli, baselined)
    assert report["mode"] == "incremental"
    assert_caught((code, report), "leaf hash does not match the stored entry bytes", seq=25)


# --- report shape, exit codes ------------------------------------------------------------------


def test_human_output_names_log_and_seq(cli: Cli, filled: str, db_url: str) -> None:
    tamper(
        db_url,
        "entries",
        "UPDATE entries SET leaf_hash = sha256(leaf_hash) WHERE log_id = %s AND seq = 5",
        filled,
    )
    code, out, _ = cli("verify", "--log", filled)
    assert code == 1
    assert f"log {filled} seq 5: leaf hash does not match" in out


def test_verify_cannot_run_exits_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    verifier_env: dict[str, Path],
) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("LEDGER_MASTER_KEY", MASTER_KEY)
    assert main(["verify", "--json"]) == 2
    out, err = capsys.readouterr()
    assert "database unavailable" in err
    assert json.loads(out)["status"] == "error"


def test_credentials_create_prints_only_the_token(cli: Cli, new_log: Any, db_url: str) -> None:
    log_id = new_log()
    code, out, err = cli("credentials", "create", "--log", log_id, "--role", "auditor")
    assert code == 0
    assert out.startswith("hlt_")
    assert out.count("\n") == 1
    assert "shown once" in err
    # PCI DSS 10.2.1.5: the credential's creation is an event in the tenant's system log.
    with psycopg.connect(_libpq(db_url)) as conn:
        types = conn.execute(
            "SELECT event_type FROM entries WHERE log_id = %s ORDER BY seq", (f"{log_id}.system",)
        ).fetchall()
    assert ("ledger.credential.created.v1",) in types


def test_revoked_credential_is_refused_and_the_revocation_logged(
    cli: Cli, new_log: Any, client: Any, db_url: str
) -> None:
    log_id = new_log()
    _, token, err = cli("credentials", "create", "--log", log_id, "--role", "auditor")
    cred_id = int(err.split()[1].rstrip(":"))
    headers = {"Authorization": f"Bearer {token.strip()}"}
    assert client.get(f"/v1/logs/{log_id}/entries", headers=headers).status_code == 200
    code, _, _ = cli("credentials", "revoke", str(cred_id))
    assert code == 0
    assert cli("credentials", "revoke", str(cred_id))[0] == 2  # already revoked
    # Servers cache principals for 5 s; start this one's cache afresh instead of waiting.
    client.app.state.ledger.principals = type(client.app.state.ledger.principals)(ttl=5.0)
    assert client.get(f"/v1/logs/{log_id}/entries", headers=headers).status_code == 401
    with psycopg.connect(_libpq(db_url)) as conn:
        types = conn.execute(
            "SELECT event_type FROM entries WHERE log_id = %s", (f"{log_id}.system",)
        ).fetchall()
    assert ("ledger.credential.revoked.v1",) in types


def _truncate(db_url: str, log_id: str, *, keep: int) -> None:
    """Delete entries ``[keep, …)`` and rewind everything else so the log is consistent."""
    with psycopg.connect(_libpq(db_url)) as conn:
        leaves = [
            bytes(r[0])
            for r in conn.execute(
                "SELECT leaf_hash FROM entries WHERE log_id = %s AND seq < %s ORDER BY seq",
                (log_id, keep),
            )
        ]
    frontier, _ = frontier_extend([], 0, leaves)
    tamper_many(
        db_url,
        ["entries", "payloads", "tree_nodes", "checkpoints"],
        [
            ("DELETE FROM entries WHERE log_id = %s AND seq >= %s", (log_id, keep)),
            ("DELETE FROM payloads WHERE log_id = %s AND seq >= %s", (log_id, keep)),
            ("DELETE FROM checkpoints WHERE log_id = %s AND size > %s", (log_id, keep)),
            (
                "DELETE FROM tree_nodes WHERE log_id = %s AND idx >= (%s::bigint >> level)",
                (log_id, keep),
            ),
            (
                "UPDATE log_heads SET size = %s, root = %s, frontier = %s, last_leaf = %s"
                " WHERE log_id = %s",
                (keep, frontier_root(frontier, keep), pack_frontier(frontier), leaves[-1], log_id),
            ),
        ],
    )
