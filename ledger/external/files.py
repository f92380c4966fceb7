"""Files the ledger keeps outside its database (verifier state, anchored checkpoints): safe
names and atomic writes, so a crash leaves either the old file or the new one, never half."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from ledger.errors import ConfigurationError, IntegrityFailure

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def log_file_stem(log_id: str) -> str:
    """``log_id`` as a file name component; refuses anything that could leave the directory."""
    if not _SAFE.fullmatch(log_id) or ".." in log_id:
        raise ConfigurationError(f"log id {log_id!r} cannot name a file")
    return log_id


def write_atomic(path: Path, data: bytes, *, overwrite: bool) -> bool:
    """Write ``data`` to ``path`` durably: temp file, fsync, then rename (``overwrite``) or
    hard link (never overwrite). Returns False if ``path`` already held exactly ``data``;
    raises IntegrityFailure if it held something else and may not be overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            tmp.replace(path)
        else:
            try:
                os.link(tmp, path)  # fails if path exists: an anchor is never replaced
            except FileExistsError:
                if path.read_bytes() == data:
                    return False
                raise IntegrityFailure(f"{path} exists with different content") from None
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
