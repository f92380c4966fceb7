"""What a new user trips on (issue 16, class 12): /docs and /redoc load nothing from outside the
ledger, so they work offline and under a Content-Security-Policy of 'self'."""

from __future__ import annotations

import re
from typing import Any

import pytest


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_documentation_pages_load_only_the_ledgers_own_assets(client: Any, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    urls = re.findall(r'(?:src|href)="([^"]+)"', r.text) + re.findall(r"url: '([^']+)'", r.text)
    assert urls
    for url in urls:
        assert url.startswith("/"), f"{page} loads {url} from outside the ledger"
        assert client.get(url).status_code == 200, url
    assert "cdn" not in r.text.lower()
    assert "fonts.googleapis" not in r.text
