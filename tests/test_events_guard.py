"""The card-data and PII guard (PCI DSS 3.3.1, 3.5.1, 3.5.1.1), through ``validate_event``."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import sys
import time
import unicodedata
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import ConfigurationError, EventInvalid
from ledger.events import GuardPolicy, ValidatedEvent, validate_event
from ledger.events.detectors import find_pans, find_phones, luhn_valid, mask
from ledger.events.guard import _plan as guard_plan
from ledger.events.guard import guard, is_sensitive_name
from ledger.events.pointer import resolve

EXAMPLE = Path(__file__).resolve().parents[1].parent / "shared/examples/escalated-conversation.json"

KEY = b"tenant-a-fingerprint-key-0123456"
OTHER_KEY = b"tenant-b-fingerprint-key-6543210"
REJECT = GuardPolicy()
MASK = GuardPolicy(cards="mask")

VISA = "4111111111111111"
TEST_PANS = [
    "4111111111111111",  # Visa
    "4000000000000002",  # Visa
    "4222222222222",  # Visa, 13 digits
    "5555555555554444",  # Mastercard
    "2223003122003222",  # Mastercard 2-series
    "378282246310005",  # American Express, 15 digits
    "6011111111111117",  # Discover
    "3566002020360505",  # JCB
    "36227206271667",  # Diners Club, 14 digits
    "6250941006528599",  # UnionPay
    "4111111111111111110",  # Visa, 19 digits
]


def load_examples() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(EXAMPLE.read_text())["events"]
    return events


def by_type(name: str) -> dict[str, Any]:
    wanted = f"handoff.{name}.v1"
    return copy.deepcopy(next(e for e in load_examples() if e["type"] == wanted))


def message(text: str) -> dict[str, Any]:
    event = by_type("message.created")
    event["data"]["content"]["parts"][0]["content"] = text
    return event


def tool_call(arguments: object) -> dict[str, Any]:
    event = by_type("tool.call")
    event["data"]["arguments"] = arguments
    return event


def validate(
    event: dict[str, Any], policy: GuardPolicy = REJECT, key: bytes = KEY
) -> ValidatedEvent:
    return validate_event(event, policy=policy, fingerprint_key=key)


def rejected(event: dict[str, Any], policy: GuardPolicy = REJECT) -> EventInvalid:
    with pytest.raises(EventInvalid) as caught:
        validate(event, policy)
    return caught.value


def assert_not_echoed(error: EventInvalid, pan: str) -> None:
    digits = re.sub(r"\D", "", pan)
    for text in (str(error), error.pointer, error.detail, repr(error.args)):
        assert digits not in re.sub(r"\D", "", text) or len(digits) < 13
        assert pan not in text
        assert digits[-8:] not in text


def spaced(pan: str, separator: str = " ") -> str:
    return separator.join(pan[i : i + 4] for i in range(0, len(pan), 4))


def hmac_hex(key: bytes, value: str) -> str:
    return "hmac-sha256:" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


# --- detection ---------------------------------------------------------------------------------


@pytest.mark.parametrize("pan", TEST_PANS)
def test_test_card_numbers_are_luhn_valid_and_found(pan: str) -> None:
    assert luhn_valid(pan)
    assert [f.normalized for f in find_pans(f"card {pan}.")] == [pan]


@pytest.mark.parametrize(
    "text",
    [
        VISA,
        spaced(VISA),
        spaced(VISA, "-"),
        "3782 822463 10005",
        "4111 1111-1111 1111",
        "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
        "my card is 4111111111111111, thanks",
        "card:4111-1111-1111-1111;exp=12/29",
        "card4111111111111111",
        "(4111111111111111)",
        "qty 2 4111 1111 1111 1111",  # a number next to it does not hide it
        "0 4111111111111111 0",
        "4111 1111 1111 1111 1226",  # card and expiry written together
        "".join(chr(0xFF10 + int(c)) for c in VISA),  # fullwidth digits
    ],
)
def test_pan_forms_are_rejected_at_the_field(text: str) -> None:
    error = rejected(message(text))
    assert error.pointer == "/data/content/parts/0/content"
    assert "card number" in error.detail
    assert_not_echoed(error, text)


def test_pan_inside_a_json_string_in_tool_arguments_is_rejected() -> None:
    arguments = json.dumps({"payment": {"card": {"number": spaced(VISA, "-")}}})
    error = rejected(tool_call(arguments))
    assert error.pointer == "/data/arguments"
    assert_not_echoed(error, VISA)


def test_pan_inside_a_json_string_inside_a_json_string_is_rejected() -> None:
    inner = json.dumps({"pan": VISA})
    error = rejected(tool_call({"request": json.dumps({"body": inner})}))
    assert error.pointer == "/data/arguments/request"


def test_pan_hidden_by_json_escapes_is_rejected_even_when_masking() -> None:
    escaped = '{"number": "' + "".join(f"\\u{ord(c):04x}" for c in VISA) + '"}'
    assert VISA not in escaped
    error = rejected(tool_call(escaped), MASK)
    assert error.pointer == "/data/arguments"
    assert "cannot be masked" in error.detail


@pytest.mark.parametrize("number", [int(VISA), float(VISA)])
def test_pan_as_a_json_number_is_rejected(number: float) -> None:
    error = rejected(tool_call({"card": number}))
    assert error.pointer == "/data/arguments/card"


def test_pan_as_an_object_key_is_rejected_without_echo_in_the_pointer() -> None:
    for policy in (REJECT, MASK):
        error = rejected(tool_call({VISA: "primary"}), policy)
        assert error.pointer.startswith("/data/arguments/")
        assert_not_echoed(error, VISA)


def test_pan_deep_in_arrays_is_found() -> None:
    error = rejected(tool_call({"a": [{"b": [0, {"c": ["x", f"pay {spaced(VISA)}"]}]}]}))
    assert error.pointer == "/data/arguments/a/0/b/1/c/1"


def test_pan_in_an_extension_attribute_is_rejected_whatever_the_policy() -> None:
    event = by_type("tool.call")
    event["cardref"] = VISA
    for policy in (REJECT, MASK):
        assert rejected(event, policy).pointer == "/cardref"


def test_pan_in_an_error_pointer_is_masked_before_it_leaves() -> None:
    event = by_type("tool.call")
    event[VISA] = "x"  # an extension name made of a card number
    error = rejected(event)
    assert_not_echoed(error, VISA)


@pytest.mark.parametrize(
    "text",
    [
        "Card ending 0004.",
        "4111 1111 1111 1112",  # Luhn-invalid
        "4111111111111112",
        "order 4000-1234-5678-9011 shipped",  # Luhn-invalid order reference
        "scores 10 20 30 40 50 60 70 80 90 11",  # small numbers in a row are not cut
        "ORD-2026-000123-4567",
        "0000000000000000",  # all zeros: Luhn-valid, but not a card (MII 0)
        "00000000000000000000",  # 20 digits
        "41111111111111111111",  # 20 digits: too long to be a card
        "018f3a2c-0000-7000-8000-000000000000",
        "f00dcafe-1234-4abc-8901-234567890122",  # all-digit UUID tail that passes Luhn
        "2026-11-20T09:14:00.000Z",
        "sha256:7a617f1988d2b98021827a3953a4ed3f8958c9f6ec7755ef264db3ba0a0f830c",
        "abcd4111111111111111",  # part of a hex word
        "+1 415 555 2671",
        "I was charged twice for my annual plan. Card ending 0004.",
    ],
)
def test_look_alikes_pass_untouched(text: str) -> None:
    for policy in (REJECT, MASK):
        validated = validate(message(text), policy)
        assert validated.data["content"]["parts"][0]["content"] == text
        assert validated.redactions == []


def _luhn_valid_near(start: int, step: int = 1) -> str:
    value = start
    while not luhn_valid(str(value)):
        value += step
    return str(value)


@pytest.mark.parametrize(
    "timestamp",
    [
        _luhn_valid_near(1763630040000),  # epoch milliseconds
        _luhn_valid_near(1763630040000000),  # epoch microseconds
        _luhn_valid_near(1763630040000000000),  # epoch nanoseconds
        _luhn_valid_near(20261120091400),  # YYYYMMDDhhmmss
        _luhn_valid_near(20261120091400123),  # YYYYMMDDhhmmssfff
    ],
)
def test_luhn_valid_timestamps_pass_untouched(timestamp: str) -> None:
    assert luhn_valid(timestamp)
    arguments: dict[str, object] = {"at": timestamp, "log": f"[{timestamp}] started"}
    if int(timestamp) < 2**53:
        arguments["at_num"] = int(timestamp)
    validated = validate(tool_call(arguments))
    assert validated.data["arguments"] == arguments


@settings(max_examples=500)
@given(value=st.uuids())
def test_uuids_are_never_card_numbers(value: uuid.UUID) -> None:
    for text in (str(value), str(value).upper(), value.hex, f"id={value};"):
        assert find_pans(text) == []


# --- masking -------------------------------------------------------------------------------------


def test_masking_keeps_the_last_four_and_the_separators() -> None:
    text = f"my card {spaced(VISA)} and {spaced('5555555555554444', '-')}, ok"
    validated = validate(message(text), MASK)
    masked = validated.data["content"]["parts"][0]["content"]
    assert masked == "my card **** **** **** 1111 and ****-****-****-4444, ok"
    first, second = validated.redactions
    assert first == {
        "path": "/content/parts/0/content",
        "entity_type": "pan",
        "start": 8,
        "end": 27,
        "operator": "mask",
        "detector": {"name": "ledger-pan-guard", "version": "2"},
        "policy": "pci-3.5.1",
        "stage": "ingest",
        "fingerprint": hmac_hex(KEY, VISA),
    }
    assert text[first["start"] : first["end"]] == spaced(VISA)
    assert text[second["start"] : second["end"]] == spaced("5555555555554444", "-")
    assert second["fingerprint"] == hmac_hex(KEY, "5555555555554444")


def test_redaction_paths_point_into_data() -> None:
    event = tool_call({"cards": [{"n": VISA}]})
    validated = validate(event, MASK)
    (redaction,) = validated.redactions
    assert redaction["path"] == "/arguments/cards/0/n"
    assert resolve(validated.data, redaction["path"]) == "************1111"
    assert resolve(event["data"], redaction["path"]) == VISA


def test_masking_never_mutates_the_input_and_shares_what_is_unchanged() -> None:
    event = tool_call({"n": VISA, "other": {"x": 1}})
    pristine = copy.deepcopy(event)
    validated = validate(event, MASK)
    assert event == pristine
    assert validated.data is not event["data"]
    assert validated.data["arguments"]["other"] is event["data"]["arguments"]["other"]
    assert validated.data["actor"] is event["data"]["actor"]


def test_masked_records_fit_redaction_applied() -> None:
    """The guard's records are valid ``redaction.applied`` redactions (keyed fingerprint)."""
    validated = validate(message(f"card {VISA}"), MASK)
    event = by_type("redaction.applied")
    event["data"]["redactions"] = validated.redactions
    validate(event)


