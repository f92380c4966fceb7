"""The console's trail verifier on writer-signed trails (issue 18's signatures): the page checks
each entry's writer signature from the entry bytes, as ``ops/verify_trail_standalone.py`` does,
and names the seq of one that does not verify."""

from __future__ import annotations

import copy
from typing import Any

from ledger.client import generate_signing_key
from tests import test_verify_trail, test_writer_signatures, test_writer_signatures_offline
from tests.console import test_console_browser

# Fixtures of the modules they are defined in, used here too.
server = test_console_browser.server
world = test_console_browser.world
browser = test_console_browser.browser
page = test_console_browser.page
run_both = test_verify_trail.run_both
writer = test_writer_signatures.writer
keyring = test_writer_signatures.keyring
signed_trail = test_writer_signatures_offline.signed_trail

VERIFY = (
    "async ([trail, keys]) => { const v = await import('/console/static/verify.js');"
    " const parsed = []; for (const k of keys) parsed.push(await v.parseVerifierKey(k));"
    " const r = await v.verifyTrail(trail, parsed);"
    " return {status: r.status, failures: r.failures}; }"
)


def test_a_signed_trail_verifies_and_a_swapped_writer_key_fails_at_its_seq(
    page: Any, signed_trail: Any
) -> None:
    _, body, keys = signed_trail
    page.goto("/console/")
    good = page.evaluate(VERIFY, [body, keys])
    assert good == {"status": "verified", "failures": []}
    bad = copy.deepcopy(body)
    bad["writer_keys"][0]["public_key"] = generate_signing_key().public_key_b64url
    result = page.evaluate(VERIFY, [bad, keys])
    assert result["status"] == "failed"
    failed = {(f["seq"], f["check"]) for f in result["failures"]}
    assert failed == {(e["seq"], "writer_signature") for e in body["entries"]}
    assert all("is not the key it names" in f["message"] for f in result["failures"])
