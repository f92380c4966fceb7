"""RFC 9162 §2.1.3-2.1.4 proofs for any sizes up to the latest checkpoint."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Depends, Query

from api.deps import State, log_info, require
from ledger.errors import InvalidRequest
from ledger.services.reads import entries as reads
from ledger.storage import proofs
from ledger.storage.db import unit_of_work

router = APIRouter(prefix="/v1/logs/{log}/proofs", tags=["proofs"])
Reader = Depends(require("auditor", "verifier", "admin"))


def _b64(items: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in items]


@router.get("/inclusion", operation_id="get_inclusion_proof", dependencies=[Reader])
def inclusion(
    log: str, state: State, seq: int = Query(ge=0), tree_size: int = Query(ge=1)
) -> dict[str, Any]:
    log_info(state, log)
    with unit_of_work(state.engine) as conn:
        latest = reads.latest_checkpoint_size(conn, log)
        if tree_size > latest:
            raise InvalidRequest(
                f"tree_size {tree_size} is beyond the latest checkpoint ({latest})")
        if seq >= tree_size:
            raise InvalidRequest(f"seq {seq} is not in a tree of size {tree_size}")
        hashes = proofs.inclusion_proof(conn, log, seq, tree_size)
    return {"leaf_index": seq, "tree_size": tree_size, "hashes": _b64(hashes)}


@router.get("/consistency", operation_id="get_consistency_proof", dependencies=[Reader])
def consistency(
    log: str, state: State, first: int = Query(ge=0), second: int = Query(ge=0)
) -> dict[str, Any]:
    log_info(state, log)
    with unit_of_work(state.engine) as conn:
        latest = reads.latest_checkpoint_size(conn, log)
        if second > latest:
            raise InvalidRequest(f"second {second} is beyond the latest checkpoint ({latest})")
        if first > second:
            raise InvalidRequest(f"first ({first}) must not exceed second ({second})")
        hashes = proofs.consistency_proof(conn, log, first, second)
    return {"first": first, "second": second, "hashes": _b64(hashes)}