def test_fingerprint_is_keyed_and_changes_with_the_key() -> None:
    event = message(f"card {VISA}")
    first = validate(event, MASK, KEY).redactions[0]["fingerprint"]
    second = validate(event, MASK, OTHER_KEY).redactions[0]["fingerprint"]
    assert first.startswith("hmac-sha256:")
    assert first != second
    assert first == hmac_hex(KEY, VISA)
    assert hashlib.sha256(VISA.encode()).hexdigest() not in (first, second)  # never unkeyed


def test_fingerprint_ignores_formatting() -> None:
    fingerprints = {
        validate(message(f"card {form}"), MASK).redactions[0]["fingerprint"]
        for form in (VISA, spaced(VISA), spaced(VISA, "-"))
    }
    assert len(fingerprints) == 1


def test_masking_a_pan_in_a_json_string_keeps_it_json() -> None:
    arguments = json.dumps({"card": {"number": spaced(VISA, "-")}, "amount": "240"})
    validated = validate(tool_call(arguments), MASK)
    masked = json.loads(validated.data["arguments"])
    assert masked == {"card": {"number": "****-****-****-1111"}, "amount": "240"}
    assert validated.redactions[0]["path"] == "/arguments"


def test_masking_a_pan_number_replaces_it_with_masked_text() -> None:
    validated = validate(tool_call({"card": int(VISA)}), MASK)
    assert validated.data["arguments"]["card"] == "************1111"


