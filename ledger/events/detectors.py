"""Detectors for card data and PII inside strings. Pure functions over ``str``; no policy here.

* **PAN** (primary account number, PCI DSS 3.5.1): 13-19 digits that pass the Luhn check
  (ISO/IEC 7812-1 Annex B), spelled as a human or a copy-paste spells them:

  - **digits** of any script (Unicode ``Nd``: ASCII, fullwidth U+FF10-U+FF19, Arabic-Indic,
    Devanagari, Thai, mathematical bold, …), read as their values. Superscript and subscript
    digits (``No``) are not: a rich-text superscript is formatting, not those characters, so
    no copy-paste produces them, while footnote marks and formulae (``x²``, ``H₂O``) do;
  - **separators** between digits, up to :data:`MAX_SEPARATORS` in a row (``4111  1111``,
    ``4111. 1111``, ``4111 - 1111``, ``\\r\\n``): every Unicode space (``Zs``, the no-break
    and ideographic spaces), line and paragraph separators, tabs and line breaks, every dash
    and hyphen (``Pd``, and the minus sign), dots (``.``, the middle dot, fullwidth
    and ideographic full stops, …) and slashes (``/``, the fraction, division and fullwidth
    slashes);
  - **invisible characters** between digits, alone or among separators (counted with them):
    zero-width spaces and joiners (U+200B-U+200D, U+2060, U+FEFF), the soft hyphen,
    bidirectional marks and controls. They are not there to the eye, so they never split a
    group of digits.

  A maximal run of digits and separators (:data:`PAN_PATTERN`) is a card number as a whole
  when its groups are laid out as cards are printed (:func:`printed_as_a_card`: in fours, as
  ``4111 1111 1111 1111`` or ``4222 2222 2222 2``; the four-six layouts of American Express
  and Diners Club; UATP's 4-5-6; digit by digit; or one group), never in an arbitrary
  grouping (``+86 138 0013 8000``, ``20260520 171717`` and ``16.11.2026 10.30`` are not
  cards). Within a longer run, a single group of 13-19 digits or whole groups laid out as
  cards are printed (:data:`CARD_LAYOUTS`) are examined too (``qty 2 4111 1111 1111 1111``),
  so a number standing next to a card does not hide it, while a run of small
  numbers is not cut into arbitrary windows. A group longer than 19 digits is never cut (a
  20-digit reference holds no card), and the digit groups of a UUID are never one.
  Letters may touch the run (``card4111…``) unless, with the run, they form a hexadecimal
  word (the tail of a UUID group, a digest). Numbers no card brand issues are left alone:

  - a leading ``0`` (major industry identifier 0 is not issued to card issuers; all-zero and
    zero-padded order numbers);
  - a leading ``1`` unless 15 digits long (UATP, the only issuer under identifier 1): epoch
    timestamps in milliseconds, microseconds or nanoseconds, snowflake ids, ``19…`` dates;
  - a leading ``2`` outside 2200-2720 (Mir 2200-2204, Mastercard 2221-2720): ``20…`` dates and
    compact timestamps ``YYYYMMDDhhmmss``;
  - 13 digits under ``978``/``979`` with a valid EAN-13 check digit: an ISBN;
  - a run that begins an IBAN with a valid mod-97 check (``FR76 3000 6000 0112 …``);
  - a run glued to ``+`` with at most 15 digits: an E.164 phone number (``+8613800138000``).

* **SSN**: ``ddd-dd-dddd`` outside the never-issued ranges (area 000, 666, 900-999; group 00;
  serial 0000), dashes required.
* **Phone**: conservative, to leave ids and timestamps alone: ``+`` and a country code with 8-15
  digits in all (E.164, separators ``space . - ( )``), or the North American ``(415) 555-2671``,
  ``415-555-2671``, ``415.555.2671`` forms. Bare digit runs are never taken for phone numbers.
* **Email**: ``local@domain.tld``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate, compress, repeat
from typing import Final, Literal

EntityType = Literal["pan", "ssn", "phone", "email"]

Ranges = tuple[tuple[int, int], ...]
SPACES: Final[Ranges] = (
    (0x09, 0x0D), (0x1C, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680),
    (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000),
)  # fmt: skip
"""Every character ``str.isspace`` knows: Unicode ``Zs``, ``Zl``, ``Zp``, tabs and line breaks."""
DASHES: Final[Ranges] = (
    (0x2D, 0x2D), (0x58A, 0x58A), (0x5BE, 0x5BE), (0x1400, 0x1400), (0x1806, 0x1806),
    (0x2010, 0x2015), (0x2212, 0x2212), (0x2E17, 0x2E17), (0x2E1A, 0x2E1A), (0x2E3A, 0x2E3B),
    (0x2E40, 0x2E40), (0x2E5D, 0x2E5D), (0x301C, 0x301C), (0x3030, 0x3030), (0x30A0, 0x30A0),
    (0xFE31, 0xFE32), (0xFE58, 0xFE58), (0xFE63, 0xFE63), (0xFF0D, 0xFF0D),
)  # fmt: skip
"""Unicode ``Pd`` (hyphens and dashes of every kind), and the minus sign U+2212. All but the one
outside the Basic Multilingual Plane, U+10EAD YEZIDI HYPHENATION MARK: with it, the regex
engine would test each character against every range instead of looking it up in a bitmap."""
DOTS_AND_SLASHES: Final[Ranges] = (
    (0x2E, 0x2F), (0xB7, 0xB7), (0x2024, 0x2024), (0x2027, 0x2027), (0x2044, 0x2044),
    (0x2215, 0x2215), (0x3002, 0x3002), (0x30FB, 0x30FB), (0xFE52, 0xFE52), (0xFF0E, 0xFF0F),
    (0xFF61, 0xFF61),
)  # fmt: skip
"""``.`` ``/``, the middle dots, one-dot leader, hyphenation point, fraction and division
slashes, ideographic, small, fullwidth and halfwidth full stops, fullwidth solidus."""
INVISIBLES: Final[Ranges] = (
    (0xAD, 0xAD), (0x34F, 0x34F), (0x61C, 0x61C), (0x180E, 0x180E), (0x200B, 0x200F),
    (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF),
)  # fmt: skip
"""Soft hyphen, zero-width spaces and joiners, word joiner, BOM, bidirectional marks."""


def _char_class(*ranges: Ranges) -> str:
    return "[" + "".join(_escape(lo, hi) for part in ranges for lo, hi in part) + "]"


def _escape(lo: int, hi: int) -> str:
    return f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}"


_VISIBLE: Final = _char_class(SPACES, DASHES, DOTS_AND_SLASHES)
_UNSEEN: Final = _char_class(INVISIBLES)
SEPARATOR: Final = re.compile(_VISIBLE)
"""One visible character that may stand between the digit groups of a card number."""
INVISIBLE: Final = re.compile(_UNSEEN)
"""One character that may stand, unseen, anywhere between the digits of a card number."""
MAX_SEPARATORS: Final = 3
"""Separators in a row, visible or not, that still join digits (``4111 - 1111``, ``4111.\\u200b
1111``); more part two runs."""
_ANY_SEPARATOR: Final = _char_class(SPACES, DASHES, DOTS_AND_SLASHES, INVISIBLES)
_GAP: Final = f"{_ANY_SEPARATOR}{{0,{MAX_SEPARATORS}}}"
"""What may stand between two digits of one run. The class shares no character with ``\\d``,
so matching backtracks at most :data:`MAX_SEPARATORS` steps: linear time."""
_RUN_START: Final = "".join(
    f"(?<!\\d{_ANY_SEPARATOR}{{{n}}}\\d)" for n in range(MAX_SEPARATORS + 1)
)
"""After a first digit: not one the run of an earlier digit goes on with. So each run is
tried once, not once per digit in it (12-digit runs would cost 12 times as much); and the
pattern begins with ``\\d``, which the regex engine looks for at C speed."""

PAN_PATTERN: Final = re.compile(rf"\d{_RUN_START}(?:{_GAP}\d){{12,}}+")
"""A maximal run of at least 13 digits with separators (possessive, so it ends maximal)."""
_GROUP: Final = re.compile(rf"\d(?:{_UNSEEN}*+\d)*+")
"""A group of digits in a run: nothing visible between them."""
PAN_MIN_DIGITS: Final = 13
PAN_MAX_DIGITS: Final = 19
CARD_LAYOUTS: Final = {
    4: ((4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 4, 4, 1), (4, 4, 4, 3)),
    5: ((4, 5, 6),),
    6: ((4, 6, 5), (4, 6, 4)),
}
"""Group sizes of printed cards, by the size of the second group (the first is always 4): the
windows looked at inside a longer run."""
_LAYOUTS: Final = sorted(
    {layout for layouts in CARD_LAYOUTS.values() for layout in layouts}, key=len, reverse=True
)
_WINDOW: Final = re.compile(
    b"(?=(%s|[%c-%c]))"
    % (b"|".join(re.escape(bytes(layout)) for layout in _LAYOUTS), PAN_MIN_DIGITS, PAN_MAX_DIGITS)
)
"""Where a window may start in a run's shape (its group sizes as bytes), overlaps included:
a single long group, or the longest layout there."""
_WINDOW_GROUPS: Final = {
    **{bytes([size]): (1,) for size in range(PAN_MIN_DIGITS, PAN_MAX_DIGITS + 1)},
    **{
        bytes(layout): tuple(len(other) for other in _LAYOUTS if layout[: len(other)] == other)
        for layout in _LAYOUTS
    },
}
"""The windows (in groups) starting where :data:`_WINDOW` matched: ``4-4-4-4-3`` is also
``4-4-4-4``."""
_NESTING: Final = frozenset(len(key) for key, counts in _WINDOW_GROUPS.items() if len(counts) > 1)
_HEX_WINDOW: Final = 256
_HEX_WORD: Final = re.compile(r"[0-9A-Fa-f]+")
_UUID: Final = re.compile(
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
)
_UUID_LENGTH: Final = 36
_IBAN: Final = re.compile(r"(?<![^\W_])[A-Z]{2}[0-9]{2}(?: ?[0-9A-Z]){11,30}+", re.ASCII)
"""An IBAN as printed (groups of four, single spaces) or electronic; checked by mod 97."""
_IBAN_LENGTHS: Final = range(15, 35)
_COUNTRY: Final = re.compile("[A-Z]{2}")
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

PAN_HINT: Final = rf"\d{_RUN_START}(?:{_GAP}\d){{12}}"
"""Any string holding a PAN holds a match of this; most strings hold none."""
PAN_HINT_MIN_DIGITS: Final = PAN_MIN_DIGITS
"""The digits every match of :data:`PAN_HINT` holds."""
DIGITS_HINT: Final = r"\d(?:[ ().-]{0,2}\d){7}"
"""Any string holding an SSN or a phone number holds a match of this (a PAN need not: its
digits may stand apart, e.g. by zero-width spaces; :data:`PAN_HINT` is for those)."""
DIGITS_HINT_MIN_DIGITS: Final = 8
"""The digits every match of :data:`DIGITS_HINT` holds."""
EMAIL_HINT: Final = "@"


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected value: ``text[start:end]``, and its normalised form (digits, lowercase)."""

    entity_type: EntityType
    start: int
    end: int
    normalized: str


