"""Shared pieces of the CLI: the clock, the database and its engines.

Where a command finds its database and master key: ``LEDGER_DATABASE_URL`` and
``LEDGER_KEY_PROVIDER`` / ``LEDGER_MASTER_KEY_FILE`` / ``LEDGER_MASTER_KEY``, else the embedded
database and key file under ``LEDGER_DATA_DIR`` (default ``./.ledger`` of the folder it runs
from). Only the commands that set the ledger up (``serve``, ``db upgrade``, ``logs create``,
``demo``) create them when they are missing; every other command says what is missing and exits
2, rather than work on a new, empty database or a new key (where every payload would look
tampered with).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from ledger.errors import ConfigurationError
from ledger.settings import Settings

if TYPE_CHECKING:
    from ledger.storage.keystore import KeyRing

Handler = Callable[[Settings, argparse.Namespace], int]


def now() -> datetime:
    return datetime.now(UTC)


def operator() -> dict[str, str]:
    """Who runs this command, as the actor of what it records in a system log."""
    import getpass
    import socket

    return {"kind": "system", "id": f"cli:{getpass.getuser()}@{socket.gethostname()}"}


def key_ring(settings: Settings, *, setup: bool = False) -> KeyRing:
    """The configured master keys (``ledger.keys.config``) and fresh caches, for this
    command's run (``setup``: make the development key file if no key is configured)."""
    from ledger.keys.config import master_key_ring
    from ledger.storage.keystore import KeyRing

    return KeyRing.from_masters(master_key_ring(settings, create=setup))


def database_url(settings: Settings, *, setup: bool = False) -> str:
    """The configured server, or the embedded one under the data directory (``setup``: start a
    new one there if there is none)."""
    if settings.database_url:
        return settings.database_url
    from ledger.embedded import embedded_database_url

    pgdata = settings.data_dir / "pgdata"
    if not setup and not pgdata.is_dir():
        raise ConfigurationError(
            f"no database: LEDGER_DATABASE_URL is unset and there is no embedded database at "
            f"{pgdata.resolve()} (the data directory is LEDGER_DATA_DIR, default ./.ledger of "
            "the folder you run from: run from the folder the ledger was set up in, or set "
            "LEDGER_DATABASE_URL)"
        )
    url = embedded_database_url(settings.data_dir)
    settings.database_url = url
    return url


_engines: list[Engine] = []


def engine(
    settings: Settings, *, as_app: bool = False, setup: bool = False, system: str = "operator"
) -> Engine:
    """An engine for this command; ``main`` disposes of every one before it returns. Its
    connections are a system component's (``system``: the operator's commands span tenants;
    row security, migration 0011); a command acting for a credential scopes its own units of
    work to that credential's tenant."""
    from ledger.storage.db import make_engine

    role = settings.db_role if as_app else None
    eng = make_engine(database_url(settings, setup=setup), role=role, pool_size=2, system=system)
    _engines.append(eng)
    return eng


def dispose_engines() -> None:
    while _engines:
        _engines.pop().dispose()


def add_command(parent: Any, name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = parent.add_parser(name, help=help_)
    p.set_defaults(handler=handler)
    return p
