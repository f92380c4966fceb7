"""GET /v1/logs/{log}/conversations/{conversation_id}/trail — a conversation's whole trail, with
proof it is complete and unaltered, for auditors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from api.deps import AuditorAuth, State, access_of
from ledger.services.system_log import credential_actor
from ledger.services.trails.read import read_trail_for
from ledger.storage.db import unit_of_work

router = APIRouter(prefix="/v1/logs/{log}", tags=["trail"])


# Response models document the body in OpenAPI; the body itself is serialized by orjson from the
# service's dicts (a 200-entry trail is ~1 MB of JSON, and re-validating it would cost more than
# the database reads).


class InclusionProof(BaseModel):
    leaf_index: int
    tree_size: int
    hashes: list[str] = Field(description="RFC 9162 audit path, standard base64, bottom up")


class TrailEntry(BaseModel):
    seq: int
    leaf_hash: str = Field(description="base64 SHA-256(0x00 || entry bytes)")
    entry_b64: str = Field(description="the exact canonical bytes that were hashed")
    entry: dict[str, Any]
    payload: dict[str, Any] | None
    payload_status: Literal["verified", "mismatch", "erased", "missing", "undecryptable"]
    payload_b64: str | None = Field(description="the payload's canonical (RFC 8785) bytes")
    payload_salt: str | None = Field(
        description="the salt: SHA-256(salt || payload bytes) is the entry's payload.commitment")
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
    transcript: list[dict[str, Any]] = Field(description="message.created + agent.reply; "
                                             "speaker customer / ai / human / system")
    tools: list[dict[str, Any]] = Field(description="one row per tool call, last status")
    data_access: list[dict[str, Any]] = Field(description="classification and purpose")
    disclosures: list[dict[str, Any]] = Field(description="HIPAA 164.528: date, recipient, "
                                              "what, purpose")
    redactions: list[dict[str, Any]] = Field(description="by the ledger's guard (inline "
                                             "ledger_redactions) or the writer "
                                             "(redaction.applied)")
    escalations: list[dict[str, Any]]
    sentiment: list[dict[str, Any]]
    identity: list[dict[str, Any]] = Field(description="method and result; never secrets")
    suggested_actions: list[dict[str, Any]] = Field(description="proposal joined with its "
                                                    "resolution")
    handoffs: list[dict[str, Any]] = Field(description="requested, accepted by, productive "
                                           "takeover, released")
    derived: dict[str, Any] = Field(description="time to accept, time to productive takeover, "
                                    "what the context package named, trigger mix")
    withheld: list[dict[str, Any]] = Field(description="entries whose payload is not shown "
                                           "(erased, missing, mismatch)")


class Trail(BaseModel):
    log: str
    origin: str
    conversation: str
    tree_size: int = Field(description="size of the checkpoint the trail was read at")
    checkpoint: str = Field(description="C2SP signed note; every inclusion proof is against it")
    back_links: BackLinks
    summary: TrailSummary
    entries: list[TrailEntry]


@router.get(
    "/conversations/{conversation_id}/trail",
    operation_id="get_trail",
    response_model=Trail,
    summary="A conversation's entries in order, with payloads, inclusion proofs against one "
            "signed checkpoint, the back-link check and the auditor's sections",
)
def get_trail(
    log: str, conversation_id: str, request: Request, state: State, auditor: AuditorAuth
) -> Response:
    with unit_of_work(state.engine) as conn:
        body = read_trail_for(conn, state.system_log, state.log_info(log), conversation_id,
                              reader=credential_actor(auditor), access=access_of(request),
                              data_keys=state.keys.data_keys, now=datetime.now(UTC))
    return Response(orjson.dumps(body), media_type="application/json")
