"""Detectors for card data and PII inside strings. Pure functions over ``str``; no policy here.

* **PAN** (primary account number, PCI DSS 3.5.1): 13-19 digits that pass the Luhn check
  (ISO/IEC 7812-1 Annex B), the digits optionally separated by single spaces or dashes. A run
  of digits and single separators is a PAN as a whole, in any grouping; within a longer run,
  a single group of 13-19 digits or whole groups laid out as cards are printed (4-4-4-4,
  4-4-4-4-3, 4-6-5, 4-6-4) are examined too (``qty 2 4111 1111 1111 1111``), so a number
  standing next to a card does not hide it, while a run of small numbers is not cut into
  arbitrary windows. A run without separators is never cut (a 20-digit reference holds no
  card), and the digit groups of a UUID are never one.
  Letters may touch the run (``card4111…``) unless, with the run, they form a hexadecimal
  word (the tail of a UUID group, a digest). Known non-card numbers are left alone:

  - a leading ``0`` (major industry identifier 0 is not issued to card issuers; all-zero and
    zero-padded order numbers);
  - 13, 16 or 19 digits without separators beginning with ``1``: epoch timestamps in
    milliseconds, microseconds or nanoseconds (2001-2033); no card brand issues numbers of
    those lengths under identifier 1 (UATP numbers are 15 digits);
  - 14 or 17 digits without separators forming ``YYYYMMDDhhmmss[fff]`` (1900-2099): compact
    timestamps.

* **SSN**: ``ddd-dd-dddd`` outside the never-issued ranges (area 000, 666, 900-999; group 00;
  serial 0000), dashes required.
* **Phone**: conservative, to leave ids and timestamps alone: ``+`` and a country code with 8-15
  digits in all (E.164, separators ``space . - ( )``), or the North American ``(415) 555-2671``,
  ``415-555-2671``, ``415.555.2671`` forms. Bare digit runs are never taken for phone numbers.
* **Email**: ``local@domain.tld``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

EntityType = Literal["pan", "ssn", "phone", "email"]

PAN_PATTERN: Final = re.compile(r"(?<!\d)(?<!\d[ -])\d(?:[ -]?\d){12,}")
"""A maximal run of at least 13 digits with single separators (greedy, so it ends maximal)."""
_GROUP: Final = re.compile(r"\d+")
PAN_MIN_DIGITS: Final = 13
PAN_MAX_DIGITS: Final = 19
CARD_LAYOUTS: Final = {4: ((4, 4, 4, 4), (4, 4, 4, 4, 3)), 6: ((4, 6, 5), (4, 6, 4))}
"""Group sizes of printed cards, by the size of the second group (the first is always 4)."""
_WORD_RUN: Final = re.compile(r"[^\W_]*")  # letters and digits of any script
_HEX_WINDOW: Final = 256
_HEX_WORD: Final = re.compile(r"[0-9A-Fa-f]+")
_UUID: Final = re.compile(
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
)
_UUID_LENGTH: Final = 36
SSN_PATTERN: Final = re.compile(
    r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])", re.ASCII
)
PHONE_PATTERN: Final = re.compile(
    r"(?<![\w+])\+[1-9](?:[ .-]?\(?\d\)?){7,14}(?![\w])"
    r"|(?<![\w+.-])(?:\([2-9]\d\d\) ?|[2-9]\d\d[-. ])[2-9]\d\d[-. ]\d{4}(?![\w-])",
    re.ASCII,
)
EMAIL_PATTERN: Final = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*"
    r"\.[A-Za-z]{2,24}(?![\w-])",
    re.ASCII,
)

PAN_HINT: Final = r"\d(?:[ -]?\d){12}"
"""Any string holding a PAN holds a match of this; most strings hold none."""
PAN_HINT_MIN_DIGITS: Final = PAN_MIN_DIGITS
"""The digits every match of :data:`PAN_HINT` holds."""
DIGITS_HINT: Final = r"\d(?:[ ().-]{0,2}\d){7}"
"""Any string holding a PAN, an SSN or a phone number holds a match of this."""
DIGITS_HINT_MIN_DIGITS: Final = 8
"""The digits every match of :data:`DIGITS_HINT` holds."""
EMAIL_HINT: Final = "@"

_COMPACT_TIMESTAMP: Final = re.compile(
    r"(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:[01]\d|2[0-3])[0-5]\d[0-5]\d(?:\d{3})?"
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected value: ``text[start:end]``, and its normalised form (digits, lowercase)."""

    entity_type: EntityType
    start: int
    end: int
    normalized: str


_NOT_ASCII_DIGIT: Final = re.compile(r"[^0-9]")
_DOUBLED: Final = str.maketrans("0123456789", "0246813579")
"""Each digit doubled, and the two digits of the result added (Luhn)."""