_NOT_ASCII_DIGITS: Final = bytes(c for c in range(128) if not 0x30 <= c <= 0x39)
_VALUES: Final = bytes.maketrans(b"0123456789", bytes(range(10)))
_DOUBLED_VALUES: Final = bytes.maketrans(b"0123456789", bytes((0, 2, 4, 6, 8, 1, 3, 5, 7, 9)))
"""Each digit's value, doubled and the two digits of the result added (Luhn)."""
_DIGIT: Final = re.compile(r"\d")


class _DigitTable(dict[int, str | None]):
    """A ``str.translate`` table: any decimal digit to its ASCII digit, other characters
    dropped (``keep``: kept) unless listed in ``fixed``. Filled on first sight of a character,
    at most ``_LIMIT`` of them, so that each is looked up at C speed after."""

    _LIMIT: Final = 4096

    def __init__(self, fixed: dict[int, str | None], *, keep: bool) -> None:
        super().__init__(fixed)
        self.keep = keep

    def __missing__(self, code: int) -> str | None:
        char = chr(code)
        value = str(unicodedata.decimal(char)) if char.isdecimal() else char if self.keep else None
        if len(self) < self._LIMIT:
            self[code] = value
        return value


_DIGIT_TABLE: Final = _DigitTable({}, keep=False)
_CANONICAL: Final = _DigitTable(
    {
        code: None if part is INVISIBLES else " "
        for part in (SPACES, DASHES, DOTS_AND_SLASHES, INVISIBLES)
        for lo, hi in part
        for code in range(lo, hi + 1)
    },
    keep=True,
)
"""A run through this table: ASCII digits, one space for each visible separator, invisibles
dropped; ``split()``, its groups of digits."""


