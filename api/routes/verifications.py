"""POST /v1/logs/{tenant}.system/verifications — the verification job records its runs.

The job's database role is read-only (PCI DSS 10.3.2: the reviewer cannot edit what it reviews),
so it records each run here, with a verifier credential on the tenant's system log. The run is
appended as ``ledger.verification.run.v1`` and the answer comes once it is durable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import State, VerifierAuth
from ledger.services.verification.record import record_run

router = APIRouter(prefix="/v1/logs/{log}", tags=["verification"])


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
    log: str, run: VerificationRun, state: State, recorder: VerifierAuth
) -> RecordedRun:
    appended = record_run(run.model_dump(exclude_none=True), system_log_info=state.log_info(log),
                          recorder=recorder, logs=state.log_info, system_log=state.system_log,
                          now=datetime.now(UTC))
    return RecordedRun(seq=appended.receipts[0].seq, checkpoint=appended.checkpoint)
