"""POST /v1/logs/{tenant}.system/verifications — the verification job records its runs.

The job's database role is read-only (PCI DSS 10.3.2: the reviewer cannot edit what it reviews),
so it records each run here, with a verifier credential on the tenant's system log. The run is
appended as ``ledger.verification.run.v1`` and the answer comes once it is durable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import State, require
from api.schemas import RecordedRun, VerificationRun
from ledger.domain import Principal
from ledger.services.verification.record import record_run

router = APIRouter(prefix="/v1/logs/{log}", tags=["verification"])
VerifierAuth = Annotated[Principal, Depends(require("record_verification"))]


@router.post(
    "/verifications",
    operation_id="record_verification",
    status_code=201,
    summary="Record a verification run in the tenant's system log",
)
def record_verification(
    log: str, run: VerificationRun, state: State, recorder: VerifierAuth
) -> RecordedRun:
    appended = record_run(
        run.model_dump(exclude_none=True),
        system_log_info=state.log_info(log),
        recorder=recorder,
        logs=state.log_info,
        system_log=state.system_log,
        now=datetime.now(UTC),
    )
    return RecordedRun(seq=appended.receipts[0].seq, checkpoint=appended.checkpoint)
