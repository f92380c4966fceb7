"""OCSF 1.7.0 for security tools and SIEMs: one event a line (JSON Lines, RFC 8785 canonical).

Each entry becomes one event of the class that fits it (the schema: schema.ocsf.io/1.7.0,
github.com/ocsf/ocsf-schema tag ``1.7.0``):

=========================================  =====================  ===============================
entry type                                 OCSF class             activity
=========================================  =====================  ===============================
``ledger.*.read.v1`` (trail, entries,      API Activity 6003      Read (2)
entry read), ``ledger.verification.run``
recorded as intact, and every other
``ledger.*`` call (log / key / export /
anchor / erasure records)                                         Create / Update / Delete by verb
``handoff.data.access.v*``                 Datastore Activity     Read / Query / Write / Delete
                                           6005                   from ``operation``
``ledger.auth.failed.v1``,                 Authentication 3002    Logon (1), status Failure
``ledger.access.denied.v1``
``handoff.identity.verified.v*``           Authentication 3002    Other (99): identity check
``ledger.credential.created|revoked.v1``   Account Change 3001    Create (1) / Disable (5)
``ledger.service.started|stopped.v1``      Application Lifecycle  Start (3) / Stop (4)
                                           6002
``ledger.verification.run.v1``, failure    Detection Finding      Create (1), severity High
                                           2004
any other ``handoff.*`` event              Base Event 0           Other (99), named by the event
=========================================  =====================  ===============================

Why Base Event for the rest of the conversation (messages, replies, reasoning, tool calls,
escalations, handoffs): they record what happened in a support conversation, not a security
activity any OCSF class describes, and the schema defines Base Event for exactly that ("events
that are not otherwise defined by the schema"). Forcing them into API Activity would make SIEM
rules that count API calls fire on chat messages. ``activity_name`` names the event
(``handoff.accepted``) and ``unmapped.ledger`` keeps its actor and resource.

Every event carries the required base attributes (``class_uid``, ``category_uid``,
``activity_id``, ``type_uid = class_uid * 100 + activity_id``, ``severity_id``, ``time`` in epoch
milliseconds of the event time, ``metadata`` {version, product}) and the required attributes of
its class; ``status``/``status_id`` come from the entry's outcome (a finding's status is the
finding's own: New). Only attributes the class defines are set at the top level; everything the
ledger knows beyond them, among it the proof handles ``seq`` and ``leaf_hash``, is under
``unmapped.ledger`` (``metadata.sequence`` repeats the seq, ``metadata.uid`` is
``origin#seq``, unique across logs).

Payloads add detail (the caller's address, fields accessed, the verification result) where the
profile carries them; ``pci-dss-10`` is mapped from entry headers alone.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

import ledger
from ledger.core.canonical import canonicalize
from ledger.core.entry import b64
from ledger.services.exports.formats._common import chunked, epoch_ms, readable_payload
from ledger.services.exports.model import ExportContext, ExportedEntry
from ledger.services.exports.rows import (
    actor_of,
    compact_resource,
    event_of,
    is_data_access,
    outcome_of,
    writer_label,
    writer_of,
)

OCSF_VERSION: Final = "1.7.0"
PRODUCT: Final = {
    "name": "Handoff Ledger",
    "vendor_name": "Handoff Ledger",
    "version": ledger.__version__,
}

API_ACTIVITY: Final = 6003
DATASTORE_ACTIVITY: Final = 6005
AUTHENTICATION: Final = 3002
ACCOUNT_CHANGE: Final = 3001
APPLICATION_LIFECYCLE: Final = 6002
DETECTION_FINDING: Final = 2004
BASE_EVENT: Final = 0

CLASSES: Final[Mapping[int, tuple[str, int, str]]] = {
    API_ACTIVITY: ("API Activity", 6, "Application Activity"),
    DATASTORE_ACTIVITY: ("Datastore Activity", 6, "Application Activity"),
    AUTHENTICATION: ("Authentication", 3, "Identity & Access Management"),
    ACCOUNT_CHANGE: ("Account Change", 3, "Identity & Access Management"),
    APPLICATION_LIFECYCLE: ("Application Lifecycle", 6, "Application Activity"),
    DETECTION_FINDING: ("Detection Finding", 2, "Findings"),
    BASE_EVENT: ("Base Event", 0, "Uncategorized"),
}
"""class_uid → (class caption, category_uid, category caption)."""

OTHER: Final = 99
SEVERITY: Final = {1: "Informational", 2: "Low", 3: "Medium", 4: "High"}
STATUS: Final = {"success": (1, "Success"), "failure": (2, "Failure"), "unknown": (0, "Unknown")}
USER_TYPES: Final = {
    "customer": (1, "User"),
    "human_agent": (1, "User"),
    "system": (3, "System"),
    "tool": (4, "Service"),
    "ai_agent": (OTHER, "AI Agent"),
}
"""An actor's kind → OCSF ``user.type_id`` and its caption (Other for an AI agent)."""

