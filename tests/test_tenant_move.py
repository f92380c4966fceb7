"""Moving a tenant between clusters (issue 17, item 4): ``ledger tenants move T --to b``.

Each test has two fresh ledger databases on the local server, both "clusters": ``main``
(``LEDGER_DATABASE_URL``, which holds the placement) and ``b`` (``LEDGER_CLUSTERS``), cloned
from one migrated template. Tenants are made on them through the real services and HTTP app;
the move runs through the command line (``ledger tenants``, registered here if
``ledger/cli/__init__.py`` does not yet) or through ``ledger.services.admin.move`` for the hooks.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from api.app import create_app
from ledger import cli
from ledger.cli import tenants as tenants_cli
from ledger.client import generate_signing_key
from ledger.domain import AppendRequest, Principal, Receipt
from ledger.errors import IntegrityFailure, LogMoved
from ledger.services.admin import move
from ledger.services.admin.credentials import authenticate
from ledger.services.admin.placement import create_placed_log
from ledger.services.admin.writer_keys import add_writer_key
from ledger.settings import ClusterSettings, Settings
from ledger.storage.db import make_engine, sqlalchemy_url, unit_of_work
from ledger.storage.keystore import DataKeyStore, KeyRing, SignerCache
from ledger.storage.logs import get_log
from ledger.storage.placement import cluster_of_tenant
from ledger.storage.sequencer import append_batch
from tests.conftest import (
    MASTER_KEY,
    TEST_ACTOR,
    _libpq,
    credential_token,
    direct_event,
    drop_database,
    migrated_database,
    now,
)
from tests.test_privacy import Ledger, said_by

ORIGIN_PREFIX = "ledger.test"


@pytest.fixture(scope="module")
def template(admin_url: str) -> Iterator[str]:
    """A migrated database every test clones its two clusters from (no connection stays)."""
    with migrated_database(admin_url, "ledger_move_template") as url:
        name = make_url(url).database
        assert name is not None
        yield name


@dataclass
class Clusters:
    settings: Settings
    main: Engine
    b: Engine
    urls: dict[str, str]
    keys: KeyRing = field(default_factory=lambda: KeyRing.from_master(_master()))

    def engine_of(self, name: str) -> Engine:
        return {"main": self.main, "b": self.b}[name]

    def new_tenant(self, cluster: str = "main") -> str:
        """A tenant placed on ``cluster`` with one events log named after it."""
        tenant = f"t-{secrets.token_hex(4)}"
        create_placed_log(
            self.main,
            self.engine_of,
            ["main", "b"],
            self.keys,
            tenant,
            cluster=cluster,
            tenant=tenant,
            origin_prefix=ORIGIN_PREFIX,
            actor=TEST_ACTOR,
            now=now(),
        )
        return tenant

    def token(self, cluster: str, log_id: str, role: str) -> str:
        return credential_token(self.engine_of(cluster), self.keys, log_id, role)

    def placement(self, tenant: str) -> str | None:
        with unit_of_work(self.main) as conn:
            return cluster_of_tenant(conn, tenant)

    def fences(self, cluster: str, tenant: str) -> dict[str, str | None]:
        with unit_of_work(self.engine_of(cluster)) as conn:
            rows = conn.execute(
                text(
                    "SELECT h.log_id, h.moved_to FROM log_heads h JOIN logs l ON l.id = h.log_id"
                    " WHERE l.tenant = :t"
                ),
                {"t": tenant},
            ).all()
        return {str(log): to for log, to in rows}

    def logs_on(self, cluster: str, tenant: str) -> list[str]:
        with unit_of_work(self.engine_of(cluster)) as conn:
            return list(
                conn.execute(
                    text("SELECT id FROM logs WHERE tenant = :t ORDER BY id"), {"t": tenant}
                ).scalars()
            )


def _master() -> bytes:
    import base64

    return base64.b64decode(MASTER_KEY)


@pytest.fixture
def clusters(admin_url: str, template: str, tmp_path: Any) -> Iterator[Clusters]:
    names = {c: f"ledger_move_{c}_{secrets.token_hex(4)}" for c in ("main", "b")}
    urls = {}
    for cluster, name in names.items():
        with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        urls[cluster] = (
            make_url(sqlalchemy_url(admin_url))
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    settings = Settings(
        database_url=urls["main"],
        clusters={"b": ClusterSettings(url=urls["b"])},
        master_key=MASTER_KEY,
        data_dir=tmp_path / "data",
        origin_prefix=ORIGIN_PREFIX,
        db_role="ledger_app",
    )
    main = make_engine(urls["main"], pool_size=4, system="operator")
    b = make_engine(urls["b"], pool_size=4, system="operator")
    try:
        yield Clusters(settings, main, b, urls)
    finally:
        main.dispose()
        b.dispose()
        for name in names.values():
            drop_database(admin_url, name)


@pytest.fixture
def run_cli(
    clusters: Clusters,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    verifier_env: dict[str, Any],
) -> Any:
    """``run_cli(*argv) -> (code, stdout, stderr)`` with ``ledger tenants`` registered."""
    if tenants_cli not in cli.COMMAND_GROUPS:  # until ledger/cli/__init__.py registers it
        monkeypatch.setattr(cli, "COMMAND_GROUPS", (*cli.COMMAND_GROUPS, tenants_cli))
    monkeypatch.setenv("LEDGER_DATABASE_URL", clusters.urls["main"])
    monkeypatch.setenv("LEDGER_CLUSTERS", json.dumps({"b": {"url": clusters.urls["b"]}}))
    monkeypatch.setenv("LEDGER_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("LEDGER_ORIGIN_PREFIX", ORIGIN_PREFIX)

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def appender(clusters: Clusters, cluster: str, log_id: str) -> Any:
    """``append(n) -> receipts``: ``n`` events through the sequencer on ``cluster``."""
    engine = clusters.engine_of(cluster)
    with unit_of_work(engine) as conn:
        log = get_log(conn, log_id)
    signers, data_keys = SignerCache(_master()), DataKeyStore(_master())
    counter = itertools.count(secrets.randbelow(10**9))

    def append(n: int) -> list[Receipt]:
        events = [direct_event(next(counter), f"conv-{i % 3}") for i in range(n)]
        with unit_of_work(engine) as conn:
            outcome = append_batch(
                conn,
                log,
                [AppendRequest(events, Principal(0, log_id, "writer", "direct"))],
                signers=signers,
                data_keys=data_keys,
                now=now(),
            )
        result = outcome.results[0]
        assert not isinstance(result, Exception), result
        return list(result.receipts)

    return append


def rows_digest(engine: Engine, tenant: str, *, fence: bool = True) -> str:
    """A digest of a tenant's rows of every tenant table (to show them untouched); without
    ``fence``, the heads' ``moved_to`` is left out (to compare the source and its copy)."""
    digest = hashlib.sha256()
    with unit_of_work(engine) as conn:
        logs = list(
            conn.execute(text("SELECT id FROM logs WHERE tenant = :t"), {"t": tenant}).scalars()
        )
        for table in move.TENANT_TABLES:
            where = table.of_tenant.format(logs="CAST(:logs AS text[])")
            key = ", ".join(table.key)
            for row in conn.execute(
                text(f"SELECT * FROM {table.name} WHERE {where} ORDER BY {key}"), {"logs": logs}
            ):
                values = tuple(row._mapping.items())
                if not fence:
                    values = tuple((k, v) for k, v in values if k != "moved_to")
                digest.update(repr(values).encode())
    return digest.hexdigest()


