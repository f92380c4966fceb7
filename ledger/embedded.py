"""An embedded PostgreSQL for the zero-configuration path: with no LEDGER_DATABASE_URL, the
ledger runs a real PostgreSQL server (the ``pgserver`` package's binaries) in a local data
directory. Production points LEDGER_DATABASE_URL at a managed server instead."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

_servers: list[Any] = []  # keep handles alive: pgserver stops the server when they are collected


def embedded_database_url(data_dir: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        pgdata = (data_dir / "pgdata").resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    _servers.append(server)
    return str(server.get_uri())


def is_embedded(url: str) -> bool:
    """Whether ``url`` is that of an embedded server this process started."""
    return any(str(server.get_uri()) == url for server in _servers)
