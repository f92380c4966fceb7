"""Hard limits on the shape of an event, checked before any model sees it.

Everything a writer posts must be plain JSON that the ledger can later write as RFC 8785
canonical bytes: objects with string keys, arrays, strings, booleans, null, integers within
±(2^53 - 1) (RFC 8785 §3.2.2.3 / I-JSON, RFC 7493 §2.2) and finite numbers of no greater
magnitude (a number that large is an integer, and none is exact: never rounded silently, however
it was written). On top of that:

* nesting depth at most :data:`MAX_DEPTH` — the event object itself is depth 1, its ``data``
  depth 2, and so on; a scalar adds nothing;
* every string, object keys included, at most :data:`MAX_STRING_BYTES` bytes of UTF-8
  and valid Unicode (no lone surrogates, which have no UTF-8 form).
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from ledger.core.canonical import MAX_SAFE_INTEGER
from ledger.errors import EventInvalid
from ledger.events.pointer import join

MAX_DEPTH: Final = 32
MAX_STRING_BYTES: Final = 256 * 1024

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
        return f"string of {size} bytes exceeds the limit of {MAX_STRING_BYTES} bytes (256 KiB)"
    return None


def check_limits(event: object) -> None:
    """Raise :class:`EventInvalid` at the first value (depth first) that breaks a limit.

    The walk is tight (exact-type dispatch, no pointer building); the path of a failure is
    collected only as the error unwinds. Recursion stops at :data:`MAX_DEPTH`, so any input,
    however deep, costs at most that many stack frames.
    """
    try:
        if isinstance(event, dict | list):
            _check_container(event, 1)
        else:
            _check_scalar(event)
    except _Broken as broken:
        raise EventInvalid(join("", *reversed(broken.path)), broken.detail) from None


class _Broken(Exception):
    """Internal: a limit is broken at ``reversed(path)``. Never escapes :func:`check_limits`."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.path: list[str | int] = []


def _check_container(container: dict[Any, Any] | list[Any], level: int) -> None:
    """Check the members of a container at nesting ``level`` (the event object is level 1)."""
    if level > MAX_DEPTH:
        raise _Broken(f"nesting is deeper than {MAX_DEPTH} levels (the event object is level 1)")
    if isinstance(container, list):
        for index, value in enumerate(container):
            try:
                _check_member(value, level)
            except _Broken as broken:
                broken.path.append(index)
                raise
        return
    for key, value in container.items():
        try:
            if type(key) is not str or len(key) > _STRING_LIMIT_CHARS or not key.isascii():
                _check_key(key)
            _check_member(value, level)
        except _Broken as broken:
            broken.path.append(key)
            raise


def _check_member(value: object, level: int) -> None:
    """Check one member of a container at ``level``; exact JSON types take the fast paths."""
    if type(value) is str:
        if len(value) > _STRING_LIMIT_CHARS or not value.isascii():
            _check_scalar(value)
    elif type(value) is dict or type(value) is list:
        _check_container(value, level + 1)
    elif type(value) is bool or value is None:
        return
    elif isinstance(value, dict | list):
        _check_container(value, level + 1)
    else:
        _check_scalar(value)


def _check_key(key: object) -> None:
    if not isinstance(key, str):
        raise _Broken("object keys must be strings")
    _check_scalar(key)


def _check_scalar(value: object) -> None:
    if isinstance(value, str):
        problem = _string_problem(value)
        if problem is not None:
            raise _Broken(problem)
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
        if abs(value) > MAX_SAFE_INTEGER:
            # Also what a parser makes of an integer too large for 64 bits: a rounded float.
            raise _Broken(
                "number outside +/-(2^53 - 1) cannot be stored exactly; "
                "send identifiers and large numbers as strings"
            )
    else:
        raise _Broken(f"not a JSON value ({type(value).__name__})")
