"""Alerts when verification fails (PCI DSS 10.3.4, 10.7.2; SOC 2 CC7.2): the JSON report is
POSTed to a webhook and/or piped to a command's stdin. Appends never alert: only a run that
found tampering or could not run calls ``send_alert``.

Every configured channel is tried; the channels that could not be reached are returned, so the
job can say so (and still exit with the verification's own code).
"""

from __future__ import annotations

import shlex
import subprocess

from ledger.external.http import post


def send_alert(
    report: bytes, *, webhook_url: str | None, command: str | None, timeout: float
) -> list[str]:
    """Deliver ``report`` (JSON) to every configured channel; return what went undelivered."""
    undelivered: list[str] = []
    if webhook_url:
        try:
            response = post(webhook_url, report, content_type="application/json", timeout=timeout)
        except OSError as exc:
            undelivered.append(f"alert webhook unreachable: {exc}")
        else:
            if not 200 <= response.status < 300:
                undelivered.append(f"alert webhook answered {response.status}")
    if command:
        try:
            subprocess.run(  # noqa: S603 - the operator's own command
                shlex.split(command),
                input=report,
                timeout=timeout,
                check=True,
                capture_output=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            undelivered.append(f"alert command failed: {exc}")
    return undelivered
