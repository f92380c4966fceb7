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
from datetime import datetime
from typing import Any

from ledger.domain import PreparedEvent
from ledger.errors import LedgerError
from ledger.external.http import post
from ledger.services.admin.logs import system_log_id
from ledger.services.system_log import system_event

RUN_EVENT = "verification.run"


def record_url(base_url: str, tenant: str) -> str:
    return f"{base_url.rstrip('/')}/v1/logs/{system_log_id(tenant)}/verifications"


def post_run(base_url: str, token: str, tenant: str, run: dict[str, Any], *,
             timeout: float) -> dict[str, Any]:
    """Record ``run`` (one tenant's part of the report) on the server; raise if it is not
    durable there."""
    try:
        response = post(record_url(base_url, tenant), json.dumps(run).encode(),
                        content_type="application/json", timeout=timeout,
                        headers={"Authorization": f"Bearer {token}"})
    except OSError as exc:
        raise LedgerError(f"verification record server unreachable: {exc}") from exc
    if response.status != 201:
        raise LedgerError(f"verification record refused ({response.status}):"
                          f" {response.text(300)}")
    receipt: dict[str, Any] = json.loads(response.body)
    return receipt


def run_event(run: dict[str, Any], *, actor: dict[str, Any], now: datetime) -> PreparedEvent:
    """The ``ledger.verification.run.v1`` event for one recorded run."""
    return system_event(RUN_EVENT, stream="verification", data=run, now=now, actor=actor,
                        outcome="success" if run.get("status") == "intact" else "failure",
                        resource={"type": "logs", "id": ",".join(r["log"] for r in run["logs"])
                                  or "none"})
