"""The FastAPI application factory. Nothing is built at import time."""

from __future__ import annotations

import gc
import hmac
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.routing import Match
from starlette.types import Message, Receive, Scope, Send

import ledger
from api import console, docs, errors
from api import openapi as openapi_document
from api.deps import authorize
from api.metrics import REGISTRY, count_read, count_request, observe_commit, observe_replicas
from api.routes import (
    conversations,
    events,
    exports,
    logs,
    privacy,
    proofs,
    schemas,
    trail,
    verifications,
    writer_keys,
)
from api.schemas import Health
from ledger.errors import (
    ConfigurationError,
    EventInvalid,
    Forbidden,
    LedgerError,
    PayloadTooLarge,
    Unauthenticated,
)
from ledger.events import strict_json
from ledger.server.state import LedgerState
from ledger.services.access import bearer_token
from ledger.settings import Settings
from ledger.storage.db import make_engine, ping

INGEST_PATH = re.compile(r"/v1/logs/([^/]+)/events")
INGEST_ROUTE = "/v1/logs/{log}/events"
LOG_PATH = re.compile(r"/v1/logs/([^/]+)/.*")
MAX_REQUEST_BODY = 8 << 20
"""The largest body of any POST but ingest (which reads its own, up to 64 MiB for a batch):
checked against Content-Length before the body is read, and as it is read. The largest
legitimate one is a verification run: ~300 bytes per log reported, so ~25,000 logs a tenant
(a failure report adds up to ~16 KB)."""
UNMATCHED = "unmatched"
"""The route label of answers no route took (an unknown path)."""
CLIENT_CLOSED_REQUEST = 499
"""The status counted for a request whose client left before sending it whole (no answer is
sent; the number is nginx's, as dashboards know it)."""


