"""RFC 8785 JSON Canonicalization Scheme (JCS): the bytes that get hashed and signed.

``canonicalize(value)`` returns exactly ``rfc8785.dumps(value)`` for every value the ``rfc8785``
reference implementation accepts, and raises ``CanonicalizationError`` for every value it
rejects: NaN and infinities, integers outside ``±(2**53 - 1)``, non-string keys, lone
surrogates, unsupported types, and nesting too deep to serialize.

Fast path: ``orjson.dumps(v, option=OPT_SORT_KEYS | OPT_STRICT_INTEGER)``. It gives the same
bytes as RFC 8785 for a value built only from ``dict``, ``list``, ``tuple``, ``str``, ``int``,
``bool`` and ``None`` (exact types), with floats handled apart. Why, piece by piece:

* Strings (§3.2.2.2). Both escape only ``"``, ``\\`` and U+0000..U+001F (``\\b \\t \\n \\f \\r``,
  otherwise ``\\u00xx`` in lower case), and write everything else as raw UTF-8. The tests
  check this for every code point. Both reject lone surrogates.
* Integers. Both write plain decimal. ``OPT_STRICT_INTEGER`` rejects exactly what rfc8785
  rejects, anything outside ``±(2**53 - 1)``.
* Floats (§3.2.2.3). These are never left to orjson, which writes ``100.0`` and ``-0.0`` where
  JCS writes ``100`` and ``0``. A walk of the value replaces each float with an
  ``orjson.Fragment`` (pre-serialized bytes that orjson copies verbatim). The fragment holds
  ECMAScript Number::toString of the float, built from ``repr``'s shortest round-trip digits
  the same way rfc8785 builds it. The walk also checks every type and copies only the
  containers on the path to a float.
* Key order (§3.2.3). JCS sorts keys by UTF-16 code units, orjson by UTF-8 bytes, that is by
  code point. The two orders differ only between a code point in U+E000..U+FFFF and one above
  U+FFFF, which UTF-16 writes as a surrogate pair (0xD800..0xDBFF) and so sorts lower. Every key
  appears raw in the output. So if the output lacks UTF-8 lead bytes 0xEE/0xEF (U+E000..U+FFFF)
  or lacks 0xF0..0xF4 (above U+FFFF), no object can sort differently. Only when both show up
  (anywhere, usually in text) does a second walk look at the keys themselves.

Everything else goes to ``rfc8785.dumps`` itself: subclasses, Enums, UUIDs, datetimes, keys that
could sort differently, and anything orjson refuses (out-of-range integers, lone surrogates,
non-string keys, more than 255 levels of nesting). That fallback is exact by construction.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

import orjson
import rfc8785

from ledger.errors import CanonicalizationError

__all__ = ["MAX_SAFE_INTEGER", "canonicalize"]

MAX_SAFE_INTEGER: Final = 2**53 - 1
"""RFC 8785 numbers are IEEE doubles: no integer beyond ±this has an exact canonical form."""

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
_Fragment = orjson.Fragment
_NoneType = type(None)

# Keys mixing these two ranges may sort differently by UTF-16 code unit and by code point.
_HIGH_BMP = re.compile("[\ue000-\uffff]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


class _SlowPath(Exception):
    """The value holds something the fast path does not vouch for."""


def canonicalize(value: object) -> bytes:
    """The RFC 8785 serialization of ``value``, byte for byte what ``rfc8785.dumps`` returns.

    Raises ``CanonicalizationError`` when the value has no RFC 8785 form.
    """
    try:
        out = orjson.dumps(_prepare(value), option=_OPTIONS)
    except (_SlowPath, TypeError, RecursionError):  # orjson.JSONEncodeError is TypeError
        return _reference(value)
    if out.isascii() or not _mixes_high_bmp_and_astral(out) or _keys_sort_alike(value):
        return out
    return _reference(value)


def _mixes_high_bmp_and_astral(out: bytes) -> bool:
    """Whether UTF-8 ``out`` has code points from U+E000..U+FFFF and from above U+FFFF.

    Looks for lead bytes 0xEE/0xEF and 0xF0..0xF4, which never occur inside a UTF-8 sequence.
    """
    return (b"\xee" in out or b"\xef" in out) and (
        b"\xf0" in out or b"\xf1" in out or b"\xf2" in out or b"\xf3" in out or b"\xf4" in out
    )


def _reference(value: object) -> bytes:
    """``rfc8785.dumps``, with whatever it raises turned into ``CanonicalizationError``."""
    try:
        return rfc8785.dumps(value)  # type: ignore[arg-type]
    except Exception as exc:
        # rfc8785's own CanonicalizationError (a ValueError), UnicodeEncodeError from a lone
        # surrogate in a key, RecursionError, or whatever a hostile subclass raises.
        raise CanonicalizationError(f"value has no RFC 8785 form: {exc}") from exc


# The walk. Hot code: one loop per container, exact type checks, copy only on change.


def _prepare(value: object) -> Any:
    """``value`` with every float replaced by its JCS fragment; ``_SlowPath`` if unsupported."""
    t = type(value)
    if t is dict:
        return _prepare_dict(value)  # type: ignore[arg-type]
    if t is list or t is tuple:
        return _prepare_list(value)  # type: ignore[arg-type]
    if t is str or t is int or t is bool or t is _NoneType:
        return value
    if t is float:
        return _Fragment(_float_bytes(value))  # type: ignore[arg-type]
    raise _SlowPath


def _prepare_dict(d: dict[Any, Any]) -> dict[Any, Any]:
    out: dict[Any, Any] | None = None
    for k, v in d.items():
        t = type(v)
        if t is str or t is int or t is bool or t is _NoneType:
            continue
        if t is dict:
            new: Any = _prepare_dict(v)
        elif t is list or t is tuple:
            new = _prepare_list(v)
        elif t is float:
            new = _Fragment(_float_bytes(v))
        else:
            raise _SlowPath
        if new is not v:
            if out is None:
                out = d.copy()
            out[k] = new
    return d if out is None else out


def _prepare_list(a: list[Any] | tuple[Any, ...]) -> list[Any] | tuple[Any, ...]:
    out: list[Any] | None = None
    i = -1
    for v in a:
        i += 1
        t = type(v)
        if t is str or t is int or t is bool or t is _NoneType:
            continue
        if t is dict:
            new: Any = _prepare_dict(v)
        elif t is list or t is tuple:
            new = _prepare_list(v)
        elif t is float:
            new = _Fragment(_float_bytes(v))
        else:
            raise _SlowPath
        if new is not v:
            if out is None:
                out = list(a)
            out[i] = new
    return a if out is None else out


def _keys_sort_alike(value: object) -> bool:
    """True if no object's keys mix U+E000..U+FFFF with code points above U+FFFF.

    Only called after orjson accepted ``value``: all containers and keys have exact types.
    """
    t = type(value)
    if t is dict:
        keys = "".join(value)  # type: ignore[arg-type]
        if not keys.isascii() and _HIGH_BMP.search(keys) and _ASTRAL.search(keys):
            return False
        children: Any = value.values()  # type: ignore[attr-defined]
    elif t is list or t is tuple:
        children = value
    else:
        return True
    for v in children:
        t = type(v)
        if (t is dict or t is list or t is tuple) and not _keys_sort_alike(v):
            return False
    return True


# Numbers: ECMA-262 Number::toString, as RFC 8785 §3.2.2.3 prescribes.


def _float_bytes(f: float) -> bytes:
    """The JCS form of a float as ASCII bytes; ``_SlowPath`` for NaN and infinities."""
    r = repr(f)
    # repr writes fixed notation for 1e-4 <= |f| < 1e16, ES6 too (it switches at 1e-6 and 1e21);
    # what differs is integral values ("100.0" / "100"), zero, and repr's exponent range.
    if "e" in r or "n" in r or r[-2:] == ".0":
        return _float_text(f).encode()
    return r.encode()


def _float_text(f: float) -> str:
    if not math.isfinite(f):
        raise _SlowPath
    if f == 0:
        return "0"  # -0.0 too
    r = float.__repr__(f)
    if "e" not in r:
        return r[:-2] if r.endswith(".0") else r
    sign = ""
    if r[0] == "-":
        sign, r = "-", r[1:]
    mantissa, _, exp = r.partition("e")
    digits = mantissa.replace(".", "")  # repr's mantissa is d[.ddd], no trailing zeros
    # ES6 terms: the value is 0.<digits> * 10**n, k = number of digits.
    n = int(exp) + 1
    k = len(digits)
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * -n + digits
    else:
        e = n - 1
        head = digits if k == 1 else digits[0] + "." + digits[1:]
        body = f"{head}e{'+' if e > 0 else '-'}{abs(e)}"
    return sign + body
