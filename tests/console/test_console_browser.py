"""The auditor console in a real browser (Debian's Chromium, driven by Playwright) against a real
server on the test database: sign-in, search, the random handoff, a trail verified in the page,
a trail whose entry was altered in the database, markup typed into a transcript, sign-out, a
wrong token, not-found pages, an unreachable server, a changed verifier key, keyboard use, an
axe-core check of the main pages, and the page's RFC 8785 canonicalizer against Python's.

Screenshots of the main pages go to ``tests/artifacts/console/`` (not committed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import rfc8785
from nacl.signing import SigningKey
from sqlalchemy import Engine

from ledger.settings import Settings
from ledger.storage.db import sqlalchemy_url, unit_of_work
from ledger.storage.keystore import KeyRing
from tests.conftest import EXAMPLE, MASTER_KEY, TEST_ACTOR, free_port, make_event, now

playwright_sync = pytest.importorskip("playwright.sync_api")
axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts" / "console"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EXAMPLE_CONVERSATION = "c-2f9e1a"
XSS_IMG = '<img src=x onerror="window.__pwned = 1">'
XSS_SCRIPT = "<script>window.__pwned = 2</script>"
TIMEOUT_MS = 15_000


@dataclass
class World:
    url: str
    log: str
    origin: str
    auditor: str
    writer: str
    stranger: str
    """An auditor of another log."""
    tampered_seq: int


def _libpq(url: str) -> str:
    return sqlalchemy_url(url).replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="module")
def server(db_url: str, settings: Settings) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": db_url,
        "LEDGER_MASTER_KEY": MASTER_KEY,
        "LEDGER_ORIGIN_PREFIX": settings.origin_prefix,
        "LEDGER_DATA_DIR": str(settings.data_dir),
        # The tests present wrong tokens on purpose: keep the per-source limit out of it.
        "LEDGER_AUTH_FAILURES_PER_WINDOW": "1000",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "api.main:create_app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the test server did not start")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def world(server: str, engine: Engine, settings: Settings, db_url: str) -> World:
    from ledger.services.admin.credentials import create_credential
    from ledger.services.admin.logs import create_log

    keys = KeyRing.from_master(settings.master_key_bytes)
    suffix = hashlib.sha256(os.urandom(8)).hexdigest()[:8]
    log, other = f"console-{suffix}", f"console-{suffix}-other"
    tokens = {}
    with unit_of_work(engine) as conn:
        for log_id in (log, other):
            create_log(
                conn,
                keys,
                log_id,
                origin_prefix=settings.origin_prefix,
                actor=TEST_ACTOR,
                now=now(),
            )
        for log_id, role in ((log, "auditor"), (log, "writer"), (other, "auditor")):
            tokens[log_id, role] = create_credential(
                conn, keys, log_id=log_id, role=role, label="console", actor=TEST_ACTOR, now=now()
            ).token
    writer = {"Authorization": f"Bearer {tokens[log, 'writer']}"}

    def post(body: Any) -> dict[str, Any]:
        r = httpx.post(f"{server}/v1/logs/{log}/events", json=body, headers=writer, timeout=30)
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result

    post(json.loads(EXAMPLE.read_text()))
    xss = [make_event("c-xss", 0), make_event("c-xss", 1)]
    xss[0]["data"]["content"]["parts"][0]["content"] = XSS_IMG
    xss[1]["data"]["content"]["parts"][0]["content"] = XSS_SCRIPT
    post({"events": xss})
    receipts = post({"events": [make_event("c-tampered", n) for n in range(3)]})["receipts"]
    tampered_seq = receipts[1]["seq"]
    # Alter the middle entry's bytes as a database administrator would: with the append-only
    # trigger switched off for one statement (the stored leaf hash is left as it was).
    with psycopg.connect(_libpq(db_url)) as conn:
        conn.execute("ALTER TABLE entries DISABLE TRIGGER entries_no_update_delete")
        conn.execute(
            "UPDATE entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'),"
            " 'urn:bot:test', 'urn:bot:TEST'), 'UTF8') WHERE log_id = %s AND seq = %s",
            (log, tampered_seq),
        )
        conn.execute("ALTER TABLE entries ENABLE ALWAYS TRIGGER entries_no_update_delete")
    origin = f"{settings.origin_prefix}/{log}"
    return World(
        server,
        log,
        origin,
        tokens[log, "auditor"],
        tokens[log, "writer"],
        tokens[other, "auditor"],
        tampered_seq,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert Path(CHROMIUM).exists(), (
        "Debian's chromium is not installed: `make test` installs it (apt-get install chromium)"
    )
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, world: World) -> Iterator[Any]:
    context = browser.new_context(base_url=world.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    # Nothing may leave for another origin (the CSP forbids it; this proves the page asks none).
    foreign: list[str] = []
    tab.on(
        "request",
        lambda r: foreign.append(r.url) if not r.url.startswith((world.url, "data:")) else None,
    )
    yield tab
    context.close()
    assert errors == [], errors
    assert foreign == [], foreign


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Any, token: str, path: str = "/console/") -> None:
    page.goto(path)
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")


def wait_verdict(page: Any) -> str:
    try:
        page.wait_for_selector(
            "#trail[data-verification=verified], #trail[data-verification=failed]"
        )
    except playwright_sync.TimeoutError:
        raise AssertionError(f"no verdict; the page says: {page.text_content('main')}") from None
    verdict: str = page.get_attribute("#trail", "data-verification")
    return verdict


# --- signing in and out ------------------------------------------------------------------------


def test_sign_in_lists_the_log_then_sign_out_clears_the_token(page: Any, world: World) -> None:
    page.goto("/console/")
    shot(page, "sign-in")
    sign_in(page, world.auditor)
    page.wait_for_selector(f"a:text-is('{world.log}')")
    assert page.evaluate("sessionStorage.getItem('handoff-ledger.token')") == world.auditor
    assert world.auditor not in page.url
    assert page.context.cookies() == []
    shot(page, "logs")
    page.click("text=Sign out")
    page.wait_for_selector("input[name=token]")
    assert page.evaluate("sessionStorage.length") == 0
    assert "signed out" in page.text_content("#signin-message")
    page.goto(f"/console/logs/{world.log}/conversations/{EXAMPLE_CONVERSATION}")
    page.wait_for_selector("input[name=token]")


@pytest.mark.parametrize("who", ["forged", "writer"])
def test_a_wrong_token_is_refused_with_a_clear_message(page: Any, world: World, who: str) -> None:
    sign_in(page, "hlt_not-a-token" if who == "forged" else world.writer)
    page.wait_for_selector("#signin-message.error")
    message = page.text_content("#signin-message")
    expected = "did not accept" if who == "forged" else "needs an auditor or admin token"
    assert expected in message
    assert page.evaluate("sessionStorage.length") == 0


def test_a_token_revoked_mid_session_goes_back_to_sign_in(page: Any, world: World) -> None:
    sign_in(page, world.auditor)
    page.wait_for_selector(f"a:text-is('{world.log}')")
    # As if revoked: the server now refuses what this tab holds.
    page.evaluate("sessionStorage.setItem('handoff-ledger.token', 'hlt_revoked-meanwhile')")
    page.goto(f"/console/logs/{world.log}")
    page.wait_for_selector("#signin-message.error")
    assert "did not accept" in page.text_content("#signin-message")


# --- finding conversations ---------------------------------------------------------------------


def test_search_by_filters_then_open_the_trail_verified(page: Any, world: World) -> None:
    sign_in(page, world.auditor)
    page.click(f"a:text-is('{world.log}')")
    page.wait_for_selector(f"a:text-is('{EXAMPLE_CONVERSATION}')")
    page.wait_for_selector("figure svg")  # the overview's charts
    rows = page.locator(".results tbody tr")
    assert rows.count() == 3  # example, xss, tampered
    shot(page, "log-overview")
    page.fill("#f-subject", "cust-91b7")
    page.click("button:text-is('Search')")
    playwright_sync.expect(rows).to_have_count(1)
    assert "subject=cust-91b7" in page.url
    page.fill("#f-subject", "")
    page.select_option("#f-trigger", "policy_trigger")
    page.select_option("#f-handed_off", "false")
    page.click("button:text-is('Search')")
    page.wait_for_selector("text=No conversation matches.")
    page.select_option("#f-handed_off", "true")
    page.click("button:text-is('Search')")
    page.wait_for_selector(f"a:text-is('{EXAMPLE_CONVERSATION}')")
    page.click(f"a:text-is('{EXAMPLE_CONVERSATION}')")
    assert wait_verdict(page) == "verified"
    assert page.url.endswith(f"/console/logs/{world.log}/conversations/{EXAMPLE_CONVERSATION}")
    assert page.locator(".timeline > li").count() == 16
    assert page.locator(".timeline > li .badge.bad").count() == 0
    banner = page.text_content("#trail .banner")
    assert "Verified in this browser" in banner
    # The pinned key is shown with its fingerprint and where it came from.
    keys = page.text_content(".keys")
    assert world.origin in keys
    assert "first use" in keys
    assert re.search(r"([0-9a-f]{4} ){7}[0-9a-f]{4}", keys)
    # The handoff facts, redactions in place, the sentiment chart.
    facts = page.text_content(".facts")
    assert "uncertainty_threshold" in facts
    assert "human_agent agent-17" in facts
    assert "redacted CREDIT_CARD" in page.text_content(".timeline")
    assert page.locator("svg.chart circle").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "trail-top.png"))  # the README's picture
    page.click(".timeline > li:first-child details.proof > summary")
    assert "handoff-ledger/entry/v1" in page.text_content(".timeline > li:first-child .proof pre")
    shot(page, "trail-verified")


def test_random_handoff_opens_a_handed_off_conversation(page: Any, world: World) -> None:
    sign_in(page, world.auditor, f"/console/logs/{world.log}")
    page.click("#random-handoff")
    assert wait_verdict(page) == "verified"
    assert page.url.endswith(f"/conversations/{EXAMPLE_CONVERSATION}")


# --- verification failures ---------------------------------------------------------------------


def test_an_altered_entry_fails_naming_its_seq(page: Any, world: World) -> None:
    sign_in(page, world.auditor, f"/console/logs/{world.log}/conversations/c-tampered")
    assert wait_verdict(page) == "failed"
    seq = world.tampered_seq
    banner = page.text_content("#trail .banner")
    assert f"seq {seq}: leaf_hash" in banner
    assert f"seq {seq}: inclusion" in banner
    assert page.get_attribute("#trail", "data-failed-seqs") == str(seq)
    failed = page.locator(".timeline > li.failed")
    assert failed.count() == 1
    assert failed.get_attribute("data-seq") == str(seq)
    shot(page, "trail-failed")


def test_a_changed_server_key_is_a_loud_warning_not_a_re_pin(page: Any, world: World) -> None:
    impostor = SigningKey.generate().verify_key.encode()
    key_id = hashlib.sha256(world.origin.encode() + b"\n\x01" + impostor).digest()[:4]
    encoded = base64.b64encode(b"\x01" + impostor).decode()
    pinned = f"{world.origin}+{key_id.hex()}+{encoded}"
    page.goto("/console/")
    page.evaluate(
        "([origin, line]) => localStorage.setItem('handoff-ledger.pinned-keys',"
        " JSON.stringify({[origin]: {lines: [line], source: 'pasted by the auditor',"
        " pinned_at: '2026-12-01T00:00:00Z'}}))",
        [world.origin, pinned],
    )
    sign_in(page, world.auditor, f"/console/logs/{world.log}/conversations/{EXAMPLE_CONVERSATION}")
    assert wait_verdict(page) == "failed"
    assert page.is_visible("#key-changed")
    assert "checkpoint" in page.text_content("#trail .banner")
    stored = page.evaluate("JSON.parse(localStorage.getItem('handoff-ledger.pinned-keys'))")
    assert stored[world.origin]["lines"] == [pinned]  # never silently re-pinned
    shot(page, "key-changed")
    # The auditor pastes the real key (got elsewhere): it is pinned and the trail verifies.
    real = httpx.get(f"{world.url}/v1/logs/{world.log}/verifier-key").text.splitlines()[0]
    page.click("text=Pin a key you got elsewhere")
    page.fill("#paste-key", real)
    page.click("text=Pin this key and verify again")
    assert wait_verdict(page) == "verified"
    assert "pasted by the auditor" in page.text_content(".keys")


def test_a_rotation_signed_by_the_pinned_key_is_followed_not_failed(
    page: Any, world: World, engine: Engine, settings: Settings
) -> None:
    """The log rotates its signing key after this browser pinned the old one: the trail carries
    the rotation statement (signed by the old and the new key), so the page trusts the new key
    through it, shows it, and verifies; no warning, no re-pin. One byte of the statement and it
    certifies nothing: the loud warning and a failed checkpoint, as for any unknown key."""
    from ledger.services.admin.credentials import create_credential
    from ledger.services.admin.logs import create_log
    from ledger.services.admin.signing_keys import rotate_signing_key
    from ledger.storage.logs import get_log

    keys = KeyRing.from_master(settings.master_key_bytes)
    log = f"console-rot-{hashlib.sha256(os.urandom(8)).hexdigest()[:8]}"
    with unit_of_work(engine) as conn:
        create_log(
            conn, keys, log, origin_prefix=settings.origin_prefix, actor=TEST_ACTOR, now=now()
        )
        auditor, writer = (
            create_credential(
                conn, keys, log_id=log, role=role, label="console", actor=TEST_ACTOR, now=now()
            ).token
            for role in ("auditor", "writer")
        )

    def post(*events: dict[str, Any]) -> None:
        r = httpx.post(
            f"{world.url}/v1/logs/{log}/events",
            json={"events": list(events)},
            headers={"Authorization": f"Bearer {writer}"},
            timeout=30,
        )
        assert r.status_code == 201, r.text

    post(make_event("c-rot", 0), make_event("c-rot", 1))
    path = f"/console/logs/{log}/conversations/c-rot"
    sign_in(page, auditor, path)
    assert wait_verdict(page) == "verified"  # the old key, pinned on first use
    origin = f"{settings.origin_prefix}/{log}"
    pinned = page.evaluate("JSON.parse(localStorage.getItem('handoff-ledger.pinned-keys'))")
    with unit_of_work(engine) as conn:
        rotation = rotate_signing_key(conn, keys, get_log(conn, log), now=now(), actor=TEST_ACTOR)
    post(make_event("c-rot", 2))  # a checkpoint signed by the new key only
    page.goto(path)
    assert wait_verdict(page) == "verified"
    assert not page.is_visible("#key-changed")
    rotated = page.text_content("#keys-rotated") or ""
    assert f"{origin}+{rotation.new.key_id.hex()}" in rotated
    assert f"signed by {origin}+{rotation.old.key_id.hex()}" in rotated
    assert rotation.new.key_id.hex() in (page.text_content("#trail .banner") or "")
    stored = page.evaluate("JSON.parse(localStorage.getItem('handoff-ledger.pinned-keys'))")
    assert stored[origin]["lines"] == pinned[origin]["lines"]  # followed, not re-pinned
    shot(page, "trail-rotated")

    # One byte of the statement (in its new key's line) as the page receives it.
    def altered(route: Any) -> None:
        body = route.fetch().json()
        note = body["rotations"][0]
        at = note.index("\nnew ") + len("\nnew ") + len(origin) + 20
        body["rotations"][0] = note[:at] + ("A" if note[at] != "A" else "B") + note[at + 1 :]
        route.fulfill(json=body)

    page.route(f"**/v1/logs/{log}/conversations/c-rot/trail", altered)
    page.goto(path)
    assert wait_verdict(page) == "failed"
    assert page.is_visible("#key-changed")
    assert "checkpoint" in (page.text_content("#trail .banner") or "")
    assert "Rotation statement 0" in (page.text_content(".keys") or "")


# --- untrusted text ----------------------------------------------------------------------------


def test_markup_in_a_transcript_stays_text(page: Any, world: World) -> None:
    sign_in(page, world.auditor, f"/console/logs/{world.log}/conversations/c-xss")
    assert wait_verdict(page) == "verified"
    said = page.locator(".timeline .said").all_text_contents()
    assert said == [XSS_IMG, XSS_SCRIPT]
    page.wait_for_timeout(300)  # an onerror would have fired by now
    assert page.evaluate("window.__pwned") is None
    assert page.locator(".timeline img, .timeline script").count() == 0
    shot(page, "trail-xss")


# --- not found, unreachable ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/console/logs/{log}/conversations/c-nobody",
        "/console/logs/{other}/conversations/c-1",
        "/console/logs/no-such-log",
        "/console/no/such/page",
    ],
)
def test_unknown_log_or_conversation_is_a_clear_not_found_page(
    page: Any, world: World, path: str
) -> None:
    sign_in(page, world.auditor, path.format(log=world.log, other=world.log + "-other"))
    page.wait_for_selector("[data-page=not-found]")
    assert page.text_content("h1") == "Not found"
    if "c-nobody" in path:
        assert "c-nobody" in page.text_content("[data-page=not-found]")
        shot(page, "not-found")


def test_an_unreachable_server_says_so_and_retries(page: Any, world: World) -> None:
    sign_in(page, world.auditor)
    page.wait_for_selector(f"a:text-is('{world.log}')")
    page.route("**/v1/**", lambda route: route.abort())
    page.goto(f"/console/logs/{world.log}")
    page.wait_for_selector("text=The ledger server cannot be reached")
    shot(page, "unreachable")
    page.unroute("**/v1/**")
    page.click("button:text-is('Retry')")
    page.wait_for_selector(f"a:text-is('{EXAMPLE_CONVERSATION}')")


def test_a_database_outage_says_so_and_retries(page: Any, world: World) -> None:
    sign_in(page, world.auditor)
    page.wait_for_selector(f"a:text-is('{world.log}')")
    page.route(
        "**/v1/**",
        lambda route: route.fulfill(
            status=503,
            content_type="application/problem+json",
            body=json.dumps({"detail": "the database is unavailable"}),
        ),
    )
    page.goto(f"/console/logs/{world.log}")
    page.wait_for_selector("text=The ledger is unavailable right now")
    page.unroute("**/v1/**")
    page.click("button:text-is('Retry')")
    page.wait_for_selector(f"a:text-is('{EXAMPLE_CONVERSATION}')")


# --- keyboard and accessibility ----------------------------------------------------------------


def _tab_to(page: Any, selector: str, limit: int = 60) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_keyboard_only_from_sign_in_to_a_verified_trail(page: Any, world: World) -> None:
    page.goto("/console/")
    page.wait_for_selector("input[name=token]:focus")
    page.keyboard.type(world.auditor)
    page.keyboard.press("Enter")
    page.wait_for_selector(f"a:text-is('{world.log}')")
    _tab_to(page, f"a[href='/console/logs/{world.log}']")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"a:text-is('{EXAMPLE_CONVERSATION}')")
    _tab_to(page, f"a[href$='/conversations/{EXAMPLE_CONVERSATION}']")
    page.keyboard.press("Enter")
    assert wait_verdict(page) == "verified"
    _tab_to(page, "details.proof > summary")
    page.keyboard.press("Enter")
    assert page.locator("details.proof[open]").count() == 1


def test_no_serious_accessibility_violation_on_the_main_pages(page: Any, world: World) -> None:
    axe = axe_module.Axe()
    found: dict[str, list[str]] = {}

    def check(name: str) -> None:
        results = axe.run(page)
        serious = [
            f"{v['id']}: {v['help']}"
            for v in results.response["violations"]
            if v.get("impact") in ("serious", "critical")
        ]
        if serious:
            found[name] = serious

    page.goto("/console/")
    page.wait_for_selector("input[name=token]")
    check("sign-in")
    sign_in(page, world.auditor)
    page.wait_for_selector(f"a:text-is('{world.log}')")
    check("logs")
    page.goto(f"/console/logs/{world.log}")
    page.wait_for_selector(f"a:text-is('{EXAMPLE_CONVERSATION}')")
    page.wait_for_selector("figure svg")
    check("log")
    page.goto(f"/console/logs/{world.log}/conversations/{EXAMPLE_CONVERSATION}")
    wait_verdict(page)
    check("trail")
    page.goto(f"/console/logs/{world.log}/conversations/c-tampered")
    wait_verdict(page)
    check("trail-failed")
    page.goto("/console/bundle")
    page.wait_for_selector("#bundle-file")
    check("bundle")
    assert found == {}


# --- the page's canonicalizer against Python's rfc8785 -------------------------------------------

CANONICAL_CASES = [
    *(json.dumps(e["data"]) for e in json.loads(EXAMPLE.read_text())["events"]),
    '{"b": 1, "a": 2, "\\u00e9": 3, "\\u20ac": 4, "\\ud83d\\ude00": 5, "A": 6, "": 7}',
    '"\\u0000\\u0001\\u001f\\"\\\\/\\u007f\\u2028\\u00e9\\ud83d\\ude00 <script>"',
    "[0, -0, 1, -1, 0.1, 1e21, 1e20, 1e-7, 1e-6, 123.456, 9007199254740991, 5e-324,"
    " 1.7976931348623157e308, 0.30000000000000004, 100, 1e2, 3.0, -1.5e-10]",
    '{"nested": {"z": [true, false, null, {"y": "x", "x": "y"}], "a": {}}, "list": []}',
]


def test_the_pages_canonicalizer_is_rfc8785(page: Any, world: World) -> None:
    page.goto("/console/")
    produced = page.evaluate(
        "async (cases) => { const m = await import('/console/static/jcs.js');"
        " return cases.map((c) => m.canonicalize(JSON.parse(c))); }",
        CANONICAL_CASES,
    )
    expected = [rfc8785.dumps(json.loads(case)).decode("utf-8") for case in CANONICAL_CASES]
    assert produced == expected
    # A lone surrogate is not I-JSON: refused on both sides.
    refused = page.evaluate(
        "async () => { const m = await import('/console/static/jcs.js');"
        " try { m.canonicalize('\\ud800'); return false } catch (e) { return true } }"
    )
    assert refused is True


# --- the page's verifier against the standalone Python verifier, on the same files ------------


def _standalone() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "verify_trail_standalone", ROOT / "ops" / "verify_trail_standalone.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flip_b64(text: str, at: int = 5) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _variants(trail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    def copy() -> dict[str, Any]:
        result: dict[str, Any] = json.loads(json.dumps(trail))
        return result

    out = {"intact": copy()}
    altered = copy()
    altered["entries"][3]["entry_b64"] = _flip_b64(altered["entries"][3]["entry_b64"], 40)
    out["entry byte"] = altered
    payload = copy()
    payload["entries"][1]["payload"]["content"]["parts"][0]["content"] += "!"
    out["payload shown"] = payload
    missing = copy()
    del missing["entries"][5]
    out["entry removed"] = missing
    signature = copy()
    note = signature["checkpoint"]
    head, _, sig = note[:-1].rpartition(" ")
    signature["checkpoint"] = f"{head} {_flip_b64(sig, 10)}\n"
    out["checkpoint signature"] = signature
    proof = copy()
    proof["entries"][7]["inclusion_proof"]["hashes"][0] = _flip_b64(
        proof["entries"][7]["inclusion_proof"]["hashes"][0], 0
    )
    out["proof hash"] = proof
    return out


def _checks(failures: list[str]) -> set[tuple[int | None, str]]:
    found = set()
    for line in failures:
        match = re.match(r"(?:seq (\d+): )?(\w+):", line)
        assert match, line
        found.add((int(match[1]) if match[1] else None, match[2]))
    return found


def test_the_pages_verifier_agrees_with_the_standalone_one(page: Any, world: World) -> None:
    trail = httpx.get(
        f"{world.url}/v1/logs/{world.log}/conversations/{EXAMPLE_CONVERSATION}/trail",
        headers={"Authorization": f"Bearer {world.auditor}"},
    ).json()
    key = httpx.get(f"{world.url}/v1/logs/{world.log}/verifier-key").text.splitlines()[0]
    standalone = _standalone()
    keys = [standalone.parse_key(key)]
    page.goto("/console/")
    for name, variant in _variants(trail).items():
        python_fails, _, _ = standalone.verify(variant, keys)
        js = page.evaluate(
            "async ([trail, key]) => { const v = await import('/console/static/verify.js');"
            " const r = await v.verifyTrail(trail, [await v.parseVerifierKey(key)]);"
            " return {status: r.status, failures: r.failures.map((f) =>"
            " (f.seq === null ? '' : `seq ${f.seq}: `) + `${f.check}: ${f.message}`)}; }",
            [variant, key],
        )
        assert _checks(js["failures"]) == _checks(python_fails), name
        assert (js["status"] == "verified") == (name == "intact"), name


def test_an_export_built_from_the_page_downloads(page: Any, world: World) -> None:
    sign_in(page, world.auditor, f"/console/logs/{world.log}")
    page.wait_for_selector(f"a:text-is('{EXAMPLE_CONVERSATION}')")
    page.select_option("#x-profile", "pci-dss-10")
    page.select_option("#x-format", "jsonl")
    page.fill("#x-conversations", EXAMPLE_CONVERSATION)
    try:
        with page.expect_download() as download:
            page.click("button:text-is('Build and download')")
    except playwright_sync.TimeoutError:
        raise AssertionError(page.text_content(".export")) from None
    path = download.value.path()
    lines = Path(path).read_text().splitlines()
    assert len(lines) == 16
    # The example conversation was the log's first: seqs 0 to 15.
    assert [json.loads(line)["seq"] for line in lines] == list(range(16))
    assert download.value.suggested_filename == f"{world.log}-pci-dss-10.jsonl"
    page.wait_for_selector("text=recorded in the system log")


# --- evidence bundles, verified in the page ------------------------------------------------------


def _export(world: World, tmp_path: Path, name: str, body: dict[str, Any]) -> Path:
    r = httpx.post(
        f"{world.url}/v1/logs/{world.log}/exports",
        json={"format": "bundle", **body},
        headers={"Authorization": f"Bearer {world.auditor}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    path = tmp_path / f"{name}.zip"
    path.write_bytes(r.content)
    return path


def _tampered(source: Path, target: Path) -> Path:
    """The bundle with one byte of one entry's payload changed in entries.jsonl (the zip itself
    rebuilt, so only the content is wrong)."""
    import zipfile

    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "entries.jsonl":
                lines = data.split(b"\n")
                line = json.loads(lines[1])
                line["payload_b64"] = _flip_b64(line["payload_b64"], 3)
                lines[1] = rfc8785.dumps(line)
                data = b"\n".join(lines)
            zout.writestr(info.filename, data)
    return target


def _verify_in_page(page: Any, bundle: Path, key: str) -> tuple[str, str]:
    page.goto("/console/bundle")
    page.set_input_files("#bundle-file", str(bundle))
    page.fill("#bundle-keys", key)
    page.click("button:text-is('Verify')")
    page.wait_for_selector(
        "#bundle[data-verification=verified], #bundle[data-verification=failed],"
        " #bundle[data-verification=error]"
    )
    return page.get_attribute("#bundle", "data-verification"), page.text_content("#bundle")


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("range", {"profile": "soc2-population", "start_seq": 0, "end_seq": 16}),
        ("conversations", {"profile": "hipaa-disclosures", "data_subject": "cust-91b7"}),
        ("pci", {"profile": "pci-dss-10", "conversations": [EXAMPLE_CONVERSATION]}),
        ("sample", {"profile": "soc2-population", "start_seq": 0, "end_seq": 16, "sample": 4}),
    ],
)
def test_a_bundle_verifies_in_the_page_as_with_the_standalone_verifier(
    page: Any, world: World, tmp_path: Path, name: str, body: dict[str, Any]
) -> None:
    bundle = _export(world, tmp_path, name, body)
    key = httpx.get(f"{world.url}/v1/logs/{world.log}/verifier-key").text.splitlines()[0]
    keys_file = tmp_path / "keys"
    keys_file.write_text(key + "\n")
    standalone = ROOT / "ops" / "verify_bundle_standalone.py"

    def python(path: Path) -> int:
        return subprocess.run(
            [sys.executable, str(standalone), str(path), "--verifier-keys-file", str(keys_file)],
            capture_output=True,
            check=False,
        ).returncode

    verdict, text = _verify_in_page(page, bundle, key)
    assert (verdict, python(bundle)) == ("verified", 0), text
    if name == "conversations":
        shot(page, "bundle-verified")
    if name != "pci":  # a pci-dss-10 bundle has no payload to alter
        bad = _tampered(bundle, tmp_path / f"{name}-tampered.zip")
        verdict, text = _verify_in_page(page, bad, key)
        assert (verdict, python(bad)) == ("failed", 1), text
        assert "entries.jsonl" in text
    # Without a key the auditor trusts, nothing is verified.
    impostor = SigningKey.generate().verify_key.encode()
    key_id = hashlib.sha256(world.origin.encode() + b"\n\x01" + impostor).digest()[:4]
    encoded = base64.b64encode(b"\x01" + impostor).decode()
    wrong = f"{world.origin}+{key_id.hex()}+{encoded}"
    verdict, text = _verify_in_page(page, bundle, wrong)
    assert verdict == "failed"
    assert "manifest" in text


def test_readable_at_200_percent_zoom(page: Any, world: World) -> None:
    # 200% zoom of a 1280-pixel window: a 640-pixel layout viewport.
    page.set_viewport_size({"width": 640, "height": 900})
    sign_in(page, world.auditor, f"/console/logs/{world.log}/conversations/{EXAMPLE_CONVERSATION}")
    assert wait_verdict(page) == "verified"
    shot(page, "trail-narrow")
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    page.goto(f"/console/logs/{world.log}")
    page.wait_for_selector("figure svg")
    shot(page, "log-narrow")
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0  # the wide table scrolls in its own region