_API_VERBS: Final = {
    "read": (2, "Read"),
    "created": (1, "Create"),
    "generated": (1, "Create"),
    "anchored": (1, "Create"),
    "run": (1, "Create"),
    "recorded": (1, "Create"),
    "placed": (1, "Create"),
    "rotated": (3, "Update"),
    "updated": (3, "Update"),
    "changed": (3, "Update"),
    "released": (3, "Update"),
    "deleted": (4, "Delete"),
    "destroyed": (4, "Delete"),
    "erased": (4, "Delete"),
    "purged": (4, "Delete"),
}
"""The last word of a ``ledger.*`` event's name → API Activity's activity."""
_DATASTORE_OPERATIONS: Final = {
    "read": (1, "Read"),
    "search": (4, "Query"),
    "write": (5, "Write"),
    "delete": (7, "Delete"),
    "export": (OTHER, "Export"),
}
_VERSION_SUFFIX: Final = re.compile(r"\.v[0-9]+$")
_IDENTITY_RESULTS: Final = {
    "verified": (1, "Success"),
    "failed": (2, "Failure"),
    "partial": (OTHER, "Partial"),
}


def render_ocsf(ctx: ExportContext, entries: Iterable[ExportedEntry]) -> Iterator[bytes]:
    """One canonical OCSF event a line, in the entries' order."""
    return chunked(canonicalize(ocsf_event(ctx, e)) + b"\n" for e in entries)


def event_name(event_type: str) -> str:
    """``trail.read`` for ``ledger.trail.read.v1``, ``data.access`` for
    ``handoff.data.access.v1``."""
    body = event_type.split(".", 1)[1] if "." in event_type else event_type
    return _VERSION_SUFFIX.sub("", body)


def ocsf_event(ctx: ExportContext, e: ExportedEntry) -> dict[str, Any]:
    """The OCSF event of one entry."""
    event_type = str(event_of(e).get("type", ""))
    return _mapper(event_type, outcome_of(e))(ctx, e, readable_payload(ctx, e))


_Mapper = Callable[[ExportContext, ExportedEntry, dict[str, Any] | None], dict[str, Any]]


def _mapper(event_type: str, outcome: str) -> _Mapper:
    name = event_name(event_type)
    if event_type.startswith("ledger."):
        if name == "verification.run" and outcome == "failure":
            return _detection_finding
        return _LEDGER_CLASSES.get(name, _api_activity)
    if is_data_access(event_type):
        return _datastore_activity
    return _identity_verification if name == "identity.verified" else _base_event


# --- the classes ----------------------------------------------------------------------------


def _api_activity(
    ctx: ExportContext, e: ExportedEntry, data: dict[str, Any] | None
) -> dict[str, Any]:
    """The ledger's own API: reads of the trail, recorded verification runs, admin changes."""
    event = event_of(e)
    name = event_name(str(event.get("type", "")))
    activity_id, activity = _API_VERBS.get(name.rsplit(".", 1)[-1], (OTHER, name))
    out = _base(ctx, e, API_ACTIVITY, activity_id, activity, severity_id=1)
    out.update(
        actor=_actor(actor_of(e)),
        api={
            "operation": name,
            "service": {"name": PRODUCT["name"]},
            "request": {"uid": str(event.get("id"))},
        },
        src_endpoint=_caller(data),
        dst_endpoint={"name": str(event.get("source"))},
    )
    resource = _resource_details(e.entry.get("resource"))
    if resource:
        out["resources"] = [resource]
    request = _http_request(data)
    if request:
        out["http_request"] = request
    return out


