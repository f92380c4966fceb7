"""500s from input (issue 16, class 6), the whole API at once: schemathesis generates requests
from the OpenAPI document (valid and invalid bodies, parameters and headers) and sends them to
the real server (uvicorn, a real PostgreSQL database with a log full of events), as every
role, as no one, and as another log's credential. Every answer must be a documented status
with a body that matches its documented schema, and none may be a 5xx.

Bounded to one to two minutes on the project's 2-core machine: ``MAX_EXAMPLES`` cases
per operation, half valid and half invalid by the schema, each sent as one of the callers
(run with ``-s`` to see the totals by status)."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import served
from tests.test_trail import CONVERSATION as EXAMPLE_CONVERSATION

MAX_EXAMPLES = 300
CALLERS = ("writer", "auditor", "verifier", "admin", "none", "other-log")
TOTALS = {"cases": 0, "5xx": 0, "violations": 0}
STATUSES: Counter[int] = Counter()
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def world(
    settings: Any, client: Any, new_log: Any, token: Any, example_batch: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """The server, a log holding the example conversation, and a token per caller (the
    schemathesis test below is one test: these are made once for all its cases)."""
    from api.app import create_app

    log_id = new_log()
    writer = token(log_id, "writer")
    r = client.post(
        f"/v1/logs/{log_id}/events",
        json=example_batch,
        headers={"Authorization": f"Bearer {writer}"},
    )
    assert r.status_code == 201, r.text
    tokens: dict[str, str | None] = {
        role: token(log_id, role) for role in ("auditor", "verifier", "admin")
    }
    tokens |= {"writer": writer, "none": None, "other-log": token(new_log(), "admin")}
    # Every failed authentication counts against 127.0.0.1: keep the rate limit out of the way
    # of the run (it is tested on its own), so the cases reach the routes.
    generous = settings.model_copy(update={"auth_failures_per_window": 10**9})
    with served(create_app(generous)) as port:
        yield {"port": port, "log": log_id, "tokens": tokens}


def test_the_whole_api_answers_as_documented_and_never_5xx(world: dict[str, Any]) -> None:
    api = schemathesis.openapi.from_url(f"http://127.0.0.1:{world['port']}/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 25
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _run(operation, mode, world, failures)
    by_status = sorted(STATUSES.items())
    print(f"schemathesis: {len(operations)} operations, {TOTALS}, {by_status}", file=sys.stderr)
    assert TOTALS["cases"] >= 20 * len(operations), TOTALS
    assert TOTALS["5xx"] == 0, "\n\n".join(failures[:10])
    assert not failures, "\n\n".join(failures[:10])


def _run(operation: Any, mode: GenerationMode, world: dict[str, Any], failures: list[str]) -> None:
    """Send ``MAX_EXAMPLES // 2`` cases of ``mode`` for ``operation``, each as some caller, to
    the operation's own log or to a generated one; record what fails (Hypothesis then keeps
    looking for a smaller failing case, which is what the report shows)."""
    seen: set[str] = set()

    @given(
        case=operation.as_strategy(generation_mode=mode),
        caller=st.sampled_from(CALLERS),
        ours=st.booleans(),
    )
    @settings(
        max_examples=MAX_EXAMPLES // 2,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case: Any, caller: str, ours: bool) -> None:
        if ours and "log" in (case.path_parameters or {}):
            case.path_parameters["log"] = world["log"]
            if "conversation_id" in case.path_parameters:
                case.path_parameters["conversation_id"] = EXAMPLE_CONVERSATION
        token = world["tokens"][caller]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        TOTALS["cases"] += 1
        response = case.call(headers=headers)
        TOTALS["5xx"] += response.status_code >= 500
        STATUSES[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as failure:  # what did not conform
            TOTALS["violations"] += 1
            label = f"{operation.label} ({mode}, {caller})"
            if label not in seen:
                seen.add(label)
                failures.append(f"{label}: {failure}")

    try:
        run()
    except Unsatisfiable:
        # Nothing of the operation can be made invalid (e.g. only an unconstrained string in
        # its path): there are no negative cases to send.
        if mode != GenerationMode.NEGATIVE:
            raise AssertionError(f"{operation.label}: no case can be made") from None


def test_the_document_gives_every_error_its_problem_schema_and_the_events_body(
    client: Any,
) -> None:
    doc = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
            assert "500" in errors, (method, path)
            for status, response in errors.items():
                if (path, status) == ("/healthz", "503"):
                    continue  # its own body: {"status", "database"}
                assert response["content"] == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, status)
    body = doc["paths"]["/v1/logs/{log}/events"]["post"]["requestBody"]["content"]
    refs = [b["$ref"] for b in body["application/json"]["schema"]["anyOf"]]
    assert refs == ["#/components/schemas/Event", "#/components/schemas/EventBatch"]
    events = doc["components"]["schemas"]["Event"]["anyOf"]
    assert len(events) == len(client.get("/v1/schemas").json())