def ascii_digits(text: str) -> str:
    """The decimal digits of ``text`` (any script) as ASCII ``0-9``, everything else dropped."""
    if text.isascii():
        return _NOT_ASCII_DIGIT.sub("", text)
    return "".join(str(int(ch)) for ch in text if ch.isdecimal())


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of ISO/IEC 7812-1 over ASCII ``digits``: from the right, every
    second digit doubled (its digits summed), the total a multiple of ten."""
    kept = sum(map(int, digits[-1::-2]))
    doubled = sum(map(int, digits[-2::-2].translate(_DOUBLED)))
    return (kept + doubled) % 10 == 0


def is_pan(run: str) -> bool:
    """Whether a run of 13-19 digits (with single separators) is a card number: Luhn-valid and
    none of the known non-card numbers of the module docstring."""
    digits = ascii_digits(run)
    if not PAN_MIN_DIGITS <= len(digits) <= PAN_MAX_DIGITS:
        return False
    if digits[0] == "0" or not luhn_valid(digits):
        return False
    if len(digits) == len(run):  # no separators: rule out timestamps
        if digits[0] == "1" and len(digits) in (13, 16, 19):
            return False
        if len(digits) in (14, 17) and _COMPACT_TIMESTAMP.fullmatch(digits):
            return False
    return True


def find_pans(text: str) -> list[Finding]:
    """Card numbers in ``text``, in order; overlapping candidates are merged into one span."""
    found: list[Finding] = []
    for m in PAN_PATTERN.finditer(text):
        for start, end in _candidates(m.group(), m.start()):
            if _touches_hex_word(text, start, end) or _inside_uuid(text, start, end):
                continue
            digits = ascii_digits(text[start:end])
            if found and start < found[-1].end:  # overlaps the previous one: merge
                last = found[-1]
                keep = last.normalized if len(last.normalized) >= len(digits) else digits
                found[-1] = Finding("pan", last.start, max(end, last.end), keep)
            else:
                found.append(Finding("pan", start, end, digits))
    return found


def _candidates(run: str, offset: int) -> list[tuple[int, int]]:
    """Spans (absolute offsets) of the card numbers in one maximal run, by start: the whole run,
    single long groups, and stretches laid out as cards. Linear in the number of groups."""
    spans = []
    if len(run) <= PAN_MAX_DIGITS * 2 and is_pan(run):
        spans.append((offset, offset + len(run)))
    groups = [g.span() for g in _GROUP.finditer(run)]
    count = len(groups)
    if count == 1:
        return spans  # no separators: a longer number is not cut
    sizes = [end - start for start, end in groups]
    for first in range(count):
        if PAN_MIN_DIGITS <= sizes[first] <= PAN_MAX_DIGITS:
            lasts = [first]
        elif sizes[first] == 4 and first + 1 < count:
            lasts = [
                first + len(layout) - 1
                for layout in CARD_LAYOUTS.get(sizes[first + 1], ())
                if tuple(sizes[first : first + len(layout)]) == layout
            ]
        else:
            continue
        for last in lasts:
            if (first, last) != (0, count - 1):  # the whole run was tried above
                start, end = groups[first][0], groups[last][1]
                if is_pan(run[start:end]):
                    spans.append((offset + start, offset + end))
    return spans


def _touches_hex_word(text: str, start: int, end: int) -> bool:
    """Whether the run ``text[start:end]`` is glued to letters that, with it, form a hex word
    (``…9abc`` at the end of a UUID group, ``f3a2c4111…`` inside a digest). Looks at most
    :data:`_HEX_WINDOW` characters each way."""
    before = text[max(0, start - _HEX_WINDOW) : start][::-1]
    glued = _WORD_RUN.match(before)
    if glued is not None and glued.end() and _HEX_WORD.fullmatch(before, 0, glued.end()):
        return True
    glued = _WORD_RUN.match(text, end, end + _HEX_WINDOW)
    return (
        glued is not None
        and glued.end() > end
        and _HEX_WORD.fullmatch(text, end, glued.end()) is not None
    )


def _inside_uuid(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` overlaps a UUID (its all-digit groups are not a card)."""
    if "-" not in text[start:end]:
        return False
    window_start = max(0, start - _UUID_LENGTH)
    window_end = min(len(text), end + _UUID_LENGTH)
    return any(
        m.start() < end and start < m.end() for m in _UUID.finditer(text, window_start, window_end)
    )


def find_ssns(text: str) -> list[Finding]:
    return [
        Finding("ssn", m.start(), m.end(), ascii_digits(m.group()))
        for m in SSN_PATTERN.finditer(text)
    ]


def find_phones(text: str) -> list[Finding]:
    found = []
    for m in PHONE_PATTERN.finditer(text):
        value = m.group()
        digits = ascii_digits(value)
        if value.count("(") != value.count(")") or not 8 <= len(digits) <= 15:
            continue
        found.append(Finding("phone", m.start(), m.end(), digits))
    return found


def find_emails(text: str) -> list[Finding]:
    return [
        Finding("email", m.start(), m.end(), m.group().lower())
        for m in EMAIL_PATTERN.finditer(text)
    ]


def pan_in_number(value: int | float) -> str | None:
    """The digits of a JSON number that is a card number, else ``None``."""
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    digits = str(abs(value))
    if 13 <= len(digits) <= 19 and is_pan(digits):
        return digits
    return None


def mask(entity_type: EntityType, text: str) -> str:
    """``text`` made unreadable: digits replaced by ``*`` but for the last four (separators
    kept: ``**** **** **** 0004``); an email keeps the first character of its local part and
    its top-level domain (``j****@*******.com``)."""
    if entity_type == "email":
        local, _, domain = text.partition("@")
        head, _, tld = domain.rpartition(".")
        masked_head = "".join("." if ch == "." else "*" for ch in head)
        return f"{local[0]}{'*' * (len(local) - 1)}@{masked_head}.{tld}"
    keep = 4
    remaining = sum(1 for ch in text if ch.isdecimal())
    out = []
    for ch in text:
        if ch.isdecimal():
            out.append(ch if remaining <= keep else "*")
            remaining -= 1
        else:
            out.append(ch)
    return "".join(out)
