"""Who may do what: a bearer token's principal must hold one of the operation's roles on the log
it names. Every refusal on a known log is recorded in the tenant's system log (PCI DSS 10.2.1.4),
without waiting: a flood of bad tokens must not slow anyone down or fill memory waiting.

Failed authentications go through ``AuthFailures`` when the caller has one (the server): counted
per source and window, a source over its limit refused with 429, and each (source, log, window)
costing the system log at most two entries (``ledger/services/auth_failures.py``).

Security failures tell the client little (401 says the same for every reason; 403 does not say
whether another log exists); the server's log gets the detail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from ledger.domain import LogInfo, Principal
from ledger.errors import Forbidden, NotFound, Unauthenticated
from ledger.services.auth_failures import AuthFailures
from ledger.services.system_log import (
    Access,
    SystemLog,
    access_denied_event,
    auth_failed_event,
    credential_actor,
)

logger = logging.getLogger("ledger.access")


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer …`` header value."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("no bearer token")
    return token.strip()


def authorize(
    authorization: str | None,
    log_id: str,
    roles: Sequence[str],
    *,
    access: Callable[[], Access],
    principals: Callable[[str], Principal],
    logs: Callable[[str], LogInfo],
    system_log: SystemLog,
    now: datetime,
    failures: AuthFailures | None = None,
    source: Callable[[], str] | None = None,
) -> Principal:
    """The caller's principal if it holds one of ``roles`` on ``log_id``; else ``Unauthenticated``
    (401), ``NotFound`` (404: an unknown log, for an authenticated caller) or ``Forbidden``.
    ``access`` describes the request for the record; called only when there is one to make
    (writers' single-event requests pass here thousands of times a second).

    ``failures`` (with ``source``, the client's address): count failed authentications per
    source, and refuse a source over its limit (``TooManyAuthFailures``) before any lookup.
    Without it (the CLI) every failure on a known log is recorded at once."""
    if failures is not None and failures.tracking:
        assert source is not None
        failures.refuse_if_limited(source(), authorization, log_id, access)
    try:
        principal = principals(bearer_token(authorization))
    except Unauthenticated as exc:
        reason = str(exc)
        if failures is not None:
            assert source is not None
            client = source()
            failures.failed(client, log_id, access, reason, known=_known(log_id, logs, client))
        else:
            _record_auth_failure(log_id, access, reason, logs=logs, system_log=system_log, now=now)
        raise
    info = logs(log_id)
    if principal.log_id != log_id or principal.role not in roles:
        system_log.record(
            info.tenant,
            access_denied_event(
                info,
                actor=credential_actor(principal),
                access=access(),
                needed_roles=roles,
                now=now,
            ),
        )
        if principal.log_id != log_id:
            # Say no more than that: another log's existence is not this caller's business.
            raise Forbidden("this credential is not valid for that log")
        raise Forbidden(f"this operation needs the {' or '.join(roles)} role")
    return principal


def _known(log_id: str, logs: Callable[[str], LogInfo], client: str) -> LogInfo | None:
    try:
        return logs(log_id)
    except NotFound:
        logger.warning("authentication failure on unknown log %r from %s", log_id, client)
        return None


def _record_auth_failure(
    log_id: str,
    access: Callable[[], Access],
    reason: str,
    *,
    logs: Callable[[str], LogInfo],
    system_log: SystemLog,
    now: datetime,
) -> None:
    origin = access()
    try:
        info = logs(log_id)
    except NotFound:
        logger.warning("authentication failure on unknown log %r from %s", log_id, origin.client)
        return
    logger.warning("authentication failure on %s from %s: %s", log_id, origin.client, reason)
    system_log.record(info.tenant, auth_failed_event(info, access=origin, reason=reason, now=now))