def test_short_fingerprint_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        validate(message("hello"), MASK, key=b"short")
    validate(message("hello"), REJECT, key=b"")  # nothing to fingerprint


@given(text=st.text(max_size=60), pan=st.sampled_from(TEST_PANS))
@settings(max_examples=300)
def test_masked_text_holds_no_card_number(text: str, pan: str) -> None:
    event = message(f"{text} {pan} {text}")
    try:
        validated = validate(event, MASK)
    except EventInvalid:
        return  # e.g. an unpaired surrogate in the text
    masked = validated.data["content"]["parts"][0]["content"]
    assert pan not in masked
    assert find_pans(masked) == []
    start = len(text) + 1
    assert any(r["start"] <= start and start + len(pan) <= r["end"] for r in validated.redactions)


# --- sensitive authentication data by field name --------------------------------------------------

SAD_NAMES = [
    "cvv", "CVV", "cvc", "cvv2", "CVC2", "cid", "pin", "PIN", "pin_block", "pinBlock",
    "track1", "track2", "track_data", "trackData", "magstripe", "mag_stripe",
    "card_verification_value", "cardVerificationValue", "card-verification-code",
    "card_cvv", "cvv_number", "security_code",
]  # fmt: skip


@pytest.mark.parametrize("name", SAD_NAMES)
@pytest.mark.parametrize("policy", [REJECT, MASK, GuardPolicy(cards="mask", emails="allow")])
def test_sensitive_authentication_data_by_name_is_always_rejected(
    name: str, policy: GuardPolicy
) -> None:
    error = rejected(tool_call({"payment": [{"card": {name: "123"}}]}), policy)
    assert error.pointer == f"/data/arguments/payment/0/card/{name}"
    assert "PCI DSS 3.3.1" in error.detail
    assert "123" not in str(error)


