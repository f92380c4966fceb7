"""Arrows point one way: ``api`` → services ← ``cli``, services → storage → core. Read from the
source (every import, the lazy ones inside functions included), so a new arrow the wrong way
fails here before a reader trips over it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What each layer may import of the project (anything outside the project is not checked).
# ``ledger`` alone is the package itself (its ``__version__``), not every module under it.
ALLOWED: dict[str, tuple[str, ...]] = {
    "ledger": (),
    "ledger.errors": (),
    "ledger.core": ("ledger.core", "ledger.errors"),
    "ledger.events": ("ledger.events", "ledger.core", "ledger.errors"),
    "ledger.domain": ("ledger.core", "ledger.errors"),
    "ledger.client": ("ledger.core", "ledger.events", "ledger.errors"),
    "ledger.settings": ("ledger.errors",),
    "ledger.embedded": ("ledger.errors", "ledger.settings"),
    "ledger.external": ("ledger.external", "ledger.errors", "ledger.settings"),
    "ledger.keys": ("ledger.keys", "ledger.core", "ledger.errors", "ledger.settings"),
    "ledger.storage": (
        "ledger.storage",
        "ledger.keys",
        "ledger.domain",
        "ledger.core",
        "ledger.errors",
    ),
    "ledger.services": (
        "ledger.services",
        "ledger.storage",
        "ledger.keys",
        "ledger.external",
        "ledger.events",
        "ledger.domain",
        "ledger.core",
        "ledger.errors",
        "ledger.settings",
        "ledger",
    ),
    "ledger.server": (
        "ledger.server",
        "ledger.services",
        "ledger.storage",
        "ledger.keys",
        "ledger.domain",
        "ledger.errors",
        "ledger.settings",
        "ledger",
    ),
    "ledger.cli": (
        "ledger.cli",
        "ledger.server",
        "ledger.services",
        "ledger.storage",
        "ledger.keys",
        "ledger.events",
        "ledger.domain",
        "ledger.core",
        "ledger.errors",
        "ledger.settings",
        "ledger.embedded",
        "ledger.client",
        "ledger",
    ),
    "api": (
        "api",
        "ledger.server",
        "ledger.services",
        "ledger.storage",
        "ledger.domain",
        "ledger.core",
        "ledger.events",
        "ledger.errors",
        "ledger.settings",
        "ledger",
    ),
}


def _is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _project_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # ``from ledger import errors`` imports the module ledger.errors
            found.update(
                f"{node.module}.{a.name}"
                for a in node.names
                if _is_module(f"{node.module}.{a.name}")
            )
    return {n for n in found if n == "ledger" or n.startswith(("ledger.", "api.")) or n == "api"}


def _layer(module: str) -> str:
    best = max(
        (layer for layer in ALLOWED if module == layer or module.startswith(layer + ".")),
        key=len,
        default=None,
    )
    assert best is not None, f"{module} belongs to no layer: add it to ALLOWED"
    return best


def _within(name: str, allowed: tuple[str, ...]) -> bool:
    return any(name == a or (a != "ledger" and name.startswith(a + ".")) for a in allowed)


SOURCES = sorted(p for d in ("ledger", "api") for p in (ROOT / d).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_only(path: Path) -> None:
    module = _module_name(path)
    allowed = ALLOWED[_layer(module)]
    wrong = sorted(n for n in _project_imports(path) if not _within(n, allowed))
    assert wrong == [], f"{module} ({_layer(module)}) imports {wrong}"


def test_the_ledger_package_never_imports_the_http_shell() -> None:
    for path in SOURCES:
        if _module_name(path).startswith("ledger"):
            assert not any(n == "api" or n.startswith("api.") for n in _project_imports(path)), path
