"""Request and response bodies of the HTTP API, as OpenAPI documents them.

Large bodies (entry pages, trails) are serialized by orjson from the services' dicts, and these
models only document them (a 200-entry trail is ~1 MB of JSON, and re-validating it would cost
more than the database reads); small ones are returned as the models themselves.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

# --- writers -------------------------------------------------------------------------------------


class Receipt(BaseModel):
    event_id: str
    seq: int
    leaf_hash: str = Field(description="base64 SHA-256(0x00 || entry bytes)")


class Receipts(BaseModel):
    receipts: list[Receipt] = Field(description="one per event, in the request's order")
    checkpoint: str = Field(description="C2SP signed note covering every receipt")


# --- proofs --------------------------------------------------------------------------------------


class InclusionProof(BaseModel):
    leaf_index: int
    tree_size: int
    hashes: list[str] = Field(description="RFC 9162 audit path, standard base64, bottom up")


class ConsistencyProof(BaseModel):
    first: int
    second: int
    hashes: list[str] = Field(description="RFC 9162 consistency path, standard base64")


# --- entries -------------------------------------------------------------------------------------


class Entry(BaseModel):
    seq: int
    leaf_hash: str = Field(description="base64 SHA-256(0x00 || entry bytes)")
    entry_b64: str = Field(description="the exact canonical bytes that were hashed")
    entry: dict[str, Any]
    payload: dict[str, Any] | None
    payload_status: Literal["verified", "mismatch", "erased", "missing", "undecryptable"]
    payload_b64: str | None = Field(description="the payload's canonical (RFC 8785) bytes")
    payload_salt: str | None = Field(
        description="the salt: SHA-256(salt || payload bytes) is the entry's payload.commitment"
    )


class EntriesPage(BaseModel):
    start: int
    end: int
    tree_size: int = Field(description="the log's size when the page was read")
    entries: list[Entry]
    next: str | None = Field(
        default=None,
        description="the rest of the range, when the range is longer than a page (1,000 entries)",
    )


# --- trails --------------------------------------------------------------------------------------


class TrailEntry(Entry):
    inclusion_proof: InclusionProof


class BackLinkProblem(BaseModel):
    seq: int
    what: Literal["conversation_prev", "conversation", "leaf_hash", "seq"]
    expected: Any
    found: Any
    message: str


class BackLinks(BaseModel):
    status: Literal["intact", "broken"]
    entries: int
    first_seq: int | None
    last_seq: int | None
    problems: list[BackLinkProblem]


class TrailSummary(BaseModel):
    """Derived by the ledger from the entries below; each row names its ``seq``."""

    overview: dict[str, Any]
    transcript: list[dict[str, Any]] = Field(
        description="message.created + agent.reply; speaker customer / ai / human / system"
    )
    tools: list[dict[str, Any]] = Field(description="one row per tool call, last status")
    data_access: list[dict[str, Any]] = Field(description="classification and purpose")
    disclosures: list[dict[str, Any]] = Field(
        description="HIPAA 164.528: date, recipient, what, purpose"
    )
    redactions: list[dict[str, Any]] = Field(
        description="by the ledger's guard (inline "
        "ledger_redactions) or the writer "
        "(redaction.applied)"
    )
    escalations: list[dict[str, Any]]
    sentiment: list[dict[str, Any]]
    identity: list[dict[str, Any]] = Field(description="method and result; never secrets")
    suggested_actions: list[dict[str, Any]] = Field(
        description="proposal joined with its resolution"
    )
    handoffs: list[dict[str, Any]] = Field(
        description="requested, accepted by, productive takeover, released"
    )
    derived: dict[str, Any] = Field(
        description="time to accept, time to productive takeover, "
        "what the context package named, trigger mix"
    )
    withheld: list[dict[str, Any]] = Field(
        description="entries whose payload is not shown (erased, missing, mismatch)"
    )


class Trail(BaseModel):
    log: str
    origin: str
    conversation: str
    tree_size: int = Field(description="size of the checkpoint the trail was read at")
    checkpoint: str = Field(description="C2SP signed note; every inclusion proof is against it")
    back_links: BackLinks
    summary: TrailSummary
    entries: list[TrailEntry]


# --- verification runs ---------------------------------------------------------------------------


class LogResult(BaseModel):
    log: str = Field(max_length=200)
    intact: bool
    mode: Literal["full", "incremental"]
    from_size: int = Field(ge=0)
    to_size: int = Field(ge=0)
    entries: int = Field(ge=0)
    checkpoints: int = Field(ge=0)
    anchors: int = Field(ge=0)
    erased_payloads: int = Field(ge=0)
    failure: dict[str, Any] | None = None


class VerificationRun(BaseModel):
    """What ``ledger verify`` reports, one tenant's part of it."""

    status: Literal["intact", "tampered", "error"]
    intact: bool
    mode: Literal["full", "incremental"]
    host: str = Field(max_length=255)
    started_at: str = Field(max_length=40)
    finished_at: str = Field(max_length=40)
    logs: list[LogResult] = Field(max_length=10_000)
    error: str | None = Field(default=None, max_length=4000)


class RecordedRun(BaseModel):
    seq: int
    checkpoint: str


# --- exports -------------------------------------------------------------------------------------


class ExportRequest(BaseModel):
    """What to export (documentation: the body is checked by the export's own rules, which say
    precisely what is wrong)."""

    profile: Literal["soc2-population", "pci-dss-10", "hipaa-disclosures"]
    format: Literal["bundle", "jsonl", "csv", "ocsf", "html"] = "bundle"
    start_seq: int | None = Field(None, ge=0, description="a seq range [start_seq, end_seq)")
    end_seq: int | None = Field(None, ge=1)
    from_time: str | None = Field(None, description="a received_at range, RFC 3339 UTC")
    to_time: str | None = None
    conversations: list[str] | None = Field(None, description="whole conversations by id")
    data_subject: str | None = Field(None, description="every conversation of this customer")
    event_types: list[str] | None = Field(None, description="which entries are reported")
    sample: int | None = Field(
        None, ge=1, description="entries drawn by handoff-ledger/sample/v1 from the range"
    )
    seed: str | None = Field(None, description="the auditor's part of the sample's seed")
    since_checkpoint: str | None = Field(
        None,
        description="a signed checkpoint the auditor holds: the bundle proves consistency from it",
    )
    include: list[Literal["jsonl", "csv", "ocsf", "html"]] | None = Field(
        None, description="rendered formats a bundle carries under reports/"
    )


# --- operations ----------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["up", "down"]
