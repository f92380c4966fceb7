"""What the verifier remembers between runs, OUTSIDE the database it checks.

One JSON file per log, ``{state dir}/{log id}.json``::

    {"format": "handoff-ledger/verifier-state/v1", "log": ..., "origin": ...,
     "checkpoint": "<the last verified signed checkpoint note>",
     "last_leaf": "<base64 leaf hash at size - 1 (zeros for size 0)>",
     "keys": ["<pinned verifier key>", ...], "verified_at": "<RFC 3339>"}

The keys are pinned on first sight (trust on first use) and grow only by signed rotation
statements. The next run starts from this checkpoint (incremental) and fails if the database no
longer extends it. Whoever can write this directory can make the verifier trust anything: keep
it on a volume only the verifier job mounts.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ledger.core.checkpoint import Checkpoint, open_checkpoint
from ledger.core.entry import format_time
from ledger.core.signing import NoteVerifier
from ledger.errors import ConfigurationError, CryptoError
from ledger.external.files import log_file_stem, write_atomic

STATE_FORMAT = "handoff-ledger/verifier-state/v1"


@dataclass(frozen=True)
class TrustedState:
    log: str
    origin: str
    note: str
    checkpoint: Checkpoint
    last_leaf: bytes
    keys: tuple[str, ...]

    def verifiers(self) -> list[NoteVerifier]:
        return [NoteVerifier.from_verifier_key(k) for k in self.keys]


class VerifierStateStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, log_id: str) -> Path:
        return self.directory / f"{log_file_stem(log_id)}.json"

    def load(self, log_id: str) -> TrustedState | None:
        """The state of ``log_id``, or None on first sight. A state file that cannot be read
        is a ConfigurationError (the job could not run), never a silent fresh start."""
        path = self.path(log_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigurationError(f"cannot read verifier state {path}: {exc}") from exc
        try:
            return _parse_state(log_id, json.loads(raw))
        except (ValueError, KeyError, TypeError, binascii.Error, CryptoError) as exc:
            raise ConfigurationError(f"verifier state {path} is corrupt: {exc}") from exc

    def save(self, state: TrustedState, *, now: datetime) -> None:
        data = {
            "format": STATE_FORMAT,
            "log": state.log,
            "origin": state.origin,
            "checkpoint": state.note,
            "last_leaf": base64.b64encode(state.last_leaf).decode(),
            "keys": list(state.keys),
            "verified_at": format_time(now),
        }
        write_atomic(
            self.path(state.log), json.dumps(data, indent=2).encode() + b"\n", overwrite=True
        )

    def archive(self, log_id: str, *, now: datetime) -> Path | None:
        """Move the state aside (re-baselining after an approved restore); return where."""
        path = self.path(log_id)
        if not path.exists():
            return None
        target = path.with_name(f"{path.name}.{now.strftime('%Y%m%dT%H%M%SZ')}.superseded")
        path.rename(target)
        return target


def _parse_state(log_id: str, data: dict[str, object]) -> TrustedState:
    if data["format"] != STATE_FORMAT or data["log"] != log_id:
        raise ValueError("wrong format or log")
    keys = tuple(str(k) for k in data["keys"])  # type: ignore[attr-defined]
    note = str(data["checkpoint"])
    checkpoint = open_checkpoint(note, [NoteVerifier.from_verifier_key(k) for k in keys])
    last_leaf = base64.b64decode(str(data["last_leaf"]), validate=True)
    if checkpoint.origin != data["origin"] or len(last_leaf) != 32:
        raise ValueError("origin or last leaf do not fit the checkpoint")
    return TrustedState(log_id, checkpoint.origin, note, checkpoint, last_leaf, keys)