@pytest.mark.parametrize("value", ["123", 123, {"enc": "x"}, ["1", "2"], ""])
def test_any_value_under_a_sensitive_name_is_rejected(value: object) -> None:
    assert rejected(tool_call({"cvv": value})).pointer == "/data/arguments/cvv"


def test_sensitive_name_inside_a_json_string_is_rejected() -> None:
    for policy in (REJECT, MASK):
        error = rejected(tool_call(json.dumps({"card": {"CVV2": "123"}})), policy)
        assert error.pointer == "/data/arguments"


def test_sensitive_name_at_the_top_of_data_or_in_the_envelope() -> None:
    event = by_type("tool.call")
    event["data"]["pin"] = "0000"
    assert rejected(event).pointer == "/data/pin"
    event = by_type("tool.call")
    event["cvv"] = "123"
    assert rejected(event).pointer == "/cvv"


@pytest.mark.parametrize(
    "name",
    ["cvc_check", "cvv_result", "pincode", "shipping", "pinned", "tracking", "card_last4", "id"],
)
def test_near_miss_names_pass(name: str) -> None:
    validated = validate(tool_call({name: "pass"}))
    assert validated.data["arguments"][name] == "pass"


def test_null_or_boolean_under_a_sensitive_name_holds_no_secret() -> None:
    validate(tool_call({"pin": False, "cvv": None}))


def test_field_names_listed_as_values_are_fine() -> None:
    event = by_type("data.access")
    event["data"]["fields"] = ["cvv", "pin", "track2"]
    validate(event)


@pytest.mark.parametrize("name", SAD_NAMES)
def test_is_sensitive_name(name: str) -> None:
    assert is_sensitive_name(name)


# --- emails, phone numbers, SSNs -----------------------------------------------------------------

PII_TEXT = "reach me at j.doe@example.com or +1 415 555 2671; ssn 123-45-6789"


def test_pii_is_allowed_by_default() -> None:
    validated = validate(message(PII_TEXT))
    assert validated.data["content"]["parts"][0]["content"] == PII_TEXT
    assert validated.redactions == []


@pytest.mark.parametrize(
    ("policy", "what"),
    [
        (GuardPolicy(emails="reject"), "email"),
        (GuardPolicy(phones="reject"), "phone"),
        (GuardPolicy(ssns="reject"), "social security"),
    ],
)
def test_pii_rejected_by_policy(policy: GuardPolicy, what: str) -> None:
    error = rejected(message(PII_TEXT), policy)
    assert error.pointer == "/data/content/parts/0/content"
    assert what in error.detail
    for secret in ("j.doe", "555", "6789"):
        assert secret not in str(error)


def test_pii_masked_by_policy() -> None:
    policy = GuardPolicy(emails="mask", phones="mask", ssns="mask")
    validated = validate(message(PII_TEXT), policy)
    masked = validated.data["content"]["parts"][0]["content"]
    assert masked == "reach me at j****@*******.com or +* *** *** 2671; ssn ***-**-6789"
    kinds = [r["entity_type"] for r in validated.redactions]
    assert kinds == ["email", "phone", "ssn"]
    for record in validated.redactions:
        original = PII_TEXT[record["start"] : record["end"]]
        assert record["operator"] == "mask"
        assert record["detector"] == {"name": "ledger-pii-guard", "version": "1"}
        assert record["policy"] == f"pii-{record['entity_type']}"
        assert record["fingerprint"].startswith("hmac-sha256:")
        assert original in ("j.doe@example.com", "+1 415 555 2671", "123-45-6789")


