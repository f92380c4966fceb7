"""The event catalogue (``EVENTS.md``): one model per type and major version, and the registry.

A type string is ``handoff.<name>.v<major>``. Each registered :class:`EventType` holds the
model of its ``data``, the cross-field rules a model cannot state with a precise location
(``checks``), and how to name the affected resource (PCI DSS 10.2.2, NIST AU-3).

Adding a version is adding an entry: write ``ToolCallV2(ToolCallV1)`` (or a fresh model) and
``register(EventType("tool.call", 2, ToolCallV2, ...))``. Both versions stay accepted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag

from ledger.errors import EventInvalid
from ledger.events.fields import (
    Actor,
    AIAgent,
    Content,
    CustomerActor,
    Detector,
    Digest,
    HumanAgent,
    Identifier,
    JsonPointerStr,
    KeyedFingerprint,
    Model,
    Name,
    NonEmptyStr,
    Outcome,
    UnitInterval,
)
from ledger.events.pointer import TAG_MARK, join

TYPE_PREFIX: Final = "handoff."
TYPE_PATTERN: Final = re.compile(
    r"^handoff\.([a-z][a-z_]*(?:\.[a-z][a-z_]*)*)\.v([1-9][0-9]{0,3})$"
)

Check = Callable[[Mapping[str, Any]], None]
"""A cross-field rule over a ``data`` that already fits its model; raises :class:`EventInvalid`."""
Resource = Callable[[Mapping[str, Any], str], "dict[str, Any] | None"]
"""The affected resource, from ``data`` and the conversation id."""


class EventData(Model):
    """What every event's ``data`` carries (PCI DSS 10.2.2, NIST AU-3)."""

    actor: Actor
    outcome: Outcome


# --- conversation.started ----------------------------------------------------------------


class ConversationStartedV1(EventData):
    """A conversation began: on which channel, with which customer, where on the platforms."""

    channel: NonEmptyStr
    customer: CustomerActor
    platform_refs: Annotated[dict[str, dict[str, Any]], Field(min_length=1)]
    """Platform name → that platform's references, e.g. ``{"zendesk": {"ticket_id": "T-5120"}}``."""


# --- message.created, agent.reply -------------------------------------------------------


class MessageAuthor(Actor):
    """The customer, a human agent or the system; what the AI says is an ``agent.reply``."""

    kind: Literal["customer", "human_agent", "system"]


class MessageCreatedV1(EventData):
    """What was said by the customer or a human (or the system), already redacted."""

    message_id: Identifier
    author: MessageAuthor
    visibility: Literal["public", "internal"]
    content: Content


class Generation(Model):
    provider: NonEmptyStr
    model: NonEmptyStr
    response_id: Identifier


class AgentReplyV1(EventData):
    """What the AI said, which model produced it, and whether it was delivered."""

    message_id: Identifier
    author: AIAgent
    content: Content
    generation: Generation
    delivered: bool


# --- reasoning.step ---------------------------------------------------------------------


class ContentRef(Model):
    """Where withheld content can be found, and the digest that pins it."""

    digest: Digest


class ReasoningStepV1(EventData):
    """Why the AI did it: one step of its reasoning, or a reference to withheld content."""

    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["content"]}, {"required": ["content_ref"]}]}
    )

    step_id: Identifier
    index: Annotated[int, Field(ge=0)]
    kind: Name
    """``plan``, ``decision``, ``classification``, …"""
    source: Literal["model_summary", "raw", "app_generated", "opaque"]
    content: Content | None = None
    content_ref: ContentRef | None = None


def _content_or_ref(data: Mapping[str, Any]) -> None:
    if data.get("content") is None and data.get("content_ref") is None:
        raise EventInvalid("/data/content", "required field is missing (or give content_ref)")


# --- tool.call ------------------------------------------------------------------------------


class Tool(Model):
    name: NonEmptyStr
    type: Name
    """``function``, ``mcp``, ``retrieval``, …"""


