"""The HTML report: one self-contained page an auditor reads, prints or files.

Self-contained and inert: inline CSS only (allowed by its SHA-256 in the page's own
Content-Security-Policy), no script, no image, no link to anything outside the page. Every value
from the ledger (event text included: transcripts are written by customers) goes through
``html.escape``, so markup in a message shows as text.

Sections, in order: the export (log, origin, profile, query, checkpoint size and root, when and by
whom); the population (count, first and last seq and leaf hash, counts by event type, outcome
and payload status); each conversation's handoff timeline, derived by
:func:`ledger.services.trails.summary.summarize` (what was said, tools, data touched,
redactions, escalation reasons, who took over and when, the derived timings); for
``hipaa-disclosures`` the accounting of disclosures and the access report; and how to re-check
all of it offline.

Streaming: the page is written while the entries are read, once, in seq order. An export in seq
order interleaves conversations, so a conversation's timeline can only be drawn once all entries
are read: the report holds the timelines of at most :data:`MAX_DETAILED_CONVERSATIONS`
conversations and :data:`MAX_TIMELINE_EVENTS` entries between them, lists up to
:data:`MAX_LISTED_CONVERSATIONS` more by id with their counts, and counts the entries of any
further ones. Disclosure rows are held up to :data:`MAX_DISCLOSURE_ROWS` (one data subject's);
the access report is written as it is read. So memory is bounded whatever the export's size;
the rows in full are in the CSV and JSON Lines renderings.
"""

from __future__ import annotations

import base64
import hashlib
import html
import shlex
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import ledger
from ledger.core.canonical import canonicalize
from ledger.core.entry import b64, format_time
from ledger.services.exports.formats._common import chunked, epoch_ms, readable_payload
from ledger.services.exports.model import AccessRecord, ExportContext, ExportedEntry
from ledger.services.exports.rows import (
    ACCESS_COLUMNS,
    DISCLOSURE_COLUMNS,
    Row,
    access_rows,
    actor_of,
    disclosure_row,
    event_of,
    outcome_of,
)
from ledger.services.trails.summary import TrailEvent, summarize

MAX_DETAILED_CONVERSATIONS: Final = 1_000
"""Conversations whose timeline the report draws; later ones are listed by id with counts."""
MAX_TIMELINE_EVENTS: Final = 20_000
"""Entries held for timelines, all conversations together; a conversation that would pass it is
listed by id instead."""
MAX_LISTED_CONVERSATIONS: Final = 10_000
"""Conversations the report names at all; the entries of any further ones are counted."""
MAX_DISCLOSURE_ROWS: Final = 10_000

PROFILE_TITLES: Final = {
    "soc2-population": "SOC 2 population: every entry of the selection, with the proof that "
    "none is missing",
    "pci-dss-10": "PCI DSS 10.2.2: user, event, date and time, outcome, origin and affected "
    "resource of each entry, from the entry headers alone (no payloads: no card data)",
    "hipaa-disclosures": "HIPAA 164.528 accounting of disclosures for one data subject, with "
    "the per-subject access report (GDPR Art. 15)",
}

