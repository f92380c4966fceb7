"""The fence against signing on the wrong database: what a server process tells the sequencer
it has given out, and whom it tells when the sequencer refuses.

The sequencer signs nothing on a tree that does not extend the checkpoint the process last gave
out (``SignerCache.given``, ``CheckpointFork``). A process learns those checkpoints by signing
them, by anchoring them (``anchor``), and, for a log it has not served yet, from the directory
sink (``learn_anchored``): the anchors outlive every process and sit outside the database, so a
process started against a database that rolled back (an old primary back on its own, a
failover to a standby that lacked acknowledged entries) is refused as soon as what it would
sign contradicts something anchored since.

A refusal is an integrity finding: the server alerts through the verifier's channels
(``LEDGER_ALERT_WEBHOOK_URL``, ``LEDGER_ALERT_COMMAND``), once per log per
``ALERT_INTERVAL_SECONDS``, on a thread of its own (writers are answered 503 meanwhile).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection

from ledger.core.checkpoint import open_checkpoint
from ledger.core.entry import format_time
from ledger.core.signing import NoteVerifier
from ledger.domain import LogInfo
from ledger.errors import CheckpointFork, CryptoError
from ledger.services.anchoring.anchor import latest_anchor
from ledger.services.verification.alerts import send_alert
from ledger.storage.keystore import SignerCache, signing_key_records

log = logging.getLogger(__name__)
ALERT_INTERVAL_SECONDS = 60.0


def learn_anchored(
    conn: Connection, signers: SignerCache, log_info: LogInfo, directory: Path
) -> None:
    """Remember the latest checkpoint of ``log_info`` in the directory sink, if one is there
    and is signed by one of the log's keys (one that is not is the verifier's to report)."""
    anchored = latest_anchor(directory, log_info.id)
    if anchored is None:
        return
    verifiers = [
        NoteVerifier.from_verifier_key(record.verifier_key)
        for record in signing_key_records(conn, log_info.id)
    ]
    try:
        checkpoint = open_checkpoint(anchored.note, verifiers)
    except CryptoError as exc:
        log.warning("anchored checkpoint %s does not verify, not learnt: %s", anchored.source, exc)
        return
    if checkpoint.origin != log_info.origin or checkpoint.size != anchored.size:
        log.warning("anchored checkpoint %s is not %s's at its size", anchored.source, log_info.id)
        return
    signers.given.remember(
        log_info.id, checkpoint.size, checkpoint.root_hash, how=f"anchored ({anchored.source})"
    )


class ForkAlerts:
    """Sends a refusal's report to the alert channels, at most once per log per interval."""

    def __init__(
        self,
        *,
        webhook_url: str | None,
        command: str | None,
        timeout: float,
        interval: float = ALERT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._webhook_url = webhook_url
        self._command = command
        self._timeout = timeout
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def report(self, log_id: str, failure: CheckpointFork) -> bytes:
        """The alert's body: the shape of a ``ledger verify`` report, from the sequencer."""
        run = {
            "status": "tampered",
            "intact": False,
            "source": "sequencer",
            "host": socket.gethostname(),
            "at": format_time(datetime.now(UTC)),
            "logs": [
                {
                    "log": log_id,
                    "intact": False,
                    "failure": {
                        "log": failure.log,
                        "seq": failure.seq,
                        "what": failure.what,
                        "expected": failure.expected,
                        "found": failure.found,
                        "message": str(failure),
                    },
                }
            ],
        }
        return json.dumps(run, indent=2).encode()

    def refused(self, log_id: str, failure: CheckpointFork) -> threading.Thread | None:
        """Alert about ``failure`` unless this log alerted within the interval; the thread that
        delivers it (None if none was started)."""
        if not (self._webhook_url or self._command):
            return None
        now = self._clock()
        with self._lock:
            last = self._last.get(log_id)
            if last is not None and now - last < self._interval:
                return None
            self._last[log_id] = now
        body = self.report(log_id, failure)

        def deliver() -> None:
            for problem in send_alert(
                body, webhook_url=self._webhook_url, command=self._command, timeout=self._timeout
            ):
                log.error("fork alert for %s undelivered: %s", log_id, problem)

        thread = threading.Thread(target=deliver, name="fork-alert", daemon=True)
        thread.start()
        return thread
