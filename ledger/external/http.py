"""The one way the ledger POSTs to other services (alert webhooks, anchor sinks, witnesses, the
verification record): the standard library, http(s) only, a timeout, no redirects followed."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from ledger.errors import ConfigurationError


@dataclass(frozen=True)
class HttpResponse:
    status: int
    content_type: str
    body: bytes

    def text(self, limit: int = 500) -> str:
        return self.body[:limit].decode("utf-8", "replace")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: object, **_kwargs: object) -> None:
        return None  # a 3xx is answered as it is: a sink that moved must be reconfigured


_opener = urllib.request.build_opener(_NoRedirect)


def check_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"{what} must be an http(s) URL, not {url!r}")
    return url


def post(
    url: str,
    body: bytes,
    *,
    content_type: str,
    timeout: float,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    """POST ``body``; any HTTP status is returned, a network failure raises ``OSError``."""
    request = urllib.request.Request(  # noqa: S310 - scheme checked: http(s) only
        check_url(url, "URL"),
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "User-Agent": "handoff-ledger", **(headers or {})},
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            return HttpResponse(
                response.status, response.headers.get("Content-Type", ""), response.read()
            )
    except urllib.error.HTTPError as exc:
        with exc:
            return HttpResponse(exc.code, exc.headers.get("Content-Type", ""), exc.read())
