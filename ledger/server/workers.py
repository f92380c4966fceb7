"""Several server processes on one port, with connections dealt to them in turn.

uvicorn's own ``--workers`` lets every worker accept from one shared listening socket. The
first worker to wake takes every connection that is waiting. So a few keep-alive clients that
connect together all land in one process, and the other cores sit idle: a benchmark's four
batch writers did exactly that here. Node.js's cluster module documents the same imbalance and
deals connections round-robin for it. This module does the same.

The supervisor (:func:`serve`) owns the listening socket. It accepts each connection and passes
its file descriptor to the next worker over that worker's Unix socket pair (``SCM_RIGHTS``). It
then closes its own copy. Each worker (:class:`ChannelServer`) is an ordinary ``uvicorn.Server``
with no listener of its own. It serves each descriptor it receives with uvicorn's own HTTP
protocol, and a SIGTERM shuts it down as gracefully as uvicorn would. The supervisor restarts a
worker that dies once the pool has started. If a worker fails during start-up, the supervisor
stops them all and exits 3, as uvicorn does.

    python -m ledger.server.workers --workers 2 --port 8000 \
        --factory --app api.main:create_app_from_env
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn

log = logging.getLogger("ledger.workers")

STARTUP_FAILURE = 3
"""Exit status when a worker cannot start (uvicorn's own)."""
READY = b"R"
"""What a worker sends its supervisor once its application has started."""
START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
BACKLOG = 2048


# --- the worker -----------------------------------------------------------------------------


class ChannelServer(uvicorn.Server):
    """A uvicorn server that serves the connections its supervisor passes down ``channel``."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self.channel = channel

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # lifespan start-up, and no listener of our own
        if self.should_exit:
            return
        # The same protocol uvicorn's own listener would build for each connection.
        protocol_class: Any = self.config.http_protocol_class  # typed as plain asyncio.Protocol
        protocol = functools.partial(
            protocol_class,
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        loop = asyncio.get_running_loop()
        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), self._receive, loop, protocol)
        self.channel.sendall(READY)

    def _receive(self, loop: asyncio.AbstractEventLoop, protocol: Any) -> None:
        try:
            _, fds, _, _ = socket.recv_fds(self.channel, 1, 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            fds, eof = [], True
        else:
            eof = not fds
        if eof:  # the supervisor is gone: finish what is in flight and stop
            loop.remove_reader(self.channel.fileno())
            self.should_exit = True
            return
        for fd in fds:
            connection = socket.socket(fileno=fd)
            connection.setblocking(False)
            loop.create_task(loop.connect_accepted_socket(protocol, connection))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        with contextlib.suppress(OSError, ValueError):
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
        await super().shutdown(sockets=sockets)


def run_worker(channel_fd: int, app: str, *, factory: bool, app_dir: str | None) -> None:
    if app_dir:
        sys.path.insert(0, app_dir)
    config = uvicorn.Config(app, factory=factory, log_level="warning", access_log=False)
    ChannelServer(config, socket.socket(fileno=channel_fd)).run()


# --- the supervisor -------------------------------------------------------------------------


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    channel: socket.socket
    ready: bool = False
    started: float = field(default_factory=time.monotonic)


@dataclass
class Pool:
    """The worker processes and whose turn it is."""

    command: list[str]
    workers: list[_Worker] = field(default_factory=list)
    turn: int = 0

    def spawn(self) -> _Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [*self.command, "--channel-fd", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        worker = _Worker(process, ours)
        self.workers.append(worker)
        return worker

    def hand_over(self, connection: socket.socket) -> bool:
        """Pass ``connection`` to the next ready worker that takes it; False if none did."""
        for _ in range(len(self.workers)):
            worker = self.workers[self.turn % len(self.workers)]
            self.turn += 1
            if not worker.ready:
                continue
            try:
                socket.send_fds(worker.channel, [b"c"], [connection.fileno()])
            except OSError:  # a dying worker; it is replaced on the next round
                continue
            return True
        return False

    def stop(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for worker in self.workers:
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            worker.channel.close()


def serve(
    app: str,
    *,
    host: str,
    port: int,
    workers: int,
    factory: bool = True,
    app_dir: str | None = None,
) -> int:
    """Run ``workers`` processes of ``app`` behind one listening socket until SIGINT/SIGTERM.

    Returns 0 after a clean stop, :data:`STARTUP_FAILURE` if a worker could not start.
    """
    listener = socket.create_server((host, port), backlog=BACKLOG)
    listener.setblocking(False)
    command = [sys.executable, "-m", "ledger.server.workers", "--app", app]
    if factory:
        command.append("--factory")
    if app_dir:
        command += ["--app-dir", app_dir]
    pool = Pool(command)
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    old_wakeup = signal.set_wakeup_fd(wake_w.fileno())
    selector = selectors.DefaultSelector()
    selector.register(wake_r, selectors.EVENT_READ, "wake")
    try:
        for _ in range(workers):
            selector.register(pool.spawn().channel, selectors.EVENT_READ, "worker")
        status = _supervise(pool, listener, selector, stopping)
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        listener.close()
        pool.stop()
        selector.close()
        wake_r.close()
        wake_w.close()
    return status


def _supervise(
    pool: Pool, listener: socket.socket, selector: selectors.BaseSelector, stopping: list[int]
) -> int:
    accepting = False
    while not stopping:
        for key, _ in selector.select(timeout=1.0):
            if key.data == "wake":
                with contextlib.suppress(OSError, ValueError):
                    key.fileobj.recv(64)  # type: ignore[union-attr]
            elif key.data == "listener":
                _accept_all(listener, pool)
            elif key.data == "worker" and not _worker_said(key.fileobj, pool):  # type: ignore[arg-type]
                # End of file: the worker is exiting. Stop watching its channel (it would read
                # as ready on every pass) until its exit is seen below.
                selector.unregister(key.fileobj)
        for worker in list(pool.workers):
            if worker.process.poll() is None:
                continue
            if not worker.ready:
                log.error("a worker exited with %s while starting", worker.process.returncode)
                return STARTUP_FAILURE
            log.warning(
                "worker %d exited with %s; starting another",
                worker.process.pid,
                worker.process.returncode,
            )
            with contextlib.suppress(KeyError):  # already unregistered at end of file
                selector.unregister(worker.channel)
            worker.channel.close()
            pool.workers.remove(worker)
            selector.register(pool.spawn().channel, selectors.EVENT_READ, "worker")
        not_ready = [w for w in pool.workers if not w.ready]
        if any(time.monotonic() - w.started > START_TIMEOUT for w in not_ready):
            log.error("a worker did not start within %.0f s", START_TIMEOUT)
            return STARTUP_FAILURE
        if not accepting and not not_ready:  # the first time every worker is up
            selector.register(listener, selectors.EVENT_READ, "listener")
            accepting = True
    return 0


def _accept_all(listener: socket.socket, pool: Pool) -> None:
    while True:
        try:
            connection, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # e.g. EMFILE: leave the rest in the backlog for now
            log.warning("accept failed: %s", exc)
            return
        with connection:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if not pool.hand_over(connection):
                log.warning("no worker took a connection; closed it")


def _worker_said(channel: socket.socket, pool: Pool) -> bool:
    """Read what a worker sent; False at end of file (the worker is gone or going)."""
    worker = next(w for w in pool.workers if w.channel is channel)
    try:
        message = channel.recv(64)
    except (BlockingIOError, InterruptedError):
        return True
    except OSError:
        message = b""
    if READY in message:
        worker.ready = True
    return bool(message)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the ledger's workers behind one port.")
    parser.add_argument("--app", required=True, help="module:attribute of the ASGI app")
    parser.add_argument("--factory", action="store_true", help="--app names a factory")
    parser.add_argument("--app-dir", help="a directory to import --app from")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--channel-fd", type=int, help=argparse.SUPPRESS)  # set for workers
    args = parser.parse_args(argv)
    if args.channel_fd is not None:
        run_worker(args.channel_fd, args.app, factory=args.factory, app_dir=args.app_dir)
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    return serve(
        args.app,
        host=args.host,
        port=args.port,
        workers=args.workers,
        factory=args.factory,
        app_dir=args.app_dir,
    )


if __name__ == "__main__":
    sys.exit(main())
