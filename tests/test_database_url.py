"""``LEDGER_DATABASE_URL`` as libpq writes it, multi-host failover lists included: SQLAlchemy's
URL parser cannot read ``h1:p1,h2:p2``, so ``sqlalchemy_url`` rewrites it into the query form,
and psycopg hands libpq the same host list in the same order."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from ledger.storage.db import sqlalchemy_url


def connect_args(url: str) -> dict[str, object]:
    parsed = make_url(sqlalchemy_url(url))
    engine = create_engine(parsed)
    try:
        return dict(engine.dialect.create_connect_args(parsed)[1])
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ledger@db1:5432,db2:5433/ledger?target_session_attrs=read-write",
        "postgres://ledger@db1:5432,db2:5433/ledger?target_session_attrs=read-write",
        "postgresql://ledger@/ledger?host=db1:5432&host=db2:5433&target_session_attrs=read-write",
    ],
)
def test_a_multi_host_url_reaches_libpq_as_its_host_list_in_order(url: str) -> None:
    args = connect_args(url)
    assert args["host"] == "db1,db2"
    assert args["port"] == "5432,5433"
    assert args["dbname"] == "ledger"
    assert args["user"] == "ledger"
    assert args["target_session_attrs"] == "read-write"


def test_a_password_and_more_parameters_survive_the_rewrite() -> None:
    args = connect_args("postgresql://app:s3cret@h1:1,h2:2/db?connect_timeout=2&sslmode=require")
    assert (args["user"], args["password"], args["dbname"]) == ("app", "s3cret", "db")
    assert (args["host"], args["port"]) == ("h1,h2", "1,2")
    assert (args["connect_timeout"], args["sslmode"]) == ("2", "require")


def test_a_single_host_url_is_left_as_it_was() -> None:
    url = "postgresql://postgres@127.0.0.1:5432/ledger"
    assert sqlalchemy_url(url) == "postgresql+psycopg://postgres@127.0.0.1:5432/ledger"
    assert connect_args(url)["port"] == 5432