@pytest.mark.parametrize(
    "text",
    [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "123-00-4567",
        "123-45-0000",
        "123456789",
        "a123-45-6789",
        "acct-3310",
        "T-5120",
        "2026-11-20",
        "2026-11-20T09:14:00+01:00",
        "v1.2.3",
        "inv-88120",
        "018f3a2c-0000-7000-8000-000000000000",
        "4155552671",  # bare digits are never taken for a phone number
        "1763630040000",
        "user at example dot com",
        "price 1,234,567.89",
    ],
)
def test_pii_look_alikes_pass_untouched(text: str) -> None:
    policy = GuardPolicy(emails="reject", phones="reject", ssns="reject")
    validated = validate(message(text), policy)
    assert validated.data["content"]["parts"][0]["content"] == text


@pytest.mark.parametrize(
    "phone",
    ["+1 415 555 2671", "+14155552671", "+44 20 7946 0958", "(415) 555-2671", "415.555.2671"],
)
def test_phone_forms(phone: str) -> None:
    assert [f.normalized for f in find_phones(f"call {phone} now")] != []


def test_card_wins_over_other_detectors_on_the_same_characters() -> None:
    policy = GuardPolicy(cards="mask", phones="mask")
    validated = validate(message(f"+{VISA}"), policy)
    assert [r["entity_type"] for r in validated.redactions] == ["pan"]


# --- the policy object ---------------------------------------------------------------------------


def test_policy_values_are_checked() -> None:
    with pytest.raises(ConfigurationError):
        GuardPolicy(cards="allow")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        GuardPolicy(emails="maybe")  # type: ignore[arg-type]


def test_guard_alone_on_the_example_changes_nothing() -> None:
    for event in load_examples():
        guarded = guard(event["data"], policy=GuardPolicy(cards="mask"), fingerprint_key=KEY)
        assert guarded.data is event["data"]
        assert guarded.redactions == []


def test_mask_helper() -> None:
    assert mask("pan", "4111 1111 1111 1111") == "**** **** **** 1111"
    assert mask("ssn", "123-45-6789") == "***-**-6789"
    assert mask("email", "ann@mail.example.org") == "a**@****.*******.org"


# --- the pre-filter: a quicker way to the same answer as its regex -------------------------

_POLICIES = [
    GuardPolicy(),
    GuardPolicy(cards="mask"),
    GuardPolicy(emails="mask"),
    GuardPolicy(phones="reject"),
    GuardPolicy(cards="mask", emails="reject", phones="mask", ssns="mask"),
]
# Digits of several scripts (regex \d matches them all), the hints' separators, '@', letters.
_HINT_ALPHABET = "0123456789 ().-@ax\u0663\uff15\u0967\u00e9/\u00a0\u200b\u2013\n"


@settings(max_examples=1500)
@given(
    text=st.one_of(
        st.text(alphabet=_HINT_ALPHABET, max_size=40),
        st.text(max_size=40),
        st.builds(lambda a, b: a + b, st.text(max_size=200), st.text(_HINT_ALPHABET, max_size=30)),
    ),
    policy=st.sampled_from(_POLICIES),
)
def test_prefilter_answers_exactly_as_its_regex(text: str, policy: GuardPolicy) -> None:
    prefilter, _ = guard_plan(policy)
    assert prefilter.may_hold(text) is (prefilter.pattern.search(text) is not None)


@pytest.mark.parametrize(
    ("text", "policy", "expected"),
    [
        ("call 555-867-5309 now", GuardPolicy(phones="mask"), True),  # 10 ASCII digits
        ("call 555-867-5309 now", REJECT, False),  # a PAN needs 13
        ("order 1234 5678 9012 3456", REJECT, True),
        ("\u0664" * 13, REJECT, True),  # Arabic-Indic digits: the regex decides
        ("write to a@b.example", GuardPolicy(emails="reject"), True),
        ("write to a@b.example", REJECT, False),
        ("x" * 5000, GuardPolicy(phones="mask"), False),
    ],
)
def test_prefilter_known_answers(text: str, policy: GuardPolicy, expected: bool) -> None:
    prefilter, _ = guard_plan(policy)
    assert prefilter.may_hold(text) is expected


