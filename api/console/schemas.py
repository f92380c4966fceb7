"""Response bodies of the reads the auditor console calls (they document the JSON; the services'
dicts are serialized by orjson)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class CheckpointInfo(BaseModel):
    size: int
    signed_at: str
    note: str = Field(description="the C2SP signed note")


class LastVerification(BaseModel):
    system_log: str
    seq: int = Field(description="the run's entry in the tenant's system log")
    run_status: str | None
    status: str | None = Field(description="this log's result in that run")
    mode: str | None
    finished_at: str | None
    host: str | None


class LogSummary(BaseModel):
    log: str
    origin: str
    tenant: str
    kind: str
    size: int
    checkpoint: CheckpointInfo
    indexed: int = Field(description="entries the console's search index covers")
    last_verification: LastVerification | None


class LogList(BaseModel):
    logs: list[LogSummary] = Field(description="the logs this credential can read (its own)")


class IndexInfo(BaseModel):
    indexed: int
    tree_size: int
    behind: int = Field(description="entries of the latest checkpoint not yet searchable")


class ConversationRow(BaseModel):
    conversation: str
    first_seq: int
    last_seq: int
    events: int
    first_at: str = Field(description="received_at of its first entry")
    last_at: str = Field(description="received_at of its last entry")
    event_types: list[str]
    subjects: list[str] = Field(description="the customers (data subjects) its entries name")
    triggers: list[str] = Field(description="typed escalation triggers")
    handed_off: bool = Field(description="a handoff was requested")
    escalated: bool
    time_to_accept_seconds: float | None
    time_to_productive_seconds: float | None


class ConversationPage(BaseModel):
    log: str
    conversations: list[ConversationRow] = Field(description="newest (last entry) first")
    next_below_seq: int | None = Field(
        description="pass as below_seq for the next page; null: no more"
    )
    index: IndexInfo


class RandomHandoff(BaseModel):
    log: str
    conversation: ConversationRow
    index: IndexInfo


class TimingStats(BaseModel):
    count: int
    median_seconds: float | None
    p90_seconds: float | None


class Overview(BaseModel):
    log: str
    events_per_day: list[dict[str, Any]] = Field(description="[{day, events}], oldest first")
    conversations: int
    handed_off: int
    escalated: int
    handoff_rate: float | None
    time_to_accept: TimingStats
    time_to_productive: TimingStats
    trigger_mix: list[dict[str, Any]] = Field(description="[{trigger, conversations}]")
    index: IndexInfo