def ascii_digits(text: str) -> str:
    """The decimal digits of ``text`` (any script) as ASCII ``0-9``, everything else dropped."""
    if text.isascii():
        return text.encode().translate(None, _NOT_ASCII_DIGITS).decode()
    return text.translate(_DIGIT_TABLE)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of ISO/IEC 7812-1 over ASCII ``digits``: from the right, every
    second digit doubled (its digits summed), the total a multiple of ten."""
    raw = digits.encode()
    kept = sum(raw[-1::-2].translate(_VALUES))
    doubled = sum(raw[-2::-2].translate(_DOUBLED_VALUES))
    return (kept + doubled) % 10 == 0


def is_pan(text: str) -> bool:
    """Whether ``text``, its digits taken alone, is a card number: 13-19 digits, Luhn-valid,
    and none of the numbers no brand issues (the module docstring)."""
    return _issued(ascii_digits(text))


def _issued(digits: str) -> bool:
    """:func:`is_pan` over ASCII ``digits``."""
    length = len(digits)
    if not PAN_MIN_DIGITS <= length <= PAN_MAX_DIGITS:
        return False
    first = digits[0]
    if first == "0" or (first == "1" and length != 15):
        return False
    if first == "2" and not "2200" <= digits[:4] <= "2720":
        return False
    if not luhn_valid(digits):
        return False
    return not (length == 13 and digits[:3] in ("978", "979") and _ean13_valid(digits))


def _ean13_valid(digits: str) -> bool:
    weighted = sum(map(int, digits[0::2])) + 3 * sum(map(int, digits[1::2]))
    return weighted % 10 == 0


def printed_as_a_card(sizes: list[int]) -> bool:
    """Whether digit groups of these ``sizes`` (13-19 digits in all) are laid out as a card
    number is written: one group; in fours (4-4-4-1 … 4-4-4-7 and 4-4-4-4-3, as card forms
    and issuers group 13- to 19-digit numbers); 4-6-x (American Express 4-6-5, Diners Club
    4-6-4, 4-6-6, 4-6-9); 4-5-6 (UATP); or digit by digit. Not 4-4-4-4-1 or 4-4-4-4-2: that
    is a card and a number after it (``4111 1111 1111 1111 12/26``), found as a window."""
    count = len(sizes)
    if count == 1 or all(size == 1 for size in sizes):
        return True
    if sizes[0] != 4 or count < 3:
        return False
    if sizes[1] == 4 and sizes[2] == 4:
        return count == 4 or (count == 5 and sizes[3] == 4 and sizes[4] == 3)
    return count == 3 and (sizes[1] == 6 or (sizes[1], sizes[2]) == (5, 6))


def find_pans(text: str, *, first: bool = False) -> list[Finding]:
    """Card numbers in ``text``, in order; overlapping candidates are merged into one span.
    ``first``: stop at the first one (enough to refuse)."""
    found: list[Finding] = []
    for m in PAN_PATTERN.finditer(text):
        run_start = m.start()
        iban_end = _iban_end(text, run_start)
        phone = run_start > 0 and text[run_start - 1] == "+"
        for start, end, digits in _candidates(m.group(), run_start):
            if start < iban_end or (phone and start == run_start and len(digits) <= 15):
                continue
            if _touches_hex_word(text, start, end) or _inside_uuid(text, start, end):
                continue
            if found and start < found[-1].end:  # overlaps the previous one: merge
                last = found[-1]
                keep = last.normalized if len(last.normalized) >= len(digits) else digits
                found[-1] = Finding("pan", last.start, max(end, last.end), keep)
            else:
                found.append(Finding("pan", start, end, digits))
                if first:
                    return found
    return found


def _candidates(run: str, offset: int) -> Iterator[tuple[int, int, str]]:
    """Spans (absolute offsets) and digits of the card numbers in one maximal ``run`` found at
    ``offset``, by start: the whole run, single long groups, and stretches laid out as cards.

    Linear in the run, and mostly at C speed whatever its shape: one ``str.translate`` makes
    it ASCII digits and spaces (:data:`_CANONICAL`), from which come its digits and the sizes
    of its groups; the layouts are searched in its shape (the sizes as bytes) by the regex
    engine; and when there are many windows, each one's Luhn check is two prefix sums apart."""
    canonical = run.translate(_CANONICAL)
    digits = canonical.replace(" ", "")
    if len(digits) == len(canonical):  # no separators: a longer number is not cut
        if _issued(digits):
            yield offset, offset + len(run), digits
        return
    sizes = list(map(len, canonical.split()))
    if (
        PAN_MIN_DIGITS <= len(digits) <= PAN_MAX_DIGITS
        and printed_as_a_card(sizes)
        and _issued(digits)
    ):
        yield offset, offset + len(run), digits
    shape = bytes(sizes) if max(sizes) < 256 else bytes(map(min, sizes, repeat(255)))
    windows = [m.span(1) for m in _WINDOW.finditer(shape)]  # (first group, group after last)
    if not windows:
        return
    windows += [  # the shorter layouts where a longer one begins
        (first, first + count)
        for first, after in windows
        if after - first in _NESTING
        for count in _WINDOW_GROUPS[shape[first:after]][1:]
    ]
    windows.sort()
    at = list(accumulate(sizes, initial=0))  # where each group's digits begin
    luhn_valid = windows
    if len(windows) > len(sizes) // 8:  # many: the Luhn check of all at once, at C speed
        even_sums, odd_sums = _luhn_sums(digits)
        even, odd = list(map(even_sums.__getitem__, at)), list(map(odd_sums.__getitem__, at))
        luhn_valid = [  # by the parity of the window's end
            (first, after)
            for first, after in windows
            if (even[after] - even[first] if at[after] & 1 else odd[after] - odd[first]) % 10 == 0
        ]
    spans: list[tuple[int, int]] = []  # of each group in the run, once needed
    for first, after in luhn_valid:
        window = digits[at[first] : at[after]]
        if (first, after) == (0, len(sizes)) or not _issued(window):  # the whole: tried above
            continue
        spans = spans or _group_spans(run, canonical, sizes)
        yield offset + spans[first][0], offset + spans[after - 1][1], window


