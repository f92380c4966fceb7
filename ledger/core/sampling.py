"""The evidence-bundle sample, ``handoff-ledger/sample/v1`` (docs/evidence-bundle.md, "sample").

An auditor asks for ``k`` entries of the population ``[start, end)``. Neither the ledger nor the
auditor may choose them: the sample is derived from the signed root of the checkpoint the bundle
is read at (fixed before the auditor names a seed) and from the auditor's seed (named before the
ledger knows what will be drawn), so anyone holding the bundle recomputes it::

    seed  = SHA-256("handoff-ledger/sample/v1\\n" || root (32 bytes) || "\\n"
                    || auditor seed (UTF-8))
    n     = end - start;  limit = 2^64 - (2^64 mod n)
    for i = 0, 1, 2, ...:  x = uint64 big-endian of SHA-256(seed || i as 8 bytes big-endian)[0:8]
                           if x < limit: candidate = start + (x mod n); keep it if not kept yet
    until k are kept; the sample is the kept seqs, ascending

Rejecting ``x >= limit`` makes ``x mod n`` exactly uniform (no modulo bias). The producer
(``ledger.services.exports.bundle``) and both verifiers use this one function; the standalone
verifier (``ops/verify_bundle_standalone.py``) carries a copy of it, checked equal by the tests.
"""

from __future__ import annotations

import hashlib

from ledger.core.types import HASH_SIZE

SAMPLE_ALGORITHM = "handoff-ledger/sample/v1"
_DOMAIN = b"handoff-ledger/sample/v1\n"
_TWO_64 = 1 << 64


def sample_seed(root: bytes, seed: str) -> bytes:
    """``SHA-256("handoff-ledger/sample/v1\\n" || root || "\\n" || seed)``."""
    if len(root) != HASH_SIZE:
        raise ValueError(f"root hash is {len(root)} bytes, not {HASH_SIZE}")
    return hashlib.sha256(_DOMAIN + bytes(root) + b"\n" + seed.encode("utf-8")).digest()


def sample_seqs(root: bytes, seed: str, start: int, end: int, k: int) -> list[int]:
    """The ``k`` seqs of ``[start, end)`` drawn by ``handoff-ledger/sample/v1``, ascending.

    ``root`` is the 32-byte root hash of the bundle's checkpoint, ``seed`` the auditor's seed
    (may be empty). Raises ``ValueError`` for a caller bug: a root that is not 32 bytes, an
    empty or negative population, ``k < 0``, or ``k > end - start`` (the draw would never end:
    the caller decides whether to clamp ``k`` or to refuse the request).
    """
    if not 0 <= start < end:
        raise ValueError(f"sample population [{start}, {end}) is empty or not a range")
    n = end - start
    if not 0 <= k <= n:
        raise ValueError(f"cannot draw {k} distinct seqs from a population of {n}")
    base = sample_seed(root, seed)
    limit = _TWO_64 - (_TWO_64 % n)
    kept: set[int] = set()
    sha256 = hashlib.sha256
    i = 0
    while len(kept) < k:
        x = int.from_bytes(sha256(base + i.to_bytes(8, "big")).digest()[:8], "big")
        if x < limit:
            kept.add(start + x % n)
        i += 1
    return sorted(kept)