STYLE: Final = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;
background:#fff;margin:0}
main{max-width:78rem;margin:0 auto;padding:1.5rem}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.2rem;margin:2rem 0 .5rem;
border-bottom:2px solid #d0d7de;padding-bottom:.2rem}h3{font-size:1.05rem;margin:1.5rem 0 .3rem}
h4{font-size:.95rem;margin:1rem 0 .25rem;color:#424a53}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:.5rem 0}
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}
table{border-collapse:collapse;max-width:100%;margin:.3rem 0 .8rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .45rem;text-align:left;vertical-align:top;
overflow-wrap:break-word}
th{background:#f3f5f7}td.text{white-space:pre-wrap}
code,pre,.hash{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85rem}
pre{background:#f6f8fa;border:1px solid #d0d7de;padding:.6rem;white-space:pre-wrap;
overflow-wrap:anywhere}
.failure{color:#a40e26;font-weight:600}.success{color:#116329}.muted{color:#57606a}
article{border-left:4px solid #d0d7de;padding-left:1rem;margin:1rem 0}
@media print{main{max-width:none}article{break-inside:avoid-page}}
"""
CSP: Final = (
    "default-src 'none'; style-src 'sha256-"
    + base64.b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode("ascii")
    + "'; img-src 'none'; form-action 'none'; base-uri 'none'"
)
"""The page allows its own inline style and nothing else: no script, no fetch, no form."""

NONE: Final = "\u2013"  # an en dash: no value


def render_html(
    ctx: ExportContext, entries: Iterable[ExportedEntry], accesses: Iterable[AccessRecord]
) -> Iterator[bytes]:
    return chunked(piece.encode("utf-8") for piece in _page(ctx, entries, accesses))


# --- what is held while the entries are read ------------------------------------------------


@dataclass(slots=True)
class _Conversation:
    id: str
    first_seq: int
    last_seq: int
    entries: int = 0
    events: list[TrailEvent] | None = None
    """The timeline's entries while the conversation is detailed, else None."""


@dataclass(slots=True)
class _Population:
    count: int = 0
    first: tuple[int, str] | None = None
    last: tuple[int, str] | None = None
    types: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    event_times: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    """First and last (at most two items each)."""

    def add(self, e: ExportedEntry) -> None:
        event = event_of(e)
        handle = (e.seq, b64(e.leaf_hash))
        self.count += 1
        self.first = self.first or handle
        self.last = handle
        self.types[str(event.get("type"))] += 1
        self.outcomes[outcome_of(e)] += 1
        self.statuses[e.payload_status] += 1
        _span(self.event_times, event.get("time"))
        _span(self.received, e.entry.get("received_at"))


def _span(held: list[str], value: object) -> None:
    """Keep the earliest and latest of RFC 3339 UTC times (fixed width: they sort as text)."""
    if not isinstance(value, str):
        return
    if not held:
        held.extend((value, value))
    elif value < held[0]:
        held[0] = value
    elif value > held[1]:
        held[1] = value


@dataclass(slots=True)
class _Reading:
    """Everything the report keeps of the entries, within its caps."""

    population: _Population = field(default_factory=_Population)
    conversations: dict[str, _Conversation] = field(default_factory=dict)
    detailed: int = 0
    held_events: int = 0
    unlisted_entries: int = 0
    disclosures: list[Row] = field(default_factory=list)
    more_disclosures: int = 0

    def add(self, ctx: ExportContext, e: ExportedEntry) -> None:
        self.population.add(e)
        if ctx.profile == "hipaa-disclosures":
            self._disclosure(e)
        self._timeline(ctx, e)

    def _disclosure(self, e: ExportedEntry) -> None:
        disclosed = disclosure_row(e)
        if disclosed is None:
            return
        if len(self.disclosures) < MAX_DISCLOSURE_ROWS:
            self.disclosures.append(disclosed)
        else:
            self.more_disclosures += 1

    def _timeline(self, ctx: ExportContext, e: ExportedEntry) -> None:
        event = event_of(e)
        cid = str(event.get("conversation"))
        conversation = self.conversations.get(cid)
        if conversation is None:
            if len(self.conversations) >= MAX_LISTED_CONVERSATIONS:
                self.unlisted_entries += 1
                return
            conversation = self.conversations[cid] = _Conversation(cid, e.seq, e.seq)
            if (
                self.detailed < MAX_DETAILED_CONVERSATIONS
                and self.held_events < MAX_TIMELINE_EVENTS
            ):
                conversation.events = []
                self.detailed += 1
        conversation.entries += 1
        conversation.last_seq = e.seq
        if conversation.events is not None:
            if self.held_events >= MAX_TIMELINE_EVENTS:
                self.held_events -= len(conversation.events)
                conversation.events = None
                self.detailed -= 1
            else:
                conversation.events.append(_trail_event(ctx, e))
                self.held_events += 1


def _trail_event(ctx: ExportContext, e: ExportedEntry) -> TrailEvent:
    event = event_of(e)
    resource = e.entry.get("resource")
    return TrailEvent(
        seq=e.seq,
        type=str(event.get("type")),
        event_id=str(event.get("id")),
        time=str(event.get("time")),
        actor=actor_of(e),
        resource=resource if isinstance(resource, dict) else None,
        payload=readable_payload(ctx, e),
        payload_status=e.payload_status,
    )


# --- the page -------------------------------------------------------------------------------


def _page(
    ctx: ExportContext, entries: Iterable[ExportedEntry], accesses: Iterable[AccessRecord]
) -> Iterator[str]:
    title = f"Handoff Ledger export: {ctx.log}, {ctx.profile}"
    yield (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{STYLE}</style></head>\n<body><main>\n"
        f"<h1>{_e(title)}</h1>\n"
        f'<p class="muted">{_e(PROFILE_TITLES.get(ctx.profile, ctx.profile))}</p>\n'
    )
    yield _context(ctx)
    reading = _Reading()
    for e in entries:
        reading.add(ctx, e)
    yield _population(reading.population)
    yield from _conversations(reading, headers_only=ctx.profile == "pci-dss-10")
    if ctx.profile == "hipaa-disclosures":
        yield _disclosures(reading)
        yield from _access_report(accesses)
    yield _recheck(ctx)
    yield (
        f'<p class="muted">Rendered by Handoff Ledger {_e(ledger.__version__)}. This page runs '
        "no script and loads nothing from elsewhere.</p>\n</main></body></html>\n"
    )


def _context(ctx: ExportContext) -> str:
    items: list[tuple[str, str]] = [
        ("Log", _code(ctx.log)),
        ("Origin", _code(ctx.origin)),
        ("Profile", _code(ctx.profile)),
        ("Query", _code(canonicalize(ctx.query).decode("utf-8"))),
        ("Checkpoint size", _e(ctx.tree_size)),
        ("Checkpoint root", _code(b64(ctx.root))),
        ("Generated at", _e(_moment(ctx))),
        ("Generated by", _e(_principal(ctx.generated_by))),
    ]
    return (
        '<section id="export"><h2>The export</h2>\n'
        + _dl(items)
        + "<h4>The signed checkpoint every entry was read at</h4>\n"
        + f"<pre>{_e(ctx.checkpoint)}</pre></section>\n"
    )


def _moment(ctx: ExportContext) -> str:
    moment = ctx.generated_at
    return format_time(moment) if moment.tzinfo is not None else moment.isoformat()


def _principal(who: dict[str, Any]) -> str:
    head = f"{who.get('kind')}:{who.get('id')}"
    rest = ", ".join(f"{k} {v}" for k, v in sorted(who.items()) if k not in ("kind", "id"))
    return f"{head} ({rest})" if rest else head


def _population(p: _Population) -> str:
    def handle(h: tuple[int, str] | None) -> str:
        return NONE if h is None else f"seq {h[0]}, leaf hash <code>{_e(h[1])}</code>"

    items = [
        ("Entries", _e(p.count)),
        ("First", handle(p.first)),
        ("Last", handle(p.last)),
        ("Event times", _e(" to ".join(p.event_times)) if p.event_times else NONE),
        ("Received", _e(" to ".join(p.received)) if p.received else NONE),
    ]
    return (
        '<section id="population"><h2>The population</h2>\n'
        + _dl(items)
        + _counts("By event type", "Event type", p.types)
        + _counts("By outcome", "Outcome", p.outcomes)
        + _counts("By payload status", "Payload status", p.statuses)
        + "</section>\n"
    )


def _counts(title: str, label: str, counts: Counter[str]) -> str:
    if not counts:
        return ""
    rows = [(key, n) for key, n in sorted(counts.items())]
    return f"<h4>{_e(title)}</h4>\n" + _table((label, "Entries"), rows)


def _conversations(reading: _Reading, *, headers_only: bool) -> Iterator[str]:
    yield (
        '<section id="conversations"><h2>Conversations</h2>\n'
        f"<p>{_e(len(reading.conversations))} conversation(s)"
        + (
            f", and {_e(reading.unlisted_entries)} entries of further conversations not listed "
            f"(the report names at most {MAX_LISTED_CONVERSATIONS:,})"
            if reading.unlisted_entries
            else ""
        )
        + ".</p>\n"
    )
    listed: list[_Conversation] = []
    for conversation in reading.conversations.values():
        if conversation.events is None:
            listed.append(conversation)
        else:
            yield _timeline(conversation.id, conversation.events, headers_only=headers_only)
    if listed:
        yield (
            f"<h3>Listed without a timeline</h3>\n<p>The report draws at most "
            f"{MAX_DETAILED_CONVERSATIONS:,} timelines ({MAX_TIMELINE_EVENTS:,} entries between "
            "them); these conversations are in the other renderings and the bundle.</p>\n"
            + _table(
                ("Conversation", "Entries", "First seq", "Last seq"),
                [(c.id, c.entries, c.first_seq, c.last_seq) for c in listed],
            )
        )
    yield "</section>\n"


def _timeline(conversation: str, events: Sequence[TrailEvent], *, headers_only: bool) -> str:
    head = f"<article><h3>Conversation <code>{_e(conversation)}</code></h3>\n"
    unreadable = next((e.seq for e in events if epoch_ms(e.time) is None), None)
    if unreadable is not None:
        return (
            head + f'<p class="failure">No timeline: the time of seq {_e(unreadable)} is not an '
            "RFC 3339 time (the entry is malformed; verify the bundle).</p></article>\n"
        )
    s = summarize(events)
    o = s["overview"]
    taken = ", ".join(_who(a) for a in o["taken_over_by"]) or "nobody"
    items = [
        ("Entries", _e(f"{o['entries']} (seq {o['first_seq']} to {o['last_seq']})")),
        ("Started", _e(_t(o["started_at"]))),
        (
            "Ended",
            _e(
                f"{_t(o['ended_at']) or NONE}"
                + (f" ({o['resolution']})" if o["resolution"] else "")
            ),
        ),
        ("Channel", _e(o["channel"])),
        ("Customer", _e(_who(o["customer"]))),
        ("Handed off", _e(f"yes, taken over by {taken}" if o["handed_off"] else "no")),
    ]
    parts = [head, _dl(items)]
    for title, headers, build, source in _SECTIONS:
        items_of = source(s)
        if items_of:
            parts.append(f"<h4>{_e(title)}</h4>\n")
            parts.append(_table(headers, [build(i) for i in items_of], text_column=title))
    if headers_only:
        parts.append(
            '<p class="muted">Drawn from the entry headers alone: this profile renders no '
            "payload.</p>\n"
        )
    elif s["withheld"]:
        statuses = Counter(w["payload_status"] for w in s["withheld"])
        said = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
        parts.append(f'<p class="muted">Payloads not shown: {_e(said)}.</p>\n')
    parts.append("</article>\n")
    return "".join(parts)


# --- one conversation's sections (from summarize) -------------------------------------------


def _utterance(u: dict[str, Any]) -> list[object]:
    who = {"ai": "AI", "human": "Human", "customer": "Customer"}.get(u["speaker"], u["speaker"])
    return [_t(u["time"]), u["seq"], who, _who(u["author"]), u["text"]]


def _tool(t: dict[str, Any]) -> list[object]:
    history = " \u2192 ".join(str(h["status"]) for h in t["history"])
    return [_t(t["time"]), t["seq"], t["tool"], t["tool_type"], t["tool_call_id"], history]


def _access(a: dict[str, Any]) -> list[object]:
    r = a["resource"] or {}
    recipient = (a["recipient"] or {}).get("name") if a["disclosure"] else None
    return [
        _t(a["time"]),
        a["seq"],
        a["operation"],
        f"{r.get('system')}/{r.get('type')}/{r.get('id')}",
        ", ".join(map(str, a["fields"] or [])),
        str(a["classification"]).upper(),
        a["purpose"],
        recipient,
        _who(a["by"]),
    ]


def _redaction(r: dict[str, Any]) -> list[object]:
    return [
        _t(r["time"]),
        r["seq"],
        r["event_seq"],
        r["path"],
        r["entity_type"],
        r["operator"],
        "ledger guard" if r["by"] == "ledger" else "writer",
        r["policy"],
        r["stage"],
    ]


def _trigger(t: Any) -> str:
    if not isinstance(t, dict):
        return str(t)
    if t.get("type") == "uncertainty_threshold":
        return f"uncertainty ({t.get('score')} below threshold {t.get('threshold')})"
    if t.get("type") == "policy_trigger":
        return f"policy {t.get('policy_id')}"
    return str(t.get("type"))


def _escalation(x: dict[str, Any]) -> list[object]:
    seqs = ", ".join(NONE if q is None else str(q) for q in x["evidence_seqs"])
    triggers = "; ".join(_trigger(t) for t in x["triggers"])
    return [_t(x["time"]), x["seq"], x["escalation_id"], triggers, x["explanation"], seqs]


def _identity(i: dict[str, Any]) -> list[object]:
    claims = ", ".join(map(str, i["verified_claims"] or []))
    return [_t(i["time"]), i["seq"], _who(i["customer"]), i["method"], i["result"], claims]


def _sentiment(p: dict[str, Any]) -> list[object]:
    return [_t(p["time"]), p["seq"], p["score"], p["label"]]


def _suggestion(a: dict[str, Any]) -> list[object]:
    action = (a["action"] or {}).get("name") if isinstance(a["action"], dict) else a["action"]
    return [
        a["suggestion_id"],
        action,
        a["confidence"],
        a["decision"],
        _who(a["decided_by"]) if a["decided_by"] else None,
        _t(a["decided_at"]),
    ]


def _handoff(h: dict[str, Any]) -> list[object]:
    target = h.get("target") or {}
    action = h.get("productive_action")
    return [
        h["handoff_id"],
        target.get("queue") or target.get("skill") if isinstance(target, dict) else target,
        _t(h.get("requested_at")),
        _who(h["accepted_by"]) if h.get("accepted_by") else None,
        _t(h.get("accepted_at")),
        _t(h.get("productive_at")),
        action.get("kind") if isinstance(action, dict) else action,
        _t(h.get("released_at")),
        h.get("release_reason"),
    ]


def _timing(d: dict[str, Any]) -> list[object]:
    named = d["context_package_named"]
    said = (
        None
        if named is None
        else ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in named.items())
    )
    return [
        d["handoff_id"],
        _seconds(d["time_to_accept_seconds"]),
        _seconds(d["time_to_productive_takeover_seconds"]),
        said,
    ]


_Section = tuple[
    str,
    tuple[str, ...],
    Callable[[dict[str, Any]], list[object]],
    Callable[[dict[str, Any]], list[dict[str, Any]]],
]

_SECTIONS: Final[tuple[_Section, ...]] = (
    (
        "Transcript",
        ("Time (UTC)", "Seq", "Speaker", "Author", "Text"),
        _utterance,
        lambda s: list(s["transcript"]),
    ),
    (
        "Tools called",
        ("Time (UTC)", "Seq", "Tool", "Type", "Call", "Status"),
        _tool,
        lambda s: list(s["tools"]),
    ),
    (
        "Data touched",
        (
            "Time (UTC)",
            "Seq",
            "Operation",
            "Resource",
            "Fields",
            "Class",
            "Purpose",
            "Disclosed to",
            "By",
        ),
        _access,
        lambda s: list(s["data_access"]),
    ),
    (
        "Redactions",
        (
            "Time (UTC)",
            "Seq",
            "Of seq",
            "Path",
            "Entity",
            "Operator",
            "By",
            "Policy",
            "Stage",
        ),
        _redaction,
        lambda s: list(s["redactions"]),
    ),
    (
        "Why the AI escalated",
        ("Time (UTC)", "Seq", "Escalation", "Triggers", "Explanation", "Evidence seqs"),
        _escalation,
        lambda s: list(s["escalations"]),
    ),
    (
        "Identity verification",
        ("Time (UTC)", "Seq", "Customer", "Method", "Result", "Claims"),
        _identity,
        lambda s: list(s["identity"]),
    ),
    (
        "Sentiment",
        ("Time (UTC)", "Seq", "Score", "Label"),
        _sentiment,
        lambda s: list(s["sentiment"]),
    ),
    (
        "Suggested actions",
        ("Suggestion", "Action", "Confidence", "Decision", "Decided by", "At (UTC)"),
        _suggestion,
        lambda s: list(s["suggested_actions"]),
    ),
    (
        "Who took over, and when",
        (
            "Handoff",
            "To",
            "Requested",
            "Accepted by",
            "Accepted",
            "Productive",
            "First action",
            "Released",
            "Reason",
        ),
        _handoff,
        lambda s: list(s["handoffs"]),
    ),
    (
        "Timings (derived by the ledger from entry times)",
        ("Handoff", "Time to accept", "Time to productive takeover", "Context package named"),
        _timing,
        lambda s: list(s["derived"]["handoffs"]),
    ),
)


# --- HIPAA ----------------------------------------------------------------------------------


def _disclosures(reading: _Reading) -> str:
    headers = tuple(c.replace("_", " ").capitalize() for c in DISCLOSURE_COLUMNS)
    rows = [[r.get(c) for c in DISCLOSURE_COLUMNS] for r in reading.disclosures]
    more = (
        f"<p>And {_e(reading.more_disclosures)} more, in the CSV and JSON Lines renderings.</p>\n"
        if reading.more_disclosures
        else ""
    )
    body = (
        _table(headers, rows)
        if rows
        else "<p>No disclosure is recorded for this data subject in this export.</p>\n"
    )
    return (
        '<section id="disclosures"><h2>Accounting of disclosures (HIPAA 164.528)</h2>\n'
        "<p>Each disclosure: its date, the recipient, what was disclosed and why. A row marked "
        "<em>unverifiable</em> is a data access whose payload could not be read, so whether it "
        "was a disclosure cannot be told.</p>\n" + body + more + "</section>\n"
    )


def _access_report(accesses: Iterable[AccessRecord]) -> Iterator[str]:
    headers = tuple(c.capitalize() for c in ACCESS_COLUMNS)
    yield (
        '<section id="accesses"><h2>Access report (GDPR Art. 15)</h2>\n'
        "<p>When the data subject's records were accessed, and why. Who accessed them is not "
        "named (CJEU C-579/21).</p>\n<table><thead>"
        + _row(headers, header=True)
        + "</thead><tbody>\n"
    )
    count = 0
    for r in access_rows(accesses):
        count += 1
        yield _row([r.get(c) for c in ACCESS_COLUMNS])
    if not count:
        yield _row(["No access is recorded.", "", "", ""])
    yield "</tbody></table></section>\n"


# --- re-checking ----------------------------------------------------------------------------


def _recheck(ctx: ExportContext) -> str:
    bundle = shlex.quote(f"{ctx.log}-{ctx.profile}.zip")
    keys = "verifier-keys.txt"
    commands = (
        f"ledger verify-bundle {bundle} --verifier-keys-file {keys}\n"
        f"python3 ops/verify_bundle_standalone.py {bundle} --verifier-keys-file {keys}"
    )
    return (
        '<section id="recheck"><h2>How to re-check this</h2>\n'
        "<p>This page proves nothing by itself. The evidence bundle of the same export "
        f"(<code>{_e(bundle)}</code>; when it carries this page, as "
        "<code>reports/report.html</code>, with its SHA-256 in <code>manifest.json</code>, which "
        "the log's key signs) proves every entry it lists against the signed checkpoint, and "
        "that none of the selection is missing. Check it offline with either command (the "
        "second needs only Python 3 and PyNaCl):</p>\n"
        f"<pre>{_e(commands)}</pre>\n"
        f"<p><code>{keys}</code> holds the log's verifier key(s), one a line, as <em>you</em> "
        f"obtained them (<code>GET /v1/logs/{_e(ctx.log)}/verifier-key</code> earlier, or a "
        "published anchor), never from the bundle. Both exit 0 only when every check passes, "
        f"and the checkpoint they verify must be the one above: size {_e(ctx.tree_size)}, root "
        f"<code>{_e(b64(ctx.root))}</code>.</p></section>\n"
    )


# --- HTML pieces ----------------------------------------------------------------------------


def _e(value: object) -> str:
    """Escaped text; None as a dash."""
    return NONE if value is None else html.escape(str(value), quote=True)


def _code(value: object) -> str:
    return f"<code>{_e(value)}</code>"


def _dl(items: Sequence[tuple[str, str]]) -> str:
    """A definition list; the values are HTML already escaped by the caller."""
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>\n"


def _row(cells: Sequence[object], *, header: bool = False, text: int | None = None) -> str:
    tag = "th" if header else "td"
    out = []
    for index, cell in enumerate(cells):
        cls = ' class="text"' if index == text else ""
        status = f' class="{cell}"' if cell in ("failure", "success") and not header else ""
        out.append(f"<{tag}{cls or status}>{_e(cell)}</{tag}>")
    return "<tr>" + "".join(out) + "</tr>\n"


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, text_column: str = ""
) -> str:
    text = len(headers) - 1 if text_column == "Transcript" else None
    body = "".join(_row(r, text=text) for r in rows)
    return f"<table><thead>{_row(headers, header=True)}</thead><tbody>\n{body}</tbody></table>\n"


def _t(value: object) -> str | None:
    """``2026-11-20 09:14:01`` from an entry time (full precision is in the rows)."""
    return value[:19].replace("T", " ") if isinstance(value, str) else None


def _who(actor: Any) -> str:
    if not isinstance(actor, dict):
        return NONE if actor is None else str(actor)
    return f"{actor.get('id')} ({actor.get('kind')})"


def _seconds(value: float | None) -> str | None:
    if value is None:
        return None
    minutes, seconds = divmod(value, 60)
    return f"{int(minutes)}m {seconds:04.1f}s" if minutes else f"{seconds:.1f}s"
