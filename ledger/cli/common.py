"""Shared pieces of the CLI: the clock, the database and its engines."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

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


def key_ring(settings: Settings) -> KeyRing:
    """The master key and fresh caches, for this command's run."""
    from ledger.storage.keystore import KeyRing

    return KeyRing.from_master(settings.master_key_bytes)


def database_url(settings: Settings) -> str:
    """The configured server, or the embedded one under the data directory."""
    if settings.database_url:
        return settings.database_url
    from ledger.embedded import embedded_database_url

    url = embedded_database_url(settings.data_dir)
    settings.database_url = url
    return url


_engines: list[Engine] = []


def engine(settings: Settings, *, as_app: bool = False) -> Engine:
    """An engine for this command; ``main`` disposes of every one before it returns."""
    from ledger.storage.db import make_engine

    role = settings.db_role if as_app else None
    eng = make_engine(database_url(settings), role=role, pool_size=2)
    _engines.append(eng)
    return eng


def dispose_engines() -> None:
    while _engines:
        _engines.pop().dispose()


def add_command(parent: Any, name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = parent.add_parser(name, help=help_)
    p.set_defaults(handler=handler)
    return p