def populated_tenant(clusters: Clusters, client: TestClient) -> tuple[str, Ledger]:
    """A tenant on main with entries and payloads, an erased conversation, credentials (two
    admins, a writer, an auditor), a writer key and a pending privacy request."""
    tenant = clusters.new_tenant("main")
    ledger = Ledger(client, lambda log, role: clusters.token("main", log, role), tenant)
    for batch in (
        [said_by("cust-a", "a", n) for n in range(3)],
        [said_by("cust-b", "b", n) for n in range(3)],
        [said_by("cust-a", "a", 3), said_by("cust-c", "c", 0)],
    ):
        r = ledger.post(*batch)
        assert r.status_code == 201, r.text
    ledger.approved(ledger.erase(conversation="b"))
    pending = ledger.hold(conversation="a")
    assert pending.status_code == 202, pending.text
    with unit_of_work(clusters.main) as conn:
        writer = authenticate(conn, ledger.writer)
        add_writer_key(
            conn,
            clusters.keys,
            log_id=tenant,
            credential_id=writer.credential_id,
            public_key=generate_signing_key().public_key_b64url,
            actor=TEST_ACTOR,
            now=now(),
        )
    return tenant, ledger


def test_a_tenant_moves_whole_and_verified(clusters: Clusters, run_cli: Any) -> None:
    other = clusters.new_tenant("main")
    append_other = appender(clusters, "main", other)
    append_other(5)
    with TestClient(create_app(clusters.settings)) as client:
        tenant, ledger = populated_tenant(clusters, client)
        trails = {c: ledger.trail(c) for c in ("a", "b", "c")}
        pending = ledger.requests("pending")
    other_before = rows_digest(clusters.main, other)

    code, out, err = run_cli("tenants", "move", tenant, "--to", "b", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["verification"]["status"] == "intact"
    assert {r["log"] for r in summary["verification"]["logs"]} == {tenant, f"{tenant}.system"}
    assert summary["verification"]["mode"] == "full"
    assert summary["tables"]["entries"]["inserted"] == summary["tables"]["entries"]["compared"]
    assert summary["entries"][tenant] == 8
    assert "writes paused" in err

    assert clusters.placement(tenant) == "b"
    assert set(clusters.fences("main", tenant).values()) == {"b"}
    assert set(clusters.fences("b", tenant).values()) == {None}
    assert rows_digest(clusters.main, other) == other_before
    append_other(1)  # the other tenant still writes on main

    with pytest.raises(LogMoved):
        appender(clusters, "main", tenant)(1)

    with TestClient(create_app(clusters.settings)) as client:
        ledger.client = client
        for conversation, trail in trails.items():
            assert ledger.trail(conversation) == trail
        assert ledger.requests("pending") == pending
        assert ledger.approve(pending[0]["id"]).status_code == 200  # the two-person rule, on b
        r = ledger.post(said_by("cust-a", "a", 9))  # the writer's token, on b now
        assert r.status_code == 201, r.text
        assert r.json()["receipts"][0]["seq"] == 8
    with unit_of_work(clusters.b) as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM entries WHERE log_id = :l"), {"l": tenant}
            ).scalar_one()
            == 9
        )

    code, out, _ = run_cli("tenants", "list", "--json")
    assert code == 0
    listed = {t["tenant"]: t for t in json.loads(out)["tenants"]}
    assert listed[tenant] == {"tenant": tenant, "cluster": "b", "logs": 2}
    assert listed[other]["cluster"] == "main"


