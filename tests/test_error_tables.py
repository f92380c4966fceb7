"""One error tree, one table per edge: every class of ``ledger.errors`` has an HTTP problem and
an exit code of its own, no exception class lives elsewhere, and every error the HTTP API sends
(its own and the framework's) is ``application/problem+json``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import pytest

import api
import ledger
from api.errors import PROBLEM, PROBLEM_TYPE_PREFIX, PROBLEMS, problem_for
from ledger import errors
from ledger.cli.errors import EXIT_CODES, EXIT_FAILED, EXIT_INTEGRITY, exit_code_for


def _tree() -> list[type[errors.LedgerError]]:
    found: list[type[errors.LedgerError]] = []
    pending: list[type[errors.LedgerError]] = [errors.LedgerError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def _modules(package: Any) -> list[Any]:
    names = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return [importlib.import_module(n) for n in names if not n.endswith("__main__")]


TREE = _tree()


def test_the_tree_is_the_one_drawn_in_the_docstring() -> None:
    assert len(TREE) >= 25
    for cls in TREE:
        assert cls.__module__ == "ledger.errors", cls
        assert cls.__name__ in (errors.__doc__ or ""), f"{cls.__name__} is not in the drawing"


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_every_error_class_has_its_own_http_problem_and_exit_code(cls: type) -> None:
    assert cls in PROBLEMS, f"api/errors.py has no row for {cls.__name__}"
    assert cls in EXIT_CODES, f"ledger/cli/errors.py has no exit code for {cls.__name__}"


def test_the_tables_list_nothing_outside_the_tree() -> None:
    assert set(PROBLEMS) == set(TREE)
    assert set(EXIT_CODES) == set(TREE)


def test_client_errors_are_4xx_and_nothing_else_is() -> None:
    for cls in TREE:
        status = problem_for(cls).status
        if issubclass(cls, errors.ClientError):
            assert 400 <= status < 500, cls
        else:
            assert status >= 500, cls


def test_only_integrity_failures_say_tampered() -> None:
    for cls in TREE:
        expected = EXIT_INTEGRITY if issubclass(cls, errors.IntegrityFailure) else EXIT_FAILED
        assert exit_code_for(cls) == expected, cls


def test_no_exception_class_is_defined_outside_ledger_errors() -> None:
    """Private control-flow exceptions (``_SlowPath``) never leave their module."""
    strays = []
    for module in _modules(ledger) + _modules(api):
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
                and module.__name__ != "ledger.errors"
                and not name.startswith("_")
            ):
                strays.append(f"{module.__name__}.{name}")
    assert strays == []


def test_problem_types_are_named_per_class_family(client: Any) -> None:
    r = client.get("/v1/logs/no-such-log/checkpoint")
    assert r.status_code == 404
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["type"] == PROBLEM_TYPE_PREFIX + "not-found"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/no/such/path", 404),
        ("DELETE", "/v1/schemas", 405),
        ("PUT", "/v1/logs/demo/events", 405),
    ],
)
def test_framework_errors_are_problem_documents(
    client: Any, method: str, path: str, status: int
) -> None:
    r = client.request(method, path)
    assert r.status_code == status
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == status
    assert body["type"].startswith(PROBLEM_TYPE_PREFIX)
    assert body["title"]
    assert body["detail"]
    if status == 405:
        assert "allow" in {k.lower() for k in r.headers}


def test_parameter_validation_is_a_problem_document(client: Any, new_log: Any, token: Any) -> None:
    log_id = new_log()
    r = client.get(
        f"/v1/logs/{log_id}/entries?start=-1",
        headers={"Authorization": f"Bearer {token(log_id, 'auditor')}"},
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["pointer"] == "/start"