def _datastore_activity(
    ctx: ExportContext, e: ExportedEntry, data: dict[str, Any] | None
) -> dict[str, Any]:
    """Data a writer's agent accessed (``handoff.data.access``)."""
    event = event_of(e)
    operation = str((data or {}).get("operation", ""))
    activity_id, activity = _DATASTORE_OPERATIONS.get(operation, (0, "Unknown"))
    out = _base(ctx, e, DATASTORE_ACTIVITY, activity_id, activity, severity_id=1)
    out.update(
        actor=_actor(actor_of(e)),
        src_endpoint={"name": str(event.get("source"))},
    )
    resource = e.entry.get("resource")
    if isinstance(resource, dict) and resource.get("system") is not None:
        # The writer names the system it read, not its engine: the database type is unknown.
        out["database"] = {"name": str(resource["system"]), "type_id": 0, "type": "Unknown"}
    if data is not None:
        recipient = data.get("recipient")
        out["unmapped"]["ledger"].update(
            fields=data.get("fields"),
            classification=data.get("classification"),
            purpose=data.get("purpose"),
            disclosure=data.get("disclosure", False),
            recipient=recipient.get("name") if isinstance(recipient, dict) else None,
        )
    return out


def _authentication_failure(
    ctx: ExportContext, e: ExportedEntry, data: dict[str, Any] | None
) -> dict[str, Any]:
    """An invalid access attempt (PCI DSS 10.2.1.4): a bad token (``auth.failed``: who tried is
    unknown) or a valid credential used beyond its log or role (``access.denied``)."""
    event = event_of(e)
    name = event_name(str(event.get("type", "")))
    out = _base(ctx, e, AUTHENTICATION, 1, "Logon", severity_id=3)
    if name == "auth.failed":
        # Nobody was authenticated: the entry's actor is the ledger that recorded the failure.
        out["user"] = {"name": "unknown", "type_id": 0, "type": "Unknown"}
    else:
        out["user"] = _user(actor_of(e))
    out["src_endpoint"] = _caller(data)
    out["dst_endpoint"] = {"name": str(event.get("source"))}
    resource = e.entry.get("resource")
    if isinstance(resource, dict) and resource.get("id") is not None:
        out["service"] = {"name": PRODUCT["name"], "uid": str(resource["id"])}
    if data is not None:
        detail = data.get("reason")
        if detail is None and data.get("needed_roles") is not None:
            detail = "access denied: needs role " + " or ".join(map(str, data["needed_roles"]))
        if detail is not None:
            out["status_detail"] = str(detail)
    return out


def _identity_verification(
    ctx: ExportContext, e: ExportedEntry, data: dict[str, Any] | None
) -> dict[str, Any]:
    """A customer's identity checked in a conversation (OTP, KBA, SSO ...): the customer is
    the ``user`` (from the entry's resource, so it survives erasure), the verifier the actor."""
    event = event_of(e)
    out = _base(ctx, e, AUTHENTICATION, OTHER, "Identity Verification", severity_id=1)
    resource = e.entry.get("resource") or {}
    out["user"] = _user({"kind": "customer", "id": resource.get("id", "unknown")})
    out["actor"] = _actor(actor_of(e))
    out["src_endpoint"] = {"name": str(event.get("source"))}
    if data is not None:
        if data.get("method") is not None:
            out["auth_protocol_id"] = OTHER
            out["auth_protocol"] = str(data["method"])
        result = _IDENTITY_RESULTS.get(str(data.get("result")))
        if result is not None:
            out["status_id"], out["status"] = result
        out["unmapped"]["ledger"]["verified_claims"] = data.get("verified_claims")
    return out


