"""The scheduled verification job (``ledger verify``): verify, keep the state, alert, record.

1. Verify the chosen logs in one read-only, repeatable-read unit of work (``verify_logs``), so a
   read-only database role is enough and every log is checked as of one moment.
2. Save the verifier state of each intact log, after that unit of work (files, not rows).
3. On a failure (tampered, or could not run) send the JSON report to every alert channel
   (PCI DSS 10.7.2, SOC 2 CC7.2).
4. Record the run in each tenant's system log through the ledger server (the verifier's role
   cannot write; ``record``), when a record URL is configured.

The outcome's ``status`` is ``intact``, ``tampered`` or ``error`` (nothing proven either way);
``problems`` lists what went wrong around the verification itself (state not saved, an alert or
a record that could not be delivered): the job is not clean while any remain.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from ledger.core.entry import format_time
from ledger.errors import ConfigurationError, LedgerError
from ledger.services.verification.alerts import send_alert
from ledger.services.verification.range import Progress
from ledger.services.verification.record import post_run
from ledger.services.verification.state import VerifierStateStore
from ledger.services.verification.verify import VerifyReport, save_states, verify_logs
from ledger.storage.db import read_only, unit_of_work
from ledger.storage.keystore import DataKeyStore
from ledger.storage.logs import get_log, list_logs


@dataclass(frozen=True)
class Scope:
    """Which logs: one (``log``), one tenant's, or all."""

    log: str | None = None
    tenant: str | None = None


@dataclass(frozen=True)
class Alerts:
    webhook_url: str | None
    command: str | None
    timeout: float


@dataclass(frozen=True)
class RunRecorder:
    """The ledger server and verifier token the run is recorded through."""

    url: str
    token: str | None
    timeout: float


@dataclass
class JobOutcome:
    run: dict[str, Any]
    """The report: what the alerts and the system log receive."""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the operator should know that is not a problem (a state set aside)."""

    @property
    def status(self) -> str:
        return str(self.run["status"])


def run_verification(
    engine: Engine,
    *,
    data_keys: DataKeyStore,
    states: VerifierStateStore,
    anchor_dir: Path | None,
    scope: Scope,
    full: bool,
    rebaseline: bool,
    jobs: int,
    alerts: Alerts,
    recorder: RunRecorder | None,
    now: Callable[[], datetime],
    progress: Progress | None = None,
) -> JobOutcome:
    """``rebaseline`` (one log, after an approved restore): set its state aside, verify in
    full."""
    if rebaseline and not scope.log:
        raise ConfigurationError("--rebaseline needs --log (one log at a time)")
    outcome = JobOutcome(
        {
            "status": "error",
            "intact": False,
            "mode": "full" if full or rebaseline else "incremental",
            "host": socket.gethostname(),
            "started_at": format_time(now()),
            "logs": [],
        }
    )
    tenants: dict[str, str] = {}
    try:
        report = _verify(
            engine,
            data_keys=data_keys,
            states=states,
            anchor_dir=anchor_dir,
            scope=scope,
            full=full or rebaseline,
            rebaseline=rebaseline,
            jobs=jobs,
            tenants=tenants,
            outcome=outcome,
            now=now,
            progress=progress,
        )
    except LedgerError as exc:
        outcome.run["error"] = f"{type(exc).__name__}: {exc}"
    else:
        outcome.run["logs"] = [r.as_json() for r in report.logs]
        outcome.run["status"] = "intact" if report.intact else "tampered"
        outcome.run["intact"] = report.intact
        try:
            save_states(report, states, now=now())
        except (OSError, LedgerError) as exc:
            outcome.problems.append(f"verifier state not saved: {exc}")
    outcome.run["finished_at"] = format_time(now())
    if outcome.status != "intact" or outcome.problems:
        outcome.problems += send_alert(
            json.dumps(outcome.run, indent=2).encode(),
            webhook_url=alerts.webhook_url,
            command=alerts.command,
            timeout=alerts.timeout,
        )
    if recorder is not None:
        outcome.problems += _record(recorder, outcome.run, tenants, scope)
    return outcome


def _verify(
    engine: Engine,
    *,
    data_keys: DataKeyStore,
    states: VerifierStateStore,
    anchor_dir: Path | None,
    scope: Scope,
    full: bool,
    rebaseline: bool,
    jobs: int,
    tenants: dict[str, str],
    outcome: JobOutcome,
    now: Callable[[], datetime],
    progress: Progress | None,
) -> VerifyReport:
    with unit_of_work(engine) as conn:
        read_only(conn, repeatable=True)
        if scope.log:
            logs = [get_log(conn, scope.log)]
        else:
            logs = [i for i in list_logs(conn) if scope.tenant in (None, i.tenant)]
        tenants.update({i.id: i.tenant for i in logs})
        if rebaseline:
            assert scope.log is not None
            try:
                moved = states.archive(scope.log, now=now())
            except OSError as exc:
                raise ConfigurationError(f"cannot set the verifier state aside: {exc}") from exc
            outcome.notes.append(f"re-baselining {scope.log}: previous state moved to {moved}")
        return verify_logs(
            conn,
            logs,
            data_keys=data_keys,
            states=states,
            anchor_dir=anchor_dir,
            full=full,
            jobs=jobs,
            progress=progress,
        )


def _record(
    recorder: RunRecorder, run: dict[str, Any], tenants: dict[str, str], scope: Scope
) -> list[str]:
    """Record the run on the server, one request per tenant (the scope's tenant alone if the
    job could not even list the logs)."""
    if not recorder.token:
        return ["LEDGER_VERIFY_RECORD_URL is set without LEDGER_VERIFY_RECORD_TOKEN"]
    by_tenant: dict[str, list[dict[str, Any]]] = {}
    for entry in run["logs"]:
        by_tenant.setdefault(tenants[entry["log"]], []).append(entry)
    if not by_tenant and scope.tenant:
        by_tenant[scope.tenant] = []
    problems = []
    for tenant, logs in by_tenant.items():
        try:
            post_run(
                recorder.url,
                recorder.token,
                tenant,
                {**run, "logs": logs},
                timeout=recorder.timeout,
            )
        except LedgerError as exc:
            problems.append(f"run not recorded for tenant {tenant}: {exc}")
    return problems
