"""RFC 6901 JSON Pointers: building them, and finding them for a validation error.

A pointer is ``""`` (the whole document) or a sequence of ``/``-prefixed reference tokens in
which ``~`` is written ``~0`` and ``/`` is written ``~1`` (RFC 6901 §3, §4).

Pydantic reports where a value failed as a *location* tuple. A location is not quite a path
into the input: tagged unions add the tag, plain unions add the member's name, and a missing
field names a key that is absent. :func:`pointer_for` turns a location into a pointer that
always points into the input actually given (plus, at most, one final absent key).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

TAG_MARK = "\u00a7"
"""Prefix of the tags of our discriminated unions, e.g. ``§text``; never part of a pointer."""


def escape(token: str | int) -> str:
    """One reference token, escaped per RFC 6901 §3 (``~`` → ``~0`` first, then ``/`` → ``~1``)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def join(base: str, *tokens: str | int) -> str:
    """``base`` extended by ``tokens``: ``join("/data", "a/b", 0) == "/data/a~1b/0"``."""
    return base + "".join("/" + escape(t) for t in tokens)


def from_tokens(tokens: Iterable[str | int]) -> str:
    """The pointer for a path given as tokens from the document root."""
    return join("", *tokens)


def pointer_for(document: object, loc: Sequence[str | int], *, base: str = "") -> str:
    """The pointer, under ``base``, to where a validation error at ``loc`` sits in ``document``.

    Walks ``document`` along ``loc``: an element that indexes the current value descends into
    it; our union tags (:data:`TAG_MARK`) are skipped; an absent key is kept only when it is
    the last element (a missing field); anything else (a union member's name after a scalar)
    ends the walk at the value that failed.
    """
    node: object = document
    tokens: list[str | int] = []
    last = len(loc) - 1
    for position, element in enumerate(loc):
        if isinstance(element, str) and element.startswith(TAG_MARK):
            continue
        if isinstance(node, Mapping):
            if element in node:
                tokens.append(element)
                node = node[element]
                continue
            if position == last:
                tokens.append(element)
            break
        if isinstance(node, list) and isinstance(element, int) and 0 <= element < len(node):
            tokens.append(element)
            node = node[element]
            continue
        break
    return join(base, *tokens)


def resolve(document: Any, pointer: str) -> Any:
    """The value ``pointer`` names in ``document`` (RFC 6901 §4).

    Raises ``KeyError`` or ``IndexError`` if there is none.
    """
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise KeyError(pointer)
    node = document
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node