def _group_spans(run: str, canonical: str, sizes: list[int]) -> list[tuple[int, int]]:
    """Where each group of digits of ``run`` (of ``sizes`` digits) begins and ends."""
    if len(canonical) != len(run):  # invisibles dropped
        return [m.span() for m in _GROUP.finditer(run)]
    pieces = list(map(len, canonical.split(" ")))  # 0 between two separators
    starts = compress(accumulate(map((1).__add__, pieces), initial=0), pieces)
    return [(start, start + size) for start, size in zip(starts, sizes, strict=True)]


def _luhn_sums(digits: str) -> tuple[list[int], list[int]]:
    """Prefix sums of the Luhn terms of ASCII ``digits``: in the first, the digits at even
    indices are kept and those at odd indices doubled (a window whose last digit is at an even
    index), in the second the other way round."""
    raw = digits.encode()
    kept_even = bytearray(raw.translate(_VALUES))
    kept_even[1::2] = raw[1::2].translate(_DOUBLED_VALUES)
    kept_odd = bytearray(raw.translate(_DOUBLED_VALUES))
    kept_odd[1::2] = raw[1::2].translate(_VALUES)
    return list(accumulate(kept_even, initial=0)), list(accumulate(kept_odd, initial=0))


def _iban_end(text: str, run_start: int) -> int:
    """Where the IBAN whose check digits begin at ``run_start`` ends (its mod-97 check
    passing), else 0."""
    if run_start < 2 or not _COUNTRY.fullmatch(text, run_start - 2, run_start):
        return 0
    m = _IBAN.match(text, run_start - 2)
    if m is None:
        return 0
    printed = m.group()
    ends = [i for i, ch in enumerate(printed) if ch == " "] + [len(printed)]
    for end in ends:  # the shortest prefix, in whole groups, that checks out: a card after
        # the IBAN is not taken in by chance (a 1 in 97 chance for each longer prefix)
        compact = printed[:end].replace(" ", "")
        if len(compact) in _IBAN_LENGTHS:
            rearranged = compact[4:] + compact[:4]
            if int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1:
                return m.start() + end
    return 0


def _touches_hex_word(text: str, start: int, end: int) -> bool:
    """Whether the run ``text[start:end]`` is glued to letters that, with it, form a hex word
    (``…9abc`` at the end of a UUID group, ``f3a2c4111…`` inside a digest). Looks at most
    :data:`_HEX_WINDOW` characters each way."""
    if start and text[start - 1].isalnum():
        before = text[max(0, start - _HEX_WINDOW) : start][::-1]
        if _glued_word_is_hex(before, 0, len(before)):
            return True
    return (
        end < len(text)
        and text[end].isalnum()
        and _glued_word_is_hex(text, end, min(len(text), end + _HEX_WINDOW))
    )


def _glued_word_is_hex(text: str, start: int, stop: int) -> bool:
    """Whether the letters and digits from ``start`` (up to ``stop``) are all hex digits."""
    hex_end = _HEX_WORD.match(text, start, stop)
    at = start if hex_end is None else hex_end.end()
    return at > start and (at == stop or not text[at].isalnum())


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
    keep, cut = 4, len(text)
    while keep and cut:  # the last four digits stay as they are
        cut -= 1
        keep -= text[cut].isdecimal()
    if keep:
        return text
    return _DIGIT.sub("*", text[:cut]) + text[cut:]
