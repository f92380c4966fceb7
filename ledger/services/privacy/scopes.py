"""What a privacy request is about: one conversation, or every conversation of a data subject
(the customer the entries name, found as the exports find them), and which legal holds cover
it.

A hold on a conversation covers that conversation; a hold on a data subject covers every
conversation in which the subject appears, including ones that start after the hold. An erasure
is covered by a hold when any conversation it would erase is, or when both name the same data
subject.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from ledger.core.entry import subject_fragment
from ledger.errors import InvalidRequest
from ledger.storage.entries import conversations_containing
from ledger.storage.privacy import PrivacyRecord, conversations_mentioning, conversations_present

SCOPE_KINDS = ("conversation", "subject")
MAX_SCOPE_ID = 200


@dataclass(frozen=True, slots=True)
class Scope:
    kind: str
    """``conversation`` or ``subject``."""
    id: str

    @classmethod
    def of(cls, *, conversation: str | None = None, subject: str | None = None) -> Scope:
        """Exactly one of the two; ``InvalidRequest`` otherwise."""
        if (conversation is None) == (subject is None):
            raise InvalidRequest("name exactly one of conversation and subject")
        kind, scope_id = (
            ("conversation", conversation) if conversation is not None else ("subject", subject)
        )
        assert scope_id is not None
        if not scope_id.strip() or len(scope_id) > MAX_SCOPE_ID:
            raise InvalidRequest(f"{kind} must be 1 to {MAX_SCOPE_ID} characters")
        return cls(kind, scope_id)

    @classmethod
    def of_record(cls, record: PrivacyRecord) -> Scope:
        return cls(record.scope_kind, record.scope_id)

    def __str__(self) -> str:
        noun = {"conversation": "conversation", "subject": "data subject"}.get(self.kind, "log")
        return f"{noun} {self.id!r}"

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id}


def data_key_scope(conversation: str) -> str:
    """The erasure scope of a conversation's data key (``ledger.services.ingest.prepare``)."""
    return f"conversation:{conversation}"


def conversations_of(
    conn: Connection, log_id: str, scope: Scope, *, size: int, start: int = 0
) -> list[str]:
    """The conversations of ``scope`` with an entry in ``[start, size)`` (a conversation scope:
    the conversation itself if it has any entry)."""
    if scope.kind == "conversation":
        return conversations_present(conn, log_id, [scope.id])
    return conversations_containing(
        conn, log_id, subject_fragment(scope.id), size=size, start=start
    )


def holds_covering(
    conn: Connection,
    log_id: str,
    scope: Scope,
    conversations: Sequence[str],
    holds: Sequence[PrivacyRecord],
) -> list[PrivacyRecord]:
    """Those of the active ``holds`` that cover ``scope``, whose conversations are
    ``conversations``."""
    covering = []
    wanted = set(conversations)
    for hold in holds:
        if hold.scope_kind == scope.kind and hold.scope_id == scope.id:
            covering.append(hold)
        elif hold.scope_kind == "conversation":
            if hold.scope_id in wanted:
                covering.append(hold)
        elif wanted and conversations_mentioning(
            conn, log_id, sorted(wanted), subject_fragment(hold.scope_id)
        ):
            covering.append(hold)
    return covering


def held_conversations(
    conn: Connection, log_id: str, conversations: Sequence[str], holds: Sequence[PrivacyRecord]
) -> set[str]:
    """Those of ``conversations`` that one of the active ``holds`` covers (retention skips
    them: holds win)."""
    held = {h.scope_id for h in holds if h.scope_kind == "conversation"} & set(conversations)
    for hold in holds:
        rest = sorted(set(conversations) - held)
        if hold.scope_kind == "subject" and rest:
            held.update(
                conversations_mentioning(conn, log_id, rest, subject_fragment(hold.scope_id))
            )
    return held


def describe_holds(holds: Sequence[PrivacyRecord]) -> str:
    return "; ".join(
        f"hold {h.id} on {Scope.of_record(h)} (reference {h.reference!r})" for h in holds
    )
