"""The auditor console: a page served by the ledger at ``/console/``, from files in this package
(plain ES modules, CSS and SVG drawn by its own code; no build step, no CDN, nothing fetched
from elsewhere).

Every path under ``/console/`` but the assets answers the same ``index.html``: the page routes
on the client, so a trail's address (``/console/logs/{log}/conversations/{id}``) can be pasted
into a ticket. The page is a view over the public API: it calls the documented endpoints with
the token the auditor pasted (``sessionStorage``, sent only as ``Authorization: Bearer``), and
checks each trail itself with WebCrypto.

Every answer carries a strict Content-Security-Policy (no inline script or style, no eval,
nothing but this origin), ``nosniff`` and no referrer; the page is never framed.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Final

from fastapi import FastAPI
from fastapi.responses import RedirectResponse, Response

from ledger.errors import NotFound

STATIC = files("api.console") / "static"
PREFIX: Final = "/console"
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # The page is small and changes with the ledger's version: always revalidate.
    "Cache-Control": "no-cache",
}
MEDIA_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
}


def asset_names() -> frozenset[str]:
    """The files the console serves: exactly those shipped in ``static/`` (no path is ever
    joined from a request, so nothing outside it can be named)."""
    return frozenset(
        p.name
        for p in STATIC.iterdir()
        if p.is_file() and any(p.name.endswith(s) for s in MEDIA_TYPES)
    )


def install(app: FastAPI) -> None:
    """Register the console's routes (kept out of the OpenAPI document: they are a page, not
    the API)."""
    assets = asset_names()
    index = (STATIC / "index.html").read_bytes()

    @app.get(PREFIX, include_in_schema=False)
    async def console_root() -> Response:
        return RedirectResponse(PREFIX + "/", status_code=308, headers=HEADERS)

    @app.get(PREFIX + "/static/{name}", include_in_schema=False)
    async def console_asset(name: str) -> Response:
        if name not in assets:
            raise NotFound(f"the console has no file {name!r}")
        media = MEDIA_TYPES[name[name.rindex(".") :]]
        return Response((STATIC / name).read_bytes(), media_type=media, headers=HEADERS)

    @app.get(PREFIX + "/{route:path}", include_in_schema=False)
    async def console_page(route: str) -> Response:
        # Any other path is a page of the console; the page itself says "not found" for
        # a route it does not know (and the API for a log or conversation it has not).
        del route
        return Response(index, media_type=MEDIA_TYPES[".html"], headers=HEADERS)
