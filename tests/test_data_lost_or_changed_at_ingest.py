"""Data silently lost or changed at ingest (issue 16, class 4): what a writer posts is kept as
posted or refused with a 422 naming it. Trace extension attributes are kept in the hashed entry
and served back; any other extension attribute is refused; no number is rounded; a member name
twice in one object is refused (I-JSON); one size rule for an event, alone or in a batch."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core.canonical import canonicalize
from ledger.core.merkle import leaf_hash
from ledger.errors import EventInvalid, MalformedRequest
from ledger.events import strict_json
from tests.conftest import make_event

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
MIB = 1 << 20
STANDALONE = Path(__file__).resolve().parents[1] / "ops" / "verify_trail_standalone.py"


def auth(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def size_of_log(client: Any, log_id: str) -> int:
    return int(client.get(f"/v1/logs/{log_id}/checkpoint").text.split("\n")[1])


@pytest.fixture
def writer(new_log: Any, token: Any) -> tuple[str, dict[str, str]]:
    log_id = new_log()
    return log_id, auth(token(log_id, "writer"))


def post_raw(client: Any, log_id: str, headers: dict[str, str], body: bytes) -> Any:
    return client.post(
        f"/v1/logs/{log_id}/events",
        content=body,
        headers={**headers, "Content-Type": "application/json"},
    )


# --- extension attributes ------------------------------------------------------------------


def test_trace_attributes_are_kept_in_the_hashed_entry_and_served_back(
    client: Any, writer: tuple[str, dict[str, str]], token: Any
) -> None:
    log_id, headers = writer
    event = make_event("trace-1", 0) | {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}
    r = client.post(f"/v1/logs/{log_id}/events", json=event, headers=headers)
    assert r.status_code == 201, r.text
    receipt = r.json()["receipts"][0]

    auditor = auth(token(log_id, "auditor"))
    entry = client.get(f"/v1/logs/{log_id}/entries?start=0&end=1", headers=auditor).json()
    served = entry["entries"][0]
    assert served["entry"]["event"]["traceparent"] == TRACEPARENT
    assert served["entry"]["event"]["tracestate"] == TRACESTATE
    # In the hashed bytes themselves, not beside them: the receipt's leaf hash covers them.
    hashed = base64.b64decode(served["entry_b64"])
    assert TRACEPARENT.encode() in hashed
    assert base64.b64encode(leaf_hash(hashed)).decode() == receipt["leaf_hash"]
    tampered = hashed.replace(TRACEPARENT.encode(), TRACEPARENT.replace("01", "00").encode())
    assert leaf_hash(tampered) != leaf_hash(hashed)

    trail = client.get(f"/v1/logs/{log_id}/conversations/trace-1/trail", headers=auditor)
    assert trail.status_code == 200, trail.text
    assert trail.json()["entries"][0]["entry"]["event"]["traceparent"] == TRACEPARENT


def test_an_event_without_trace_attributes_has_the_entry_it_always_had(
    client: Any, writer: tuple[str, dict[str, str]], token: Any
) -> None:
    log_id, headers = writer
    assert (
        client.post(
            f"/v1/logs/{log_id}/events", json=make_event("plain", 0), headers=headers
        ).status_code
        == 201
    )
    auditor = auth(token(log_id, "auditor"))
    entry = client.get(f"/v1/logs/{log_id}/entries?start=0&end=1", headers=auditor).json()
    assert set(entry["entries"][0]["entry"]["event"]) == {
        "id", "source", "type", "time", "subject", "conversation"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("partitionkey", "c-1"),
        ("correlationid", "abc"),
        ("sequence", 7),
        ("comexampleext", True),
        ("dataschema", "https://example.com/schema.json"),  # CloudEvents' own, not kept
    ],
)
def test_any_other_extension_attribute_is_a_422_naming_it_and_nothing_is_stored(
    client: Any, writer: tuple[str, dict[str, str]], name: str, value: object
) -> None:
    log_id, headers = writer
    for body in (
        make_event("ext", 0) | {name: value},
        {"events": [make_event("ext", 0), make_event("ext", 1) | {name: value}]},
    ):
        r = client.post(f"/v1/logs/{log_id}/events", json=body, headers=headers)
        assert r.status_code == 422, r.text
        assert r.json()["pointer"].endswith("/" + name)
    assert size_of_log(client, log_id) == 0


# --- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        b"9007199254740992",  # 2^53
        b"-9007199254740992",
        b"18446744073709551615",  # 2^64 - 1: orjson still reads it as an integer
        b"18446744073709551616",  # 2^64: orjson makes a float of it, which used to be kept
        b"-9223372036854775809",
        b"123456789012345678901234567890",
        b"1e300",
        b"9.007199254740993e15",
    ],
)
def test_no_number_beyond_2_53_is_rounded_it_is_refused(
    client: Any, writer: tuple[str, dict[str, str]], number: bytes
) -> None:
    log_id, headers = writer
    event = make_event("num", 0, amount="PLACEHOLDER")
    single = orjson.dumps(event).replace(b'"PLACEHOLDER"', number)
    batch = orjson.dumps({"events": [make_event("num", 1), event]}).replace(
        b'"PLACEHOLDER"', number
    )
    for body, pointer in ((single, "/data/amount"), (batch, "/events/1/data/amount")):
        r = post_raw(client, log_id, headers, body)
        assert r.status_code == 422, (number, r.text)
        assert r.json()["pointer"] == pointer
    assert size_of_log(client, log_id) == 0


def test_the_largest_exact_integers_are_kept_exactly(
    client: Any, writer: tuple[str, dict[str, str]], token: Any
) -> None:
    log_id, headers = writer
    event = make_event("num", 0, high=2**53 - 1, low=-(2**53 - 1))
    assert client.post(f"/v1/logs/{log_id}/events", json=event, headers=headers).status_code == 201
    auditor = auth(token(log_id, "auditor"))
    page = client.get(f"/v1/logs/{log_id}/entries?start=0&end=1", headers=auditor)
    payload = page.json()["entries"][0]["payload"]
    assert (payload["high"], payload["low"]) == (2**53 - 1, -(2**53 - 1))


# --- duplicate member names ----------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        # at the top of an event, the second id winning
        b'{"specversion":"1.0","id":"a","id":"b","source":"urn:bot:test",'
        b'"type":"handoff.message.created.v1","time":"2026-11-20T09:14:01Z",'
        b'"subject":"conversations/dup","data":{}}',
        # deep in data
        orjson.dumps(make_event("dup", 0, nested={"k": "PLACEHOLDER"})).replace(
            b'"k":"PLACEHOLDER"', b'"k":"first","k":"second"'
        ),
        # in data, with backslashes in strings (the slow path of the check)
        orjson.dumps(make_event("dup", 0, path="C:\\temp\\x", quote='say "hi"')).replace(
            b'"outcome":"success"', b'"outcome":"failure","outcome":"success"'
        ),
        # an escaped name that reads the same as another
        orjson.dumps(make_event("dup", 0)).replace(
            b'"outcome":"success"', b'"outcome":"failure","outc\\u006fme":"success"'
        ),
        # the batch wrapper itself
        b'{"events":[],"events":[' + orjson.dumps(make_event("dup", 0)) + b"]}",
    ],
)
def test_a_member_name_twice_in_one_object_is_a_422(
    client: Any, writer: tuple[str, dict[str, str]], body: bytes
) -> None:
    log_id, headers = writer
    r = post_raw(client, log_id, headers, body)
    assert r.status_code == 422, r.text
    assert "twice" in r.json()["detail"]
    assert size_of_log(client, log_id) == 0


def test_a_batch_member_other_than_events_is_refused_not_dropped(
    client: Any, writer: tuple[str, dict[str, str]]
) -> None:
    log_id, headers = writer
    body = {"events": [make_event("wrap", 0)], "note": "kept nowhere"}
    r = client.post(f"/v1/logs/{log_id}/events", json=body, headers=headers)
    assert r.status_code == 422
    assert r.json()["pointer"] == "/note"


def test_a_framework_route_refuses_duplicate_names_too(
    client: Any, new_log: Any, token: Any
) -> None:
    log_id = new_log()
    body = b'{"conversation":"c-1","conversation":"c-2","reference":"T-1","legal_basis":"x"}'
    r = client.post(
        f"/v1/logs/{log_id}/erasures",
        content=body,
        headers={**auth(token(log_id, "admin")), "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "twice" in r.json()["detail"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-100, 100) | st.text(alphabet='ab"\\\n/é'),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(st.tuples(st.text(alphabet='ab"\\', max_size=2), inner), max_size=4)
    ),
    max_leaves=12,
)


def _text(value: object) -> str:
    """JSON text of ``value``, where a list of pairs is an object that may repeat names."""
    if isinstance(value, list) and all(isinstance(p, tuple) for p in value) and value:
        return "{" + ",".join(f"{json.dumps(k)}:{_text(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _has_duplicates(value: object) -> bool:
    if isinstance(value, list):
        names = [p[0] for p in value if isinstance(p, tuple)]
        if len(names) != len(set(names)):
            return True
        return any(_has_duplicates(p[1] if isinstance(p, tuple) else p) for p in value)
    return False


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_the_fast_duplicate_check_agrees_with_a_full_parse(value: object) -> None:
    text = _text(value).encode()
    if _has_duplicates(value):
        with pytest.raises(EventInvalid):
            strict_json.loads(text)
    else:
        assert strict_json.loads(text) == json.loads(text)


def test_a_body_that_is_not_json_is_still_a_400() -> None:
    with pytest.raises(MalformedRequest):
        strict_json.loads(b'{"a":')


# --- one size rule -------------------------------------------------------------------------


def event_of_size(conversation: str, n: int, size: int) -> dict[str, Any]:
    """An event whose canonical bytes as the ledger keeps them are exactly ``size`` long (its
    time and content type already written the way the ledger keeps them)."""
    event = make_event(conversation, n)
    event["time"] = "2026-11-20T09:14:01.000000Z"
    parts = event["data"]["content"]["parts"]
    chunk = 200_000  # strings are at most 256 KiB each
    parts[:] = [{"type": "text", "content": ""}]
    while (missing := size - len(canonicalize(event))) > 0:
        if len(parts[-1]["content"]) + missing > chunk:
            parts[-1]["content"] += "x" * (chunk - len(parts[-1]["content"]))
            parts.append({"type": "text", "content": ""})
        else:
            parts[-1]["content"] += "x" * missing
    assert len(canonicalize(event)) == size
    return event


def test_one_size_rule_for_an_event_alone_or_in_a_batch(
    client: Any, writer: tuple[str, dict[str, str]]
) -> None:
    log_id, headers = writer
    at_limit = event_of_size("size", 0, MIB)
    over = event_of_size("size", 1, MIB + 1)
    url = f"/v1/logs/{log_id}/events"

    r = client.post(url, json=over, headers=headers)
    assert r.status_code == 413, r.text
    r = client.post(url, json={"events": [make_event("size", 9), over]}, headers=headers)
    assert r.status_code == 413, r.text
    assert r.json()["detail"].startswith("/events/1:")
    assert size_of_log(client, log_id) == 0

    assert client.post(url, json=at_limit, headers=headers).status_code == 201
    second = copy.deepcopy(at_limit) | {"id": "size-evt-Z"}  # as long as its id
    r = client.post(url, json={"events": [make_event("size", 8), second]}, headers=headers)
    assert r.status_code == 201, r.text
    assert size_of_log(client, log_id) == 3


def test_whitespace_does_not_count_toward_an_events_size(
    client: Any, writer: tuple[str, dict[str, str]]
) -> None:
    log_id, headers = writer
    event = event_of_size("ws", 0, MIB - 4096)
    body = orjson.dumps(event, option=orjson.OPT_INDENT_2) + b" " * 8192
    assert len(body) > MIB
    assert post_raw(client, log_id, headers, body).status_code == 201


def test_a_traced_trail_verifies_under_every_verifier(
    client: Any,
    writer: tuple[str, dict[str, str]],
    token: Any,
    ledger_cli: Any,
    tmp_path: Path,
) -> None:
    """The entry with trace attributes is an entry like any other to the verifiers: the trail
    verifies offline (``ledger verify-trail`` and the stand-alone script), the log in full."""
    log_id, headers = writer
    traced = [
        make_event("traced", n) | {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}
        for n in range(3)
    ]
    r = client.post(f"/v1/logs/{log_id}/events", json={"events": traced}, headers=headers)
    assert r.status_code == 201, r.text
    trail = client.get(
        f"/v1/logs/{log_id}/conversations/traced/trail", headers=auth(token(log_id, "auditor"))
    )
    path = tmp_path / "trail.json"
    path.write_text(trail.text)
    keys = client.get(f"/v1/logs/{log_id}/verifier-key").text.splitlines()
    key_args = [arg for key in keys for arg in ("--verifier-key", key)]
    code, out, err = ledger_cli("verify-trail", str(path), *key_args)
    assert code == 0, out + err
    script = subprocess.run(
        [sys.executable, "-I", str(STANDALONE), str(path), *key_args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert script.returncode == 0, script.stdout + script.stderr
    code, out, err = ledger_cli("verify", "--full", "--log", log_id)
    assert code == 0, out + err
