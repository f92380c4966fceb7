"""Erasures, legal holds and their approval, for admins: each request is made by one admin
credential and approved by another (``ledger.services.privacy``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from api.deps import State, require
from api.schemas import (
    ApprovalResult,
    ErasureBody,
    HoldBody,
    Holds,
    PrivacyRequest,
    PrivacyRequests,
    ReleaseBody,
    Retention,
    RetentionBody,
)
from ledger.core.canonical import MAX_SAFE_INTEGER
from ledger.domain import Principal
from ledger.server.state import LedgerState
from ledger.services.privacy import requests, retention
from ledger.services.privacy.approve import approve
from ledger.services.privacy.scopes import Scope
from ledger.storage.privacy import PrivacyRecord

router = APIRouter(prefix="/v1/logs/{log}", tags=["privacy"])

RowId = Annotated[int, Path(ge=0, le=MAX_SAFE_INTEGER)]
"""A hold or request id: checked here, before it reaches the database or the system log (whose
events hold only exact JSON numbers)."""

ErasureAuth = Annotated[Principal, Depends(require("request_erasure"))]
HoldAuth = Annotated[Principal, Depends(require("request_hold"))]
ListHoldsAuth = Annotated[Principal, Depends(require("list_holds"))]
ReleaseAuth = Annotated[Principal, Depends(require("request_release"))]
GetRetentionAuth = Annotated[Principal, Depends(require("get_retention"))]
RetentionAuth = Annotated[Principal, Depends(require("request_retention_change"))]
ListRequestsAuth = Annotated[Principal, Depends(require("list_privacy_requests"))]
ApproveAuth = Annotated[Principal, Depends(require("approve_privacy_request"))]


def _ttl(state: State) -> timedelta:
    return timedelta(hours=state.settings.approval_ttl_hours)


@router.post(
    "/erasures",
    operation_id="request_erasure",
    status_code=202,
    summary="Ask for a conversation's or a data subject's payloads to be erased "
    "(crypto-shredding); carried out when another admin approves",
    responses={404: {"description": "no entry of that conversation or data subject"}},
)
def request_erasure(
    log: str, body: ErasureBody, state: State, admin: ErasureAuth
) -> PrivacyRequest:
    return _request_on_scope(requests.request_erasure, log, body, state, admin)


@router.post(
    "/holds",
    operation_id="request_hold",
    status_code=202,
    summary="Ask for a legal hold on a conversation or a data subject (no erasure while it is in "
    "force); in force when another admin approves",
)
def request_hold(log: str, body: HoldBody, state: State, admin: HoldAuth) -> PrivacyRequest:
    return _request_on_scope(requests.request_hold, log, body, state, admin)


@router.get("/holds", operation_id="list_holds", summary="The legal holds in force on the log")
def list_holds(log: str, state: State, _admin: ListHoldsAuth) -> Holds:
    now = datetime.now(UTC)
    with state.unit_of_work(log) as conn:
        holds = requests.active_holds(conn, state.log_info(log))
    return Holds(
        holds=[PrivacyRequest.model_validate(requests.request_json(h, now)) for h in holds]
    )


@router.post(
    "/holds/{hold_id}/release",
    operation_id="request_release",
    status_code=202,
    summary="Ask for a hold to be released; released when another admin approves",
)
def request_release(
    log: str, hold_id: RowId, body: ReleaseBody, state: State, admin: ReleaseAuth
) -> PrivacyRequest:
    return _pending_request(requests.request_release, log, hold_id, body, state, admin)


@router.get(
    "/retention",
    operation_id="get_retention",
    summary="How long the log keeps payloads before retention crypto-shreds them, and what set it",
)
def get_retention(log: str, state: State, _admin: GetRetentionAuth) -> Retention:
    with state.unit_of_work(log) as conn:
        policy = retention.retention_policy(conn, state.log_info(log))
    return Retention.model_validate({"log": log, **policy.as_json()})


@router.post(
    "/retention",
    operation_id="request_retention_change",
    status_code=202,
    summary="Ask for the log's retention period to change (`ledger retention set`); in force "
    "when another admin approves",
)
def request_retention_change(
    log: str, body: RetentionBody, state: State, admin: RetentionAuth
) -> PrivacyRequest:
    days = retention.parse_retention(body.retention)
    return _pending_request(retention.request_retention_change, log, days, body, state, admin)


@router.get(
    "/privacy-requests",
    operation_id="list_privacy_requests",
    summary="Erasure, hold and release requests, newest first",
)
def list_privacy_requests(
    log: str,
    state: State,
    _admin: ListRequestsAuth,
    status: str | None = Query(None, description="pending, approved or expired"),
) -> PrivacyRequests:
    now = datetime.now(UTC)
    with state.unit_of_work(log) as conn:
        found = requests.list_requests(conn, state.log_info(log), status=status, now=now)
    return PrivacyRequests(
        requests=[PrivacyRequest.model_validate(requests.request_json(r, now)) for r in found]
    )


@router.post(
    "/privacy-requests/{request_id}/approve",
    operation_id="approve_privacy_request",
    summary="Approve another admin's request and carry it out (an erasure destroys the data "
    "keys at once)",
    responses={
        403: {"description": "the approver made the request (two-person rule)"},
        409: {"description": "approved already, expired, or the scope is under a legal hold"},
    },
)
def approve_request(
    log: str, request_id: RowId, state: State, admin: ApproveAuth
) -> ApprovalResult:
    now = datetime.now(UTC)
    with state.unit_of_work(log) as conn:
        done = approve(
            conn,
            state.keys,
            state.log_info(log),
            request_id,
            approver=admin,
            now=now,
            refusals=state.system_log,
        )
    return ApprovalResult.model_validate(
        {
            "request": requests.request_json(done.request, now),
            "done": done.done,
            "erasure": None if done.erasure is None else done.erasure.as_json(),
            "system_seqs": done.system_seqs,
        }
    )


def _request_on_scope(
    make: Callable[..., PrivacyRecord],
    log: str,
    body: ErasureBody | HoldBody,
    state: LedgerState,
    admin: Principal,
) -> PrivacyRequest:
    """An erasure or hold request on a conversation or data subject, as the pending request."""
    scope = Scope.of(conversation=body.conversation, subject=body.subject)
    return _pending_request(make, log, scope, body, state, admin)


def _pending_request(
    make: Callable[..., PrivacyRecord],
    log: str,
    target: object,
    body: ErasureBody | HoldBody | ReleaseBody | RetentionBody,
    state: LedgerState,
    admin: Principal,
) -> PrivacyRequest:
    """A two-person request made by ``make`` on ``target`` (a scope, a hold id, a retention
    period), recorded with the body's legal basis and reference: the pending request."""
    now = datetime.now(UTC)
    with state.unit_of_work(log) as conn:
        record = make(
            conn,
            state.keys,
            state.log_info(log),
            target,
            legal_basis=body.legal_basis,
            reference=body.reference,
            requester=admin,
            now=now,
            ttl=_ttl(state),
            refusals=state.system_log,
        )
    return PrivacyRequest.model_validate(requests.request_json(record, now))
