"""Realistic sample handoff conversations (what they are; ``fill`` writes them).

Six kinds, every one of them present in any run of at least six conversations:

``resolved_by_ai``    the AI answers with a tool and the data it needs; no handoff
``sentiment_shift``   the customer gets more and more frustrated; escalated on the shift
``explicit_request``  the customer asks for a human
``repeated_failure``  the same tool times out and fails; escalated on the failures
``card_number``       the customer types a card number: masked by the ledger's guard (a log with
                      card policy ``mask``) or by the writer, who then logs ``redaction.applied``
``phi_disclosure``    PHI is read and, after the takeover, disclosed to an insurer (HIPAA 164.528)

Escalated conversations propose suggested actions, hand off with a context package (which now
and then leaves out identity, sentiment or tools, as real ones do), are accepted by a human after
a realistic wait, productively taken over, and the suggestions accepted, modified or rejected.

Deterministic: the same ``seed`` and ``start`` give the same events, ids included, so running
the generator twice against one log is an idempotent retry, not a second copy.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.core.canonical import canonicalize

KINDS = (
    "resolved_by_ai",
    "sentiment_shift",
    "explicit_request",
    "repeated_failure",
    "card_number",
    "phi_disclosure",
)
DEFAULT_START = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)
CONVERSATION_GAP_SECONDS = 600
"""A new conversation starts every ten minutes or so: they overlap and interleave in the log."""
BOT_SOURCE = "urn:bot:demo-support"
HELPDESK_SOURCE = "urn:helpdesk:demo-zendesk"
_WRITER_REDACTION_KEY = b"demo-writer-redaction-key/v1"
"""The writer's own key for the fingerprints in its ``redaction.applied`` events."""


@dataclass(frozen=True)
class DemoConversation:
    id: str
    kind: str
    events: list[dict[str, Any]]


# --- what the conversations are about ------------------------------------------------------------


@dataclass(frozen=True)
class _Topic:
    intent: str
    queue: str
    opener: str
    tool: str
    access: tuple[str, str, tuple[str, ...], str, str]
    """system, resource type, fields, classification, purpose."""
    answer: str
    action: str
    rationale: str
    human_reply: str
    health: bool = False


