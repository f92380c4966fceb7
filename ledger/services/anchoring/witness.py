"""A C2SP tlog-witness client (c2sp.org/tlog-witness ``add-checkpoint``) as an anchor sink.

Request body: ``old <size>\\n``, the RFC 6962 consistency proof from that size to the checkpoint
(one base64 hash a line, none when old is 0), an empty line, then the signed checkpoint. The old
size is the last size this witness cosigned for the log (0 at first). A ``409`` with
``text/x.tlog.size`` tells the witness's own latest size: the request is retried once from there
(a witness ahead of the database means the database was rolled back: that is an error, never
retried down). A ``200`` holds cosignature lines; those by the configured witness key are
verified (``ledger.core.cosignature``) and stored in ``witness_cosignatures``.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Connection

from ledger.core.cosignature import CosignerVerifier, open_cosignatures
from ledger.domain import LogInfo
from ledger.errors import ConfigurationError, CryptoError, LedgerError
from ledger.external.http import check_url, post
from ledger.settings import Settings
from ledger.storage.anchorings import insert_cosignature, last_cosigned_size
from ledger.storage.checkpoints import StoredCheckpoint
from ledger.storage.proofs import consistency_proof

SIZE_CONTENT_TYPE = "text/x.tlog.size"


def add_checkpoint_body(old: int, proof: list[bytes], note: str) -> bytes:
    lines = [f"old {old}\n", *(base64.b64encode(h).decode() + "\n" for h in proof), "\n"]
    return ("".join(lines) + note).encode()


class WitnessSink:
    def __init__(self, url: str, key: CosignerVerifier, timeout: float) -> None:
        # The submission prefix's path gets /add-checkpoint; a key in its query stays there.
        parts = urlsplit(check_url(url, "LEDGER_ANCHOR_WITNESS_URL"))
        self.url = urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/add-checkpoint"))
        self.key = key
        self.timeout = timeout
        self.witness = key.verifier_key()
        self.name = f"witness:{key.name}+{key.key_id.hex()}"

    @classmethod
    def from_settings(cls, settings: Settings) -> WitnessSink:
        if not (settings.anchor_witness_url and settings.anchor_witness_key):
            raise ConfigurationError(
                "LEDGER_ANCHOR_WITNESS_URL and LEDGER_ANCHOR_WITNESS_KEY go together"
            )
        try:
            key = CosignerVerifier.from_verifier_key(settings.anchor_witness_key)
        except CryptoError as exc:
            raise ConfigurationError(f"LEDGER_ANCHOR_WITNESS_KEY: {exc}") from exc
        return cls(settings.anchor_witness_url, key, settings.http_timeout_seconds)

    def publish(self, conn: Connection, log: LogInfo, cp: StoredCheckpoint) -> dict[str, Any]:
        old = last_cosigned_size(conn, log.id, self.witness)
        for _attempt in range(2):
            if old > cp.size:
                raise LedgerError(
                    f"witness {self.key.name} has cosigned size {old},"
                    f" beyond the database's {cp.size}: rollback?"
                )
            proof = consistency_proof(conn, log.id, old, cp.size) if old else []
            response = post(
                self.url,
                add_checkpoint_body(old, proof, cp.note),
                content_type="text/plain; charset=utf-8",
                timeout=self.timeout,
            )
            if response.status == 409 and response.content_type.startswith(SIZE_CONTENT_TYPE):
                theirs = _size(response.text())
                if theirs == old:
                    raise LedgerError(
                        f"witness {self.key.name} refuses size {cp.size}"
                        " as inconsistent with what it cosigned (fork?)"
                    )
                old = theirs
                continue
            if response.status != 200:
                raise LedgerError(
                    f"witness {self.key.name} answered {response.status}: {response.text(200)}"
                )
            try:
                cosignatures = open_cosignatures(cp.note, response.body.decode(), self.key)
            except (CryptoError, UnicodeDecodeError) as exc:
                raise LedgerError(f"witness {self.key.name}: bad cosignature: {exc}") from exc
            for cosig in cosignatures:
                insert_cosignature(
                    conn,
                    log.id,
                    witness=self.witness,
                    size=cp.size,
                    root=cp.root,
                    line=cosig.line,
                    timestamp=cosig.timestamp,
                )
            return {"cosignatures": len(cosignatures), "old_size": old}
        raise LedgerError(f"witness {self.key.name} keeps changing its size")


def _size(body: str) -> int:
    value = body.strip()
    if not value.isdigit():
        raise LedgerError(f"witness sent a malformed size {value[:40]!r}")
    return int(value)