class LedgerApp(FastAPI):
    """FastAPI, plus a direct path for ``POST /v1/logs/{log}/events``.

    Writers mostly post one event at a time, and for such a request Starlette's middleware stack
    and FastAPI's routing cost more CPU than validating, sealing and appending the event (about
    half of the request in profiles). The direct path runs the very same ``ingest`` function
    and the same error table; the route stays registered for the OpenAPI document and for
    anything this match does not take.

    Every HTTP answer is counted in ``ledger_http_requests`` by route template and status.
    Before any route: a NUL in the query string is a 422; the body of any other POST is read
    here (capped at ``MAX_REQUEST_BODY``), refused if an object in it repeats a member name
    (the framework's parser would keep the last), and replayed to the route. A client that
    leaves mid-body is counted as 499 and logged at INFO, not as an error.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if b"%00" in scope.get("query_string", b""):
            # No value can hold a NUL (PostgreSQL text cannot): refused before any route
            # passes it on to the database.
            nul = errors.problem(
                422, "invalid-request", "Invalid request", "a query parameter holds a NUL character"
            )
            count_request(self._route_label(scope), nul.status_code)
            await nul(scope, receive, send)
            return
        if scope["method"] == "POST":
            match = INGEST_PATH.fullmatch(scope["path"])
            if match is not None:
                request = Request(scope, receive)
                try:
                    response = await events.ingest(self.state.ledger, request, match[1])
                except ClientDisconnect:
                    _client_gone(INGEST_ROUTE)
                    return
                except Exception as exc:  # the same table as every other route
                    response = errors.response_for(request, exc)
                count_request(INGEST_ROUTE, response.status_code)
                await response(scope, receive, send)
                return
            refused = self._refuse_before_body(scope, receive)
            if refused is None:
                try:
                    body = await _read_body(_capped(receive, MAX_REQUEST_BODY))
                except ClientDisconnect:
                    _client_gone(self._route_label(scope))
                    return
                except _BodyTooLarge as exc:
                    refused = errors.response_for(Request(scope), _too_large(exc.received))
                else:
                    refused = _duplicate_names(body)
                    receive = _replay(body, receive)
            if refused is not None:
                count_request(self._route_label(scope), refused.status_code)
                await refused(scope, receive, send)
                return
        status = 500  # if the application fails before it answers, the server answers that

        async def counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await super().__call__(scope, receive, counting)
        finally:
            route = scope.get("route")
            count_request(getattr(route, "path", UNMATCHED), status)

    def _refuse_before_body(self, scope: Scope, receive: Receive) -> Response | None:
        """The answer to a POST that is refused before its body is read: no bearer token (401,
        counted and recorded as any failed authentication is), or a declared length over
        ``MAX_REQUEST_BODY`` (413). None: read on."""
        headers = Headers(scope=scope)
        request = Request(scope, receive)
        if bearer_token_or_none(headers.get("authorization")) is None:
            return errors.response_for(request, self._unauthenticated(request))
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_REQUEST_BODY:
            return errors.response_for(request, _too_large(int(declared)))
        return None

    def _unauthenticated(self, request: Request) -> LedgerError:
        match = LOG_PATH.fullmatch(request.scope["path"])
        if match is not None:
            try:  # the very check the route's dependency makes: counted, recorded, limited
                authorize(self.state.ledger, request, match[1], roles=("none",))
            except LedgerError as exc:
                return exc
        return Unauthenticated("no bearer token")

    def _route_label(self, scope: Scope) -> str:
        for route in self.router.routes:
            if route.matches(scope)[0] == Match.FULL:
                return str(getattr(route, "path", UNMATCHED))
        return UNMATCHED


class _BodyTooLarge(Exception):
    """A body that went past ``MAX_REQUEST_BODY`` as it was read (no Content-Length said so)."""

    def __init__(self, received: int) -> None:
        super().__init__(str(_too_large(received)))
        self.received = received


def _too_large(size: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is {size} bytes or more, over the limit of {MAX_REQUEST_BODY}"
    )


def _capped(receive: Receive, cap: int) -> Receive:
    """``receive``, raising ``_BodyTooLarge`` once the body read comes to more than ``cap``."""
    received = 0

    async def capped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > cap:
                raise _BodyTooLarge(received)
        return message

    return capped


async def _read_body(receive: Receive) -> bytes:
    """The whole request body; ``ClientDisconnect`` if the client leaves before it is sent."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for an application that reads ``body`` again; after it, the client's own
    (which tells of a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _duplicate_names(body: bytes) -> Response | None:
    """A 422 for a JSON body with a member name twice in one object (I-JSON, RFC 7493 §2.3):
    the framework's parser would keep the last silently. None for any other body."""
    try:
        strict_json.check_no_duplicate_names(body)
    except EventInvalid as exc:
        return errors.problem(422, "invalid-request", "Invalid request", exc.detail, pointer="")
    return None


def _client_gone(route: str) -> None:
    """A client that closed its connection before its request was read whole: nothing was done
    for it and no one is left to answer, which is no fault of the server's (not an ERROR)."""
    errors.log.info("client closed the connection before its request body was complete")
    count_request(route, CLIENT_CLOSED_REQUEST)


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    if settings.database_url is None and engine is None:
        raise ConfigurationError(
            "create_app needs a database URL (ledger serve starts an embedded one)"
        )
    engine = engine or make_engine(
        settings.database_url or "", role=settings.db_role, pool_size=settings.pool_size
    )
    state = LedgerState(settings, engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.start(on_commit=observe_commit, on_replicas=observe_replicas, on_read=count_read)
        # Everything loaded so far lives as long as the process: keep it out of the cyclic
        # garbage collector's generations, which otherwise rescans it in every full collection
        # (measurable in trail p99).
        gc.freeze()
        try:
            yield
        finally:
            state.stop()

    app = LedgerApp(
        title="Handoff Ledger",
        version=ledger.__version__,
        summary="Append-only, verifiable audit trail for AI-to-human support handoffs",
        lifespan=lifespan,
        docs_url=None,  # api/docs.py serves them from the package, never from a CDN
        redoc_url=None,
    )
    docs.install(app)
    app.state.ledger = state
    errors.install(app)
    app.include_router(events.router)
    app.include_router(logs.router)
    app.include_router(proofs.router)
    app.include_router(verifications.router)
    app.include_router(trail.router)
    app.include_router(conversations.router)
    app.include_router(exports.router)
    app.include_router(privacy.router)
    app.include_router(writer_keys.router)
    app.include_router(schemas.router)
    console.install(app)

    @app.get(
        "/healthz",
        operation_id="healthz",
        tags=["ops"],
        response_model=Health,
        responses={503: {"model": Health, "description": "the main cluster's database is down"}},
    )
    def healthz() -> JSONResponse:
        try:
            ping(state.engine)
        except Exception:  # any failure means not ready; the detail goes to the server log
            errors.log.warning("readiness check failed", exc_info=True)
            return JSONResponse(
                {"status": "unavailable", "database": "down"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        if len(state.clusters) == 1:
            return JSONResponse({"status": "ok", "database": "up"})
        up = state.clusters_up(timeout=HEALTH_TIMEOUT_SECONDS)
        return JSONResponse(
            {
                "status": "ok" if all(up.values()) else "degraded",
                "database": "up",
                "clusters": {name: "up" if ok else "down" for name, ok in up.items()},
            }
        )

    @app.get(
        "/metrics",
        operation_id="metrics",
        tags=["ops"],
        summary="Prometheus metrics: with LEDGER_METRICS_TOKEN as a bearer token when that is "
        "set, else only to loopback clients",
    )
    def metrics(request: Request) -> Response:
        _check_metrics_access(request, settings.metrics_token)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    _document_bearer_auth(app)
    return app


LOOPBACK = frozenset({"127.0.0.1", "::1"})
HEALTH_TIMEOUT_SECONDS = 2.0
"""How long ``/healthz`` waits for the other clusters' answers (a silent one counts as down)."""


def _check_metrics_access(request: Request, token: str | None) -> None:
    """``/metrics`` names every tenant's logs: with a metrics token configured the caller must
    present it (401 otherwise); without one only a client on the loopback address is served
    (403 otherwise). Ledger credentials play no part."""
    if token is not None:
        given = bearer_token_or_none(request.headers.get("authorization"))
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthenticated("/metrics needs the metrics token")
        return
    client = request.scope.get("client")
    if not client or client[0] not in LOOPBACK:
        raise Forbidden("/metrics is served only to loopback clients when no metrics token is set")


def bearer_token_or_none(authorization: str | None) -> str | None:
    try:
        return bearer_token(authorization)
    except Unauthenticated:
        return None


def _document_bearer_auth(app: FastAPI) -> None:
    """Name the bearer scheme that routes refer to (``security: [{"bearer": []}]``), and
    complete the document (:mod:`api.openapi`)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token from `ledger credentials create`",
                },
            }
            openapi_document.complete(schema)  # problem bodies, security, the events body
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
