"""Anchoring: publish each log's latest signed checkpoint outside the database (PCI DSS 10.3.3,
NIST AU-9(2)), so that a rewrite or rollback of the database contradicts something it cannot
reach. The verifier reads the directory sink back and proves the database consistent with
every anchored checkpoint.

Sinks:

- directory (``LEDGER_ANCHOR_DIR``): ``{dir}/{log id}/{size:020d}.checkpoint``, the signed note
  as served; written atomically (temp file, fsync, hard link) and never overwritten: the same
  size with other content is reported as a fork. Mount it from another volume or host.
- webhook (``LEDGER_ANCHOR_WEBHOOK_URL``): POST ``text/plain`` note, any 2xx accepted.
- C2SP tlog-witness (``LEDGER_ANCHOR_WITNESS_URL`` + ``_KEY``): see ``anchor_witness``.

Each run (``anchor``: ``ledger anchor``, and the server's schedule) anchors, per log and sink, the
latest checkpoint if it is larger than the last one that sink took (``anchorings`` table), and
records one ``ledger.checkpoint.anchored.v1`` event per anchored log in its tenant's system log,
in the same transaction. A system log whose only news since its last anchoring
is anchoring events is not anchored again, so quiet tenants do not anchor forever.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection

from ledger.core.entry import b64
from ledger.domain import LogInfo, PreparedEvent
from ledger.errors import IntegrityFailure, LedgerError
from ledger.external.files import log_file_stem, write_atomic
from ledger.external.http import check_url, post, redacted
from ledger.services.system_log import SystemLog, system_event
from ledger.settings import Settings
from ledger.storage.anchorings import (
    has_entries_other_than,
    insert_anchoring,
    last_anchored_size,
    try_anchoring_lock,
)
from ledger.storage.checkpoints import StoredCheckpoint, latest_checkpoint
from ledger.storage.keystore import KeyRing

ANCHORED_EVENT = "ledger.checkpoint.anchored.v1"
SUFFIX = ".checkpoint"


class Sink(Protocol):
    name: str

    def publish(self, conn: Connection, log: LogInfo, cp: StoredCheckpoint) -> dict[str, Any]:
        """Publish ``cp``; return details for the event; raise LedgerError or OSError."""
        ...


def anchor_path(directory: Path, log_id: str, size: int) -> Path:
    return directory / log_file_stem(log_id) / f"{size:020d}{SUFFIX}"


class DirectorySink:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.name = f"dir:{directory}"

    def publish(self, conn: Connection, log: LogInfo, cp: StoredCheckpoint) -> dict[str, Any]:
        path = anchor_path(self.directory, log.id, cp.size)
        try:
            written = write_atomic(path, cp.note.encode(), overwrite=False)
        except IntegrityFailure as exc:
            raise IntegrityFailure(
                f"fork: the anchored checkpoint {path} differs from the"
                f" database's checkpoint at size {cp.size}",
                log=log.id,
            ) from exc
        return {"file": str(path), "written": written}


class WebhookSink:
    def __init__(self, url: str, timeout: float) -> None:
        self.url = check_url(url, "LEDGER_ANCHOR_WEBHOOK_URL")
        self.timeout = timeout
        self.name = f"webhook:{redacted(url)}"  # recorded: never the URL's secrets

    def publish(self, conn: Connection, log: LogInfo, cp: StoredCheckpoint) -> dict[str, Any]:
        response = post(
            self.url,
            cp.note.encode(),
            content_type="text/plain; charset=utf-8",
            timeout=self.timeout,
            headers={"X-Ledger-Log": log.id, "X-Ledger-Tree-Size": str(cp.size)},
        )
        if not 200 <= response.status < 300:
            raise LedgerError(f"anchor webhook answered {response.status}")
        return {"status": response.status}


def sinks_from_settings(settings: Settings) -> list[Sink]:
    sinks: list[Sink] = []
    if settings.anchor_dir is not None:
        sinks.append(DirectorySink(settings.anchor_dir))
    if settings.anchor_webhook_url:
        sinks.append(WebhookSink(settings.anchor_webhook_url, settings.http_timeout_seconds))
    if settings.anchor_witness_url or settings.anchor_witness_key:
        from ledger.services.anchoring.witness import WitnessSink

        sinks.append(WitnessSink.from_settings(settings))
    return sinks


@dataclass
class Anchoring:
    """What one run did for one log."""

    log: LogInfo
    checkpoint: StoredCheckpoint
    sinks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s["outcome"] == "success" for s in self.sinks)

    def event(self, now: datetime, actor: dict[str, Any] | None = None) -> PreparedEvent:
        return system_event(
            "checkpoint.anchored",
            stream="anchoring",
            now=now,
            actor=actor,
            outcome="success" if self.ok else "failure",
            data={
                "log": self.log.id,
                "size": self.checkpoint.size,
                "root": b64(self.checkpoint.root),
                "sinks": self.sinks,
            },
            resource={"type": "log", "id": self.log.id},
        )


def anchor(
    conn: Connection,
    keys: KeyRing,
    logs: Sequence[LogInfo],
    sinks: Sequence[Sink],
    *,
    actor: dict[str, Any] | None = None,
    now: datetime,
) -> list[Anchoring]:
    """Publish what each sink has not taken yet and record it (``anchorings`` and one event per
    anchored log), all in the caller's unit of work. One anchoring run at a time across
    processes: if another holds the lock, this one does nothing."""
    if not sinks or not try_anchoring_lock(conn):
        return []
    done = [a for a in (_anchor_log(conn, log, sinks, now=now) for log in logs) if a.sinks]
    system_log = SystemLog.in_transaction(conn, keys, now=now)
    for anchoring in done:
        system_log.record_durably(anchoring.log.tenant, anchoring.event(now, actor))
        if any(sink["outcome"] == "success" for sink in anchoring.sinks):
            # Published: outside the database now, whatever becomes of this transaction.
            cp = anchoring.checkpoint
            keys.signers.given.remember(anchoring.log.id, cp.size, cp.root, how="anchored")
    return done


def _anchor_log(
    conn: Connection, log: LogInfo, sinks: Sequence[Sink], *, now: datetime
) -> Anchoring:
    cp = latest_checkpoint(conn, log.id)
    anchoring = Anchoring(log, cp)
    for sink in sinks:
        if not _news(conn, log, cp, last_anchored_size(conn, log.id, sink.name)):
            continue
        try:
            details = sink.publish(conn, log, cp)
        except IntegrityFailure as exc:  # the sink holds another checkpoint of this size
            anchoring.sinks.append({"sink": sink.name, "outcome": "fork", "error": str(exc)})
            continue
        except (LedgerError, OSError) as exc:
            anchoring.sinks.append({"sink": sink.name, "outcome": "failure", "error": str(exc)})
            continue
        insert_anchoring(conn, log.id, sink=sink.name, size=cp.size, root=cp.root, anchored_at=now)
        anchoring.sinks.append({"sink": sink.name, "outcome": "success", **details})
    return anchoring


def _news(conn: Connection, log: LogInfo, cp: StoredCheckpoint, last: int | None) -> bool:
    if last is None:
        return True
    if cp.size <= last:
        return False
    # A system log whose only news since its last anchoring is anchoring events is not news.
    return log.kind != "system" or has_entries_other_than(
        conn, log.id, since=last, event_type=ANCHORED_EVENT
    )


# --- what the verifier reads back --------------------------------------------------------------


@dataclass(frozen=True)
class AnchoredNote:
    source: str
    size: int
    note: str


def latest_anchor(directory: Path, log_id: str) -> AnchoredNote | None:
    """The directory sink's largest checkpoint of ``log_id`` (None: none), reading one file."""
    folder = directory / log_file_stem(log_id)
    if not folder.is_dir():
        return None
    with os.scandir(folder) as entries:
        sizes = [
            int(stem)
            for entry in entries
            if (stem := entry.name.removesuffix(SUFFIX)) != entry.name and stem.isdigit()
        ]
    if not sizes:
        return None
    found = read_anchors(directory, log_id, min_size=max(sizes))
    return found[-1] if found else None


def read_anchors(directory: Path, log_id: str, *, min_size: int = 0) -> list[AnchoredNote]:
    """The directory sink's checkpoints of ``log_id`` with size >= ``min_size``, by size.
    Files whose name is not ``<digits>.checkpoint`` (temp files, a ``superseded/`` folder after
    an approved restore) are not anchors."""
    folder = directory / log_file_stem(log_id)
    if not folder.is_dir():
        return []
    found: list[AnchoredNote] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            stem = entry.name.removesuffix(SUFFIX)
            if stem == entry.name or not stem.isdigit() or not entry.is_file():
                continue
            if int(stem) < min_size:
                continue
            try:
                note = Path(entry.path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise IntegrityFailure(
                    f"anchored checkpoint {entry.path} is unreadable: {exc}", log=log_id
                ) from exc
            found.append(AnchoredNote(entry.path, int(stem), note))
    return sorted(found, key=lambda a: a.size)