# --- card numbers however they are spelled (issue 16) ------------------------------------------
# A separator a human or a copy-paste puts between digits, of every class: Unicode spaces (Zs),
# line and paragraph separators, tabs and line breaks, zero-width characters, the soft hyphen,
# dots, slashes, every dash (Pd), and runs of them.

ANY_SEPARATOR = {
    "space": " ",
    "no-break space": "\u00a0",
    "ogham space mark": "\u1680",
    **{f"U+{c:04X} space": chr(c) for c in range(0x2000, 0x200B)},
    "narrow no-break space": "\u202f",
    "medium mathematical space": "\u205f",
    "ideographic space": "\u3000",
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
    "tab": "\t",
    "newline": "\n",
    "carriage return": "\r",
    "CRLF": "\r\n",
    "vertical tab": "\v",
    "form feed": "\f",
    "next line": "\x85",
    "zero-width space": "\u200b",
    "zero-width non-joiner": "\u200c",
    "zero-width joiner": "\u200d",
    "word joiner": "\u2060",
    "zero-width no-break space": "\ufeff",
    "soft hyphen": "\u00ad",
    "left-to-right mark": "\u200e",
    "dot": ".",
    "middle dot": "\u00b7",
    "fullwidth full stop": "\uff0e",
    "ideographic full stop": "\u3002",
    "slash": "/",
    "fraction slash": "\u2044",
    "division slash": "\u2215",
    "fullwidth solidus": "\uff0f",
    "hyphen-minus": "-",
    **{f"U+{c:04X} dash": chr(c) for c in range(0x2010, 0x2016)},
    "minus sign": "\u2212",
    "small hyphen-minus": "\ufe63",
    "fullwidth hyphen-minus": "\uff0d",
    "two spaces": "  ",
    "three spaces": "   ",
    "dot and space": ". ",
    "spaced hyphen": " - ",
    "no-break spaced en dash": "\u00a0\u2013\u00a0",
    "space and zero-width space": " \u200b",
    "two zero-width spaces": "\u200b\u200b",
}
LAID_OUT = [
    (VISA, (4, 4, 4, 4)),
    ("378282246310005", (4, 6, 5)),  # American Express
    ("36227206271667", (4, 6, 4)),  # Diners Club
    ("4222222222222", (4, 4, 4, 1)),  # Visa, 13 digits
    ("4111111111111111110", (4, 4, 4, 4, 3)),  # Visa, 19 digits
]
DIGIT_ZEROS = {
    "fullwidth": 0xFF10,
    "arabic-indic": 0x0660,
    "extended arabic-indic": 0x06F0,
    "devanagari": 0x0966,
    "bengali": 0x09E6,
    "thai": 0x0E50,
    "tibetan": 0x0F20,
    "myanmar": 0x1040,
    "mathematical bold": 0x1D7CE,
    "mathematical monospace": 0x1D7F6,
}


def spell(
    digits: str, separator: str, layout: tuple[int, ...] = (4, 4, 4, 4), zero: int = 0x30
) -> str:
    """``digits`` grouped by ``layout`` (the rest in one last group), in the script of ``zero``
    (``*`` left as it is)."""
    glyphs = "".join(d if d == "*" else chr(zero + int(d)) for d in digits)
    groups, at = [], 0
    for size in layout:
        groups.append(glyphs[at : at + size])
        at += size
    groups.append(glyphs[at:])
    return separator.join(g for g in groups if g)


def content(validated: ValidatedEvent) -> str:
    text: str = validated.data["content"]["parts"][0]["content"]
    return text


@pytest.mark.parametrize("separator", ANY_SEPARATOR.values(), ids=ANY_SEPARATOR.keys())
def test_card_numbers_spelled_with_any_separator_are_found(separator: str) -> None:
    for pan, layout in LAID_OUT:
        for text in (
            spell(pan, separator, layout),
            f"my card is {spell(pan, separator, layout)}, ok",
        ):
            error = rejected(message(text))
            assert error.pointer == "/data/content/parts/0/content"
            assert "card number" in error.detail
            assert_not_echoed(error, pan)


