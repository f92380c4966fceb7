"""Request and response bodies of the HTTP API, as OpenAPI documents them.

Large bodies (entry pages, trails) are serialized by orjson from the services' dicts, and these
models only document them (a 200-entry trail is ~1 MB of JSON, and re-validating it would cost
more than the database reads); small ones are returned as the models themselves.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from ledger.core.canonical import MAX_SAFE_INTEGER
from ledger.services.verification.verify import REPORT_TEXT_MAX

# --- errors --------------------------------------------------------------------------------------


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``): every error answer."""

    type: str = Field(description="urn:handoff-ledger:problem:<slug>, e.g. ...:event-invalid")
    title: str
    status: int
    detail: str
    pointer: str | None = Field(
        default=None, description="RFC 6901 pointer to the invalid value, for a 422"
    )


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


class ErasureRecord(BaseModel):
    """Why an entry's payload is erased: the erasure whose approval destroyed its data key, or
    retention."""

    by: Literal["erasure", "retention"] | None = Field(
        default=None, description="what destroyed the data key (null: nothing the ledger did)"
    )
    request: int | None = Field(description="the erase request (null: a key destroyed without one)")
    legal_basis: str | None
    reference: str | None
    erased_at: str | None = Field(description="RFC 3339 UTC")


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
    erasure: ErasureRecord | None = Field(
        default=None, description="present when payload_status is erased"
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


class WriterKeyJson(BaseModel):
    """A writer's Ed25519 public key and its history (``ledger writers keys``)."""

    kid: str = Field(description="RFC 7638 JWK thumbprint of the key")
    credential: int = Field(description="the writer credential the key belongs to")
    public_key: str = Field(description="the 32-byte Ed25519 public key, base64url")
    added_at: str
    revoked_at: str | None = Field(description="signs nothing received from then on")
    log: str | None = None
    status: str | None = Field(default=None, description="active or revoked")


class NewWriterKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credential: int = Field(ge=1, le=MAX_SAFE_INTEGER, description="the writer credential's id")
    public_key: str = Field(
        max_length=4096,
        description="Ed25519 public key: 32 bytes in base64url or base64, or a PEM PUBLIC KEY",
    )


class WriterKeys(BaseModel):
    keys: list[WriterKeyJson]


class NewSignaturePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signatures: Literal["required", "optional", "off"] = Field(
        description="required: an unsigned event is refused; optional: both taken, every "
        "signature checked; off: a signed event is refused"
    )


class SignaturePolicy(BaseModel):
    log: str
    signatures: Literal["required", "optional", "off"]
    previous: str | None = Field(
        default=None, description="the policy before this change (null when only read)"
    )


class WriterKeyRecord(BaseModel):
    """A signed record of the tenant's system log: entry bytes, payload, inclusion proof."""

    seq: int
    leaf_hash: str
    entry_b64: str
    payload_b64: str
    payload_salt: str
    hashes: list[str] = Field(description="RFC 9162 audit path to the system log's checkpoint")


class WriterKeyRecords(BaseModel):
    origin: str = Field(description="the tenant's system log's origin")
    tree_size: int
    checkpoint: str = Field(description="the system log's C2SP signed checkpoint")
    records: list[WriterKeyRecord]


class Trail(BaseModel):
    log: str
    origin: str
    conversation: str
    tree_size: int = Field(description="size of the checkpoint the trail was read at")
    checkpoint: str = Field(description="C2SP signed note; every inclusion proof is against it")
    back_links: BackLinks
    summary: TrailSummary
    entries: list[TrailEntry]
    writer_keys: list[WriterKeyJson] = Field(
        default_factory=list,
        description="the writer keys that signed the trail's entries, with their history, as "
        "`writer_key_records` state them (for reading; verifiers check the records)",
    )
    writer_key_records: WriterKeyRecords | None = Field(
        default=None,
        description="the system-log records (added, revoked) of the keys that signed the "
        "trail's entries, each proven in the system log's signed checkpoint; null when no "
        "entry is signed",
    )
    rotations: list[str] = Field(
        default_factory=list,
        description="the log's key rotation statements (handoff-ledger/key-rotation/v1 signed "
        "notes), oldest first: each signed by the old and the new key, so a verifier that "
        "pinned an earlier key can follow them to the one that signed `checkpoint`",
    )


# --- verification runs ---------------------------------------------------------------------------


ReportValue = (
    Annotated[str, Field(max_length=REPORT_TEXT_MAX)]
    | Annotated[int, Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
)


class IntegrityReport(BaseModel):
    """Where a log failed verification and what was expected there (``IntegrityFailure``)."""

    model_config = ConfigDict(extra="forbid")  # nothing unbounded rides along

    log: str | None = Field(default=None, max_length=200)
    seq: int | None = Field(default=None, ge=0, le=MAX_SAFE_INTEGER)
    what: str = Field(max_length=REPORT_TEXT_MAX)
    expected: ReportValue | None = None
    found: ReportValue | None = None
    message: str = Field(max_length=REPORT_TEXT_MAX)


class LogResult(BaseModel):
    log: str = Field(max_length=200)
    intact: bool
    mode: Literal["full", "incremental"]
    from_size: int = Field(ge=0, le=MAX_SAFE_INTEGER)
    to_size: int = Field(ge=0, le=MAX_SAFE_INTEGER)
    entries: int = Field(ge=0, le=MAX_SAFE_INTEGER)
    checkpoints: int = Field(ge=0, le=MAX_SAFE_INTEGER)
    anchors: int = Field(ge=0, le=MAX_SAFE_INTEGER)
    erased_payloads: int = Field(ge=0, le=MAX_SAFE_INTEGER)
    failure: IntegrityReport | None = None


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


# --- privacy: erasures, legal holds, approvals ----------------------------------------------------


class _Scoped(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation: str | None = Field(None, min_length=1, max_length=200)
    subject: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="a data subject: every conversation whose entries name this customer",
    )
    reference: str = Field(
        min_length=1, max_length=1000, description="the requester's reference (a ticket)"
    )

    @model_validator(mode="after")
    def _one_scope(self) -> _Scoped:
        if (self.conversation is None) == (self.subject is None):
            raise ValueError("name exactly one of conversation and subject")
        return self


class ErasureBody(_Scoped):
    """Erase a conversation or a data subject (pending until another admin approves)."""

    legal_basis: str = Field(
        min_length=1, max_length=1000, description="e.g. GDPR Art. 17(1)(a), the subject's request"
    )


class HoldBody(_Scoped):
    """Place a legal hold (in force once another admin approves)."""

    legal_basis: str = Field(
        min_length=1,
        max_length=1000,
        validation_alias=AliasChoices("legal_basis", "reason"),
        description="why the data must be kept (also accepted as reason)",
    )


class RetentionBody(BaseModel):
    """Change how long the log keeps payloads (once another admin approves)."""

    model_config = ConfigDict(extra="forbid")

    retention: str = Field(
        min_length=1,
        max_length=20,
        description="whole days (`365d`) or a profile: `pci-dss` (366 days), `hipaa` (2,192)",
    )
    legal_basis: str = Field(min_length=1, max_length=1000)
    reference: str = Field(min_length=1, max_length=1000)


class Retention(BaseModel):
    """How long the log keeps payloads before retention crypto-shreds them."""

    log: str
    days: int
    set_by: str = Field(
        description="`log creation`, `request N` (an approved change) or `default` (a log "
        "created before retention existed)"
    )


class ReleaseBody(BaseModel):
    """Release a hold (once another admin approves)."""

    model_config = ConfigDict(extra="forbid")

    legal_basis: str = Field(
        min_length=1,
        max_length=1000,
        validation_alias=AliasChoices("legal_basis", "reason"),
        description="why the hold ends (also accepted as reason)",
    )
    reference: str = Field(min_length=1, max_length=1000)


class PrivacyScope(BaseModel):
    kind: Literal["conversation", "subject", "log"] = Field(
        description="log: a retention change (`ledger retention set`) names the log itself"
    )
    id: str


class PrivacyRequest(BaseModel):
    id: int
    log: str
    action: Literal["erase", "hold", "release", "retention"]
    scope: PrivacyScope
    hold_id: int | None = Field(description="the hold a release releases")
    legal_basis: str
    reference: str
    requested_by: int = Field(description="the requesting admin credential")
    requested_at: str
    expires_at: str = Field(description="unapproved after this, the request is expired")
    status: Literal["pending", "approved", "expired"]
    approved_by: int | None
    approved_at: str | None
    retention_days: int | None = Field(
        default=None, description="a retention request's new period, in days"
    )


class PrivacyRequests(BaseModel):
    requests: list[PrivacyRequest] = Field(description="newest first, at most 1,000")


class Holds(BaseModel):
    holds: list[PrivacyRequest] = Field(description="holds in force, oldest first")


class ErasureDone(BaseModel):
    conversations: list[str]
    destroyed_keys: list[int] = Field(description="data key ids destroyed by this erasure")
    seqs: list[list[int]] = Field(description="inclusive [first, last] runs of affected seqs")
    seqs_truncated: bool = Field(description="more runs than listed (at most 1,000)")
    entries: int = Field(description="entries whose payloads are erased")
    tree_size: int = Field(description="the log's size when the keys were destroyed")


class ApprovalResult(BaseModel):
    request: PrivacyRequest
    done: str = Field(description="what the approval did, in words")
    erasure: ErasureDone | None = None
    system_seqs: list[int] = Field(
        description="the approval's events in the tenant's system log (stream erasure)"
    )


# --- operations ----------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    """``degraded``: the main cluster is up, another is down (its logs answer 503; the server
    stays in service for the rest)."""
    database: Literal["up", "down"]
    """The main cluster (``LEDGER_DATABASE_URL``)."""
    clusters: dict[str, Literal["up", "down"]] | None = None
    """Each configured cluster, when ``LEDGER_CLUSTERS`` names more than the main one."""
