"""The one way the ledger POSTs to other services (alert webhooks, anchor sinks, witnesses, the
verification record): the standard library, http(s) only, a timeout, no redirects followed.

A configured URL may carry secrets: a user and password (sent as HTTP Basic authentication) or a
key in its query. Whatever the ledger records or prints names the URL by ``redacted(url)``:
scheme, host, port and path only. The full URL is used only to send.
"""

from __future__ import annotations

import base64
import http.client
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

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
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here, not when sending
    except ValueError as exc:
        raise ConfigurationError(f"{what} is not a usable URL ({redacted(url)})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{what} must be an http(s) URL, not {redacted(url)!r}")
    return url


def redacted(url: str) -> str:
    """``url`` as it may be recorded or shown: no user, password, query or fragment, where
    credentials and keys ride."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(unparsable URL)"
    host = (parts.hostname or "") + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _without_userinfo(url: str) -> tuple[str, dict[str, str]]:
    """The URL to send to, and the Basic authentication header its user and password make."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, {}
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    header = "Basic " + base64.b64encode(user_pass.encode()).decode()
    return urlunsplit((parts.scheme, host, parts.path, parts.query, "")), {"Authorization": header}


def post(
    url: str,
    body: bytes,
    *,
    content_type: str,
    timeout: float,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    """POST ``body``; any HTTP status is returned, a network failure raises ``OSError`` (whose
    message never holds the URL's secrets)."""
    target, auth = _without_userinfo(check_url(url, "URL"))
    request = urllib.request.Request(  # noqa: S310 - scheme checked: http(s) only
        target,
        data=body,
        method="POST",
        headers={
            "Content-Type": content_type,
            "User-Agent": "handoff-ledger",
            **auth,
            **(headers or {}),
        },
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            return HttpResponse(
                response.status, response.headers.get("Content-Type", ""), response.read()
            )
    except urllib.error.HTTPError as exc:
        with exc:
            return HttpResponse(exc.code, exc.headers.get("Content-Type", ""), exc.read())
    except (OSError, ValueError, http.client.HTTPException) as exc:
        # urllib's messages may quote the URL; the caller records this one.
        raise OSError(f"POST to {redacted(url)} failed: {type(exc).__name__}") from None
