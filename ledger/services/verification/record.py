"""Keeping verification runs as events (PCI DSS 10.2.1.6, 10.4.1.1, 10.7.2) although the
verifier's database role cannot write.

The job POSTs its report, per tenant, to a ledger server: ``POST /v1/logs/{tenant}.system/
verifications`` with a verifier credential on that system log. The server appends it through its
group committer as ``ledger.verification.run.v1`` (actor: that credential; outcome: success only
if every log was intact) and answers once it is durable. The verifier host thus holds a token
that can add one kind of event to one tenant's system log, not a database write credential.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ledger.domain import AppendResult, LogInfo, PreparedEvent, Principal
from ledger.errors import Forbidden, InvalidRequest, LedgerError
from ledger.external.http import post
from ledger.services.system_log import SystemLog, credential_actor, system_event, system_log_id

RUN_EVENT = "verification.run"


def record_url(base_url: str, tenant: str) -> str:
    return f"{base_url.rstrip('/')}/v1/logs/{system_log_id(tenant)}/verifications"


def post_run(
    base_url: str, token: str, tenant: str, run: dict[str, Any], *, timeout: float
) -> dict[str, Any]:
    """Record ``run`` (one tenant's part of the report) on the server; raise if it is not
    durable there."""
    try:
        response = post(
            record_url(base_url, tenant),
            json.dumps(run).encode(),
            content_type="application/json",
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}"},
        )
    except OSError as exc:
        raise LedgerError(f"verification record server unreachable: {exc}") from exc
    if response.status != 201:
        raise LedgerError(f"verification record refused ({response.status}): {response.text(300)}")
    receipt: dict[str, Any] = json.loads(response.body)
    return receipt


def record_run(
    run: dict[str, Any],
    *,
    system_log_info: LogInfo,
    recorder: Principal,
    logs: Callable[[str], LogInfo],
    system_log: SystemLog,
    now: datetime,
) -> AppendResult:
    """The server's side: append ``run`` to the tenant's system log as
    ``ledger.verification.run.v1``, durably, with the recording credential as the actor. Every
    log the run names must be the tenant's."""
    if system_log_info.kind != "system":
        raise InvalidRequest(
            "verification runs are recorded in a tenant's system log"
            f" ({system_log_id(system_log_info.tenant)})"
        )
    for result in run["logs"]:
        if logs(result["log"]).tenant != system_log_info.tenant:
            raise Forbidden("the run names a log of another tenant")
    event = run_event(run, actor=credential_actor(recorder), now=now)
    return system_log.record_durably(system_log_info.tenant, event)


def run_event(run: dict[str, Any], *, actor: dict[str, Any], now: datetime) -> PreparedEvent:
    """The ``ledger.verification.run.v1`` event for one recorded run."""
    return system_event(
        RUN_EVENT,
        stream="verification",
        data=run,
        now=now,
        actor=actor,
        outcome="success" if run.get("status") == "intact" else "failure",
        resource={"type": "logs", "id": ",".join(r["log"] for r in run["logs"]) or "none"},
    )
