"""The command line over several PostgreSQL clusters (issue 17 item 4): two fresh databases act
as the clusters ``main`` (LEDGER_DATABASE_URL, which holds the placement table) and ``b``
(LEDGER_CLUSTERS). Every command routes by the placement: a log's rows are on its cluster
only, commands over every log go through both clusters and say which, and ``ledger clusters``
catches a placement that points at a cluster without the log.

Tests that count tenants or logs per cluster get a pair of their own; the others share one
pair and use logs and tenants of their own.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import alembic.config  # noqa: F401 (see below)
import pytest
from sqlalchemy import text

from ledger.storage.db import make_engine, unit_of_work
from tests.conftest import MASTER_KEY, create_database, drop_database, migrated_database

# Imported here, not first by `ledger db upgrade` under capsys: alembic's Config takes
# ``sys.stdout`` as a default argument when alembic.config is imported, and capsys's stream is
# closed after the test, which would break every later migration in the session.


@dataclass
class Pair:
    main: str
    b: str

    def rows(self, cluster: str, query: str, **params: Any) -> list[Any]:
        """``query``'s rows on ``cluster`` (as the superuser: every tenant's)."""
        eng = make_engine(self.main if cluster == "main" else self.b, pool_size=1)
        try:
            with unit_of_work(eng) as conn:
                return list(conn.execute(text(query), params).all())
        finally:
            eng.dispose()

    def logs(self, cluster: str) -> set[str]:
        return {row[0] for row in self.rows(cluster, "SELECT id FROM logs")}

    def placement(self, log_id: str) -> str | None:
        found = self.rows(
            "main", "SELECT cluster FROM log_placements WHERE log_id = :id", id=log_id
        )
        return found[0][0] if found else None


@contextmanager
def pair_of(admin_url: str, *, migrated: bool = True) -> Iterator[Pair]:
    if migrated:
        with (
            migrated_database(admin_url, "ledger_test_main") as main,
            migrated_database(admin_url, "ledger_test_b") as b,
        ):
            yield Pair(main, b)
        return
    names = [f"ledger_test_{which}_{secrets.token_hex(4)}" for which in ("main", "b")]
    urls = [create_database(admin_url, name) for name in names]
    try:
        yield Pair(*urls)
    finally:
        for name in names:
            drop_database(admin_url, name)


@pytest.fixture(scope="module")
def shared_pair(admin_url: str) -> Iterator[Pair]:
    with pair_of(admin_url) as pair:
        yield pair


@pytest.fixture
def own_pair(admin_url: str) -> Iterator[Pair]:
    with pair_of(admin_url) as pair:
        yield pair


Cli = Any


def cli_for(pair: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Cli:
    """``cli(*argv) -> (exit code, stdout, stderr)``: ``ledger`` in this process, with clusters
    main and b configured."""
    from ledger.cli import main

    for name, value in {
        "LEDGER_DATABASE_URL": pair.main,
        "LEDGER_CLUSTERS": json.dumps({"b": {"url": pair.b}}),
        "LEDGER_MASTER_KEY": MASTER_KEY,
        "LEDGER_ORIGIN_PREFIX": "ledger.test",
        "LEDGER_DATA_DIR": str(tmp_path / "data"),
        "LEDGER_ANCHOR_DIR": str(tmp_path / "anchors"),
    }.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "anchors").mkdir(exist_ok=True)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def cli(shared_pair: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Cli:
    return cli_for(shared_pair, tmp_path, monkeypatch, capsys)


@pytest.fixture
def own_cli(own_pair: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Cli:
    return cli_for(own_pair, tmp_path, monkeypatch, capsys)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def create(cli: Cli, log_id: str, *options: str) -> str:
    """``ledger logs create``; returns the cluster it says it placed the log on."""
    code, out, err = cli("logs", "create", log_id, *options)
    assert code == 0, err
    assert out.strip().endswith(f"/{log_id}") or log_id in out
    return err.strip().rpartition("placed on cluster ")[2]


# --- db upgrade ---------------------------------------------------------------------------------


def test_db_upgrade_upgrades_every_cluster_and_copies_the_fingerprint_key(
    admin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from ledger.keys.ring import MasterKeyRing
    from ledger.settings import load_settings
    from ledger.storage.keystore import FINGERPRINT_SECRET, pan_fingerprint_key

    with pair_of(admin_url, migrated=False) as pair:
        cli = cli_for(pair, tmp_path, monkeypatch, capsys)
        code, _, err = cli("db", "upgrade")
        assert code == 0, err
        assert "schema is at head (cluster main)" in err
        assert "schema is at head (cluster b)" in err
        assert "card fingerprint key copied from main to b" in err
        for cluster in ("main", "b"):
            assert pair.rows(cluster, "SELECT version_num FROM alembic_version")[0][0] == "0014"
        secret = "SELECT master_key_id, wrapped FROM wrapped_secrets WHERE name = :n"
        on_main = pair.rows("main", secret, n=FINGERPRINT_SECRET)
        assert on_main
        assert pair.rows("b", secret, n=FINGERPRINT_SECRET) == on_main
        masters = MasterKeyRing.local(load_settings().master_key_bytes)
        keys = []
        for url in (pair.main, pair.b):
            eng = make_engine(url, pool_size=1)
            with unit_of_work(eng) as conn:
                keys.append(pan_fingerprint_key(conn, masters))
            eng.dispose()
        assert keys[0] == keys[1]

        # b numbers its ids from a block of its own (a tenant's move keeps its ids).
        assert "cluster b numbers its ids from 100000001" in err
        code, _, err = cli("logs", "create", "on-b", "--cluster", "b")
        assert code == 0, err
        code, _, err = cli("credentials", "create", "--log", "on-b", "--role", "writer")
        assert code == 0, err
        ids = pair.rows("b", "SELECT id FROM credentials WHERE log_id = 'on-b'")
        assert ids
        assert all(100_000_000 < i < 200_000_000 for (i,) in ids)

        # Again: nothing to copy, no block to give, nothing said about either.
        code, _, err = cli("db", "upgrade")
        assert code == 0
        assert "copied" not in err
        assert "of its own" not in err
        assert "numbers its ids" not in err


# --- logs create: the placement -----------------------------------------------------------------


def test_logs_create_on_b_puts_the_rows_on_b_and_the_placement_on_main(
    cli: Cli, shared_pair: Pair
) -> None:
    tenant = unique("tb")
    first, second = unique("onb"), unique("onb2")
    assert create(cli, first, "--tenant", tenant, "--cluster", "b") == "b"
    on_b = shared_pair.logs("b")
    assert first in on_b
    assert first not in shared_pair.logs("main")
    assert shared_pair.placement(first) == "b"
    tenant_logs = shared_pair.rows("b", "SELECT id FROM logs WHERE tenant = :t", t=tenant)
    assert len(tenant_logs) == 2  # the log and its tenant's system log, both on b
    for (log_id,) in tenant_logs:
        assert shared_pair.placement(log_id) == "b"
        assert log_id not in shared_pair.logs("main")

    # A second log of the tenant follows it, without --cluster.
    assert create(cli, second, "--tenant", tenant) == "b"
    assert second in shared_pair.logs("b")
    assert shared_pair.placement(second) == "b"

    # `ledger logs list`: every log once, its cluster as a 4th column.
    code, out, _ = cli("logs", "list")
    assert code == 0
    lines = [line.split("\t") for line in out.splitlines()]
    assert [first, "events", f"ledger.test/{first}", "b"] in lines
    assert all(len(fields) == 4 for fields in lines)
    assert len({fields[0] for fields in lines}) == len(lines)


def test_the_rule_spreads_new_tenants_over_the_clusters(own_cli: Cli, own_pair: Pair) -> None:
    placed = [create(own_cli, unique(f"spread{n}")) for n in range(4)]
    assert placed == ["main", "b", "main", "b"]  # fewest tenants; ties go to main


def test_an_unknown_cluster_exits_2(cli: Cli, shared_pair: Pair) -> None:
    log_id = unique("nowhere")
    code, out, err = cli("logs", "create", log_id, "--cluster", "nope")
    assert code == 2
    assert out == ""
    assert "no cluster 'nope'" in err
    assert "main, b" in err
    assert log_id not in shared_pair.logs("main") | shared_pair.logs("b")
    assert shared_pair.placement(log_id) is None


def test_a_tenant_on_main_is_refused_on_b(cli: Cli, shared_pair: Pair) -> None:
    tenant = unique("tm")
    assert create(cli, unique("onmain"), "--tenant", tenant, "--cluster", "main") == "main"
    refused = unique("refused")
    code, out, err = cli("logs", "create", refused, "--tenant", tenant, "--cluster", "b")
    assert code == 2
    assert out == ""
    assert f"tenant {tenant!r} is on cluster 'main'" in err
    assert "Traceback" not in err
    assert refused not in shared_pair.logs("b") | shared_pair.logs("main")


# --- commands that name a log -------------------------------------------------------------------


def test_a_credential_for_a_log_on_b_is_made_on_b_and_authenticates_there(
    cli: Cli, shared_pair: Pair
) -> None:
    from ledger.errors import Unauthenticated
    from ledger.services.admin.credentials import authenticate

    log_id = unique("credb")
    create(cli, log_id, "--cluster", "b")
    code, token, err = cli("credentials", "create", "--log", log_id, "--role", "writer")
    assert code == 0, err
    token = token.strip()
    credential_id = int(err.split()[1].rstrip(":"))

    def principal(url: str) -> Any:
        eng = make_engine(url, pool_size=1)
        try:
            with unit_of_work(eng) as conn:
                return authenticate(conn, token)
        finally:
            eng.dispose()

    assert principal(shared_pair.b).log_id == log_id
    with pytest.raises(Unauthenticated):
        principal(shared_pair.main)

    code, out, _ = cli("credentials", "list", "--log", log_id)
    assert code == 0
    assert out.startswith(f"{credential_id}\twriter\t")
    code, _, err = cli("credentials", "revoke", str(credential_id), "--log", log_id)
    assert code == 0, err
    assert f"credential {credential_id} on {log_id} revoked (cluster b)" in err
    with pytest.raises(Unauthenticated):
        principal(shared_pair.b)


def test_trail_and_export_of_a_log_on_b(cli: Cli, shared_pair: Pair, tmp_path: Path) -> None:
    log_id = unique("trailb")
    create(cli, log_id, "--cluster", "b")
    code, out, err = cli("demo", "--log", log_id, "--conversations", "4", "--seed", "3")
    assert code == 0, err
    conversation = out.splitlines()[0].split("\t")[1]
    entries = "SELECT count(*) FROM entries WHERE log_id = :id"
    assert shared_pair.rows("b", entries, id=log_id)[0][0] > 0
    assert shared_pair.rows("main", entries, id=log_id)[0][0] == 0

    code, out, err = cli("trail", log_id, conversation)
    assert code == 0, err
    assert f"Trail of conversation {conversation} in log {log_id}" in out

    bundle = tmp_path / "b.zip"
    code, _, err = cli("export", "--log", log_id, "--profile", "soc2-population", "-o", str(bundle))
    assert code == 0, err
    assert bundle.stat().st_size > 0


# --- commands over every log --------------------------------------------------------------------


def test_anchor_and_retention_run_cover_both_clusters(cli: Cli, tmp_path: Path) -> None:
    on_main, on_b = unique("anchm"), unique("anchb")
    create(cli, on_main, "--cluster", "main")
    create(cli, on_b, "--cluster", "b")
    for log_id in (on_main, on_b):
        assert cli("demo", "--log", log_id, "--conversations", "2")[0] == 0

    code, out, err = cli("anchor")
    assert code == 0, err
    lines = out.splitlines()
    assert any(
        line.startswith(f"{on_main} size ") and line.endswith(": ok (cluster main)")
        for line in lines
    )
    assert any(
        line.startswith(f"{on_b} size ") and line.endswith(": ok (cluster b)") for line in lines
    )
    for log_id in (on_main, on_b):
        assert any((tmp_path / "anchors").glob(f"{log_id}/*.checkpoint"))

    code, out, err = cli("retention", "run", "--json")
    assert code == 0, err
    runs = {run["log"]: run["cluster"] for run in json.loads(out)}
    assert runs[on_main] == "main"
    assert runs[on_b] == "b"
    assert f"{on_b}: kept " in err
    assert "(cluster b)" in err

    code, out, err = cli("retention", "run", "--log", on_b, "--json")
    assert code == 0, err
    assert [run["log"] for run in json.loads(out)] == [on_b]


def test_master_keys_are_listed_per_cluster(cli: Cli) -> None:
    code, out, err = cli("keys", "masters")
    assert code == 0, err
    clusters = {line.split("\t")[-1] for line in out.splitlines()}
    assert clusters == {"main", "b"}


# --- ledger clusters ----------------------------------------------------------------------------


def test_ledger_clusters_reports_and_catches_a_wrong_placement(
    own_cli: Cli, own_pair: Pair
) -> None:
    create(own_cli, unique("cm"), "--cluster", "main")
    create(own_cli, unique("cb"), "--cluster", "b")
    code, out, err = own_cli("clusters", "--json")
    assert code == 0, err
    report = {c["name"]: c for c in json.loads(out)["clusters"]}
    assert report["main"]["reachable"]
    assert report["b"]["reachable"]
    assert (report["main"]["tenants"], report["main"]["logs"]) == (1, 2)
    assert (report["b"]["tenants"], report["b"]["logs"]) == (1, 2)
    assert "@" not in report["b"]["hosts"]
    assert report["b"]["hosts"].startswith("127.0.0.1")

    # A placement row pointing at a cluster that lacks the log (by hand, as a botched move).
    eng = make_engine(own_pair.main, pool_size=1)
    with unit_of_work(eng) as conn:
        conn.execute(text("INSERT INTO tenant_placements (tenant, cluster) VALUES ('ghost', 'b')"))
        conn.execute(
            text(
                "INSERT INTO log_placements (log_id, tenant, cluster)"
                " VALUES ('ghost-log', 'ghost', 'b')"
            )
        )
    eng.dispose()
    code, out, err = own_cli("clusters")
    assert code == 2
    assert "puts ghost-log on cluster 'b', which does not hold it" in err
    assert "Traceback" not in err
    assert out.splitlines()[1].startswith("b\t127.0.0.1")


def test_a_master_key_rotation_rewraps_every_cluster_and_retirement_checks_them_all(
    own_cli: Cli, own_pair: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    from ledger.keys.provider import local_key_id

    old_id = local_key_id(base64.b64decode(MASTER_KEY))
    new = secrets.token_bytes(32)
    new_id = local_key_id(new)
    (tmp_path / "new.key").write_text(base64.b64encode(new).decode())
    create(own_cli, unique("mkm"), "--cluster", "main")
    create(own_cli, unique("mkb"), "--cluster", "b")

    code, out, err = own_cli("keys", "rotate-master", "--to", f"file:{tmp_path / 'new.key'}")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{new_id}: ")
    assert lines[0].endswith("(cluster main)")
    assert lines[1].endswith("(cluster b)")
    owners = "SELECT DISTINCT master_key_id FROM signing_keys"
    for cluster in ("main", "b"):
        assert {row[0] for row in own_pair.rows(cluster, owners)} == {new_id}

    # A key still wrapped under the old master key on b alone (as a server that never got the
    # new key would leave it): the retirement is refused before any cluster records it.
    eng = make_engine(own_pair.b, pool_size=1)
    with unit_of_work(eng) as conn:
        conn.execute(
            text(
                "INSERT INTO wrapped_secrets (name, master_key_id, wrapped)"
                " VALUES ('left-behind', :mk, '\\x00')"
            ),
            {"mk": old_id},
        )
    eng.dispose()
    monkeypatch.setenv("LEDGER_MASTER_KEY", base64.b64encode(new).decode())
    code, _, err = own_cli("keys", "retire-master", old_id)
    assert code == 2
    assert "on cluster b" in err
    retired = "SELECT count(*) FROM master_key_changes WHERE change = 'retired'"
    assert own_pair.rows("main", retired)[0][0] == 0

    code, out, _ = own_cli("keys", "masters")
    assert code == 0
    assert f"{old_id}\tsuperseded\t0\t0\t1\tnot held\tb" in out.splitlines()


def test_revoking_by_id_alone_searches_every_cluster(own_cli: Cli, own_pair: Pair) -> None:
    """Each cluster numbers its credentials itself: an id found on one cluster is revoked
    there; an id active on both is refused until --log or --cluster says which."""

    def credential(log_id: str) -> int:
        code, _, err = own_cli("credentials", "create", "--log", log_id, "--role", "auditor")
        assert code == 0, err
        return int(err.split()[1].rstrip(":"))

    on_main, on_b = unique("rvm"), unique("rvb")
    create(own_cli, on_main, "--cluster", "main")
    create(own_cli, on_b, "--cluster", "b")
    same = credential(on_b)
    assert credential(on_main) == same  # two fresh databases: both number from 1

    code, _, err = own_cli("credentials", "revoke", str(same))
    assert code == 2
    assert f"credential {same} is active on clusters main, b" in err
    active = "SELECT count(*) FROM credentials WHERE revoked_at IS NULL"
    assert own_pair.rows("main", active)[0][0] == own_pair.rows("b", active)[0][0] == 1

    code, _, err = own_cli("credentials", "revoke", str(same), "--cluster", "b")
    assert code == 0, err
    assert f"on {on_b} revoked (cluster b)" in err
    code, _, err = own_cli("credentials", "revoke", str(same))
    assert code == 0, err
    assert f"on {on_main} revoked (cluster main)" in err
    code, _, err = own_cli("credentials", "revoke", str(same))
    assert code == 2
    assert f"no active credential {same} on any cluster" in err


def test_a_copy_the_placement_does_not_name_is_not_listed_anchored_or_revoked(
    own_cli: Cli, own_pair: Pair
) -> None:
    """A log on b that the placement puts elsewhere (what a tenant's move leaves behind, made
    here directly on b with no placement row, so on main by the placement): over every
    cluster, commands skip it; by id, its credentials are not found."""
    from ledger.services.admin.credentials import create_credential
    from ledger.services.admin.logs import create_log
    from ledger.storage.keystore import KeyRing
    from tests.conftest import TEST_ACTOR, now

    left = unique("leftover")
    eng = make_engine(own_pair.b, pool_size=1)
    with unit_of_work(eng) as conn:
        keys = KeyRing.from_master(base64_key())
        create_log(conn, keys, left, origin_prefix="ledger.test", actor=TEST_ACTOR, now=now())
        credential = create_credential(
            conn, keys, log_id=left, role="auditor", label="", actor=TEST_ACTOR, now=now()
        )
    eng.dispose()

    code, out, _ = own_cli("logs", "list")
    assert code == 0
    assert left not in out
    code, out, err = own_cli("anchor")
    assert code == 0, err
    assert left not in out
    code, _, err = own_cli("credentials", "revoke", str(credential.id))
    assert code == 2
    assert f"no active credential {credential.id} on any cluster" in err


def base64_key() -> bytes:
    import base64

    return base64.b64decode(MASTER_KEY)


def test_a_cluster_that_is_down_costs_only_its_own_logs(
    shared_pair: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from tests.conftest import free_port

    cli = cli_for(shared_pair, tmp_path, monkeypatch, capsys)
    on_main = unique("alive")
    create(cli, on_main, "--cluster", "main")
    assert cli("demo", "--log", on_main, "--conversations", "1")[0] == 0
    down = Pair(shared_pair.main, f"postgresql://postgres:secret@127.0.0.1:{free_port()}/gone")
    cli = cli_for(down, tmp_path, monkeypatch, capsys)

    code, out, err = cli("clusters")
    assert code == 2
    assert f"b\t127.0.0.1:{down.b.rsplit(':', 1)[1]}\tUNREACHABLE\t" in out
    assert "secret" not in out + err
    assert "cluster 'b' does not answer" in err

    code, out, err = cli("anchor")
    assert code == 2
    assert f"{on_main} size " in out
    assert "cluster b skipped" in err
    code, out, err = cli("retention", "run", "--log", on_main)
    assert code == 0, err
    code, out, err = cli("retention", "run")
    assert code == 2
    assert f"{on_main}: kept " in err
    assert "cluster b skipped" in err
    assert "Traceback" not in err
    for listing in (("logs", "list"), ("keys", "masters")):  # what answers is still listed
        code, out, err = cli(*listing)
        assert code == 2
        assert "\tmain\n" in out
        assert f"ledger {' '.join(listing)}: cluster b skipped" in err


def test_two_person_requests_and_writer_policy_of_a_log_on_b(cli: Cli, shared_pair: Pair) -> None:
    log_id = unique("privb")
    create(cli, log_id, "--cluster", "b")
    admins = [
        cli("credentials", "create", "--log", log_id, "--role", "admin")[1].strip() for _ in "12"
    ]
    code, out, err = cli(
        "retention", "set", "--log", log_id, "--retention", "pci-dss",
        "--legal-basis", "PCI DSS 10.5.1", "--reference", "RET-B", "--token", admins[0],
    )  # fmt: skip
    assert code == 0, err
    request_id = json.loads(out)["id"]
    code, out, err = cli("privacy-requests", "--log", log_id, "--json")
    assert code == 0, err
    assert [r["id"] for r in json.loads(out)] == [request_id]
    code, _, err = cli("approve", str(request_id), "--log", log_id, "--token", admins[1])
    assert code == 0, err
    code, out, err = cli("retention", "show", "--log", log_id)
    assert code == 0, err
    assert out.split("\t")[1] == "366d"
    requests = "SELECT count(*) FROM privacy_requests WHERE log_id = :id"
    assert shared_pair.rows("b", requests, id=log_id)[0][0] == 1

    assert cli("writers", "policy", "--log", log_id, "required")[0] == 0
    assert cli("writers", "policy", "--log", log_id)[1].strip() == "required"


def test_db_upgrade_says_when_a_cluster_has_a_fingerprint_key_of_its_own(
    admin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """b made its own before it was configured as a cluster (a random one, as under a KMS):
    never overwritten, and said."""
    from ledger.core.sealing import new_key
    from ledger.keys.ring import MasterKeyRing
    from ledger.storage.db import upgrade_schema
    from ledger.storage.keystore import FINGERPRINT_SECRET, wrap_context

    with pair_of(admin_url, migrated=False) as pair:
        upgrade_schema(pair.b)
        masters = MasterKeyRing.local(base64_key())
        own = masters.wrap(
            new_key(),
            context=wrap_context("wrapped_secrets", "", FINGERPRINT_SECRET),
            key_id=masters.wrapping_id,
        )
        eng = make_engine(pair.b, pool_size=1)
        with unit_of_work(eng) as conn:
            conn.execute(
                text(
                    "INSERT INTO wrapped_secrets (name, master_key_id, wrapped)"
                    " VALUES (:n, :mk, :w)"
                ),
                {"n": FINGERPRINT_SECRET, "mk": masters.wrapping_id, "w": own},
            )
        eng.dispose()
        code, _, err = cli_for(pair, tmp_path, monkeypatch, capsys)("db", "upgrade")
        assert code == 0, err
        assert "cluster b has a card fingerprint key of its own, not main's" in err
        secret = "SELECT wrapped FROM wrapped_secrets WHERE name = :n"
        assert bytes(pair.rows("b", secret, n=FINGERPRINT_SECRET)[0][0]) == own
