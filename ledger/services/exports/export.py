"""The auditor's export, as one use case: plan, read, write to a file, record, hand over.

1. Plan (``select.plan_export``): which entries, at the log's latest signed checkpoint; a request
   that cannot be made as asked fails here (``ExportInvalid``, 422), before anything is written
   or recorded.
2. Write, streaming, to a temporary file in ``workdir``: an evidence bundle (``bundle``) or one
   rendered format (JSON Lines, CSV, OCSF, the HTML report). The caller's unit of work must be
   read-only and repeatable-read, so that every file describes the same tree.
3. Record ``ledger.export.created.v1`` (who, profile, filters, count, the manifest's or the
   file's SHA-256) in the tenant's system log, durably, before anything is served (PCI DSS
   10.2.1.3: fail closed).
4. Hand the file over: the caller streams it and removes it (``Export.cleanup``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from ledger.domain import LogInfo
from ledger.services.exports.bundle import Progress, WriteBehind, write_bundle
from ledger.services.exports.formats import FILENAMES, MEDIA_TYPES
from ledger.services.exports.formats import render as render_format
from ledger.services.exports.model import (
    AccessRecord,
    ExportContext,
    ExportedEntry,
    RenderedFormat,
)
from ledger.services.exports.query import ExportQuery
from ledger.services.exports.select import (
    Carried,
    ExportPlan,
    accesses_of_subject,
    plan_export,
    read_carried,
    read_entries,
)
from ledger.services.system_log import Access, SystemLog, export_created_event, system_log_id
from ledger.storage.keystore import KeyRing
from ledger.storage.logs import get_log

BUNDLE_MEDIA_TYPE = "application/zip"


@dataclass(frozen=True)
class Export:
    path: Path
    """The written file; the caller streams it, then calls ``cleanup``."""
    media_type: str
    filename: str
    count: int
    sha256: str
    """Of the manifest (a bundle) or of the whole file."""

    def cleanup(self) -> None:
        self.path.unlink(missing_ok=True)

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        """The file's bytes, then the file is removed."""
        try:
            with self.path.open("rb") as f:
                while chunk := f.read(size):
                    yield chunk
        finally:
            self.cleanup()


def run_export(
    conn: Connection,
    system_log: SystemLog,
    log: LogInfo,
    query: ExportQuery,
    *,
    keys: KeyRing,
    actor: dict[str, Any],
    access: Access,
    now: datetime,
    workdir: Path | None = None,
    progress: Progress | None = None,
) -> Export:
    plan = plan_export(conn, log, query)
    ctx = ExportContext(
        log=log.id,
        origin=log.origin,
        profile=query.profile,
        query=query.as_given or {},
        tree_size=plan.checkpoint.size,
        root=plan.checkpoint.root,
        checkpoint=plan.checkpoint.note,
        generated_at=now,
        generated_by=actor,
    )
    with_payloads = query.profile != "pci-dss-10"  # the six PCI fields are all in the entry

    def entries() -> Iterator[ExportedEntry]:
        return read_entries(
            conn, log, plan, query, data_keys=keys.data_keys, with_payloads=with_payloads
        )

    def carried() -> Iterator[list[Carried]]:
        """What the bundle's ``entries.jsonl`` carries (the reports it may carry read
        ``entries()``)."""
        return read_carried(
            conn, log, plan, query, data_keys=keys.data_keys, with_payloads=with_payloads
        )

    found_accesses: list[AccessRecord] = []

    def accesses() -> Iterable[AccessRecord]:
        """The subject's access report: read once, however many formats render it (one
        subject's records: a list is fine)."""
        if query.profile != "hipaa-disclosures":
            return ()
        if not found_accesses:
            system = get_log(conn, system_log_id(log.tenant))
            found_accesses.extend(
                accesses_of_subject(
                    conn, log, system, entries(), plan.conversations, data_keys=keys.data_keys
                )
            )
        return found_accesses

    rendered = [0]  # entries the last rendering went through: a format's ``count``

    def reported() -> Iterator[ExportedEntry]:
        rendered[0] = 0
        every = not query.event_types
        for e in entries():
            if every or query.reports(str(e.entry["event"]["type"])):
                rendered[0] += 1
                if progress is not None and rendered[0] % 10_000 == 0:
                    progress(rendered[0])
                yield e

    def render(fmt: RenderedFormat) -> Callable[[], Iterator[bytes]]:
        return lambda: render_format(fmt, ctx, reported(), accesses())

    fd, name = tempfile.mkstemp(prefix=".export-", suffix=".tmp", dir=workdir)
    os.close(fd)
    path = Path(name)
    try:
        if query.format == "bundle":
            written = write_bundle(
                path,
                conn,
                log,
                ctx=ctx,
                plan=plan,
                entries=carried(),
                keys=keys,
                reports={FILENAMES[f]: render(f) for f in query.include},
                progress=progress,
            )
            count, digest = written.count, {"manifest_sha256": written.manifest_sha256}
            media_type, filename = BUNDLE_MEDIA_TYPE, f"{log.id}-{query.profile}.zip"
        else:
            digest = {"file_sha256": _write_file(path, render(query.format)())}
            count = rendered[0]
            media_type = MEDIA_TYPES[query.format]
            filename = f"{log.id}-{query.profile}-{FILENAMES[query.format]}"
        system_log.record_durably(
            log.tenant,
            export_created_event(
                log,
                actor=actor,
                access=access,
                query=ctx.query,
                selection=plan.selection,
                tree_size=plan.checkpoint.size,
                count=count,
                digest=digest,
                now=now,
            ),
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Export(path, media_type, filename, count, next(iter(digest.values())))


def _write_file(path: Path, chunks: Iterator[bytes]) -> str:
    """Write ``chunks`` to ``path``; their SHA-256, hex. Hashing and writing happen on a
    second thread (``WriteBehind``) while the chunks are rendered."""
    sha256 = hashlib.sha256()
    with path.open("wb") as out:

        def sink(chunk: bytes) -> None:
            sha256.update(chunk)
            out.write(chunk)

        behind = WriteBehind(sink)
        try:
            for chunk in _grouped(chunks):
                behind.write(chunk)
        except BaseException:
            close = getattr(chunks, "close", None)
            if callable(close):
                close()  # the renderers, then the reader: it lets go of the connection now
            behind.abandon()
            raise
        behind.close()
    return sha256.hexdigest()


def _grouped(chunks: Iterator[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    """Renderers' chunks (tens of KB) joined into pieces of about ``size``: fewer hand-overs
    to the writing thread."""
    pending: list[bytes] = []
    held = 0
    for chunk in chunks:
        pending.append(chunk)
        held += len(chunk)
        if held >= size:
            yield b"".join(pending)
            pending, held = [], 0
    if pending:
        yield b"".join(pending)


__all__ = ["Export", "ExportPlan", "run_export"]
