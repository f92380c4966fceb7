"""POST /v1/logs/{tenant}.system/verifications — the verification job records its runs.

The job's database role is read-only (PCI DSS 10.3.2: the reviewer cannot edit what it reviews),
so it records each run here, with a verifier credential on the tenant's system log. The run is
appended as ``ledger.verification.run.v1`` and the answer comes once it is durable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from api.deps import State, log_info, require
from ledger.domain import Principal
from ledger.errors import Forbidden, InvalidRequest
from ledger.services.system_log import credential_actor
from ledger.services.verification.record import run_event

router = APIRouter(prefix="/v1/logs/{log}", tags=["verification"])
VerifierAuth = Annotated[Principal, Depends(require("verifier"))]


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


@router.post("/verifications", operation_id="record_verification", status_code=201,
             summary="Record a verification run in the tenant's system log")
def record_verification(
    log: str, run: VerificationRun, state: State, principal: VerifierAuth
) -> RecordedRun:
    info = log_info(state, log)
    if info.kind != "system":
        raise InvalidRequest("verification runs are recorded in a tenant's system log"
                          f" ({info.tenant}.system)")
    for result in run.logs:
        if log_info(state, result.log).tenant != info.tenant:
            raise Forbidden("the run names a log of another tenant")
    event = run_event(run.model_dump(exclude_none=True), actor=credential_actor(principal),
                      now=datetime.now(UTC))
    appended = state.record(info.tenant, event).result(timeout=30)
    return RecordedRun(seq=appended.receipts[0].seq, checkpoint=appended.checkpoint)
