"""One server over logs on two clusters (issue 17.4): requests go to the cluster the placement
names, a cluster that is down costs only its own logs, and a placement that lies stops the
server at start instead of answering from the wrong database.

The two clusters are two databases of the local PostgreSQL server: what the routing sees of a
cluster is its URL, so that is the honest stand-in (the benchmark, ``ops/bench_clusters.py``,
uses two real clusters)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ledger.domain import MAIN_CLUSTER
from ledger.errors import ConfigurationError
from ledger.services.admin.placement import create_placed_log
from ledger.settings import ClusterSettings, Settings
from ledger.storage.db import make_engine, unit_of_work
from ledger.storage.keystore import KeyRing
from ledger.storage.placement import fence_moved_logs, place_log, place_tenant
from tests.conftest import (
    MASTER_KEY,
    TEST_ACTOR,
    credential_token,
    free_port,
    make_event,
    migrated_database,
    now,
)
from tests.test_ingest_api import auth


@dataclass
class TwoClusters:
    main_url: str
    b_url: str
    main: Engine
    b: Engine
    settings: Settings
    keys: KeyRing

    def engine_of(self, name: str) -> Engine:
        return self.main if name == MAIN_CLUSTER else self.b

    def create_log(self, log_id: str, *, cluster: str | None = None) -> str:
        _info, placed = create_placed_log(
            self.main,
            self.engine_of,
            [MAIN_CLUSTER, "b"],
            self.keys,
            log_id,
            cluster=cluster,
            origin_prefix="ledger.test",
            actor=TEST_ACTOR,
            now=now(),
        )
        return placed

    def token(self, log_id: str, role: str, cluster: str) -> str:
        return credential_token(self.engine_of(cluster), self.keys, log_id, role)

    def count(self, cluster: str, log_id: str) -> int:
        with self.engine_of(cluster).connect() as conn:
            n = conn.execute(
                text("SELECT count(*) FROM entries WHERE log_id = :log"), {"log": log_id}
            ).scalar_one()
        return int(n)


@pytest.fixture
def two_clusters(admin_url: str, tmp_path: Any) -> Iterator[TwoClusters]:
    with (
        migrated_database(admin_url, "ledger_main") as main_url,
        migrated_database(admin_url, "ledger_b") as b_url,
    ):
        main = make_engine(main_url, pool_size=2)
        b = make_engine(b_url, pool_size=2)
        settings = Settings(
            database_url=main_url,
            clusters={"b": ClusterSettings(url=b_url)},
            master_key=MASTER_KEY,
            data_dir=tmp_path,
            origin_prefix="ledger.test",
            db_role="ledger_app",
        )
        try:
            yield TwoClusters(
                main_url, b_url, main, b, settings, KeyRing.from_master(settings.master_key_bytes)
            )
        finally:
            main.dispose()
            b.dispose()


def serve(settings: Settings) -> Any:
    from fastapi.testclient import TestClient

    from api.app import create_app

    return TestClient(create_app(settings))


def test_one_server_writes_and_reads_each_log_on_its_own_cluster(two_clusters: TwoClusters) -> None:
    world = two_clusters
    assert world.create_log("acme") == MAIN_CLUSTER  # the rule: fewest tenants, main first
    assert world.create_log("beta") == "b"  # main has one tenant now, b none
    assert world.create_log("gamma") == MAIN_CLUSTER  # one tenant each: the tie goes to main
    writers = {"acme": world.token("acme", "writer", MAIN_CLUSTER)}
    writers["beta"] = world.token("beta", "writer", "b")
    with serve(world.settings) as client:
        for log_id, token in writers.items():
            events = [make_event(f"c-{log_id}", n) for n in range(3)]
            r = client.post(
                f"/v1/logs/{log_id}/events", json={"events": events}, headers=auth(token)
            )
            assert r.status_code == 201, r.text
        auditor = world.token("beta", "auditor", "b")
        trail = client.get("/v1/logs/beta/conversations/c-beta/trail", headers=auth(auditor))
        assert trail.status_code == 200, trail.text
        assert [e["seq"] for e in trail.json()["entries"]] == [0, 1, 2]
        proof = client.get(
            "/v1/logs/beta/proofs/inclusion?seq=1&tree_size=3", headers=auth(auditor)
        )
        assert proof.status_code == 200, proof.text
        assert client.get("/healthz").json()["clusters"] == {MAIN_CLUSTER: "up", "b": "up"}
    # Each log's entries are on its own cluster only; its tenant's system log too.
    assert (world.count(MAIN_CLUSTER, "acme"), world.count("b", "acme")) == (3, 0)
    assert (world.count("b", "beta"), world.count(MAIN_CLUSTER, "beta")) == (3, 0)
    assert world.count("b", "beta.system") > 0
    assert world.count(MAIN_CLUSTER, "beta.system") == 0


def test_a_cluster_that_is_down_costs_only_its_own_logs(two_clusters: TwoClusters) -> None:
    world = two_clusters
    world.create_log("acme", cluster=MAIN_CLUSTER)
    world.create_log("beta", cluster="b")
    acme = world.token("acme", "writer", MAIN_CLUSTER)
    beta = world.token("beta", "writer", "b")
    # Nothing listens there: cluster b is down from the start.
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing?connect_timeout=2"
    settings = world.settings.model_copy(update={"clusters": {"b": ClusterSettings(url=down)}})
    with serve(settings) as client:
        r = client.post("/v1/logs/beta/events", json=make_event("c-1"), headers=auth(beta))
        assert r.status_code == 503, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "Retry-After" in r.headers
        r = client.post("/v1/logs/acme/events", json=make_event("c-1"), headers=auth(acme))
        assert r.status_code == 201, r.text
        health = client.get("/healthz")  # still in service, and says which cluster is down
        assert health.status_code == 200
        assert health.json() == {
            "status": "degraded",
            "database": "up",
            "clusters": {MAIN_CLUSTER: "up", "b": "down"},
        }
    assert world.count(MAIN_CLUSTER, "acme") == 1


def test_a_placement_naming_a_cluster_that_lacks_the_log_stops_the_start(
    two_clusters: TwoClusters,
) -> None:
    world = two_clusters
    world.create_log("acme", cluster=MAIN_CLUSTER)
    with unit_of_work(world.main) as conn:  # an operator's mistake, by hand
        place_tenant(conn, "ghosts", "b")
        place_log(conn, "ghost", "ghosts", "b")
    with (
        pytest.raises(ConfigurationError, match=r"ghost.*cluster 'b'.*does not hold"),
        serve(world.settings),
    ):
        pass


def test_a_placement_naming_a_cluster_not_configured_stops_the_start(
    two_clusters: TwoClusters,
) -> None:
    world = two_clusters
    world.create_log("beta", cluster="b")
    settings = world.settings.model_copy(update={"clusters": {}})
    with pytest.raises(ConfigurationError, match=r"cluster\(s\) b.*not configure"), serve(settings):
        pass


def test_a_log_fenced_by_a_move_takes_no_write_and_says_retry(two_clusters: TwoClusters) -> None:
    world = two_clusters
    world.create_log("beta", cluster="b")
    beta = world.token("beta", "writer", "b")
    with serve(world.settings) as client:
        r = client.post("/v1/logs/beta/events", json=make_event("c-1", 0), headers=auth(beta))
        assert r.status_code == 201, r.text
        with unit_of_work(world.b) as conn:  # what a move does before it switches
            fence_moved_logs(conn, ["beta", "beta.system"], MAIN_CLUSTER)
        r = client.post("/v1/logs/beta/events", json=make_event("c-1", 1), headers=auth(beta))
        assert r.status_code == 503, r.text
        assert "moving to another database cluster" in r.json()["detail"]
    assert world.count("b", "beta") == 1


def test_the_rule_keeps_a_tenant_together_and_refuses_to_split_it(
    two_clusters: TwoClusters,
) -> None:
    from ledger.errors import InvalidRequest

    world = two_clusters
    first = world.create_log("beta", cluster="b")
    _info, second = create_placed_log(
        world.main,
        world.engine_of,
        [MAIN_CLUSTER, "b"],
        world.keys,
        f"beta-{secrets.token_hex(2)}",
        tenant="beta",
        origin_prefix="ledger.test",
        actor=TEST_ACTOR,
        now=now(),
    )
    assert first == second == "b"
    with pytest.raises(InvalidRequest, match="tenant 'beta' is on cluster 'b'"):
        create_placed_log(
            world.main,
            world.engine_of,
            [MAIN_CLUSTER, "b"],
            world.keys,
            "beta-main",
            tenant="beta",
            cluster=MAIN_CLUSTER,
            origin_prefix="ledger.test",
            actor=TEST_ACTOR,
            now=now(),
        )
    assert world.count(MAIN_CLUSTER, "beta-main") == 0


def test_ledger_verify_covers_every_cluster_and_names_a_tampered_one(
    two_clusters: TwoClusters,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
) -> None:
    import json

    from ledger.cli import main
    from tests.test_verify_tamper import tamper

    world = two_clusters
    world.create_log("acme", cluster=MAIN_CLUSTER)
    world.create_log("beta", cluster="b")
    tokens = {
        "acme": world.token("acme", "writer", MAIN_CLUSTER),
        "beta": world.token("beta", "writer", "b"),
    }
    with serve(world.settings) as client:
        for log_id, token in tokens.items():
            events = [make_event("c-1", n) for n in range(4)]
            r = client.post(
                f"/v1/logs/{log_id}/events", json={"events": events}, headers=auth(token)
            )
            assert r.status_code == 201, r.text
    monkeypatch.setenv("LEDGER_DATABASE_URL", world.main_url)
    monkeypatch.setenv("LEDGER_CLUSTERS", json.dumps({"b": {"url": world.b_url}}))
    monkeypatch.setenv("LEDGER_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("LEDGER_VERIFIER_STATE_DIR", str(tmp_path / "verifier"))

    def verify() -> tuple[int, dict[str, Any]]:
        code = main(["verify", "--full", "--json", "--jobs", "1"])
        return code, json.loads(capsys.readouterr().out)

    code, report = verify()
    assert code == 0, report
    assert report["status"] == "intact"
    verified = {name: {r["log"] for r in run["logs"]} for name, run in report["clusters"].items()}
    assert verified == {MAIN_CLUSTER: {"acme", "acme.system"}, "b": {"beta", "beta.system"}}
    tamper(
        world.b_url,
        "entries",
        "UPDATE entries SET entry = entry || ' ' WHERE log_id = 'beta' AND seq = 2",
    )
    code, report = verify()
    assert code == 1
    assert (report["status"], report["clusters"]["b"]["status"]) == ("tampered", "tampered")
    assert report["clusters"][MAIN_CLUSTER]["status"] == "intact"


def test_a_server_started_while_the_main_cluster_is_down_answers_503_not_500(
    two_clusters: TwoClusters,
) -> None:
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing?connect_timeout=2"
    settings = two_clusters.settings.model_copy(update={"database_url": down})
    with serve(settings) as client:  # the placement is checked once it can be read
        assert client.get("/healthz").status_code == 503
        r = client.post("/v1/logs/acme/events", json=make_event("c-1"), headers=auth("t" * 40))
        assert r.status_code == 503, r.text