class ToolCallV1(EventData):
    """Which tool the AI called, with what (redacted) arguments, and how it ended."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [{"required": ["arguments"]}, {"required": ["arguments_digest"]}]
        }
    )

    tool_call_id: Identifier
    tool: Tool
    status: Literal["started", "succeeded", "failed", "denied", "timeout"]
    arguments: dict[str, Any] | str | None = None
    """Arguments as the writer redacted them: an object, or the JSON string a model emitted."""
    arguments_digest: Digest | None = None


def _arguments_or_digest(data: Mapping[str, Any]) -> None:
    if data.get("arguments") is None and data.get("arguments_digest") is None:
        raise EventInvalid(
            "/data/arguments", "required field is missing (or give arguments_digest)"
        )


# --- data.access ------------------------------------------------------------------------------


class AccessedResource(Model):
    system: NonEmptyStr
    type: NonEmptyStr
    id: Identifier


class Recipient(Model):
    """Who received a disclosure (HIPAA 164.528): a name, and an address if known."""

    name: NonEmptyStr


class DataAccessV1(EventData):
    """Which data was accessed, why, and (for a disclosure) by whom it was received."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"disclosure": {"const": True}}, "required": ["disclosure"]},
            "then": {"required": ["recipient"]},
        }
    )

    operation: Literal["read", "search", "write", "delete", "export"]
    resource: AccessedResource
    fields: list[NonEmptyStr]
    """Names of the fields accessed — never their values."""
    classification: Literal["phi", "pci", "pii", "none"]
    purpose: NonEmptyStr
    disclosure: bool = False
    recipient: Recipient | None = None


def _disclosure_names_recipient(data: Mapping[str, Any]) -> None:
    if data.get("disclosure") is True and data.get("recipient") is None:
        raise EventInvalid("/data/recipient", "required when disclosure is true (HIPAA 164.528)")


# --- redaction.applied ----------------------------------------------------------------------


class RedactionTarget(Model):
    event_id: Identifier


class Redaction(Model):
    path: JsonPointerStr
    entity_type: NonEmptyStr
    start: Annotated[int, Field(ge=0)]
    end: Annotated[int, Field(ge=0)]
    operator: Literal["replace", "mask", "hash", "redact", "encrypt"]
    detector: Detector
    policy: NonEmptyStr
    stage: NonEmptyStr
    fingerprint: KeyedFingerprint | None = None


class RedactionAppliedV1(EventData):
    """What was redacted from an earlier event, where, how and by which detector."""

    target: RedactionTarget
    redactions: Annotated[list[Redaction], Field(min_length=1)]


def _spans_in_order(data: Mapping[str, Any]) -> None:
    for index, redaction in enumerate(data["redactions"]):
        if redaction["end"] < redaction["start"]:
            raise EventInvalid(
                join("/data/redactions", index, "end"), "must not be less than start"
            )


# --- sentiment.scored -------------------------------------------------------------------------


class SentimentTarget(Model):
    """A single message (``message_id``) or a window of the conversation (``window``)."""

    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["message_id"]}, {"required": ["window"]}]}
    )

    message_id: Identifier | None = None
    window: Annotated[dict[str, Any], Field(min_length=1)] | None = None


class SentimentScoredV1(EventData):
    """How the customer felt, for one message or a window of the conversation."""

    target: SentimentTarget
    score: Annotated[float, Field(ge=-1.0, le=1.0)]
    """From -1 (most negative) through 0 (neutral) to +1 (most positive)."""
    label: NonEmptyStr
    detector: Detector


def _sentiment_target(data: Mapping[str, Any]) -> None:
    target = data["target"]
    if target.get("message_id") is None and target.get("window") is None:
        raise EventInvalid("/data/target/message_id", "required field is missing (or give window)")


# --- identity.verified ------------------------------------------------------------------------

_VERIFICATION_SECRETS: Final = (
    "otp", "otp_code", "one_time_code", "passcode", "password", "secret",
    "security_answer", "kba_answer", "kba_answers",
)  # fmt: skip


class IdentityVerifiedV1(EventData):
    """How the customer's identity was verified, and the result; never the secret."""

    customer: CustomerActor
    method: Name
    """``otp_email``, ``otp_sms``, ``kba``, ``sso``, ``session``, …"""
    result: Literal["verified", "failed", "partial"]
    verifier: Actor
    verified_claims: list[NonEmptyStr]
    """Names of the claims verified (``email``, ``account_id``) — never the secret itself."""


def _no_verification_secret(data: Mapping[str, Any]) -> None:
    for name in _VERIFICATION_SECRETS:
        if name in data:
            raise EventInvalid(
                join("/data", name),
                "identity events record the method and result, never the secret",
            )


# --- escalation.triggered -------------------------------------------------------------------

TRIGGER_TYPES: Final = (
    "uncertainty_threshold", "sentiment_shift", "explicit_request", "repeated_failure",
    "policy_trigger", "guardrail", "tool_failure",
)  # fmt: skip


class UncertaintyThreshold(Model):
    type: Literal["uncertainty_threshold"]
    score: float
    threshold: float


class SentimentShift(Model):
    type: Literal["sentiment_shift"]


class ExplicitRequest(Model):
    type: Literal["explicit_request"]


class RepeatedFailure(Model):
    type: Literal["repeated_failure"]


class PolicyTrigger(Model):
    type: Literal["policy_trigger"]
    policy_id: Identifier


