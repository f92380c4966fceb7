"""Distinct names for distinct bytes, so a root is never passed where a leaf hash belongs."""

from __future__ import annotations

from typing import NewType

LeafHash = NewType("LeafHash", bytes)
"""SHA-256(0x00 || entry bytes), RFC 6962 §2.1. Also the chain link (`prev`)."""

NodeHash = NewType("NodeHash", bytes)
"""SHA-256(0x01 || left || right), an interior node of the Merkle tree."""

RootHash = NewType("RootHash", bytes)
"""The Merkle tree hash of a whole tree of some size."""

KeyId = NewType("KeyId", bytes)
"""First 4 bytes of SHA-256(name || 0x0A || 0x01 || public key), C2SP signed-note."""

HASH_SIZE = 32
