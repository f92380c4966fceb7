"""Field types shared by the event models: actors, outcome, content, digests, detectors.

Every model is strict (no coercion: ``"1"`` is not an integer, ``1`` is not a string) and keeps
fields beyond those it requires (``extra="allow"``): writers' platforms differ, and what they
send is what is stored.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from ledger.events.pointer import TAG_MARK

MAX_ID_LENGTH: Final = 256

NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]
"""Any non-empty string."""

CONTROL_CHARACTERS: Final = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
"""C0 and C1 controls, DEL, line and paragraph separators, bidirectional overrides and isolates:
never in an identifier (they would reach an operator's terminal and an auditor's page as
commands, not text)."""


def _no_control_characters(value: str) -> str:
    if CONTROL_CHARACTERS.search(value):
        raise PydanticCustomError(
            "control_character", "must not hold control characters (C0/C1, separators, bidi)"
        )
    return value


Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH),
    AfterValidator(_no_control_characters),
]
"""A writer's identifier: a non-empty string of at most 256 characters without control
characters, never a JSON number."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
"""An open vocabulary term in snake_case, e.g. ``classification`` or ``otp_email``."""

Digest = Annotated[
    str,
    StringConstraints(pattern=r"^(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$"),
]
"""``sha256:<64 lowercase hex>`` (or sha384 / sha512)."""

KeyedFingerprint = Annotated[
    str,
    StringConstraints(pattern=r"^hmac-sha(256:[0-9a-f]{64}|384:[0-9a-f]{96}|512:[0-9a-f]{128})$"),
]
"""``hmac-sha256:<64 lowercase hex>``: a keyed fingerprint; an unkeyed hash of a card number
can be reversed by enumeration and is refused (PCI DSS 3.5.1.1)."""

JsonPointerStr = Annotated[str, StringConstraints(pattern=r"^(/([^~/]|~[01])*)*$")]
"""An RFC 6901 JSON Pointer."""

UnitInterval = Annotated[float, Field(ge=0.0, le=1.0)]
Outcome = Literal["success", "failure", "unknown"]
ActorKind = Literal["customer", "ai_agent", "human_agent", "system", "tool"]


class Model(BaseModel):
    """Base of every event model: strict, extra fields allowed and kept, NaN refused."""

    model_config = ConfigDict(
        extra="allow", strict=True, allow_inf_nan=False, use_attribute_docstrings=True
    )


# PCI DSS 8.2.1: every human has an individual id, never a shared or generic account.
_SHARED_LOGINS: Final = frozenset(
    {
        "admin", "administrator", "agent", "agents", "anonymous", "default", "guest",
        "helpdesk", "nobody", "operator", "queue", "root", "service", "shared", "staff",
        "support", "system", "team", "test", "unknown", "user",
    }
)  # fmt: skip
_SHARED_PREFIXES: Final = ("group:", "team:", "queue:", "role:", "shared:", "shared-", "shared_")


def individual_id(value: str) -> str:
    """``value`` if it can name one person; a shared, generic or blank login is refused."""
    lowered = value.strip().lower()
    if not lowered or lowered in _SHARED_LOGINS or lowered.startswith(_SHARED_PREFIXES):
        raise PydanticCustomError(
            "individual_id",
            "a human agent needs an individual id, not a shared or generic login (PCI DSS 8.2.1)",
        )
    return value


class Actor(Model):
    """Who did it (PCI DSS 10.2.2, NIST AU-3). Human agents need an individual id."""

    kind: ActorKind
    id: Identifier

    @field_validator("id")
    @classmethod
    def _individual_human(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("kind") == "human_agent":
            return individual_id(value)
        return value


class CustomerActor(Actor):
    kind: Literal["customer"]


class HumanAgent(Model):
    """A human agent: ``kind`` must be ``human_agent`` and ``id`` an individual id."""

    kind: Literal["human_agent"]
    id: Annotated[Identifier, AfterValidator(individual_id)]


class AIAgent(Model):
    """An AI agent identified down to its build: ``name`` and ``version`` are required."""

    kind: Literal["ai_agent"]
    id: Identifier
    name: NonEmptyStr
    version: NonEmptyStr


class Detector(Model):
    """The component that produced a judgement, pinned to a version."""

    name: NonEmptyStr
    version: NonEmptyStr


class TextPart(Model):
    type: Literal["text"]
    content: str


class OtherPart(Model):
    """A non-text part (image, file reference, …): only its ``type`` is required."""

    type: Annotated[NonEmptyStr, Field(json_schema_extra={"not": {"const": "text"}})]


def _part_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        kind = value.get("type")
        if kind == "text":
            return TAG_MARK + "text"
        if isinstance(kind, str):
            return TAG_MARK + "other"
    return None


Part = Annotated[
    Annotated[TextPart, Tag(TAG_MARK + "text")] | Annotated[OtherPart, Tag(TAG_MARK + "other")],
    Discriminator(
        _part_tag,
        custom_error_type="part_type",
        custom_error_message="a content part needs a string 'type' (e.g. 'text')",
    ),
]


class Content(Model):
    """``{"parts": [{"type": "text", "content": "…"}, …]}``, text already redacted by the writer."""

    parts: Annotated[list[Part], Field(min_length=1)]