class Guardrail(Model):
    type: Literal["guardrail"]


class ToolFailure(Model):
    type: Literal["tool_failure"]
    tool_call_id: Identifier


def _trigger_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        kind = value.get("type")
        if isinstance(kind, str) and kind in TRIGGER_TYPES:
            return TAG_MARK + kind
    return None


Trigger = Annotated[
    Annotated[UncertaintyThreshold, Tag(TAG_MARK + "uncertainty_threshold")]
    | Annotated[SentimentShift, Tag(TAG_MARK + "sentiment_shift")]
    | Annotated[ExplicitRequest, Tag(TAG_MARK + "explicit_request")]
    | Annotated[RepeatedFailure, Tag(TAG_MARK + "repeated_failure")]
    | Annotated[PolicyTrigger, Tag(TAG_MARK + "policy_trigger")]
    | Annotated[Guardrail, Tag(TAG_MARK + "guardrail")]
    | Annotated[ToolFailure, Tag(TAG_MARK + "tool_failure")],
    Discriminator(
        _trigger_tag,
        custom_error_type="trigger_type",
        custom_error_message="unknown trigger type; expected one of: " + ", ".join(TRIGGER_TYPES),
    ),
]


class EscalationTriggeredV1(EventData):
    """Why the AI escalated: typed triggers, a plain explanation, the evidence."""

    escalation_id: Identifier
    triggers: Annotated[list[Trigger], Field(min_length=1)]
    explanation: NonEmptyStr
    """Why, in plain language, for the human who takes over and for the auditor."""
    evidence_event_ids: list[Identifier]


# --- handoff.requested / accepted / released, takeover.productive --------------------------


class HandoffTarget(Model):
    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["queue"]}, {"required": ["skill"]}]}
    )

    queue: NonEmptyStr | None = None
    skill: NonEmptyStr | None = None


class ContextEntity(Model):
    type: NonEmptyStr


class IdentityStatus(Model):
    status: NonEmptyStr


class ContextPackage(Model):
    """What the human was handed. Only ``summary`` is required: whether the package named the
    identity status, the sentiment and the tools tried is a fact the ledger reports on."""

    summary: NonEmptyStr
    transcript: dict[str, Any] | None = None
    entities: list[ContextEntity] | None = None
    tool_calls_attempted: list[Identifier] | None = None
    identity: IdentityStatus | None = None
    sentiment: dict[str, Any] | None = None
    suggested_action_ids: list[Identifier] | None = None


class HandoffRequestedV1(EventData):
    """What the human was handed: the target queue or skill and the context package."""

    handoff_id: Identifier
    escalation_id: Identifier
    target: HandoffTarget
    context_package: ContextPackage
    package_digest: Digest


def _queue_or_skill(data: Mapping[str, Any]) -> None:
    target = data["target"]
    if target.get("queue") is None and target.get("skill") is None:
        raise EventInvalid("/data/target/queue", "required field is missing (or give skill)")


class HandoffAcceptedV1(EventData):
    """Who took over: a human agent with an individual id (PCI DSS 8.2.1)."""

    handoff_id: Identifier
    assignee: HumanAgent
    """The human who took over, by individual id (PCI DSS 8.2.1)."""


class TakeoverAction(Model):
    kind: Name
    """``reply``, ``refund``, …: the first substantive thing the human did."""


class TakeoverProductiveV1(EventData):
    """The human's first substantive reply or action after taking over."""

    handoff_id: Identifier
    by: HumanAgent
    action: TakeoverAction


class HandoffReleasedV1(EventData):
    """The human released the handoff, and why."""

    handoff_id: Identifier
    reason: NonEmptyStr


# --- suggested_action.proposed / resolved -----------------------------------------------------


class SuggestedAction(Model):
    name: NonEmptyStr


class SuggestedActionProposedV1(EventData):
    """A next action the AI suggested, with its rationale and confidence."""

    suggestion_id: Identifier
    action: SuggestedAction
    rationale: NonEmptyStr
    confidence: UnitInterval


class SuggestedActionResolvedV1(EventData):
    """The fate of a suggested action: accepted, modified or rejected, and by whom."""

    suggestion_id: Identifier
    decision: Literal["accepted", "modified", "rejected"]
    decided_by: Actor


# --- conversation.ended -------------------------------------------------------------------------


class ConversationEndedV1(EventData):
    """The conversation closed, with its resolution."""

    resolution: NonEmptyStr


# --- the registry ---------------------------------------------------------------------------------


def _field(name: str, kind: str) -> Resource:
    """The resource is the object ``kind`` whose id is ``data[name]``."""

    def resource(data: Mapping[str, Any], conversation_id: str) -> dict[str, Any]:
        return {"type": kind, "id": data[name]}

    return resource