def _account_change(
    ctx: ExportContext, e: ExportedEntry, data: dict[str, Any] | None
) -> dict[str, Any]:
    """A credential created or revoked (PCI DSS 10.2.1.5): the credential is the account."""
    name = event_name(str(event_of(e).get("type", "")))
    activity_id, activity = (5, "Disable") if name.endswith(".revoked") else (1, "Create")
    out = _base(ctx, e, ACCOUNT_CHANGE, activity_id, activity, severity_id=1)
    resource = e.entry.get("resource") or {}
    user: dict[str, Any] = {
        "uid": f"credential:{resource.get('id', 'unknown')}",
        "type_id": OTHER,
        "type": "API Credential",
    }
    if data is not None and data.get("label") is not None:
        user["name"] = str(data["label"])
    out["user"] = user
    out["actor"] = _actor(actor_of(e))
    if data is not None and data.get("role") is not None:
        out["unmapped"]["ledger"]["role"] = data["role"]
    return out


def _application_lifecycle(
    ctx: ExportContext, e: ExportedEntry, data: dict[str, Any] | None
) -> dict[str, Any]:
    """Audit logging started or stopped in a server process (PCI DSS 10.2.1.6)."""
    name = event_name(str(event_of(e).get("type", "")))
    activity_id, activity = (4, "Stop") if name.endswith(".stopped") else (3, "Start")
    out = _base(ctx, e, APPLICATION_LIFECYCLE, activity_id, activity, severity_id=1)
    app: dict[str, Any] = {"name": PRODUCT["name"], "vendor_name": PRODUCT["vendor_name"]}
    if data is not None:
        if data.get("version") is not None:
            app["version"] = str(data["version"])
        if data.get("instance") is not None:
            app["uid"] = str(data["instance"])
    out["app"] = app
    return out


def _detection_finding(
    ctx: ExportContext, e: ExportedEntry, data: dict[str, Any] | None
) -> dict[str, Any]:
    """A verification run that did not find the log intact (PCI DSS 10.3.4, 10.7.2)."""
    event = event_of(e)
    out = _base(ctx, e, DETECTION_FINDING, 1, "Create", severity_id=4)
    # A finding's status is its own lifecycle (New, In Progress, ...), not the outcome.
    out["status_id"], out["status"] = 1, "New"
    time = out["time"]
    resource = e.entry.get("resource") or {}
    logs = [s for s in str(resource.get("id", "")).split(",") if s and s != "none"]
    out["finding_info"] = {
        "uid": f"{ctx.origin}#{e.seq}",
        "title": "Ledger integrity verification failed",
        "desc": "A verification run did not find the log intact: an entry, a proof or a "
        "signed checkpoint does not check out, or the run could not complete.",
        "types": ["Integrity Failure"],
        "created_time": time,
    }
    out["is_alert"] = True
    out["actor"] = _actor(actor_of(e))
    if logs:
        out["resources"] = [{"uid": log, "type": "log"} for log in logs]
    if data is not None:
        out["unmapped"]["ledger"]["verification"] = {
            "status": data.get("status"),
            "logs": data.get("logs"),
        }
    out["message"] = f"verification run {event.get('id')}: logs {', '.join(logs) or '-'} not intact"
    return out


def _base_event(
    ctx: ExportContext, e: ExportedEntry, data: dict[str, Any] | None
) -> dict[str, Any]:
    """Conversation events no OCSF class describes (see the module's docstring)."""
    name = event_name(str(event_of(e).get("type", "")))
    return _base(ctx, e, BASE_EVENT, OTHER, name, severity_id=1)


_LEDGER_CLASSES: Final[Mapping[str, _Mapper]] = {
    "auth.failed": _authentication_failure,
    "access.denied": _authentication_failure,
    "credential.created": _account_change,
    "credential.revoked": _account_change,
    "service.started": _application_lifecycle,
    "service.stopped": _application_lifecycle,
}
"""The ``ledger.*`` events of another class than API Activity (a failed verification run
aside: a Detection Finding)."""


# --- shared attributes ----------------------------------------------------------------------