@pytest.mark.parametrize("separator", ANY_SEPARATOR.values(), ids=ANY_SEPARATOR.keys())
def test_card_numbers_spelled_with_any_separator_are_masked_in_place(separator: str) -> None:
    for pan, layout in LAID_OUT:
        spelled = spell(pan, separator, layout)
        text = f"card: {spelled}\nthanks"
        validated = validate(message(text), MASK)
        masked = "*" * (len(pan) - 4) + pan[-4:]
        assert content(validated) == f"card: {spell(masked, separator, layout)}\nthanks"
        (record,) = validated.redactions
        assert (record["start"], record["end"]) == (6, 6 + len(spelled))
        assert text[record["start"] : record["end"]] == spelled
        assert record["fingerprint"] == hmac_hex(KEY, pan)


@pytest.mark.parametrize("zero", DIGIT_ZEROS.values(), ids=DIGIT_ZEROS.keys())
def test_card_numbers_in_any_script_of_digits_are_found_and_masked(zero: int) -> None:
    for separator in ("", " ", "-", "\u3000", "\u00a0", "."):
        spelled = spell(VISA, separator, zero=zero)
        assert_not_echoed(rejected(message(f"card {spelled} ok")), VISA)
        validated = validate(message(f"card {spelled} ok"), MASK)
        masked = spell("*" * 12 + VISA[-4:], separator, zero=zero)  # its own last four kept
        assert content(validated) == f"card {masked} ok"
        (record,) = validated.redactions
        assert (record["start"], record["end"]) == (5, 5 + len(spelled))
        assert record["fingerprint"] == hmac_hex(KEY, VISA)


def test_every_unicode_space_dash_and_decimal_digit_is_read() -> None:
    """The separators are every Unicode space (Zs, Zl, Zp, ``str.isspace``) and dash (Pd) but
    U+10EAD (left out so the regex classes stay bitmaps), and the digits every ``Nd`` script."""
    separators, zeros = [], []
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if unicodedata.category(char) in ("Zs", "Zl", "Zp", "Pd") or char.isspace():
            separators.append(char)
        if unicodedata.decimal(char, None) == 0:
            zeros.append(code)
    assert len(separators) > 40
    assert len(zeros) > 60
    for char in separators:
        expected = [] if char == "\U00010ead" else [VISA]
        assert [f.normalized for f in find_pans(spell(VISA, char))] == expected, hex(ord(char))
    for zero in zeros:
        assert [f.normalized for f in find_pans(spell(VISA, " ", zero=zero))] == [VISA], hex(zero)


def test_superscript_and_subscript_digits_are_not_card_digits() -> None:
    """A judgement: no copy-paste turns a card number into superscript or subscript digits (a
    rich-text superscript is formatting, not those characters), while footnote marks and
    formulae use them; so they are not read as digits."""
    superscript = "".join(
        "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"[int(d)] for d in VISA
    )
    subscript = "".join(chr(0x2080 + int(d)) for d in VISA)
    for text in (superscript, subscript, f"x{superscript[:2]} + y{superscript[:2]}"):
        assert find_pans(text) == []


def test_copy_paste_artefacts_are_masked_where_they_are() -> None:
    spelled = "4111\u00a0\u200b1111-1111.\u200e1111"  # mixed separators and invisible marks
    wrapped = "5555 5555\n5555 4444"  # broken over two lines
    text = f"Card: {spelled} or\n{wrapped}."
    validated = validate(message(text), MASK)
    assert (
        content(validated) == "Card: ****\u00a0\u200b****-****.\u200e1111 or\n**** ****\n**** 4444."
    )
    first, second = validated.redactions
    assert text[first["start"] : first["end"]] == spelled
    assert text[second["start"] : second["end"]] == wrapped
    assert first["fingerprint"] == hmac_hex(KEY, VISA)
    assert second["fingerprint"] == hmac_hex(KEY, "5555555555554444")
    assert [r["detector"]["version"] for r in validated.redactions] == ["2", "2"]


def test_fingerprint_ignores_separators_and_scripts() -> None:
    forms = [
        VISA,
        spell(VISA, "\u00a0"),
        spell(VISA, "\u200b"),
        spell(VISA, ". "),
        spell(VISA, "", zero=0xFF10),
        spell(VISA, " ", zero=0x0660),
    ]
    fingerprints = {
        validate(message(f"card {form}"), MASK).redactions[0]["fingerprint"] for form in forms
    }
    assert fingerprints == {hmac_hex(KEY, VISA)}


def luhn_completed(template: str) -> str:
    """``template`` with its last digit changed so that all its digits pass the Luhn check."""
    at = max(i for i, char in enumerate(template) if char.isdigit())
    for last in "0123456789":
        text = template[:at] + last + template[at + 1 :]
        if luhn_valid(re.sub(r"\D", "", text)):
            return text
    raise AssertionError(template)


