"""Alembic environment. The URL comes from the Config (set by ``ledger db upgrade``) or from
LEDGER_DATABASE_URL; migrations run as the schema owner, never as the application role."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

from ledger.storage.db import sqlalchemy_url
from ledger.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("LEDGER_DATABASE_URL")
    if not url:
        raise RuntimeError("no database URL: set LEDGER_DATABASE_URL or use `ledger db upgrade`")
    return sqlalchemy_url(url)


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        # Migrations span tenants (a system component, migration 0011): a data migration run
        # by an owner who is not a superuser must see every row through FORCE ROW LEVEL SECURITY.
        conn.exec_driver_sql("SET ledger.scope = 'system:migrations'")
        conn.commit()
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
