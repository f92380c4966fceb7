"""Writers' signing keys, for admins: register, list, revoke (``ledger.services.admin.writer_keys``;
the CLI's ``ledger writers keys``), and each log's signature policy (``ledger writers policy``).
Each change is an event in the tenant's system log, recorded by the same service function as
the CLI's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import State, require
from api.schemas import (
    NewSignaturePolicy,
    NewWriterKey,
    SignaturePolicy,
    WriterKeyJson,
    WriterKeys,
)
from ledger.domain import Principal
from ledger.errors import InvalidRequest
from ledger.server.state import LedgerState
from ledger.services.admin import writer_keys
from ledger.services.system_log import credential_actor

router = APIRouter(prefix="/v1/logs/{log}", tags=["writer keys"])

AddAuth = Annotated[Principal, Depends(require("add_writer_key"))]
ListAuth = Annotated[Principal, Depends(require("list_writer_keys"))]
RevokeAuth = Annotated[Principal, Depends(require("revoke_writer_key"))]
GetPolicyAuth = Annotated[Principal, Depends(require("get_signature_policy"))]
SetPolicyAuth = Annotated[Principal, Depends(require("set_signature_policy"))]


def _events_log(state: LedgerState, log: str) -> None:
    if state.log_info(log).kind != "events":
        raise InvalidRequest(f"log {log!r} is written only by the ledger itself: no writer keys")


@router.post(
    "/writer-keys",
    operation_id="add_writer_key",
    status_code=201,
    summary="Register a writer credential's Ed25519 public key (the private key stays with "
    "the writer)",
    responses={409: {"description": "the key is registered on this log already"}},
)
def add_writer_key(log: str, body: NewWriterKey, state: State, admin: AddAuth) -> WriterKeyJson:
    _events_log(state, log)
    with state.unit_of_work(log) as conn:
        record = writer_keys.add_writer_key(
            conn,
            state.keys,
            log_id=log,
            credential_id=body.credential,
            public_key=body.public_key,
            actor=credential_actor(admin),
            now=datetime.now(UTC),
        )
    return WriterKeyJson.model_validate(writer_keys.key_json(record))


@router.get(
    "/writer-keys",
    operation_id="list_writer_keys",
    summary="The log's writer keys, revoked ones included, oldest first",
)
def list_writer_keys(log: str, state: State, _admin: ListAuth) -> WriterKeys:
    with state.unit_of_work(log) as conn:
        records = writer_keys.list_writer_keys(conn, log)
    return WriterKeys(keys=[WriterKeyJson.model_validate(writer_keys.key_json(r)) for r in records])


@router.post(
    "/writer-keys/{kid}/revoke",
    operation_id="revoke_writer_key",
    summary="Revoke a writer key: it signs nothing received from now on; what it signed "
    "before stays verifiable",
)
def revoke_writer_key(log: str, kid: str, state: State, admin: RevokeAuth) -> WriterKeyJson:
    _events_log(state, log)
    with state.unit_of_work(log) as conn:
        record = writer_keys.revoke_writer_key(
            conn,
            state.keys,
            log_id=log,
            kid=kid,
            actor=credential_actor(admin),
            now=datetime.now(UTC),
        )
    return WriterKeyJson.model_validate(writer_keys.key_json(record))


@router.get(
    "/signature-policy",
    operation_id="get_signature_policy",
    summary="The log's writer-signature policy: required, optional (the default) or off",
)
def get_signature_policy(log: str, state: State, _admin: GetPolicyAuth) -> SignaturePolicy:
    with state.unit_of_work(log) as conn:
        policy = writer_keys.signature_policy_of(conn, log)
    return SignaturePolicy.model_validate({"log": log, "signatures": policy})


@router.put(
    "/signature-policy",
    operation_id="set_signature_policy",
    summary="Set the log's writer-signature policy (a ledger.log.signatures.changed.v1 event "
    "in the tenant's system log); servers apply it within 30 s",
)
def set_signature_policy(
    log: str, body: NewSignaturePolicy, state: State, admin: SetPolicyAuth
) -> SignaturePolicy:
    _events_log(state, log)
    with state.unit_of_work(log) as conn:
        previous = writer_keys.set_signature_policy(
            conn,
            state.keys,
            log_id=log,
            policy=body.signatures,
            actor=credential_actor(admin),
            now=datetime.now(UTC),
        )
    return SignaturePolicy.model_validate(
        {"log": log, "signatures": body.signatures, "previous": previous}
    )
