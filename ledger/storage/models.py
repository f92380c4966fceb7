"""Tables. The schema itself is created only by Alembic (``migrations/``); these models mirror it
for queries, and ``alembic check`` in the tests keeps the two in step.

Append-only tables (guarded by triggers in the migrations): entries, payloads, tree_nodes,
checkpoints, key_rotations, anchorings, witness_cosignatures, privacy_requests,
privacy_approvals. ``log_heads`` is the one mutable
row per log, the sequencer's lock and cache of the tree's right frontier; everything in it can
be recomputed from the entries.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Log(Base):
    __tablename__ = "logs"
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    origin: Mapped[str] = mapped_column(Text, unique=True)
    tenant: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)  # "events" (writers post here) or "system"
    policy: Mapped[dict[str, object]] = mapped_column(JSONB, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    __table_args__ = (
        CheckConstraint("kind IN ('events', 'system')", name="kind"),
        # Row security finds a tenant's logs by it (migration 0011).
        Index("ix_logs_tenant", "tenant"),
    )


class LogHead(Base):
    __tablename__ = "log_heads"
    log_id: Mapped[str] = mapped_column(ForeignKey("logs.id"), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    frontier: Mapped[bytes] = mapped_column(LargeBinary)
    last_leaf: Mapped[bytes] = mapped_column(LargeBinary)
    moved_to: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Set where a tenant moved away from: the cluster its logs are on now (migration 0014)."""


class Entry(Base):
    __tablename__ = "entries"
    # No foreign keys on entries or payloads: each would cost a lookup per row under the log's
    # lock, and guard nothing the head row and the no-delete triggers do not (migration 0006).
    log_id: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    """The exact RFC 8785 bytes that were hashed: the source of truth for everything below."""
    source: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    conversation_id: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    request_digest: Mapped[bytes] = mapped_column(LargeBinary)
    """SHA-256 of the event as posted (canonical), to tell a retry from a conflicting reuse."""
    __table_args__ = (
        UniqueConstraint("log_id", "source", "event_id"),
        Index("ix_entries_conversation", "log_id", "conversation_id", "seq"),
    )


class DataKey(Base):
    """One data key per erasure scope; destroying ``wrapped`` crypto-shreds the scope."""

    __tablename__ = "data_keys"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    log_id: Mapped[str] = mapped_column(ForeignKey("logs.id"))
    scope: Mapped[str] = mapped_column(Text)
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    destroyed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    erasure_request_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """The erase request (``privacy_requests``) whose approval destroyed the key; no foreign
    key (migration 0007)."""
    destroyed_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    """``erasure`` or ``retention`` once destroyed (migration 0010)."""
    master_key_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The master key that wrapped it (``ledger.keys``); NULL: wrapped before migration 0012."""
    __table_args__ = (
        UniqueConstraint("log_id", "scope"),
        CheckConstraint("destroyed_by IN ('erasure', 'retention')", name="destroyed_by"),
    )


class Payload(Base):
    __tablename__ = "payloads"
    log_id: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data_key_id: Mapped[int] = mapped_column(BigInteger)  # no foreign key: see Entry
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    __table_args__ = (
        # A payload belongs to exactly one entry.
        CheckConstraint("seq >= 0", name="seq_nonnegative"),
    )


class TreeNode(Base):
    """Perfect interior nodes (level >= 1) of the Merkle tree; level 0 is ``entries.leaf_hash``."""

    __tablename__ = "tree_nodes"
    log_id: Mapped[str] = mapped_column(Text, primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    log_id: Mapped[str] = mapped_column(ForeignKey("logs.id"), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text)
    key_id: Mapped[bytes] = mapped_column(LargeBinary)
    signed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SigningKey(Base):
    """Checkpoint signing keys. Public halves are never deleted; private halves are sealed."""

    __tablename__ = "signing_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    log_id: Mapped[str] = mapped_column(ForeignKey("logs.id"))
    key_id: Mapped[bytes] = mapped_column(LargeBinary)
    verifier_key: Mapped[str] = mapped_column(Text)
    sealed_private: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    master_key_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The master key that wrapped ``sealed_private``; NULL: before migration 0012."""
    __table_args__ = (UniqueConstraint("log_id", "key_id"),)


class Credential(Base):
    __tablename__ = "credentials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    log_id: Mapped[str] = mapped_column(ForeignKey("logs.id"))
    role: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """NULL: never expires; past it, refused like a revoked credential (migration 0008)."""
    __table_args__ = (
        CheckConstraint("role IN ('writer', 'auditor', 'verifier', 'admin')", name="role"),
        CheckConstraint("expires_at > created_at", name="expires_after"),
    )


class WriterKey(Base):
    """A writer's Ed25519 public key (issue 18, migration 0009): never deleted, only revoked."""

    __tablename__ = "writer_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    log_id: Mapped[str] = mapped_column(ForeignKey("logs.id"))
    credential_id: Mapped[int] = mapped_column(ForeignKey("credentials.id"))
    kid: Mapped[str] = mapped_column(Text)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    __table_args__ = (
        UniqueConstraint("log_id", "kid"),
        CheckConstraint("length(public_key) = 32", name="ed25519"),
        CheckConstraint("revoked_at >= added_at", name="revoked_after"),
    )


class WrappedSecret(Base):
    """A secret the ledger keeps wrapped by the master key rather than derived from it (a KMS
    never hands its key out): the card guard's fingerprint key (migration 0012)."""

    __tablename__ = "wrapped_secrets"
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    master_key_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TenantPlacement(Base):
    """Which cluster holds a tenant (its logs and system log), on the main cluster (0014)."""

    __tablename__ = "tenant_placements"
    tenant: Mapped[str] = mapped_column(Text, primary_key=True)
    cluster: Mapped[str] = mapped_column(Text)
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    __table_args__ = (UniqueConstraint("tenant", "cluster"),)


