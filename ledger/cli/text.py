"""What the CLI prints from data (writers' events, files given to a verifier) is shown, never
obeyed: control characters (C0, DEL, C1), line and paragraph separators and bidirectional
overrides become visible escapes, so an event cannot move the cursor, clear the screen, forge a
line such as "Back-links: INTACT" or reorder what the operator reads."""

from __future__ import annotations

import re
from typing import Any

from ledger.events.fields import CONTROL_CHARACTERS


def printable(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``, …)."""
    return CONTROL_CHARACTERS.sub(_escape, text)


def printable_data(value: Any) -> Any:
    """``value`` (parsed JSON) with :func:`printable` applied to every string in it."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(str(k)): printable_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [printable_data(v) for v in value]
    return value


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