def test_kept_ids_advance_the_targets_sequences(clusters: Clusters, run_cli: Any) -> None:
    """Ids are kept (signed records name them); b's sequences then never hand them out."""
    first = clusters.new_tenant("main")
    for _ in range(5):
        clusters.token("main", first, "writer")
    tenant = clusters.new_tenant("main")
    tokens = [clusters.token("main", tenant, "writer") for _ in range(3)]
    with unit_of_work(clusters.main) as conn:
        ids = [authenticate(conn, t).credential_id for t in tokens]
    code, _, err = run_cli("tenants", "move", tenant, "--to", "b")
    assert code == 0, err
    with unit_of_work(clusters.b) as conn:
        assert [authenticate(conn, t).credential_id for t in tokens] == ids
    newcomer = clusters.new_tenant("b")
    token = clusters.token("b", newcomer, "writer")
    with unit_of_work(clusters.b) as conn:
        assert authenticate(conn, token).credential_id > max(ids)


def test_colliding_ids_refuse_the_move_and_change_nothing(clusters: Clusters, run_cli: Any) -> None:
    """Both clusters numbered from 1: tenant x on main and tenant y on b share credential,
    data key and signing key ids. Ids are named in signed records, so x cannot move to b."""
    x = clusters.new_tenant("main")
    clusters.token("main", x, "writer")
    appender(clusters, "main", x)(3)
    y = clusters.new_tenant("b")
    clusters.token("b", y, "writer")
    before = rows_digest(clusters.main, x)

    code, _, err = run_cli("tenants", "move", x, "--to", "b")
    assert code == 2
    assert "credentials 1" in err
    assert "named in signed records" in err
    assert clusters.placement(x) == "main"
    assert set(clusters.fences("main", x).values()) == {None}
    assert clusters.logs_on("b", x) == []
    assert rows_digest(clusters.main, x) == before
    appender(clusters, "main", x)(1)


