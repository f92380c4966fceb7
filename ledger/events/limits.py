"""Hard limits on the shape of an event, checked before any model sees it.

Everything a writer posts must be plain JSON that the ledger can later write as RFC 8785
canonical bytes: objects with string keys, arrays, strings, booleans, null, integers within
±(2^53 - 1) (RFC 8785 §3.2.2.3 / I-JSON, RFC 7493 §2.2) and finite numbers. On top of that:

* nesting depth at most :data:`MAX_DEPTH` — the event object itself is depth 1, its ``data``
  depth 2, and so on; a scalar adds nothing;
* every string, object keys included, at most :data:`MAX_STRING_BYTES` bytes of UTF-8
  and valid Unicode (no lone surrogates, which have no UTF-8 form).
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from ledger.errors import EventInvalid
from ledger.events.pointer import join

MAX_DEPTH: Final = 32
MAX_STRING_BYTES: Final = 256 * 1024
MAX_SAFE_INTEGER: Final = 2**53 - 1

_SURROGATE = re.compile("[\ud800-\udfff]")
_STRING_LIMIT_CHARS: Final = MAX_STRING_BYTES // 4  # below this, no string can exceed the limit


def check_string(value: str, pointer: str) -> None:
    """Raise :class:`EventInvalid` at ``pointer`` if ``value`` is too long or not valid Unicode."""
    problem = _string_problem(value)
    if problem is not None:
        raise EventInvalid(pointer, problem)


def _string_problem(value: str) -> str | None:
    if value.isascii():  # O(1) in CPython: one byte per character, no surrogates
        size = len(value)
    elif _SURROGATE.search(value) is not None:
        return "string is not valid Unicode (lone surrogate code point)"
    elif len(value) > _STRING_LIMIT_CHARS:
        size = len(value.encode("utf-8"))
    else:
        return None
    if size > MAX_STRING_BYTES:
        return f"string of {size} bytes exceeds the limit of {MAX_STRING_BYTES} bytes (256 KiB) of UTF-8"
    return None


def check_limits(event: object) -> None:
    """Raise :class:`EventInvalid` at the first value (depth first) that breaks a limit.

    The walk keeps the path as a list of tokens and builds a pointer only for an error.
    Recursion stops at :data:`MAX_DEPTH`, so any input, however deep, costs at most that many
    stack frames.
    """
    path: list[str | int] = []
    try:
        _check(event, path, 0)
    except _Broken as broken:
        raise EventInvalid(join("", *path), broken.detail) from None


class _Broken(Exception):  # noqa: N818 - internal signal, never escapes check_limits
    def __init__(self, detail: str) -> None:
        self.detail = detail


def _check(value: object, path: list[str | int], depth: int) -> None:
    """``depth`` is the number of containers enclosing ``value``."""
    if isinstance(value, str):
        if (len(value) > _STRING_LIMIT_CHARS or not value.isascii()) and (
            problem := _string_problem(value)
        ):
            raise _Broken(problem)
    elif isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            raise _Broken(
                f"nesting is deeper than {MAX_DEPTH} levels (the event object is level 1)"
            )
        _check_members(value, path, depth + 1)
    elif value is None or isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise _Broken(
                "integer outside +/-(2^53 - 1) cannot be stored exactly; "
                "send identifiers and large numbers as strings"
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _Broken("number must be finite (no NaN or Infinity in JSON)")
    else:
        raise _Broken(f"not a JSON value ({type(value).__name__})")


def _check_members(value: dict[Any, Any] | list[Any], path: list[str | int], depth: int) -> None:
    if isinstance(value, list):
        for index, item in enumerate(value):
            path.append(index)
            _check(item, path, depth)
            path.pop()
        return
    for key, item in value.items():
        if not isinstance(key, str):
            raise _Broken("object keys must be strings")
        path.append(key)
        _check(key, path, depth)
        _check(item, path, depth)
        path.pop()