class LogPlacement(Base):
    """Which cluster holds a log: its tenant's (the composite foreign key), on the main
    cluster (0014). A log with no row is on the main cluster."""

    __tablename__ = "log_placements"
    log_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant: Mapped[str] = mapped_column(Text)
    cluster: Mapped[str] = mapped_column(Text, index=True)
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant", "cluster"],
            ["tenant_placements.tenant", "tenant_placements.cluster"],
            name="fk_log_placements_tenant_cluster",
            onupdate="CASCADE",
        ),
    )


class MasterKeyChange(Base):
    """Append-only: a master key activated (new keys are wrapped under it: a rotation started),
    superseded (that rotation replaces it) or retired (nothing is wrapped under it any more;
    migration 0012)."""

    __tablename__ = "master_key_changes"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    master_key_id: Mapped[str] = mapped_column(Text)
    change: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(Text)
    __table_args__ = (
        CheckConstraint("change IN ('activated', 'superseded', 'retired')", name="change"),
        Index(
            "uq_master_key_changes_retired",
            "master_key_id",
            unique=True,
            postgresql_where=text("change = 'retired'"),
        ),
    )


class KeyRotation(Base):
    """A rotation statement signed by the old and the new key (``ledger.core.rotation``)."""

    __tablename__ = "key_rotations"
    log_id: Mapped[str] = mapped_column(ForeignKey("logs.id"), primary_key=True)
    new_key_id: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    old_key_id: Mapped[bytes] = mapped_column(LargeBinary)
    statement: Mapped[str] = mapped_column(Text)
    rotated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Anchoring(Base):
    """Which checkpoint was published to which external sink, and when."""

    __tablename__ = "anchorings"
    log_id: Mapped[str] = mapped_column(ForeignKey("logs.id"), primary_key=True)
    sink: Mapped[str] = mapped_column(Text, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    anchored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WitnessCosignature(Base):
    """A C2SP tlog-cosignature line returned by a tlog-witness for one checkpoint."""

    __tablename__ = "witness_cosignatures"
    log_id: Mapped[str] = mapped_column(ForeignKey("logs.id"), primary_key=True)
    witness: Mapped[str] = mapped_column(Text, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    cosignature: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PrivacyRequest(Base):
    """An admin's request to erase a scope, place a legal hold on it, or release a hold
    (``hold_id``); approved iff it has a :class:`PrivacyApproval` (migration 0007)."""

    __tablename__ = "privacy_requests"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    log_id: Mapped[str] = mapped_column(ForeignKey("logs.id"))
    action: Mapped[str] = mapped_column(Text)  # erase, hold, release
    scope_kind: Mapped[str] = mapped_column(Text)  # conversation, subject
    scope_id: Mapped[str] = mapped_column(Text)
    hold_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("privacy_requests.id"), nullable=True
    )
    legal_basis: Mapped[str] = mapped_column(Text)
    reference: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[int] = mapped_column(Integer, ForeignKey("credentials.id"))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """A ``retention`` request's new period (scope kind ``log``; migration 0010)."""
    __table_args__ = (
        CheckConstraint("action IN ('erase', 'hold', 'release', 'retention')", name="action"),
        CheckConstraint("scope_kind IN ('conversation', 'subject', 'log')", name="scope_kind"),
        CheckConstraint(
            "(action = 'retention') = (retention_days IS NOT NULL)"
            " AND (retention_days IS NULL OR retention_days > 0)",
            name="retention_names_days",
        ),
        CheckConstraint("(action = 'release') = (hold_id IS NOT NULL)", name="release_names_hold"),
        CheckConstraint("expires_at > requested_at", name="expires_after"),
        Index("ix_privacy_requests_log_id_action", "log_id", "action"),
    )


class PrivacyApproval(Base):
    """The second admin's approval of a privacy request (at most one: the primary key)."""

    __tablename__ = "privacy_approvals"
    request_id: Mapped[int] = mapped_column(ForeignKey("privacy_requests.id"), primary_key=True)
    approved_by: Mapped[int] = mapped_column(Integer, ForeignKey("credentials.id"))
    approved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ConsoleConversation(Base):
    """The console's search index: one row per conversation, derived from its entries (and the
    escalation triggers from their payloads) by ``ledger.services.console.index``; recomputable,
    so mutable (migration 0013)."""

    __tablename__ = "console_conversations"
    log_id: Mapped[str] = mapped_column(Text, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(Text, primary_key=True)
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    events: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event_types: Mapped[list[str]] = mapped_column(ARRAY(Text))
    subjects: Mapped[list[str]] = mapped_column(ARRAY(Text))
    triggers: Mapped[list[str]] = mapped_column(ARRAY(Text))
    handed_off: Mapped[bool] = mapped_column(Boolean)
    escalated: Mapped[bool] = mapped_column(Boolean)
    requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    productive_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    __table_args__ = (
        Index("ix_console_conversations_log_id_last_seq", "log_id", "last_seq"),
        Index("ix_console_conversations_subjects", "subjects", postgresql_using="gin"),
    )


class ConsoleDaily(Base):
    """Events per day (of ``received_at``, UTC) per log, for the console's overview."""

    __tablename__ = "console_daily"
    log_id: Mapped[str] = mapped_column(Text, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger)


class ConsoleIndexHead(Base):
    """How far the console's index has read each log: entries ``[0, size)``."""

    __tablename__ = "console_index_heads"
    log_id: Mapped[str] = mapped_column(Text, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