_TOPICS = {
    "duplicate_charge": _Topic(
        "billing_dispute",
        "billing-specialists",
        "I was charged twice for my {plan} plan this month. Can you fix that?",
        "billing.list_charges",
        (
            "billing",
            "invoice",
            ("amount", "status", "card_last4"),
            "pci",
            "duplicate charge investigation",
        ),
        "I can see two charges of ${amount} on {day}. The second one is already marked for "
        "reversal and will disappear within 3 business days.",
        "refund_duplicate_charge",
        "Two identical charges less than a minute apart.",
        "Hi, this is {agent}. I've refunded the duplicate ${amount} charge; you'll see it in "
        "3-5 days.",
    ),
    "late_order": _Topic(
        "delivery_status",
        "fulfilment",
        "My order {order} still hasn't arrived. It was due {day}.",
        "orders.track_shipment",
        ("orders", "shipment", ("carrier", "status", "eta"), "none", "delivery status lookup"),
        "Your order {order} is with the carrier and due tomorrow before noon.",
        "reship_order",
        "Carrier scan stale for 6 days; the parcel is probably lost.",
        "Hi, {agent} here. I've sent a replacement by express; it ships today.",
    ),
    "account_locked": _Topic(
        "account_access",
        "account-security",
        "I'm locked out of my account since the password reset yesterday.",
        "auth.account_status",
        (
            "identity",
            "account",
            ("status", "last_login", "mfa_enrolled"),
            "pii",
            "account recovery",
        ),
        "Your account was locked after five attempts; I've sent you a new reset link.",
        "unlock_account",
        "Lock caused by failed attempts from the customer's usual device.",
        "Hello, this is {agent}. Your account is unlocked; please set a new password now.",
    ),
    "cancel_subscription": _Topic(
        "cancellation",
        "retention",
        "I want to cancel my {plan} subscription and get the unused part refunded.",
        "billing.get_subscription",
        (
            "billing",
            "subscription",
            ("plan", "renewal_date", "price"),
            "pii",
            "cancellation request",
        ),
        "Done: your {plan} plan is cancelled at the end of this period, with no further charge.",
        "cancel_with_prorated_refund",
        "Customer asked for cancellation; 7 months unused.",
        "Hi, {agent} from the billing team. Cancelled, and a prorated refund of ${amount} is on "
        "its way.",
    ),
    "lab_results": _Topic(
        "lab_results_inquiry",
        "clinical-support",
        "Are my lab results from {day} back yet?",
        "ehr.lab_status",
        (
            "ehr",
            "lab_order",
            ("status", "ordered_by", "collected_at"),
            "phi",
            "patient inquiry on lab status",
        ),
        "Your results from {day} are in and your doctor has reviewed them; they're in the portal.",
        "schedule_follow_up",
        "Results reviewed; the ordering physician asked for a follow-up.",
        "Hello, I'm {agent} from the care team. I've booked a follow-up call with your doctor.",
        health=True,
    ),
    "insurer_records": _Topic(
        "records_release",
        "health-information",
        "My insurer says they never got the records for my claim from {day}.",
        "ehr.release_status",
        (
            "ehr",
            "medical_record",
            ("encounter_date", "diagnosis_codes", "provider"),
            "phi",
            "claim support at the patient's request",
        ),
        "The release request is on file and was sent on {day}.",
        "send_records_to_insurer",
        "Signed authorization on file; the insurer's request matches.",
        "Hi, {agent} from Health Information. I've sent the records to your insurer just now.",
        health=True,
    ),
}
_KIND_TOPICS = {
    "resolved_by_ai": ("duplicate_charge", "late_order", "account_locked", "lab_results"),
    "sentiment_shift": ("duplicate_charge", "late_order", "account_locked", "cancel_subscription"),
    "explicit_request": ("late_order", "account_locked", "cancel_subscription", "lab_results"),
    "repeated_failure": ("duplicate_charge", "late_order", "account_locked"),
    "card_number": ("duplicate_charge", "cancel_subscription"),
    "phi_disclosure": ("insurer_records",),
}
_KIND_WEIGHTS = (30, 20, 15, 15, 10, 10)
_PANS = ("4111 1111 1111 1111", "5555-5555-5555-4444", "4242424242424242", "3782 822463 10005")
_AGENTS = ("agent-17", "agent-23", "agent-31", "agent-42", "agent-58", "agent-64")
_PLANS = ("annual", "monthly Pro", "family", "business")
_DAYS = ("Monday", "Tuesday", "Wednesday", "last Friday", "the 12th", "the 3rd")
_CHANNELS = ("chat", "chat", "chat", "email", "messenger")


# --- generation ----------------------------------------------------------------------------------


def generate(
    count: int, *, seed: int, start: datetime = DEFAULT_START, raw_cards: bool = False
) -> list[DemoConversation]:
    """``count`` conversations. ``raw_cards``: the log masks card numbers itself (its card
    policy is ``mask``), so some customers' card numbers reach the ledger as typed; otherwise
    the writer masks them first and logs a ``redaction.applied`` event."""
    rng = random.Random(seed)  # noqa: S311 - sample data: reproducible by design, not secret
    out = []
    for index in range(count):
        kind = KINDS[index] if index < len(KINDS) else rng.choices(KINDS, _KIND_WEIGHTS)[0]
        begin = start + timedelta(
            seconds=index * CONVERSATION_GAP_SECONDS + rng.randrange(CONVERSATION_GAP_SECONDS)
        )
        conv_id = f"c-{index:04d}-{rng.getrandbits(24):06x}"
        script = _Script(random.Random(rng.getrandbits(64)), conv_id, begin)  # noqa: S311
        _SCRIPTS[kind](script, raw_cards=raw_cards)
        out.append(DemoConversation(conv_id, kind, script.events))
    return out


