"""``ledger trail LOG CONVERSATION [--json]``: a conversation's trail on a terminal.

Reads the database directly. The read is recorded in the tenant's system log, and committed,
before anything is read or printed (PCI DSS 10.2.1.3: fail closed, as the API does).
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Callable
from typing import Any

from ledger.cli.common import add_command, engine, key_ring, now, operator
from ledger.cli.errors import EXIT_INTEGRITY, EXIT_OK
from ledger.cli.text import printable, printable_data
from ledger.settings import Settings


def cmd_trail(settings: Settings, args: argparse.Namespace) -> int:

    import orjson

    from ledger.services.system_log import Access, SystemLog
    from ledger.services.trails.read import read_trail_for
    from ledger.storage.db import read_only, unit_of_work
    from ledger.storage.group_commit import GroupCommitter
    from ledger.storage.logs import get_log

    eng, keys = engine(settings, log=args.log), key_ring(settings)
    # The read is recorded, and committed, before anything is read (fail closed, as the API).
    with (
        GroupCommitter(eng, signers=keys.signers, data_keys=keys.data_keys) as committer,
        unit_of_work(eng) as conn,
    ):
        read_only(conn)
        body = read_trail_for(
            conn,
            SystemLog.committing(committer, eng),
            get_log(conn, args.log),
            args.conversation,
            reader=operator(),
            access=Access(client="cli", host=socket.gethostname()),
            data_keys=keys.data_keys,
            now=now(),
        )
    if args.json:
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    else:
        print(render(body))
    return EXIT_OK if body["back_links"]["status"] == "intact" else EXIT_INTEGRITY


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "trail",
        cmd_trail,
        "a conversation's trail: sections, back-link check, entries (read is logged)",
    )
    p.add_argument("log")
    p.add_argument("conversation")
    p.add_argument("--json", action="store_true", help="the API's JSON body, with proofs")


# --- the terminal view ---------------------------------------------------------------------------


def render(body: dict[str, Any]) -> str:
    """The trail as sections an auditor reads top to bottom; ``--json`` has everything. Every
    value from an event is shown escaped (``printable_data``): writers' text never drives the
    terminal."""
    checkpoint = body["checkpoint"]  # a signed note: its own lines, each shown escaped
    body = printable_data(body)
    s = body["summary"]
    o = s["overview"]
    links = body["back_links"]
    lines = [
        f"Trail of conversation {body['conversation']} in log {body['log']}",
        f"  {o['entries']} entries, seq {o['first_seq']}..{o['last_seq']}; "
        f"started {_t(o['started_at'])}, ended {_t(o['ended_at'])}"
        + (f" ({o['resolution']})" if o.get("resolution") else ""),
        f"  channel {o['channel']}, customer {_id(o['customer'])}; "
        + (
            f"taken over by {', '.join(_id(a) for a in o['taken_over_by'])}"
            if o["handed_off"]
            else "no handoff"
        ),
        f"  read at checkpoint size {body['tree_size']}; every entry has an inclusion proof "
        "against it (--json)",
        f"Back-links: {links['status'].upper()}"
        + (
            ""
            if links["problems"]
            else " (first entry names no predecessor, each next names the one before)"
        ),
    ]
    lines += [f"  ! {p['message']}" for p in links["problems"]]
    for title, rows, fmt in _SECTIONS:
        items = s[rows] if isinstance(rows, str) else rows(s)
        if items:
            lines.append(title)
            lines += ["  " + line for item in items for line in fmt(item).splitlines()]
    if s["withheld"]:
        lines.append("Payloads not shown")
        lines += [f"  seq {w['seq']} {w['type']}: {w['payload_status']}" for w in s["withheld"]]
    lines.append("Entries (seq, time, type, actor, payload, leaf hash)")
    lines += ["  " + _entry(e) for e in body["entries"]]
    lines.append("Checkpoint")
    lines += ["  " + printable(line) for line in checkpoint.rstrip("\n").splitlines()]
    return "\n".join(lines)


def _t(value: str | None) -> str:
    """``2026-11-20 09:14:01`` from an entry time; sub-second digits are in --json."""
    return value[:19].replace("T", " ") if value else "-"


def _id(actor: dict[str, Any] | None) -> str:
    return str(actor.get("id")) if actor else "-"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    minutes, seconds = divmod(value, 60)
    return f"{int(minutes)}m{seconds:04.1f}s" if minutes else f"{seconds:.1f}s"


def _utterance(u: dict[str, Any]) -> str:
    who = {"ai": "AI", "human": "HUMAN", "customer": "CUSTOMER"}.get(u["speaker"], u["speaker"])
    text = " ".join(str(u["text"]).split())
    return f"{_t(u['time'])} [{u['seq']}] {who} {_id(u['author'])}: {text}"


def _tool(t: dict[str, Any]) -> str:
    history = " -> ".join(h["status"] for h in t["history"])
    return (
        f"{_t(t['time'])} [{t['seq']}] {t['tool']} ({t['tool_type']}) {t['tool_call_id']}: "
        f"{history}"
    )


def _access(a: dict[str, Any]) -> str:
    r = a["resource"] or {}
    line = (
        f"{_t(a['time'])} [{a['seq']}] {a['operation']} {r.get('system')}/{r.get('type')}/"
        f"{r.get('id')} {a['fields']} {str(a['classification']).upper()} by {_id(a['by'])}; "
        f"purpose: {a['purpose']}"
    )
    if a["disclosure"]:
        line += f"; DISCLOSED to {(a['recipient'] or {}).get('name')}"
    return line


def _redaction(r: dict[str, Any]) -> str:
    by = "ledger guard" if r["by"] == "ledger" else "writer"
    return (
        f"{_t(r['time'])} [{r['seq']}] {r['entity_type']} at {r['path']} of seq "
        f"{r['event_seq']}: {r['operator']} by {by} ({r['policy']}, {r['stage']})"
    )


def _escalation(e: dict[str, Any]) -> str:
    triggers = ", ".join(_trigger(t) for t in e["triggers"])
    return (
        f"{_t(e['time'])} [{e['seq']}] {e['escalation_id']}: {triggers}\n"
        f"  why: {e['explanation']}\n  evidence: seq {e['evidence_seqs']}"
    )


def _trigger(t: dict[str, Any]) -> str:
    if t.get("type") == "uncertainty_threshold":
        return f"uncertainty_threshold ({t.get('score')} < {t.get('threshold')})"
    if t.get("type") == "policy_trigger":
        return f"policy_trigger ({t.get('policy_id')})"
    return str(t.get("type"))


def _sentiment(p: dict[str, Any]) -> str:
    return f"{_t(p['time'])} [{p['seq']}] {p['score']:+.2f} {p['label']}"


def _identity(i: dict[str, Any]) -> str:
    return (
        f"{_t(i['time'])} [{i['seq']}] {_id(i['customer'])}: {i['method']} -> "
        f"{i['result']} ({', '.join(i['verified_claims'])}) by {_id(i['verifier'])}"
    )


def _suggestion(a: dict[str, Any]) -> str:
    name = (a["action"] or {}).get("name")
    fate = a["decision"].upper()
    if a["decided_by"]:
        fate += f" by {_id(a['decided_by'])} at {_t(a['decided_at'])}"
    return f"{a['suggestion_id']} {name} (confidence {a['confidence']}): {fate}"


def _handoff(h: dict[str, Any]) -> str:
    target = h.get("target") or {}
    parts = [
        f"{h['handoff_id']} to {target.get('queue') or target.get('skill') or '-'}: "
        f"requested {_t(h.get('requested_at'))}"
    ]
    if h.get("accepted_at"):
        parts.append(f"accepted by {_id(h.get('accepted_by'))} {_t(h['accepted_at'])}")
    if h.get("productive_at"):
        action = (h.get("productive_action") or {}).get("kind")
        parts.append(f"productive {_t(h['productive_at'])} ({action})")
    if h.get("released_at"):
        parts.append(f"released {_t(h['released_at'])} ({h.get('release_reason')})")
    return "; ".join(parts)


def _timing(d: dict[str, Any]) -> str:
    named = d["context_package_named"]
    said = (
        "-" if named is None else ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in named.items())
    )
    return (
        f"{d['handoff_id']}: time to accept {_seconds(d['time_to_accept_seconds'])}, "
        f"to productive takeover {_seconds(d['time_to_productive_takeover_seconds'])}; "
        f"context package named {said}"
    )


def _entry(e: dict[str, Any]) -> str:
    event = e["entry"].get("event", {})
    return (
        f"{e['seq']:>8} {_t(event.get('time'))} {event.get('type')} "
        f"{_id(e['entry'].get('actor'))} payload {e['payload_status']} "
        f"leaf {e['leaf_hash'][:12]}…"
    )


def _derived_rows(s: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = s["derived"]["handoffs"]
    return rows


_SECTIONS: list[
    tuple[
        str, str | Callable[[dict[str, Any]], list[dict[str, Any]]], Callable[[dict[str, Any]], str]
    ]
] = [
    ("Transcript", "transcript", _utterance),
    ("Tools called", "tools", _tool),
    ("Data accessed", "data_access", _access),
    ("Redactions", "redactions", _redaction),
    ("Escalation", "escalations", _escalation),
    ("Sentiment", "sentiment", _sentiment),
    ("Identity verification", "identity", _identity),
    ("Suggested actions", "suggested_actions", _suggestion),
    ("Handoffs", "handoffs", _handoff),
    ("Timings (derived by the ledger)", _derived_rows, _timing),
]