LUHN_VALID_LOOK_ALIKES = [
    # every one's digits, taken together, pass the Luhn check: a rule leaves it alone, not luck
    luhn_completed("on 2026.11.16 10.30.45 we"),  # dates and times
    luhn_completed("on 16.11.2026 14.30.05 we"),
    luhn_completed("on 2026-11-16 10-30-45 we"),
    luhn_completed("on 20261116 103045 we"),
    luhn_completed("valid 01.11.2026 \u2013 30.11.2026 we"),
    luhn_completed("valid 11/01/2026 - 11/30/2026 we"),
    luhn_completed("from 192.168.100.200 10.0.0.1 on"),  # IP addresses
    luhn_completed("Windows 10.0.19045.3693 and 10.0.22631.4"),  # versions
    luhn_completed("call +86 138 0013 8000 now"),  # phone numbers
    luhn_completed("call +8613800138000 now"),
    luhn_completed("call +62 812 2255 6367 now"),
    luhn_completed("call +52 1 55 9580 3528 now"),
    luhn_completed("call +49 150 95337858 now"),
    luhn_completed("call +55 11 91234-5678 now"),
    luhn_completed("call +234 802 762 1060 now"),
    luhn_completed("order 2026 1116 0000 1234 shipped"),  # references in fours, 20xx
    luhn_completed("ticket 1234 5678 9012 3456 x"),  # in fours but under identifier 1
    "user 165972988874901367",  # a snowflake id (18 digits, identifier 1)
    "ISBN 9791052285835",  # an ISBN-13 that passes the Luhn check
    "ISBN 979-1-052-28583-5",
    "IBAN FR50 0032 6016 0768 4823 0966 106",  # IBANs whose groups hold Luhn-valid windows
    "IBAN DE57 6206 5091 1693 7938 68",
    luhn_completed("scores 12  34  56  78  90  12  34  5"),  # a table
]


@pytest.mark.parametrize("text", LUHN_VALID_LOOK_ALIKES)
def test_luhn_valid_look_alikes_are_not_card_numbers(text: str) -> None:
    for policy in (REJECT, MASK):
        validated = validate(message(text), policy)
        assert content(validated) == text
        assert validated.redactions == []


@given(
    text=st.text(alphabet="0123456789 .-/\u00a0\u200b\u3000\u2013\uff11\n", max_size=60),
    policy=st.sampled_from(_POLICIES),
)
@settings(max_examples=1000)
def test_the_prefilter_lets_through_every_card_number(text: str, policy: GuardPolicy) -> None:
    """The pre-filter decides which strings the detectors see: it must pass every one that
    holds a card number, however spelled."""
    prefilter, _ = guard_plan(policy)
    if find_pans(text):
        assert prefilter.may_hold(text)


MEGABYTE = 1024 * 1024
TIME_BOUND = 0.5  # seconds for a megabyte; a quadratic slip would show as minutes
ADVERSARIAL = {
    "digits and spaces": "1 ",
    "digits and dots": "1.",
    "digits and no-break spaces": "1\u00a0",
    "digits and zero-width spaces": "1\u200b",
    "digits and two spaces": "1  ",
    "digits and dot-spaces": "1. ",
    "digits and four separators": "1 -- ",
    "fullwidth digits and ideographic spaces": "\uff11\u3000",
    "12-digit runs": "1 " * 12 + "    ",
    "one long number": "7",
    "card-shaped groups": "4111 ",
    "dates": "2026.11.16 ",
    "zero-width spaces then a digit": "\u200b" * 4096 + "1",
}


@pytest.mark.parametrize("unit", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_a_megabyte_of_digits_and_separators_is_guarded_in_linear_time(unit: str) -> None:
    """Each shape once through the guard (pre-filter and detectors) under both policies; the
    best of three tries counts, so a busy machine does not fail it, while a slip to quadratic
    time (minutes here) or a backtracking regex would."""
    text = (unit * (MEGABYTE // len(unit) + 1))[:MEGABYTE]
    for policy in (REJECT, MASK):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            guarded = guard({"text": text}, policy=policy, fingerprint_key=KEY)
            best = min(best, time.perf_counter() - start)
            assert guarded.redactions == []
            if best < TIME_BOUND:
                break
        assert best < TIME_BOUND, f"{best:.2f} s"
