"""RFC 9162 §2.1.3-2.1.4 proofs for any sizes up to the latest checkpoint."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import State, require
from api.schemas import ConsistencyProof, InclusionProof
from ledger.core.canonical import MAX_SAFE_INTEGER
from ledger.domain import Principal
from ledger.services.reads import proofs

router = APIRouter(prefix="/v1/logs/{log}/proofs", tags=["proofs"])

InclusionAuth = Annotated[Principal, Depends(require("get_inclusion_proof"))]
ConsistencyAuth = Annotated[Principal, Depends(require("get_consistency_proof"))]


def _b64(items: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in items]


@router.get("/inclusion", operation_id="get_inclusion_proof")
def inclusion(
    log: str,
    state: State,
    _reader: InclusionAuth,
    seq: int = Query(ge=0, le=MAX_SAFE_INTEGER),
    tree_size: int = Query(ge=1, le=MAX_SAFE_INTEGER),
) -> InclusionProof:
    info = state.log_info(log)
    hashes = state.read(log, lambda conn: proofs.inclusion_proof(conn, info, seq, tree_size))
    return InclusionProof(leaf_index=seq, tree_size=tree_size, hashes=_b64(hashes))


@router.get("/consistency", operation_id="get_consistency_proof")
def consistency(
    log: str,
    state: State,
    _reader: ConsistencyAuth,
    first: int = Query(ge=0, le=MAX_SAFE_INTEGER),
    second: int = Query(ge=0, le=MAX_SAFE_INTEGER),
) -> ConsistencyProof:
    info = state.log_info(log)
    hashes = state.read(log, lambda conn: proofs.consistency_proof(conn, info, first, second))
    return ConsistencyProof(first=first, second=second, hashes=_b64(hashes))