def interleave(conversations: Sequence[DemoConversation]) -> list[dict[str, Any]]:
    """All events in the order they happened, as concurrent conversations reach the ledger."""
    tagged = [
        (e["time"], i, j, e) for i, c in enumerate(conversations) for j, e in enumerate(c.events)
    ]
    tagged.sort(key=lambda t: (t[0], t[1], t[2]))
    return [t[3] for t in tagged]


def chunks(events: Sequence[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for offset in range(0, len(events), size):
        yield list(events[offset : offset + size])


# --- one conversation ----------------------------------------------------------------------------


@dataclass
class _Script:
    """A conversation being written: a clock, counters and the events so far."""

    rng: random.Random
    conversation: str
    now: datetime
    events: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        r = self.rng
        self.customer = {"kind": "customer", "id": f"cust-{r.getrandbits(24):06x}"}
        self.words = {
            "plan": r.choice(_PLANS),
            "day": r.choice(_DAYS),
            "order": f"ord-{r.getrandbits(24):06x}",
            "amount": f"{r.choice((49, 89, 120, 240, 312))}.00",
        }

    # ids, time, envelope

    def next_id(self, prefix: str) -> str:
        self.counters[prefix] = self.counters.get(prefix, 0) + 1
        return f"{prefix}-{self.counters[prefix]}"

    def wait(self, low: float, high: float) -> None:
        self.now += timedelta(milliseconds=round(self.rng.uniform(low, high) * 1000))

    def wait_human(self, median: float) -> None:
        """A human's delay: long-tailed (log-normal) around ``median`` seconds."""
        self.now += timedelta(milliseconds=round(self.rng.lognormvariate(0, 0.6) * median * 1000))

    def emit(
        self,
        name: str,
        data: dict[str, Any],
        actor: dict[str, Any],
        *,
        outcome: str = "success",
        source: str = BOT_SOURCE,
    ) -> str:
        event_id = _uuid7(self.rng, self.now)
        self.events.append(
            {
                "specversion": "1.0",
                "id": event_id,
                "source": source,
                "type": f"handoff.{name}.v1",
                "time": _rfc3339_millis(self.now),
                "subject": f"conversations/{self.conversation}",
                "datacontenttype": "application/json",
                "data": {**data, "actor": actor, "outcome": outcome},
            }
        )
        return event_id

    # the participants

    def bot(self, topic: _Topic) -> dict[str, Any]:
        if topic.health:
            return {
                "kind": "ai_agent",
                "id": "care-bot-1",
                "name": "care-assistant",
                "version": "2.0.4",
            }
        return {
            "kind": "ai_agent",
            "id": "support-bot-3",
            "name": "helpdesk-assistant",
            "version": "4.2.0" if self.rng.random() < 0.7 else "4.3.1",
        }

    def fill(self, template: str, **extra: str) -> str:
        return template.format(**self.words, **extra)

    # events

    def start(self, topic: _Topic) -> None:
        self.facts["topic"] = topic
        self.facts["bot"] = self.bot(topic)
        platform = (
            {"epic": {"encounter_csn": f"E-{self.rng.getrandbits(20):05x}"}}
            if topic.health
            else {"zendesk": {"ticket_id": f"T-{self.rng.getrandbits(16):04x}"}}
        )
        self.emit(
            "conversation.started",
            {
                "channel": self.rng.choice(_CHANNELS),
                "customer": self.customer,
                "platform_refs": platform,
            },
            self.customer,
        )

    def customer_says(self, text: str) -> tuple[str, str]:
        self.wait(4, 40)
        message_id = self.next_id("m")
        event = self.emit(
            "message.created",
            {
                "message_id": message_id,
                "author": self.customer,
                "visibility": "public",
                "content": _content(text),
            },
            self.customer,
        )
        self.facts.setdefault("first_message", message_id)
        self.facts["last_message"] = message_id
        return event, message_id

    def bot_says(self, text: str) -> str:
        self.wait(1, 4)
        bot = self.facts["bot"]
        message_id = self.next_id("m")
        self.facts["last_message"] = message_id
        return self.emit(
            "agent.reply",
            {
                "message_id": message_id,
                "author": bot,
                "content": _content(text),
                "generation": {
                    "provider": "example-llm",
                    "model": "model-x-2026-10",
                    "response_id": f"resp-{self.rng.getrandbits(32):08x}",
                },
                "delivered": True,
            },
            bot,
        )

    def human_says(self, agent: dict[str, Any], text: str) -> str:
        message_id = self.next_id("m")
        self.facts["last_message"] = message_id
        return self.emit(
            "message.created",
            {
                "message_id": message_id,
                "author": agent,
                "visibility": "public",
                "content": _content(text),
            },
            agent,
            source=HELPDESK_SOURCE,
        )

    def sentiment(self, message_id: str, score: float, label: str) -> str:
        self.wait(0.2, 1)
        self.facts["sentiment"] = {"label": label, "score": score}
        return self.emit(
            "sentiment.scored",
            {
                "target": {"message_id": message_id},
                "score": score,
                "label": label,
                "detector": {"name": "sentiment-small", "version": "2"},
            },
            self.facts["bot"],
        )

    def reasoning(self, kind: str, text: str) -> str:
        self.wait(0.5, 2)
        return self.emit(
            "reasoning.step",
            {
                "step_id": self.next_id("rs"),
                "index": self.counters.get("rs", 1) - 1,
                "kind": kind,
                "source": "model_summary",
                "content": _content(text),
            },
            self.facts["bot"],
        )

    def verify_identity(self, *, health: bool, result: str = "verified") -> str:
        self.wait(20, 90)
        method = (
            self.rng.choice(("kba", "otp_sms"))
            if health
            else self.rng.choice(("otp_email", "otp_sms", "session", "sso"))
        )
        claims = ["date_of_birth", "member_id"] if health else ["email", "account_id"]
        self.facts["identity"] = result
        bot = self.facts["bot"]
        return self.emit(
            "identity.verified",
            {
                "customer": self.customer,
                "method": method,
                "result": result,
                "verifier": bot,
                "verified_claims": claims if result == "verified" else claims[:1],
            },
            bot,
            outcome="success" if result == "verified" else "failure",
        )

    def call_tool(self, topic: _Topic, status: str) -> tuple[str, str]:
        if status == "timeout":
            self.wait(10, 30)
        else:
            self.wait(0.5, 2)
        call_id = self.next_id("tc")
        self.facts.setdefault("tools", []).append(call_id)
        event = self.emit(
            "tool.call",
            {
                "tool_call_id": call_id,
                "tool": {"name": topic.tool, "type": "function"},
                "status": status,
                "arguments": {"customer_id": self.customer["id"]},
            },
            self.facts["bot"],
            outcome="success" if status == "succeeded" else "failure",
        )
        return event, call_id

    def access(self, topic: _Topic, actor: dict[str, Any], **extra: Any) -> str:
        self.wait(0.2, 1)
        system, kind, fields, classification, purpose = topic.access
        return self.emit(
            "data.access",
            {
                "operation": extra.pop("operation", "read"),
                "resource": {
                    "system": system,
                    "type": kind,
                    "id": f"{kind[:3]}-{self.rng.getrandbits(24):06x}",
                },
                "fields": list(fields),
                "classification": classification,
                "purpose": extra.pop("purpose", purpose),
                **extra,
            },
            actor,
            source=HELPDESK_SOURCE if actor["kind"] == "human_agent" else BOT_SOURCE,
        )

    def end(self, resolution: str, actor: dict[str, Any]) -> None:
        self.wait(5, 60)
        source = HELPDESK_SOURCE if actor["kind"] == "human_agent" else BOT_SOURCE
        self.emit("conversation.ended", {"resolution": resolution}, actor, source=source)


def _rfc3339_millis(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _content(text: str) -> dict[str, Any]:
    return {"parts": [{"type": "text", "content": text}]}


def _uuid7(rng: random.Random, at: datetime) -> str:
    """A UUIDv7 (RFC 9562) from the event time and the seeded generator."""
    value = (int(at.timestamp() * 1000) & (2**48 - 1)) << 80
    value |= 0x7 << 76 | rng.getrandbits(12) << 64 | 0b10 << 62 | rng.getrandbits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# --- the scripts ---------------------------------------------------------------------------------


def _opening(s: _Script, kind: str, *, verify: bool = True) -> _Topic:
    topic = _TOPICS[s.rng.choice(_KIND_TOPICS[kind])]
    s.start(topic)
    _, first = s.customer_says(s.fill(topic.opener))
    s.facts["first_score"] = _score(s, -0.3, 0.1)
    s.sentiment(first, s.facts["first_score"], "neutral")
    confidence = _score(s, 0.55, 0.97)
    s.facts["confidence"] = confidence
    s.reasoning("classification", f"Intent: {topic.intent}. Confidence {confidence}.")
    if verify:
        # Escalated conversations now and then fail the check; the AI then may not go on alone.
        result = (
            "verified"
            if kind == "resolved_by_ai"
            else s.rng.choices(("verified", "partial", "failed"), (88, 4, 8))[0]
        )
        s.verify_identity(health=topic.health, result=result)
    return topic


def _resolved_by_ai(s: _Script, *, raw_cards: bool) -> None:
    topic = _opening(s, "resolved_by_ai", verify=s.rng.random() < 0.8)
    s.call_tool(topic, "succeeded")
    s.access(topic, s.facts["bot"])
    s.bot_says(s.fill(topic.answer))
    _, thanks = s.customer_says(
        s.rng.choice(("Great, thanks!", "Perfect, that's all.", "OK thank you."))
    )
    s.sentiment(thanks, _score(s, 0.3, 0.9), "satisfied")
    s.end("resolved_by_ai", s.facts["bot"])


def _sentiment_shift(s: _Script, *, raw_cards: bool) -> None:
    topic = _opening(s, "sentiment_shift")
    s.call_tool(topic, "succeeded")
    s.access(topic, s.facts["bot"])
    s.bot_says(s.fill(topic.answer))
    evidence = []
    scores = (_score(s, -0.5, -0.3), _score(s, -0.95, -0.7))
    lines = (
        "That's not what I asked. This is the second time this happens.",
        "This is ridiculous, I've been going round in circles for twenty minutes!",
    )
    for line, score, label in zip(lines, scores, ("annoyed", "angry"), strict=True):
        _, mid = s.customer_says(line)
        evidence.append(s.sentiment(mid, score, label))
        if label == "annoyed":
            s.bot_says("I'm sorry about that. Let me look again.")
    first = s.facts["first_score"]
    _escalate(
        s,
        topic,
        [{"type": "sentiment_shift", "from": first, "to": scores[-1], "window_messages": 3}],
        f"Customer sentiment fell from {first} to {scores[-1]} over three messages.",
        evidence,
    )


def _explicit_request(s: _Script, *, raw_cards: bool) -> None:
    topic = _opening(s, "explicit_request")
    s.call_tool(topic, "succeeded")
    s.access(topic, s.facts["bot"])
    s.bot_says(s.fill(topic.answer))
    event, mid = s.customer_says(
        s.rng.choice(
            (
                "Can I please talk to a real person?",
                "I'd rather speak to a human agent, please.",
                "Agent. Human. Please.",
            )
        )
    )
    s.sentiment(mid, _score(s, -0.5, -0.1), "impatient")
    triggers: list[dict[str, Any]] = [{"type": "explicit_request", "message_id": mid}]
    if s.facts["confidence"] < 0.75:
        triggers.append(
            {"type": "uncertainty_threshold", "score": s.facts["confidence"], "threshold": 0.75}
        )
    _escalate(s, topic, triggers, "The customer asked for a human agent.", [event])


def _repeated_failure(s: _Script, *, raw_cards: bool) -> None:
    topic = _opening(s, "repeated_failure")
    first, _ = s.call_tool(topic, "timeout")
    s.bot_says("Our system is slow to answer; let me try again.")
    second, call_id = s.call_tool(topic, "failed")
    s.bot_says("I can't reach the system that holds this information right now.")
    _escalate(
        s,
        topic,
        [
            {"type": "tool_failure", "tool_call_id": call_id},
            {"type": "repeated_failure", "count": 2, "tool": topic.tool},
        ],
        f"{topic.tool} failed twice in a row (timeout, then an error); the AI cannot "
        "answer without it.",
        [first, second],
    )


def _card_number(s: _Script, *, raw_cards: bool) -> None:
    topic = _opening(s, "card_number")
    pan = s.rng.choice(_PANS)
    text = f"The card ending in {pan[-4:]} was charged twice. Full number is {pan} if you need it."
    by_guard = raw_cards and s.rng.random() < 0.6
    if by_guard:  # as typed: the ledger's guard masks it and records the redaction inline
        event, _ = s.customer_says(text)
    else:  # the writer's own redactor masked it; the masking is an event of its own
        start = text.index(pan)
        masked = text[:start] + _mask_digits(pan) + text[start + len(pan) :]
        event, _ = s.customer_says(masked)
        s.wait(0.05, 0.3)
        digits = "".join(ch for ch in pan if ch.isdigit())
        s.emit(
            "redaction.applied",
            {
                "target": {"event_id": event},
                "redactions": [
                    {
                        "path": "/content/parts/0/content",
                        "entity_type": "CREDIT_CARD",
                        "start": start,
                        "end": start + len(pan),
                        "operator": "mask",
                        "detector": {"name": "luhn-regex", "version": "1.0"},
                        "policy": "pci-mask-last4",
                        "stage": "pre_ledger",
                        "fingerprint": "hmac-sha256:"
                        + hmac.new(
                            _WRITER_REDACTION_KEY, digits.encode(), hashlib.sha256
                        ).hexdigest(),
                    }
                ],
            },
            {"kind": "system", "id": "pii-guard"},
        )
    s.call_tool(topic, "succeeded")
    s.access(topic, s.facts["bot"])
    s.bot_says(
        "Please don't share full card numbers here; I've hidden it. I can see the two "
        f"charges of ${s.words['amount']}."
    )
    _escalate(
        s,
        topic,
        [
            {
                "type": "policy_trigger",
                "policy_id": "refunds-over-100",
                "rule_id": "r1",
                "category": "refund",
            }
        ],
        "A refund above the AI's limit needs a billing specialist.",
        [event],
    )


def _phi_disclosure(s: _Script, *, raw_cards: bool) -> None:
    topic = _opening(s, "phi_disclosure")
    s.call_tool(topic, "succeeded")
    s.access(topic, s.facts["bot"])
    s.bot_says(s.fill(topic.answer))
    event, mid = s.customer_says("They need the full records, can you send them again?")
    s.sentiment(mid, _score(s, -0.4, 0.0), "concerned")
    _escalate(
        s,
        topic,
        [{"type": "policy_trigger", "policy_id": "phi-release-review", "category": "disclosure"}],
        "Releasing medical records to a third party needs a human (HIPAA).",
        [event],
        disclosure=True,
    )


def _escalate(
    s: _Script,
    topic: _Topic,
    triggers: list[dict[str, Any]],
    explanation: str,
    evidence: list[str],
    *,
    disclosure: bool = False,
) -> None:
    """Escalation, suggestions, handoff, acceptance, productive takeover, decisions, the end."""
    bot = s.facts["bot"]
    if s.facts.get("identity") == "failed":
        triggers.append({"type": "guardrail", "rule": "identity_unverified"})
    s.reasoning("decision", f"Escalate: {explanation}")
    s.wait(0.5, 2)
    escalation_id = s.next_id("esc")
    s.emit(
        "escalation.triggered",
        {
            "escalation_id": escalation_id,
            "triggers": triggers,
            "explanation": explanation,
            "evidence_event_ids": evidence,
        },
        bot,
    )
    suggestions = [_propose(s, topic.action, topic.rationale)]
    if s.rng.random() < 0.3:
        suggestions.append(
            _propose(s, "offer_goodwill_credit", "Customer had to contact us more than once.")
        )
    handoff_id = s.next_id("h")
    package = _context_package(s, topic, suggestions)
    s.wait(1, 3)
    s.emit(
        "handoff.requested",
        {
            "handoff_id": handoff_id,
            "escalation_id": escalation_id,
            "from": bot,
            "target": {"queue": topic.queue},
            "context_package": package,
            "package_digest": "sha256:" + hashlib.sha256(canonicalize(package)).hexdigest(),
        },
        bot,
    )
    s.bot_says("I'm passing you to a specialist now; they'll see everything we discussed.")
    agent = {"kind": "human_agent", "id": s.rng.choice(_AGENTS)}
    s.wait_human(90)
    s.emit(
        "handoff.accepted",
        {"handoff_id": handoff_id, "assignee": agent},
        agent,
        source=HELPDESK_SOURCE,
    )
    s.wait_human(45)
    reply = s.human_says(agent, s.fill(topic.human_reply, agent=agent["id"]))
    s.emit(
        "takeover.productive",
        {"handoff_id": handoff_id, "by": agent, "action": {"kind": "reply", "event_id": reply}},
        agent,
        source=HELPDESK_SOURCE,
    )
    if disclosure:
        s.access(
            topic,
            agent,
            operation="export",
            disclosure=True,
            recipient={"name": "Northwind Health Insurance, claims department"},
            purpose="claim processing, at the patient's signed request",
        )
    for suggestion_id in suggestions:
        s.wait_human(30)
        decision = s.rng.choices(("accepted", "modified", "rejected"), (60, 15, 25))[0]
        s.emit(
            "suggested_action.resolved",
            {"suggestion_id": suggestion_id, "decision": decision, "decided_by": agent},
            agent,
            source=HELPDESK_SOURCE,
        )
    if s.rng.random() < 0.3:
        s.wait_human(60)
        s.emit(
            "handoff.released",
            {"handoff_id": handoff_id, "reason": "resolved"},
            agent,
            source=HELPDESK_SOURCE,
        )
    s.end(s.rng.choice(("resolved", "resolved", "refund_issued", "follow_up_scheduled")), agent)


def _score(s: _Script, low: float, high: float) -> float:
    """A score or confidence to two decimals (never ``-0.0``, which reads oddly in a trail)."""
    return round(s.rng.uniform(low, high), 2) + 0.0


def _propose(s: _Script, action: str, rationale: str) -> str:
    s.wait(0.5, 2)
    suggestion_id = s.next_id("sa")
    s.emit(
        "suggested_action.proposed",
        {
            "suggestion_id": suggestion_id,
            "action": {"name": action, "parameters": {"customer_id": s.customer["id"]}},
            "rationale": rationale,
            "confidence": _score(s, 0.6, 0.95),
        },
        s.facts["bot"],
    )
    return suggestion_id


def _context_package(s: _Script, topic: _Topic, suggestions: list[str]) -> dict[str, Any]:
    """What the human is handed. Real packages sometimes leave out identity, sentiment or the
    tools tried; the trail reports which were named."""
    package: dict[str, Any] = {
        "summary": f"{topic.intent.replace('_', ' ').capitalize()}; "
        f"identity {s.facts.get('identity', 'not checked')}.",
        "transcript": {
            "from_message_id": s.facts["first_message"],
            "to_message_id": s.facts["last_message"],
        },
        "entities": [{"type": "customer_id", "value": s.customer["id"]}],
        "suggested_action_ids": suggestions,
    }
    if "identity" in s.facts and s.rng.random() < 0.9:
        package["identity"] = {"status": s.facts["identity"]}
    if "sentiment" in s.facts and s.rng.random() < 0.85:
        package["sentiment"] = s.facts["sentiment"]
    if s.facts.get("tools") and s.rng.random() < 0.9:
        package["tool_calls_attempted"] = s.facts["tools"]
    return package


def _mask_digits(text: str) -> str:
    remaining = sum(ch.isdigit() for ch in text)
    out = []
    for ch in text:
        if ch.isdigit():
            out.append(ch if remaining <= 4 else "*")
            remaining -= 1
        else:
            out.append(ch)
    return "".join(out)


_SCRIPTS = {
    "resolved_by_ai": _resolved_by_ai,
    "sentiment_shift": _sentiment_shift,
    "explicit_request": _explicit_request,
    "repeated_failure": _repeated_failure,
    "card_number": _card_number,
    "phi_disclosure": _phi_disclosure,
}
