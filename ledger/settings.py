"""Typed settings, read from the environment (prefix ``LEDGER_``) when first asked for.

Nothing is read at import time: ``load_settings()`` builds them, tests build their own.
"""

from __future__ import annotations

import base64
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.errors import ConfigurationError


class ClusterSettings(BaseModel):
    """One more PostgreSQL cluster logs may be placed on (``LEDGER_CLUSTERS``)."""

    url: str
    """Its primary (a libpq URL; several hosts with ``target_session_attrs=read-write`` for a
    replicated pair, as ``LEDGER_DATABASE_URL``)."""
    read_url: str | None = None
    """Its standbys, as ``LEDGER_READ_DATABASE_URL`` is the main cluster's."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    env: Literal["development", "production"] = "development"
    database_url: str | None = None
    """PostgreSQL URL. Unset: `ledger serve` runs an embedded PostgreSQL under ``data_dir``."""
    read_database_url: str | None = None
    """Standbys of the database (a libpq URL, one host or several:
    ``postgresql://ledger_app@s1:5432,s2:5432/ledger``; each host is read on its own). Trails,
    entries, proofs, exports, the console's searches and ``ledger verify`` read from a standby
    whose replay lag is within ``read_max_lag_seconds``; past it, or when none answers, the
    primary answers."""
    read_max_lag_seconds: float = Field(default=5.0, gt=0)
    """How far behind the primary a standby may be and still serve reads (also: how long after
    an erasure a standby may still serve the erased payload)."""
    read_lag_probe_seconds: float = Field(default=0.5, gt=0)
    """How often each server measures its standbys' replay lag."""
    clusters: dict[str, ClusterSettings] = Field(default_factory=dict)
    """More clusters than the main one, as JSON: ``{"east": {"url": "postgresql://…",
    "read_url": "postgresql://…"}}``. Each is a whole ledger database (``ledger db upgrade``
    brings every one up to date); the placement table on the main cluster says which holds
    each log (README, Beyond one machine)."""
    db_role: str | None = None
    """If set, every connection runs ``SET ROLE`` to it (e.g. ``ledger_app``): least privilege."""
    migrate_on_start: bool = False
    """``ledger serve`` applies migrations itself (always on the embedded database). Off by
    default against a configured server: the owner runs ``ledger db upgrade``, the server only
    checks the schema is current, since its role may not change it."""
    data_dir: Path = Path(".ledger")
    master_key: str | None = None
    """Base64 of 32 bytes; wraps data keys and signing keys. Required in production (unless
    ``key_provider`` or ``master_key_file`` names the master key)."""
    master_key_file: Path | None = None
    """A file holding the master key (base64 of 32 bytes); wins over ``master_key``."""
    key_provider: str | None = None
    """The master key new keys are wrapped under, as a spec (``ledger.keys.config``):
    ``env:NAME``, ``file:PATH`` or ``package.module:factory[:ARG]`` (a KMS plugin). Wins over
    ``master_key_file`` and ``master_key``."""
    extra_key_providers: str | None = None
    """Comma-separated specs of further master keys this process unwraps with (during a
    master-key rotation: the old one, or the new one before the rotation starts)."""
    master_key_refresh_seconds: float = Field(default=2.0, gt=0)
    """How often a server asks the database which master key new keys are wrapped under (a
    rotation switches every server holding the new key within this time)."""
    origin_prefix: str = "handoff-ledger.localhost"
    """Log origins are ``{origin_prefix}/{log id}`` (C2SP: a schema-less URL naming the log)."""
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_batch_events: int = 1000
    max_event_bytes: int = 1 << 20
    group_commit_max_events: int = 5000
    group_commit_wait_ms: float = Field(default=0.0, ge=0)
    """Extra time the sequencer waits for more requests before committing (0: only what queued)."""
    card_policy: Literal["reject", "mask"] = "reject"
    pool_size: int = 8
    auth_failures_per_window: int = Field(default=10, ge=1)
    """Failed authentications a source (client address, as the server sees it) may make per
    window; past them its requests without a recently verified credential are answered 429."""
    auth_failure_window_seconds: float = Field(default=60.0, gt=0)
    """The window of that limit, and of the system log's failure summaries: each (source, log,
    window) costs at most two ``ledger.auth.failed.v1`` entries (the first failure, then one
    summary with the count when the window closes). Counted per server process."""
    auth_failure_max_sources: int = Field(default=10_000, ge=1)
    """Sources tracked at once per process; past it the oldest is flushed (its summary
    recorded) and forgotten."""
    metrics_token: str | None = None
    """When set, ``GET /metrics`` needs ``Authorization: Bearer <it>``; unset, it is served only
    to clients on the loopback address (127.0.0.1, ::1). Metrics name every tenant's logs."""
    approval_ttl_hours: float = Field(default=24.0, gt=0)
    """How long a privacy request (erasure, hold, release) waits for a second admin's approval
    before it expires."""

    # Verification job (`ledger verify`) and what it tells whom.
    verifier_state_dir: Path | None = None
    """Per log, the last verified checkpoint and the pinned verifier keys, kept OUTSIDE the
    database (trust on first use). Default ``{data_dir}/verifier``."""
    alert_webhook_url: str | None = None
    """On a failed verification, the JSON report is POSTed here."""
    alert_command: str | None = None
    """On a failed verification, this command runs with the JSON report on stdin."""
    verify_record_url: str | None = None
    """Base URL of a ledger server: each run is recorded there as ``ledger.verification.run.v1``
    (the verifier's database role cannot write)."""
    verify_record_token: str | None = None
    """A verifier credential on the tenant's system log, for ``verify_record_url``."""

    # Anchoring: checkpoints published outside the database.
    anchor_dir: Path | None = None
    """Directory sink (another volume or host): one file per log per checkpoint size. The
    verifier reads it back."""
    anchor_webhook_url: str | None = None
    """Webhook sink: each new checkpoint is POSTed as text/plain."""
    anchor_witness_url: str | None = None
    """C2SP tlog-witness submission prefix (``<prefix>/add-checkpoint``)."""
    anchor_witness_key: str | None = None
    """The witness's cosignature verifier key, ``name+hexid+base64(0x04 || key)``."""
    anchor_interval_seconds: float = Field(default=60.0, ge=0)
    """How often ``ledger serve`` anchors when a sink is configured (0: never)."""
    http_timeout_seconds: float = Field(default=10.0, gt=0)

    @property
    def verifier_state_path(self) -> Path:
        return self.verifier_state_dir or self.data_dir / "verifier"

    @cached_property
    def master_key_bytes(self) -> bytes:
        """The master key; in development a key file under data_dir is made once and reused."""
        return self.master_key_for(create=True)

    def master_key_for(self, *, create: bool) -> bytes:
        """The master key. ``create``: in development, make the key file under ``data_dir`` if
        it is missing (setting up); otherwise a missing key is a ``ConfigurationError`` (a
        command run from the wrong folder must say so, not work with a new key and find every
        payload undecryptable)."""
        if self.master_key:
            try:
                key = base64.b64decode(self.master_key, validate=True)
            except ValueError as exc:
                raise ConfigurationError("LEDGER_MASTER_KEY is not valid base64") from exc
            if len(key) != 32:
                raise ConfigurationError("LEDGER_MASTER_KEY must decode to exactly 32 bytes")
            return key
        if self.env == "production":
            raise ConfigurationError(
                "a master key is required when LEDGER_ENV=production: LEDGER_MASTER_KEY,"
                " LEDGER_MASTER_KEY_FILE or LEDGER_KEY_PROVIDER"
            )
        path = self.data_dir / "master.key"
        if not path.exists():
            if not create:
                raise ConfigurationError(
                    f"no master key: LEDGER_MASTER_KEY is unset and {path.resolve()} does not "
                    "exist (the data directory is LEDGER_DATA_DIR, default ./.ledger of the "
                    "folder you run from: run from the folder the ledger was set up in, or set "
                    "LEDGER_DATA_DIR, LEDGER_MASTER_KEY, LEDGER_MASTER_KEY_FILE or "
                    "LEDGER_KEY_PROVIDER)"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
        key = base64.b64decode(path.read_text().strip())
        if len(key) != 32:
            raise ConfigurationError(f"{path} does not hold a 32-byte base64 key")
        return key


def load_settings() -> Settings:
    return Settings()