def _base(
    ctx: ExportContext,
    e: ExportedEntry,
    class_uid: int,
    activity_id: int,
    activity_name: str,
    *,
    severity_id: int,
) -> dict[str, Any]:
    """The base attributes every class requires, the status from the outcome, and the
    ledger's own facts under ``unmapped.ledger``."""
    class_name, category_uid, category_name = CLASSES[class_uid]
    event, actor = event_of(e), actor_of(e)
    outcome = outcome_of(e)
    status_id, status = STATUS[outcome]
    time = epoch_ms(event.get("time"))
    received = epoch_ms(e.entry.get("received_at"))
    metadata: dict[str, Any] = {
        "version": OCSF_VERSION,
        "product": dict(PRODUCT),
        "uid": f"{ctx.origin}#{e.seq}",
        "original_event_uid": str(event.get("id")),
        "event_code": str(event.get("type")),
        "log_name": ctx.log,
        "log_provider": PRODUCT["name"],
        "sequence": e.seq,
        "original_time": str(event.get("time")),
        "correlation_uid": str(event.get("conversation")),
    }
    if received is not None:
        metadata["logged_time"] = received
    resource = compact_resource(e.entry.get("resource"))
    return {
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "category_name": category_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity_name if activity_id != OTHER else 'Other'}",
        "severity_id": severity_id,
        "severity": SEVERITY[severity_id],
        "time": time if time is not None else (received or 0),
        "timezone_offset": 0,
        "status_id": status_id,
        "status": status,
        "message": f"{event.get('type')} by {actor.get('kind')}:{actor.get('id')}"
        + (f" on {resource}" if resource else "")
        + f": {outcome}",
        "metadata": metadata,
        "unmapped": {
            "ledger": {
                "seq": e.seq,
                "leaf_hash": b64(e.leaf_hash),
                "log": ctx.log,
                "origin": ctx.origin,
                "event_id": event.get("id"),
                "event_type": event.get("type"),
                "source": event.get("source"),
                "conversation": event.get("conversation"),
                "received_at": e.entry.get("received_at"),
                "actor": {"kind": actor.get("kind"), "id": actor.get("id")},
                "outcome": e.entry.get("outcome"),
                "resource": resource,
                "writer": writer_label(writer_of(e)),
                "payload_status": e.payload_status,
            }
        },
    }


def _user(actor: dict[str, Any]) -> dict[str, Any]:
    type_id, caption = USER_TYPES.get(str(actor.get("kind")), (0, "Unknown"))
    return {"uid": str(actor.get("id")), "type_id": type_id, "type": caption}


def _actor(actor: dict[str, Any]) -> dict[str, Any]:
    return {"user": _user(actor)}


def _resource_details(resource: object) -> dict[str, Any] | None:
    if not isinstance(resource, dict) or not resource:
        return None
    out: dict[str, Any] = {}
    if resource.get("id") is not None:
        out["uid"] = str(resource["id"])
    if resource.get("name") is not None:
        out["name"] = str(resource["name"])
    if not out:
        out["name"] = str(compact_resource(resource))
    if resource.get("type") is not None:
        out["type"] = str(resource["type"])
    return out


def _caller(data: dict[str, Any] | None) -> dict[str, Any]:
    """Where a call to the ledger came from, as its payload recorded it (the client's address
    or ``cli``, and the host a command ran on). Without the payload the entry header does not
    say (the writer of these entries is the ledger itself): ``name: unknown``."""
    data = data or {}
    out: dict[str, Any] = {}
    client = data.get("client")
    if isinstance(client, str) and client:
        try:
            out["ip"] = str(ipaddress.ip_address(client))
        except ValueError:
            out["name"] = client
    if isinstance(data.get("host"), str):
        out["hostname"] = data["host"]
    return out or {"name": "unknown"}


def _http_request(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if not data or not isinstance(data.get("method"), str):
        return None
    url = {k: str(data[s]) for k, s in (("path", "path"), ("query_string", "query")) if data.get(s)}
    out: dict[str, Any] = {"http_method": data["method"]}
    if url:
        out["url"] = url
    return out
