"""The database goes away: writers get 503 with Retry-After, nothing half-written, and the
ledger recovers by itself when the database returns."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from api.app import create_app
from ledger.settings import Settings
from ledger.storage.db import sqlalchemy_url
from tests.conftest import make_event


class TcpProxy:
    """Forwards a local port to PostgreSQL; ``cut()`` drops every connection and refuses new
    ones, ``restore()`` accepts again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            self._relay(client, upstream)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        """Start forwarding both ways between a new client and its PostgreSQL connection."""
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def cut(self) -> None:
        assert self._listener is not None
        # shutdown wakes the thread blocked in accept(); close alone would not
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for s in self._conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self._conns.clear()

    def restore(self) -> None:
        self.start()


@pytest.fixture
def proxied(db_url: str, settings: Settings) -> Iterator[tuple[TcpProxy, TestClient]]:
    url = make_url(sqlalchemy_url(db_url))
    if not url.host or url.host.startswith("/"):
        pytest.skip("the outage test needs a TCP PostgreSQL server")
    proxy = TcpProxy(url.host, url.port or 5432)
    proxy.start()
    proxied_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    app = create_app(settings.model_copy(update={"database_url": proxied_url}))
    with TestClient(app) as client:
        yield proxy, client
    proxy.cut()


def test_outage_gives_503_then_recovers(
    proxied: tuple[TcpProxy, TestClient], new_log: Any, token: Any, client: TestClient
) -> None:
    proxy, through_proxy = proxied
    log_id = new_log()
    w = {"Authorization": f"Bearer {token(log_id, 'writer')}"}
    url = f"/v1/logs/{log_id}/events"
    assert through_proxy.post(url, json=make_event("c", 0), headers=w).status_code == 201

    proxy.cut()
    down = through_proxy.post(url, json=make_event("c", 1), headers=w)
    assert down.status_code == 503
    assert down.headers["retry-after"]
    assert down.headers["content-type"].startswith("application/problem+json")
    assert through_proxy.get("/healthz").status_code == 503
    # Nothing of the refused request reached the log (read through a direct connection).
    assert client.get(f"/v1/logs/{log_id}/checkpoint").text.split("\n")[1] == "1"

    proxy.restore()
    up = through_proxy.post(url, json=make_event("c", 1), headers=w)
    assert up.status_code == 201, up.text
    assert up.json()["receipts"][0]["seq"] == 1
    assert through_proxy.get("/healthz").status_code == 200


class LosesCommitReply(TcpProxy):
    """Once ``armed``: forwards the first COMMIT sent after an ``INSERT INTO entries`` on a
    connection to PostgreSQL, never lets its reply through, then drops every connection and
    refuses new ones for ``down_seconds``: the COMMIT lands, and the committer hears nothing
    of it, nor gets through on its one retry."""

    def __init__(self, target_host: str, target_port: int, down_seconds: float) -> None:
        super().__init__(target_host, target_port)
        self.down_seconds = down_seconds
        self.armed = threading.Event()
        self.fired = threading.Event()

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        muted = threading.Event()
        threading.Thread(
            target=self._to_server, args=(client, upstream, muted), daemon=True
        ).start()
        threading.Thread(
            target=self._to_client, args=(upstream, client, muted), daemon=True
        ).start()

    def _to_server(self, src: socket.socket, dst: socket.socket, muted: threading.Event) -> None:
        wrote_entries = False
        try:
            while data := src.recv(65536):
                if self.armed.is_set() and not self.fired.is_set():
                    wrote_entries = wrote_entries or b"INSERT INTO entries" in data
                    if wrote_entries and b"COMMIT" in data:
                        muted.set()  # before PostgreSQL can answer
                        self.fired.set()
                        threading.Thread(target=self._outage, daemon=True).start()
                dst.sendall(data)
        except OSError:
            pass

    @staticmethod
    def _to_client(src: socket.socket, dst: socket.socket, muted: threading.Event) -> None:
        try:
            while data := src.recv(65536):
                if not muted.is_set():
                    dst.sendall(data)
        except OSError:
            pass

    def _outage(self) -> None:
        time.sleep(0.5)  # PostgreSQL commits meanwhile; the committer waits for the reply
        self.cut()
        time.sleep(self.down_seconds)
        self.restore()


def test_an_answer_that_says_less_than_it_knows_a_lost_commit_reply_gets_receipts(
    db_url: str, settings: Settings, new_log: Any, token: Any, client: TestClient
) -> None:
    """Issue 16, class 11: a batch is committed, its COMMIT's reply is lost and the database is
    gone for the one retry; once it is back the committer finds the batch by its idempotency
    keys and answers with its receipts, not a 503, and nothing is stored twice."""
    url = make_url(sqlalchemy_url(db_url))
    if not url.host or url.host.startswith("/"):
        pytest.skip("the test needs a TCP PostgreSQL server")
    proxy = LosesCommitReply(url.host, url.port or 5432, down_seconds=1.5)
    proxy.start()
    proxied_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    log_id = new_log()
    w = {"Authorization": f"Bearer {token(log_id, 'writer')}"}
    events_url = f"/v1/logs/{log_id}/events"
    app = create_app(settings.model_copy(update={"database_url": proxied_url}))
    try:
        with TestClient(app) as through_proxy:
            assert (
                through_proxy.post(events_url, json=make_event("c", 0), headers=w).status_code
                == 201
            )
            batch = {"events": [make_event("c", 1), make_event("c", 2), make_event("d", 0)]}
            proxy.armed.set()
            answer = through_proxy.post(events_url, json=batch, headers=w)
    finally:
        proxy.cut()
    assert proxy.fired.is_set(), "the proxy never saw the batch's COMMIT"
    assert answer.status_code == 201, answer.text
    receipts = answer.json()["receipts"]
    assert [r["seq"] for r in receipts] == [1, 2, 3]

    # The truth, read directly: stored once, and the receipts are those of the stored entries.
    assert client.get(f"/v1/logs/{log_id}/checkpoint").text.split("\n")[1] == "4"
    again = client.post(events_url, json=batch, headers=w)
    assert again.status_code == 200
    assert again.json()["receipts"] == receipts