def crash(*_: Any) -> None:
    raise RuntimeError("the operator's machine died here")


def test_a_rerun_after_the_fence_only_switches(
    clusters: Clusters, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = clusters.new_tenant("main")
    appender(clusters, "main", tenant)(4)

    with monkeypatch.context() as crashing:
        crashing.setattr(move, "_switch", crash)
        with pytest.raises(RuntimeError):
            run_cli("tenants", "move", tenant, "--to", "b")
    assert clusters.placement(tenant) == "main"
    assert set(clusters.fences("main", tenant).values()) == {"b"}
    with pytest.raises(LogMoved):  # meanwhile the tenant's writes get 503s
        appender(clusters, "main", tenant)(1)

    code, out, err = run_cli("tenants", "move", tenant, "--to", "b", "--json")
    assert code == 0, err
    assert "only the switch is left" in err
    assert json.loads(out)["only_switch"] is True
    assert clusters.placement(tenant) == "b"
    appender(clusters, "b", tenant)(1)


def test_a_rerun_after_the_target_committed_resumes_from_its_copy(
    clusters: Clusters, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Crash between b's commit and the source's fence: b holds a copy that goes stale while
    main takes writes; the re-run says so, brings it up to date, verifies it and switches."""
    tenant = clusters.new_tenant("main")
    append = appender(clusters, "main", tenant)
    append(4)
    with monkeypatch.context() as crashing:
        crashing.setattr(move, "fence_moved_logs", lambda *_: None)
        crashing.setattr(move, "_switch", crash)
        with pytest.raises(RuntimeError):
            run_cli("tenants", "move", tenant, "--to", "b")
    assert clusters.logs_on("b", tenant) == [tenant, f"{tenant}.system"]
    assert clusters.placement(tenant) == "main"
    append(3)  # main is still live

    code, out, err = run_cli("tenants", "move", tenant, "--to", "b", "--json")
    assert code == 0, err
    assert "already holds a copy" in err
    summary = json.loads(out)
    assert summary["tables"]["entries"]["inserted"] == 3
    assert summary["entries"][tenant] == 7
    assert summary["verification"]["status"] == "intact"
    assert clusters.placement(tenant) == "b"


def test_a_tampered_copy_is_refused_with_nothing_switched(clusters: Clusters) -> None:
    tenant = clusters.new_tenant("main")
    clusters.token("main", tenant, "writer")
    appender(clusters, "main", tenant)(5)
    before = rows_digest(clusters.main, tenant)

    def tamper(b: Any) -> None:
        b.execute(text("UPDATE credentials SET label = 'forged' WHERE log_id = :l"), {"l": tenant})

    plan = move.plan_move(clusters.main, clusters.engine_of, ["main", "b"], tenant, "b")
    with pytest.raises(IntegrityFailure, match="table credentials differs") as failure:
        move.move_tenant(
            plan,
            main=clusters.main,
            source=clusters.main,
            target=clusters.b,
            say=lambda _: None,
            before_verify=tamper,
        )
    assert "label" in str(failure.value.expected)
    assert clusters.placement(tenant) == "main"
    assert set(clusters.fences("main", tenant).values()) == {None}
    assert clusters.logs_on("b", tenant) == []
    assert rows_digest(clusters.main, tenant) == before


def test_a_source_whose_entries_do_not_hash_to_the_signed_root_is_not_moved(
    clusters: Clusters, run_cli: Any
) -> None:
    """The copy equals the source row for row, but an entry's bytes were changed on the
    source (its leaf hash kept): the Merkle check on b refuses it, exit 1, nothing switched."""
    tenant = clusters.new_tenant("main")
    appender(clusters, "main", tenant)(6)
    with unit_of_work(clusters.main) as conn:
        conn.execute(text("ALTER TABLE entries DISABLE TRIGGER entries_no_update_delete"))
        conn.execute(
            text(
                "UPDATE entries SET entry = overlay(entry placing '\\x58'::bytea from 20)"
                " WHERE log_id = :l AND seq = 2"
            ),
            {"l": tenant},
        )
        conn.execute(text("ALTER TABLE entries ENABLE ALWAYS TRIGGER entries_no_update_delete"))
    code, _, err = run_cli("tenants", "move", tenant, "--to", "b")
    assert code == 1
    assert f"log {tenant} seq 2" in err
    assert "leaf hash" in err
    assert clusters.placement(tenant) == "main"
    assert set(clusters.fences("main", tenant).values()) == {None}
    assert clusters.logs_on("b", tenant) == []


def test_no_acknowledged_event_is_lost_while_a_writer_appends(
    clusters: Clusters, run_cli: Any
) -> None:
    """A writer appends batches of 20 through the sequencer the whole time, following the
    placement when main answers LogMoved; every receipt is on b at its seq with its leaf."""
    tenant = clusters.new_tenant("main")
    appender(clusters, "main", tenant)(20_000)
    receipts: list[Receipt] = []
    acknowledged: list[float] = []  # when each batch's receipts came back
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            cluster, append = "main", appender(clusters, "main", tenant)
            while not stop.is_set():
                try:
                    receipts.extend(append(20))
                except LogMoved:
                    while clusters.placement(tenant) != "b":
                        time.sleep(0.01)
                    cluster, append = "b", appender(clusters, "b", tenant)
                    continue
                acknowledged.append(time.monotonic())
            assert cluster == "b"
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.3)
    code, out, err = run_cli("tenants", "move", tenant, "--to", "b", "--json")
    time.sleep(0.3)
    stop.set()
    thread.join(timeout=60)
    assert not errors, errors
    assert code == 0, err
    summary = json.loads(out)
    on_b = {}
    with unit_of_work(clusters.b) as conn:
        for seq, leaf in conn.execute(
            text("SELECT seq, leaf_hash FROM entries WHERE log_id = :l"), {"l": tenant}
        ):
            on_b[int(seq)] = bytes(leaf)
    assert len(receipts) > 40
    assert all(on_b.get(r.seq) == r.leaf_hash for r in receipts)
    longest_gap = max(b - a for a, b in itertools.pairwise(acknowledged))
    print(
        f"\nmoved {summary['entries'][tenant]} entries; seconds {summary['seconds']};"
        f" rows copied {sum(t['inserted'] for t in summary['tables'].values())};"
        f" the writer's longest wait between acknowledged batches {longest_gap:.3f} s"
        f" (placement cache, re-route included), {len(receipts)} receipts"
    )


def test_an_unplaced_tenant_on_main_moves_and_is_placed(clusters: Clusters, run_cli: Any) -> None:
    """A tenant from before placement (logs on main, no placement row) is on main."""
    from ledger.services.admin.logs import create_log

    tenant = f"t-{secrets.token_hex(4)}"
    with unit_of_work(clusters.main) as conn:
        create_log(
            conn,
            clusters.keys,
            tenant,
            origin_prefix=ORIGIN_PREFIX,
            actor=TEST_ACTOR,
            now=now(),
        )
    appender(clusters, "main", tenant)(3)
    assert clusters.placement(tenant) is None
    code, _, err = run_cli("tenants", "move", tenant, "--to", "b")
    assert code == 0, err
    assert clusters.placement(tenant) == "b"
    with unit_of_work(clusters.main) as conn:
        placed: dict[str, str] = dict(
            conn.execute(
                text("SELECT log_id, cluster FROM log_placements WHERE tenant = :t"), {"t": tenant}
            ).all()
        )
    assert placed == {tenant: "b", f"{tenant}.system": "b"}


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (("--to", "nowhere"), "no cluster 'nowhere'"),
        (("--to", "main"), "on cluster 'main' already"),
    ],
)
def test_a_move_that_cannot_be_made_changes_nothing(
    clusters: Clusters, run_cli: Any, argv: tuple[str, ...], said: str
) -> None:
    tenant = clusters.new_tenant("main")
    code, _, err = run_cli("tenants", "move", tenant, *argv)
    assert code == 2
    assert said in err
    assert clusters.placement(tenant) == "main"
    assert set(clusters.fences("main", tenant).values()) == {None}


def test_an_unknown_tenant(clusters: Clusters, run_cli: Any) -> None:
    code, _, err = run_cli("tenants", "move", "no-such-tenant", "--to", "b")
    assert code == 2
    assert "no tenant 'no-such-tenant'" in err


def test_an_abandoned_copy_is_dropped_and_the_guards_stay(
    clusters: Clusters, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A move that committed on b and stopped before the fence, abandoned: ``drop-copy``
    removes b's copy (and only a copy), the append-only triggers are back, the move can run."""
    tenant = clusters.new_tenant("main")
    clusters.token("main", tenant, "writer")
    appender(clusters, "main", tenant)(5)
    before = rows_digest(clusters.main, tenant)
    with monkeypatch.context() as crashing:
        crashing.setattr(move, "fence_moved_logs", lambda *_: None)
        crashing.setattr(move, "_switch", crash)
        with pytest.raises(RuntimeError):
            run_cli("tenants", "move", tenant, "--to", "b")
    assert clusters.logs_on("b", tenant) == [tenant, f"{tenant}.system"]

    code, _, err = run_cli("tenants", "drop-copy", tenant, "--cluster", "main")
    assert code == 2
    assert "that is the tenant, not a copy" in err
    code, out, err = run_cli("tenants", "drop-copy", tenant, "--cluster", "b")
    assert code == 0, err
    assert json.loads(out)["deleted"]["entries"] == 5 + 2  # + log.created, credential.created
    assert rows_digest(clusters.b, tenant) == rows_digest(clusters.b, "nobody")
    assert rows_digest(clusters.main, tenant) == before
    with unit_of_work(clusters.b) as conn:
        modes = set(
            conn.execute(
                text(
                    "SELECT t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                    " WHERE NOT t.tgisinternal AND c.relname = 'entries'"
                )
            ).scalars()
        )
        assert modes == {"A"}
        with pytest.raises(Exception, match="forbidden"):
            conn.execute(text("TRUNCATE entries"))

    code, _, err = run_cli("tenants", "move", tenant, "--to", "b")
    assert code == 0, err
    assert "already holds a copy" not in err


def test_a_tenant_moves_back_over_its_frozen_copy(clusters: Clusters, run_cli: Any) -> None:
    tenant = clusters.new_tenant("main")
    appender(clusters, "main", tenant)(4)
    code, _, err = run_cli("tenants", "move", tenant, "--to", "b")
    assert code == 0, err
    appender(clusters, "b", tenant)(3)

    code, out, err = run_cli("tenants", "move", tenant, "--to", "main", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["tables"]["entries"]["inserted"] == 3
    assert summary["entries"][tenant] == 7
    assert clusters.placement(tenant) == "main"
    assert set(clusters.fences("main", tenant).values()) == {None}
    assert set(clusters.fences("b", tenant).values()) == {"main"}
    appender(clusters, "main", tenant)(1)


def test_clusters_given_their_own_id_ranges_never_collide(clusters: Clusters, run_cli: Any) -> None:
    """docs/moving-a-tenant.md: b gets its own range before it holds a tenant; then a tenant of
    main moves there even though b made a tenant of its own first."""
    with unit_of_work(clusters.b) as conn:
        conn.execute(
            text(
                "SELECT setval(pg_get_serial_sequence(t, 'id'), 100000000) FROM unnest(ARRAY["
                "'credentials', 'data_keys', 'privacy_requests', 'signing_keys', 'writer_keys'"
                "]) AS t"
            )
        )
    x = clusters.new_tenant("main")
    clusters.token("main", x, "writer")
    appender(clusters, "main", x)(3)
    y = clusters.new_tenant("b")
    clusters.token("b", y, "writer")
    appender(clusters, "b", y)(3)
    code, _, err = run_cli("tenants", "move", x, "--to", "b")
    assert code == 0, err
    assert clusters.placement(x) == "b"


def test_changes_made_during_the_copy_arrive(clusters: Clusters) -> None:
    """After the first pass has copied and before it compares, a credential is revoked and one
    created on main: rows changed in place after a pass's snapshot are found by their xmin, and
    b ends up with both (the revoked token no longer authenticates there, the new one does)."""
    from ledger.services.admin.credentials import revoke_credential

    tenant = clusters.new_tenant("main")
    revoked = clusters.token("main", tenant, "writer")
    appender(clusters, "main", tenant)(5)
    with unit_of_work(clusters.main) as conn:
        revoked_id = authenticate(conn, revoked).credential_id
    created: list[str] = []

    def meanwhile(_b: Any) -> None:
        with unit_of_work(clusters.main) as conn:
            revoke_credential(conn, clusters.keys, revoked_id, actor=TEST_ACTOR, now=now())
        created.append(clusters.token("main", tenant, "auditor"))
        appender(clusters, "main", tenant)(2)

    plan = move.plan_move(clusters.main, clusters.engine_of, ["main", "b"], tenant, "b")
    report = move.move_tenant(
        plan,
        main=clusters.main,
        source=clusters.main,
        target=clusters.b,
        say=lambda _: None,
        before_verify=meanwhile,
    )
    assert report.tables["credentials"].updated == 1
    assert report.entries[tenant] == 7
    with unit_of_work(clusters.b) as conn:
        assert authenticate(conn, created[0]).role == "auditor"
        with pytest.raises(Exception, match="invalid or revoked"):
            authenticate(conn, revoked)
    assert rows_digest(clusters.b, tenant, fence=False) == rows_digest(
        clusters.main, tenant, fence=False
    )


def test_a_server_that_cached_the_old_placement_answers_503_then_the_retry_lands_on_b(
    clusters: Clusters, run_cli: Any
) -> None:
    """Through HTTP and the group committer: a server started before the move still routes to
    main; the fenced head refuses (503, nothing stored), the server drops its cached placement,
    and the writer's retry of the same event is stored on b."""
    tenant = clusters.new_tenant("main")
    writer = clusters.token("main", tenant, "writer")
    with TestClient(create_app(clusters.settings)) as client:
        ledger = Ledger(client, lambda log, role: writer, tenant)
        assert ledger.post(said_by("cust-a", "a", 0)).status_code == 201
        code, _, err = run_cli("tenants", "move", tenant, "--to", "b")
        assert code == 0, err
        r = ledger.post(said_by("cust-a", "a", 1))
        assert r.status_code == 503, r.text
        assert "moving to another database cluster" in r.json()["detail"]
        r = ledger.post(said_by("cust-a", "a", 1))
        assert r.status_code == 201, r.text
        assert r.json()["receipts"][0]["seq"] == 1
    with unit_of_work(clusters.main) as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM entries WHERE log_id = :l"), {"l": tenant}
            ).scalar_one()
            == 1
        )
