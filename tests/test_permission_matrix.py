"""The permission matrix (``api/permissions.py``), cell by cell: every operation, called as every
kind of caller on every kind of target, answers exactly what the table says; the README prints
the same table; and ``/metrics`` is served only with its token, or to loopback clients.

One set of logs and credentials for the whole module (tenant T: logs ``own`` and ``sibling`` and
``T.system``; tenant U: log ``foreign``). Each caller's credential is on ``own``, or on
``T.system`` for the ``system`` target. An authorized call is given a minimal valid request, so
it answers for its own reasons (201, 200, 202, 400 or 404, as ``SUCCESS`` says).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.permissions import OPERATIONS, render_markdown
from ledger.settings import Settings
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import KeyRing
from tests.conftest import TEST_ACTOR, make_event, now

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- permissions -->", "<!-- /permissions -->"
ROLE_CALLERS = ("writer", "auditor", "verifier", "admin")
CALLERS = (*ROLE_CALLERS, "no token", "revoked", "expired", "forged")
LOG_TARGETS = ("own", "same tenant", "other tenant", "system")
RUN = {
    "status": "intact",
    "intact": True,
    "mode": "full",
    "host": "matrix-test",
    "started_at": "2026-11-20T09:14:01Z",
    "finished_at": "2026-11-20T09:14:02Z",
    "logs": [],
}


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # {log} filled in per target
    body: Any = None


CALLS: dict[str, Call] = {
    "append_events": Call("POST", "/v1/logs/{log}/events", "event"),
    "get_checkpoint": Call("GET", "/v1/logs/{log}/checkpoint"),
    "get_verifier_keys": Call("GET", "/v1/logs/{log}/verifier-key"),
    "list_entries": Call("GET", "/v1/logs/{log}/entries?start=0&end=1"),
    "get_entry": Call("GET", "/v1/logs/{log}/entries/0"),
    "get_inclusion_proof": Call("GET", "/v1/logs/{log}/proofs/inclusion?seq=0&tree_size=1"),
    "get_consistency_proof": Call("GET", "/v1/logs/{log}/proofs/consistency?first=1&second=1"),
    "record_verification": Call("POST", "/v1/logs/{log}/verifications", RUN),
    "get_trail": Call("GET", "/v1/logs/{log}/conversations/c-1/trail"),
    "list_logs": Call("GET", "/v1/logs"),
    "list_conversations": Call("GET", "/v1/logs/{log}/conversations?handed_off=false"),
    "random_handoff": Call("GET", "/v1/logs/{log}/random-handoff"),
    "get_overview": Call("GET", "/v1/logs/{log}/overview"),
    "create_export": Call(
        "POST", "/v1/logs/{log}/exports", {"profile": "soc2-population", "format": "jsonl"}
    ),
    "request_erasure": Call(
        "POST",
        "/v1/logs/{log}/erasures",
        {"conversation": "c-absent", "legal_basis": "GDPR Art. 17", "reference": "m-1"},
    ),
    "request_hold": Call(
        "POST",
        "/v1/logs/{log}/holds",
        {"conversation": "c-1", "legal_basis": "litigation", "reference": "m-2"},
    ),
    "list_holds": Call("GET", "/v1/logs/{log}/holds"),
    "request_release": Call(
        "POST",
        "/v1/logs/{log}/holds/999999999/release",
        {"legal_basis": "settled", "reference": "m-3"},
    ),
    "get_retention": Call("GET", "/v1/logs/{log}/retention"),
    "request_retention_change": Call(
        "POST",
        "/v1/logs/{log}/retention",
        {"retention": "pci-dss", "legal_basis": "PCI DSS 10.5.1", "reference": "m-4"},
    ),
    "list_privacy_requests": Call("GET", "/v1/logs/{log}/privacy-requests"),
    "approve_privacy_request": Call("POST", "/v1/logs/{log}/privacy-requests/999999999/approve"),
    "add_writer_key": Call(
        "POST",
        "/v1/logs/{log}/writer-keys",
        {"credential": 999999999, "public_key": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
    ),
    "list_writer_keys": Call("GET", "/v1/logs/{log}/writer-keys"),
    "revoke_writer_key": Call("POST", "/v1/logs/{log}/writer-keys/no-such-kid/revoke"),
    "get_signature_policy": Call("GET", "/v1/logs/{log}/signature-policy"),
    "set_signature_policy": Call(
        "PUT", "/v1/logs/{log}/signature-policy", {"signatures": "optional"}
    ),
    "list_schemas": Call("GET", "/v1/schemas"),
    "get_schema": Call("GET", "/v1/schemas/handoff.message.created.v1"),
    "healthz": Call("GET", "/healthz"),
}

SUCCESS: dict[str, dict[str, int]] = {
    # What an authorized call (or anyone's, on a public operation) answers, per target.
    "append_events": {"own": 201, "system": 400},  # written only by the ledger itself
    "get_checkpoint": dict.fromkeys(LOG_TARGETS, 200),
    "get_verifier_keys": dict.fromkeys(LOG_TARGETS, 200),
    "list_entries": {"own": 200, "system": 200},
    "get_entry": {"own": 200, "system": 200},
    "get_inclusion_proof": {"own": 200, "system": 200},
    "get_consistency_proof": {"own": 200, "system": 200},
    # A run is recorded in a system log only: on an events log the request is invalid.
    "record_verification": {"own": 400, "system": 201},
    # No conversation c-1 in the system log.
    "get_trail": {"own": 200, "system": 404},
    # The credential's own log, whichever it is.
    "list_logs": {"none": 200},
    "list_conversations": {"own": 200, "system": 200},
    # Neither log has a handed-off conversation.
    "random_handoff": {"own": 404, "system": 404},
    "get_overview": {"own": 200, "system": 200},
    "create_export": {"own": 200, "system": 200},
    # The system log is written by the ledger itself: no privacy requests on it (400).
    "request_erasure": {"own": 404, "system": 400},  # own: no entry of c-absent
    "request_hold": {"own": 202, "system": 400},
    "list_holds": {"own": 200, "system": 200},
    "request_release": {"own": 404, "system": 400},  # own: no such hold
    "get_retention": {"own": 200, "system": 200},
    "request_retention_change": {"own": 202, "system": 400},
    "list_privacy_requests": {"own": 200, "system": 200},
    "approve_privacy_request": {"own": 404, "system": 400},  # own: no such request
    # Writer keys belong to events logs; own: no such credential / kid (404).
    "add_writer_key": {"own": 404, "system": 400},
    "list_writer_keys": {"own": 200, "system": 200},
    "revoke_writer_key": {"own": 404, "system": 400},
    # The policy of an events log; the system log is written only by the ledger (400).
    "get_signature_policy": {"own": 200, "system": 200},
    "set_signature_policy": {"own": 200, "system": 400},
    "list_schemas": {"none": 200},
    "get_schema": {"none": 200},
    "healthz": {"none": 200},
}


def expected(operation_id: str, caller: str, target: str) -> int:
    roles = OPERATIONS[operation_id].roles
    if not roles:
        return SUCCESS[operation_id][target]
    if caller not in ROLE_CALLERS:
        return 401
    if target in ("same tenant", "other tenant") or caller not in roles:
        return 403
    return SUCCESS[operation_id][target]


def cells() -> Iterator[Any]:
    for operation_id, call in CALLS.items():
        targets = LOG_TARGETS if "{log}" in call.path else ("none",)
        for caller in CALLERS:
            for target in targets:
                yield pytest.param(
                    operation_id, caller, target, id=f"{operation_id}-{caller}-{target}"
                )


@dataclass
class World:
    client: TestClient
    logs: dict[str, str]  # target -> log id
    tokens: dict[tuple[str, str], str]  # (caller, "own" | "system") -> bearer token


@pytest.fixture(scope="module")
def world(settings: Settings, engine: Engine) -> Iterator[World]:
    from api.app import create_app
    from ledger.services.admin.credentials import create_credential, revoke_credential
    from ledger.services.admin.logs import create_log
    from ledger.services.system_log import system_log_id

    keys = KeyRing.from_master(settings.master_key_bytes)
    tag = secrets.token_hex(4)
    tenant, other_tenant = f"pm-{tag}", f"pm-{tag}-u"
    logs = {
        "own": f"pm-{tag}-own",
        "same tenant": f"pm-{tag}-sib",
        "other tenant": f"pm-{tag}-foreign",
        "system": system_log_id(tenant),
    }
    tokens: dict[tuple[str, str], str] = {}
    with unit_of_work(engine) as conn:
        for target, tenant_of in (
            ("own", tenant),
            ("same tenant", tenant),
            ("other tenant", other_tenant),
        ):
            create_log(
                conn,
                keys,
                logs[target],
                origin_prefix=settings.origin_prefix,
                actor=TEST_ACTOR,
                now=now(),
                tenant=tenant_of,
            )

        def credential(log_id: str, role: str) -> Any:
            return create_credential(
                conn, keys, log_id=log_id, role=role, label="matrix", actor=TEST_ACTOR, now=now()
            )

        for role in ROLE_CALLERS:
            for target in ("own", "system"):
                tokens[role, target] = credential(logs[target], role).token
        for target in ("own", "system"):
            revoked = credential(logs[target], "auditor")
            revoke_credential(conn, keys, revoked.id, actor=TEST_ACTOR, now=now())
            tokens["revoked", target] = revoked.token
            # An admin credential that expired an hour ago (created, as of then, for an hour).
            then = now() - timedelta(hours=2)
            tokens["expired", target] = create_credential(
                conn,
                keys,
                log_id=logs[target],
                role="admin",
                label="matrix expired",
                actor=TEST_ACTOR,
                now=then,
                expires_at=then + timedelta(hours=1),
            ).token
            tokens["forged", target] = "hlt_" + secrets.token_urlsafe(32)
        seed = [credential(logs[t], "writer").token for t in ("same tenant", "other tenant")]
    # Every caller fails or is refused many times here: keep the per-source limit out of it.
    app = create_app(settings.model_copy(update={"auth_failures_per_window": 1_000_000}))
    with TestClient(app) as client:
        for log_id, writer in zip(
            (logs["own"], logs["same tenant"], logs["other tenant"]),
            (tokens["writer", "own"], *seed),
            strict=True,
        ):
            r = client.post(
                f"/v1/logs/{log_id}/events",
                json={"events": [make_event("c-1", 0), make_event("c-1", 1)]},
                headers={"Authorization": f"Bearer {writer}"},
            )
            assert r.status_code == 201, r.text
        yield World(client, logs, tokens)


@pytest.mark.parametrize(("operation_id", "caller", "target"), list(cells()))
def test_cell(world: World, operation_id: str, caller: str, target: str) -> None:
    call = CALLS[operation_id]
    path = call.path.replace("{log}", world.logs.get(target, ""))
    headers = {}
    if caller != "no token":
        # A caller's credential is on its own log, or on the tenant's system log for that target.
        credential_log = "system" if target == "system" else "own"
        headers["Authorization"] = f"Bearer {world.tokens[caller, credential_log]}"
    body = call.body
    if body == "event":
        body = make_event(f"c-{secrets.token_hex(4)}")
    r = world.client.request(call.method, path, headers=headers, json=body)
    assert r.status_code == expected(operation_id, caller, target), r.text


def test_every_route_is_in_the_matrix_and_called_here(world: World) -> None:
    document = world.client.get("/openapi.json").json()
    routes = {
        operation["operationId"]: (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    assert routes == {k: (op.method, op.path) for k, op in OPERATIONS.items()}
    assert set(CALLS) | {"metrics"} == set(OPERATIONS)


def test_the_readme_prints_the_matrix() -> None:
    text = README.read_text()
    match = re.search(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), text, re.S)
    assert match is not None, f"README.md has no {BEGIN} … {END} block"
    assert match[1] == render_markdown(), (
        "README.md's permission matrix differs from api/permissions.py; paste "
        "`python -c 'from api.permissions import render_markdown as r; print(r(), end=\"\")'`"
    )


# --- /metrics -----------------------------------------------------------------------------------

METRICS_TOKEN = "metrics-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def metrics_apps(settings: Settings, world: World) -> dict[str, Any]:
    from api.app import create_app

    # No lifespan: /metrics reads only the process's registry.
    return {
        "unset": world.client.app,
        "set": create_app(settings.model_copy(update={"metrics_token": METRICS_TOKEN})),
    }


@pytest.mark.parametrize(
    ("config", "client_host", "caller", "status"),
    [
        # LEDGER_METRICS_TOKEN unset: loopback clients only, whatever they present.
        ("unset", "127.0.0.1", "no token", 200),
        ("unset", "::1", "no token", 200),
        ("unset", "127.0.0.1", "admin", 200),
        ("unset", "203.0.113.7", "no token", 403),
        ("unset", "203.0.113.7", "admin", 403),
        ("unset", "203.0.113.7", "metrics token", 403),
        ("unset", "testclient", "no token", 403),
        # Set: its bearer token, from anywhere; nothing else, not even from loopback.
        ("set", "203.0.113.7", "metrics token", 200),
        ("set", "127.0.0.1", "metrics token", 200),
        ("set", "127.0.0.1", "no token", 401),
        ("set", "203.0.113.7", "no token", 401),
        ("set", "203.0.113.7", "wrong token", 401),
        ("set", "203.0.113.7", "admin", 401),
        ("set", "203.0.113.7", "writer", 401),
    ],
)
def test_metrics(
    world: World,
    metrics_apps: dict[str, Any],
    config: str,
    client_host: str,
    caller: str,
    status: int,
) -> None:
    token = {
        "no token": None,
        "metrics token": METRICS_TOKEN,
        "wrong token": METRICS_TOKEN + "x",
        "admin": world.tokens["admin", "own"],
        "writer": world.tokens["writer", "own"],
    }[caller]
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    client = TestClient(metrics_apps[config], client=(client_host, 50000))
    r = client.get("/metrics", headers=headers)
    assert r.status_code == status, r.text
    if status == 200:
        assert b"ledger_http_requests_total" in r.content
    else:
        assert r.headers["content-type"].startswith("application/problem+json")
        assert world.logs["own"] not in r.text