def _member(name: str) -> Resource:
    """The resource is the object ``data[name]`` as the writer described it."""

    def resource(data: Mapping[str, Any], conversation_id: str) -> dict[str, Any]:
        value: dict[str, Any] = data[name]
        return value

    return resource


def _nested_id(name: str, key: str, kind: str) -> Resource:
    """The resource is the object ``kind`` whose id is ``data[name][key]``."""

    def resource(data: Mapping[str, Any], conversation_id: str) -> dict[str, Any]:
        return {"type": kind, "id": data[name][key]}

    return resource


def _conversation(data: Mapping[str, Any], conversation_id: str) -> dict[str, Any]:
    return {"type": "conversation", "id": conversation_id}


@dataclass(frozen=True)
class EventType:
    """One version of one event type."""

    name: str
    major: int
    model: type[EventData]
    resource: Resource
    checks: tuple[Check, ...] = field(default=())

    @property
    def type(self) -> str:
        return f"{TYPE_PREFIX}{self.name}.v{self.major}"


_REGISTRY: dict[str, dict[int, EventType]] = {}


def register(spec: EventType) -> None:
    """Add one version of a type. Registering the same version twice is a programming error."""
    versions = _REGISTRY.setdefault(spec.name, {})
    if spec.major in versions:
        raise ValueError(f"{spec.type} is already registered")
    versions[spec.major] = spec


for _spec in (
    EventType("conversation.started", 1, ConversationStartedV1, _conversation),
    EventType("message.created", 1, MessageCreatedV1, _field("message_id", "message")),
    EventType("agent.reply", 1, AgentReplyV1, _field("message_id", "message")),
    EventType(
        "reasoning.step",
        1,
        ReasoningStepV1,
        _field("step_id", "reasoning_step"),
        (_content_or_ref,),
    ),
    EventType("tool.call", 1, ToolCallV1, _member("tool"), (_arguments_or_digest,)),
    EventType("data.access", 1, DataAccessV1, _member("resource"), (_disclosure_names_recipient,)),
    EventType(
        "redaction.applied",
        1,
        RedactionAppliedV1,
        _nested_id("target", "event_id", "event"),
        (_spans_in_order,),
    ),
    EventType("sentiment.scored", 1, SentimentScoredV1, _member("target"), (_sentiment_target,)),
    EventType(
        "identity.verified",
        1,
        IdentityVerifiedV1,
        _nested_id("customer", "id", "customer"),
        (_no_verification_secret,),
    ),
    EventType(
        "escalation.triggered", 1, EscalationTriggeredV1, _field("escalation_id", "escalation")
    ),
    EventType(
        "handoff.requested",
        1,
        HandoffRequestedV1,
        _field("handoff_id", "handoff"),
        (_queue_or_skill,),
    ),
    EventType("handoff.accepted", 1, HandoffAcceptedV1, _field("handoff_id", "handoff")),
    EventType("takeover.productive", 1, TakeoverProductiveV1, _field("handoff_id", "handoff")),
    EventType(
        "suggested_action.proposed",
        1,
        SuggestedActionProposedV1,
        _field("suggestion_id", "suggested_action"),
    ),
    EventType(
        "suggested_action.resolved",
        1,
        SuggestedActionResolvedV1,
        _field("suggestion_id", "suggested_action"),
    ),
    EventType("handoff.released", 1, HandoffReleasedV1, _field("handoff_id", "handoff")),
    EventType("conversation.ended", 1, ConversationEndedV1, _conversation),
):
    register(_spec)


def lookup(type_string: object) -> EventType:
    """The registered type named by ``type_string``; :class:`EventInvalid` at ``/type`` if none.

    The message names what is supported, never echoing the writer's string beyond a known name.
    """
    if not isinstance(type_string, str):
        raise EventInvalid("/type", "must be a string such as 'handoff.tool.call.v1'")
    match = TYPE_PATTERN.match(type_string)
    versions = _REGISTRY.get(match.group(1)) if match else None
    if match is None or versions is None:
        raise EventInvalid("/type", "unknown event type; GET /v1/schemas lists the supported types")
    spec = versions.get(int(match.group(2)))
    if spec is None:
        supported = ", ".join(f"v{major}" for major in sorted(versions))
        raise EventInvalid(
            "/type", f"unsupported version of handoff.{match.group(1)} (supported: {supported})"
        )
    return spec


def all_types() -> list[EventType]:
    """Every registered version of every type, sorted by type string."""
    return sorted(
        (s for versions in _REGISTRY.values() for s in versions.values()), key=lambda s: s.type
    )
