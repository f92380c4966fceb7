"""What an auditor reads of a conversation at a glance, derived from its trail: who said what,
tools, data accessed, redactions, escalations, sentiment, identity checks, suggested actions and
their fate, who took over and when, and the timings the ledger computes itself.

Pure: a list of :class:`TrailEvent` in, plain JSON out. Every section names the ``seq`` of the
entries it comes from, so each line can be checked against its entry and inclusion proof.

Only payloads whose commitment matched (``payload_status == "verified"``) feed the sections; the
others are listed under ``withheld``. Times, types and the handoff ids of handoff events come
from the entry header (``event.time``, ``resource``), which is covered by the leaf hash and
survives an erasure, so the derived timings do too. They are never taken from what a writer
claims about durations (EVENTS.md, "Cross-event facts the ledger derives").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.services.ingest.prepare import REDACTIONS_FIELD

SPEAKERS = {
    "customer": "customer",
    "human_agent": "human",
    "system": "system",
    "ai_agent": "ai",
    "tool": "tool",
}
"""Author kind → the speaker an auditor sees in the transcript."""


@dataclass(frozen=True, slots=True)
class TrailEvent:
    """One entry of a trail, as the summary needs it."""

    seq: int
    type: str
    """The full type string, e.g. ``handoff.tool.call.v1``."""
    event_id: str
    time: str
    actor: dict[str, Any]
    resource: dict[str, Any] | None
    payload: dict[str, Any] | None
    """The decrypted ``data`` if its commitment matched, else None."""
    payload_status: str

    @property
    def name(self) -> str:
        """``tool.call`` for ``handoff.tool.call.v1`` (any major version)."""
        body = self.type.removeprefix("handoff.")
        return body.rsplit(".v", 1)[0] if ".v" in body else body

    @property
    def data(self) -> dict[str, Any]:
        return self.payload or {}


def summarize(events: Sequence[TrailEvent]) -> dict[str, Any]:
    """Every section of the at-a-glance view, in seq order within each section."""
    readable = [e for e in events if e.payload is not None]
    by_event_id = {e.event_id: e.seq for e in events}
    handoffs = _handoffs(events)
    escalations = _of(readable, "escalation.triggered", _escalation, by_event_id)
    return {
        "overview": _overview(events, handoffs),
        "transcript": [
            _utterance(e) for e in readable if e.name in ("message.created", "agent.reply")
        ],
        "tools": _tools(readable),
        "data_access": _of(readable, "data.access", _access),
        "disclosures": [
            _disclosure(e)
            for e in readable
            if e.name == "data.access" and e.data.get("disclosure") is True
        ],
        "redactions": _redactions(readable, by_event_id),
        "escalations": escalations,
        "sentiment": _of(readable, "sentiment.scored", _sentiment),
        "identity": _of(readable, "identity.verified", _identity),
        "suggested_actions": _suggestions(readable),
        "handoffs": handoffs,
        "derived": _derived(events, handoffs, escalations),
        "withheld": [
            {"seq": e.seq, "type": e.type, "payload_status": e.payload_status}
            for e in events
            if e.payload is None
        ],
    }


# --- helpers -------------------------------------------------------------------------------------


def _of(
    events: Iterable[TrailEvent], name: str, row: Callable[..., dict[str, Any]], *extra: Any
) -> list[dict[str, Any]]:
    return [row(e, *extra) for e in events if e.name == name]


def _at(e: TrailEvent) -> dict[str, Any]:
    return {"seq": e.seq, "time": e.time}


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def seconds_between(start: str, end: str) -> float:
    """``end - start`` in seconds, from two RFC 3339 UTC times as entries hold them."""
    return (_parse_time(end) - _parse_time(start)).total_seconds()


def _text(content: Any) -> str:
    """The text parts of a ``content`` object, joined; other parts as ``[type]``."""
    if not isinstance(content, dict):
        return ""
    pieces = []
    for part in content.get("parts", []):
        if isinstance(part, dict) and part.get("type") == "text":
            pieces.append(str(part.get("content", "")))
        elif isinstance(part, dict):
            pieces.append(f"[{part.get('type')}]")
    return "\n".join(pieces)


def _who(actor: Any) -> dict[str, Any] | None:
    """An actor without writer-specific extras: kind, id, and name/version for AI agents."""
    if not isinstance(actor, dict):
        return None
    return {k: actor[k] for k in ("kind", "id", "name", "version") if k in actor}


def _handoff_id(e: TrailEvent) -> str | None:
    """From the entry header (survives erasure), else from the payload."""
    if e.resource and e.resource.get("type") == "handoff":
        return str(e.resource.get("id"))
    value = e.data.get("handoff_id")
    return str(value) if value is not None else None


# --- sections ------------------------------------------------------------------------------------


def _utterance(e: TrailEvent) -> dict[str, Any]:
    author = e.data.get("author") or e.actor
    row = {
        **_at(e),
        "speaker": "ai"
        if e.name == "agent.reply"
        else SPEAKERS.get(str(author.get("kind")), str(author.get("kind"))),
        "author": _who(author),
        "message_id": e.data.get("message_id"),
        "text": _text(e.data.get("content")),
    }
    if e.name == "agent.reply":
        generation = e.data.get("generation") or {}
        row["model"] = generation.get("model")
        row["delivered"] = e.data.get("delivered")
    else:
        row["visibility"] = e.data.get("visibility")
    return row


def _tools(events: Iterable[TrailEvent]) -> list[dict[str, Any]]:
    """One row per tool call id, with its last status and every status it went through."""
    calls: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.name != "tool.call":
            continue
        call_id = str(e.data.get("tool_call_id"))
        tool = e.data.get("tool") or {}
        row = calls.setdefault(
            call_id,
            {
                **_at(e),
                "tool_call_id": call_id,
                "tool": tool.get("name"),
                "tool_type": tool.get("type"),
                "called_by": _who(e.actor),
                "history": [],
            },
        )
        row["status"] = e.data.get("status")
        row["history"].append({**_at(e), "status": e.data.get("status")})
    return list(calls.values())


def _access(e: TrailEvent) -> dict[str, Any]:
    d = e.data
    return {
        **_at(e),
        "operation": d.get("operation"),
        "resource": d.get("resource"),
        "fields": d.get("fields"),
        "classification": d.get("classification"),
        "purpose": d.get("purpose"),
        "disclosure": d.get("disclosure", False),
        "recipient": d.get("recipient"),
        "by": _who(e.actor),
    }


def _disclosure(e: TrailEvent) -> dict[str, Any]:
    """The four facts of a HIPAA 164.528 accounting: date, recipient, what, purpose."""
    d = e.data
    return {
        **_at(e),
        "recipient": d.get("recipient"),
        "resource": d.get("resource"),
        "fields": d.get("fields"),
        "purpose": d.get("purpose"),
    }


def _redactions(events: Iterable[TrailEvent], by_event_id: dict[str, int]) -> list[dict[str, Any]]:
    """The guard's own records inside masked payloads (``by: ledger``) and the writers'
    ``redaction.applied`` events (``by: writer``), each pointing at the event redacted."""
    rows: list[dict[str, Any]] = []
    for e in events:
        if e.name == "redaction.applied":
            target = str((e.data.get("target") or {}).get("event_id"))
            rows.extend(
                {
                    **_at(e),
                    "by": "writer",
                    "event_id": target,
                    "event_seq": by_event_id.get(target),
                    **_redaction(r),
                }
                for r in e.data.get("redactions", [])
            )
        for record in e.data.get(REDACTIONS_FIELD, []) or []:
            rows.append(
                {
                    **_at(e),
                    "by": "ledger",
                    "event_id": e.event_id,
                    "event_seq": e.seq,
                    **_redaction(record),
                }
            )
    return rows


def _redaction(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("path", "entity_type", "operator", "detector", "policy", "stage", "fingerprint")
    return {k: record.get(k) for k in keys}


def _escalation(e: TrailEvent, by_event_id: dict[str, int]) -> dict[str, Any]:
    d = e.data
    evidence = [str(x) for x in d.get("evidence_event_ids", [])]
    return {
        **_at(e),
        "escalation_id": d.get("escalation_id"),
        "triggers": d.get("triggers", []),
        "trigger_types": [t.get("type") for t in d.get("triggers", []) if isinstance(t, dict)],
        "explanation": d.get("explanation"),
        "evidence_event_ids": evidence,
        "evidence_seqs": [by_event_id.get(x) for x in evidence],
    }


def _sentiment(e: TrailEvent) -> dict[str, Any]:
    d = e.data
    return {
        **_at(e),
        "score": d.get("score"),
        "label": d.get("label"),
        "target": d.get("target"),
        "detector": d.get("detector"),
    }


def _identity(e: TrailEvent) -> dict[str, Any]:
    """Method, result and the names of the claims: never a secret (the catalogue refuses them
    at ingest, and only these fields are shown)."""
    d = e.data
    return {
        **_at(e),
        "customer": _who(d.get("customer")),
        "method": d.get("method"),
        "result": d.get("result"),
        "verifier": _who(d.get("verifier")),
        "verified_claims": d.get("verified_claims", []),
    }


def _suggestions(events: Iterable[TrailEvent]) -> list[dict[str, Any]]:
    """Each proposal joined with its resolution; ``decision: pending`` if none was recorded."""
    rows: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.name not in ("suggested_action.proposed", "suggested_action.resolved"):
            continue
        sid = str(e.data.get("suggestion_id"))
        row = rows.setdefault(
            sid,
            {
                "suggestion_id": sid,
                "action": None,
                "rationale": None,
                "confidence": None,
                "proposed_seq": None,
                "proposed_at": None,
                "decision": "pending",
                "decided_by": None,
                "decided_seq": None,
                "decided_at": None,
            },
        )
        if e.name == "suggested_action.proposed":
            row.update(
                action=e.data.get("action"),
                rationale=e.data.get("rationale"),
                confidence=e.data.get("confidence"),
                proposed_seq=e.seq,
                proposed_at=e.time,
                proposed_by=_who(e.actor),
            )
        else:
            row.update(
                decision=e.data.get("decision"),
                decided_by=_who(e.data.get("decided_by")),
                decided_seq=e.seq,
                decided_at=e.time,
            )
    return list(rows.values())


def _handoffs(events: Iterable[TrailEvent]) -> list[dict[str, Any]]:
    """Per handoff id: requested (to which queue, with what package), accepted by whom,
    the productive takeover, the release. The first event of each kind counts."""
    rows: dict[str, dict[str, Any]] = {}
    for e in events:
        stage = {
            "handoff.requested": "requested",
            "handoff.accepted": "accepted",
            "takeover.productive": "productive",
            "handoff.released": "released",
        }.get(e.name)
        hid = _handoff_id(e) if stage else None
        if stage is None or hid is None:
            continue
        row = rows.setdefault(hid, {"handoff_id": hid})
        if f"{stage}_seq" in row:
            continue
        row[f"{stage}_seq"], row[f"{stage}_at"] = e.seq, e.time
        d = e.data
        if stage == "requested":
            row.update(
                escalation_id=d.get("escalation_id"),
                target=d.get("target"),
                requested_by=_who(e.actor),
                context_package=d.get("context_package"),
            )
        elif stage == "accepted":
            row["accepted_by"] = _who(d.get("assignee")) or _who(e.actor)
        elif stage == "productive":
            row.update(
                productive_by=_who(d.get("by")) or _who(e.actor), productive_action=d.get("action")
            )
        else:
            row["release_reason"] = d.get("reason")
    return list(rows.values())


def _named(package: Any) -> dict[str, bool] | None:
    """Whether the context package the human got named identity, sentiment and tools."""
    if not isinstance(package, dict):
        return None
    return {
        "identity": bool(package.get("identity")),
        "sentiment": bool(package.get("sentiment")),
        "tools": bool(package.get("tool_calls_attempted")),
    }


def _derived(
    events: Sequence[TrailEvent], handoffs: list[dict[str, Any]], escalations: list[dict[str, Any]]
) -> dict[str, Any]:
    per_handoff = []
    for h in handoffs:
        requested = h.get("requested_at")
        accepted, productive = h.get("accepted_at"), h.get("productive_at")
        per_handoff.append(
            {
                "handoff_id": h["handoff_id"],
                "time_to_accept_seconds": (
                    seconds_between(requested, accepted) if requested and accepted else None
                ),
                "time_to_productive_takeover_seconds": (
                    seconds_between(requested, productive) if requested and productive else None
                ),
                "context_package_named": _named(h.get("context_package")),
            }
        )
    mix: dict[str, int] = {}
    for esc in escalations:
        for kind in esc["trigger_types"]:
            mix[str(kind)] = mix.get(str(kind), 0) + 1
    scores = [
        e.data["score"]
        for e in events
        if e.name == "sentiment.scored" and isinstance(e.data.get("score"), int | float)
    ]
    return {
        "handoffs": per_handoff,
        "trigger_mix": mix,
        "sentiment_change": round(scores[-1] - scores[0], 6) if len(scores) > 1 else None,
        "duration_seconds": seconds_between(events[0].time, events[-1].time) if events else None,
    }


def _overview(events: Sequence[TrailEvent], handoffs: list[dict[str, Any]]) -> dict[str, Any]:
    started = next((e for e in events if e.name == "conversation.started"), None)
    ended = next((e for e in reversed(events) if e.name == "conversation.ended"), None)
    return {
        "entries": len(events),
        "first_seq": events[0].seq if events else None,
        "last_seq": events[-1].seq if events else None,
        "started_at": started.time if started else (events[0].time if events else None),
        "ended_at": ended.time if ended else None,
        "channel": started.data.get("channel") if started else None,
        "customer": _who(started.data.get("customer")) if started else None,
        "resolution": ended.data.get("resolution") if ended else None,
        "ended_by": _who(ended.actor) if ended else None,
        "handed_off": any("requested_seq" in h for h in handoffs),
        "taken_over_by": [h["accepted_by"] for h in handoffs if h.get("accepted_by")],
    }
