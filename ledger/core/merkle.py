"""Merkle tree hashing, the incremental right frontier, and inclusion / consistency proofs.

The tree is that of RFC 6962 §2.1 and RFC 9162 §2.1.1: SHA-256, a leaf hashed as
``SHA-256(0x00 || entry)``, an interior node as ``SHA-256(0x01 || left || right)``, and a tree of
``n > 1`` leaves split at the largest power of two smaller than ``n``. Proofs are exactly the audit
paths of RFC 9162 §2.1.3.1 and the consistency proofs (SUBPROOF) of §2.1.4.1, so any conformant
verifier accepts them; the verifiers here are the algorithms of §2.1.3.2 and §2.1.4.2.

Coordinates. A *perfect node* ``(level, index)`` is the root of the complete subtree over the
leaves ``[index * 2**level, (index + 1) * 2**level)``; level 0 is the leaf hash of leaf ``index``.
A perfect node never changes once its last leaf is written, so storage keeps them and a proof is
assembled from O(log n) of them, never by rehashing the log. Every node of the tree of size ``n``
is either perfect or lies on the tree's right edge; a right-edge node over ``[a, n)`` is the
right fold of the perfect nodes :func:`range_nodes` gives for ``[a, n)``.

Frontier. The state needed to append and to compute the root: the hashes of the perfect subtrees
of the binary decomposition of ``size`` (the nodes of ``range_nodes(0, size)``), largest first.

Errors. Verifiers return ``None`` or raise :class:`~ledger.errors.InclusionProofInvalid` /
:class:`~ledger.errors.ConsistencyProofInvalid`, whatever the input. Proof *generation* and the
frontier functions raise ``ValueError`` for arguments that can only be a caller bug (an index
outside the tree, a node the caller did not supply); the API layer validates ranges first.
:func:`unpack_frontier` reads stored bytes and raises :class:`~ledger.errors.CryptoError`.

Empty trees. The root of the empty tree is ``SHA-256("")`` (:data:`EMPTY_ROOT`). A consistency
proof from size 0 is the empty proof: the empty tree is a prefix of every tree (this follows the
C2SP witness protocol; transparency-dev/merkle instead rejects size 0). See
:func:`verify_consistency`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from ledger.core.types import HASH_SIZE, LeafHash, NodeHash, RootHash
from ledger.errors import ConsistencyProofInvalid, CryptoError, InclusionProofInvalid

LEAF_PREFIX = b"\x00"
"""Domain separation for leaves, RFC 6962 §2.1: a leaf hash can never equal a node hash."""

NODE_PREFIX = b"\x01"
"""Domain separation for interior nodes, RFC 6962 §2.1."""

EMPTY_ROOT = RootHash(hashlib.sha256(b"").digest())
"""MTH({}) = SHA-256(), the root of the tree with no leaves (RFC 9162 §2.1.1)."""


# --- hashing ----------------------------------------------------------------------------------


def leaf_hash(entry: bytes) -> LeafHash:
    """``SHA-256(0x00 || entry)``."""
    return LeafHash(hashlib.sha256(LEAF_PREFIX + entry).digest())


def node_hash(left: bytes, right: bytes) -> NodeHash:
    """``SHA-256(0x01 || left || right)``."""
    return NodeHash(hashlib.sha256(NODE_PREFIX + left + right).digest())


def _fold_right(hashes: Sequence[bytes]) -> bytes:
    """``node(h0, node(h1, … node(h[-2], h[-1])))``: the hash of a right-edge subtree from its
    perfect decomposition (largest first), since RFC 9162 splits off the largest power of two
    on the left at every level."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def _require_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ValueError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def root_from_leaf_hashes(leaves: Sequence[bytes]) -> RootHash:
    """MTH over the given leaf hashes (RFC 9162 §2.1.1), in O(n) time and O(log n) memory.

    The reference for tests and for full re-verification of a log; it keeps only a frontier.
    """
    stack: list[bytes] = []
    sha256 = hashlib.sha256
    for position, leaf in enumerate(leaves):
        _require_hash(leaf, f"leaf hash {position}")
        acc = leaf
        carry = position
        while carry & 1:  # each trailing 1-bit of the old size completes one perfect subtree
            acc = sha256(NODE_PREFIX + stack.pop() + acc).digest()
            carry >>= 1
        stack.append(acc)
    return RootHash(_fold_right(stack)) if stack else EMPTY_ROOT


# --- the right frontier -----------------------------------------------------------------------


def _check_frontier(frontier: Sequence[bytes], size: int) -> None:
    if size < 0:
        raise ValueError(f"tree size {size} is negative")
    if len(frontier) != size.bit_count():
        raise ValueError(
            f"a tree of size {size} has a frontier of {size.bit_count()} hashes, "
            f"got {len(frontier)}"
        )
    for position, h in enumerate(frontier):
        _require_hash(h, f"frontier hash {position}")


def frontier_extend(
    frontier: Sequence[bytes], size: int, leaves: Sequence[bytes]
) -> tuple[list[bytes], list[tuple[int, int, bytes]]]:
    """Append ``leaves`` (leaf hashes) to the tree of ``size`` leaves whose frontier is given.

    Returns the new frontier and every perfect interior node completed on the way, as
    ``(level, index, hash)`` with ``level >= 1``, in the order they were completed.
    """
    _check_frontier(frontier, size)
    stack = list(frontier)
    completed: list[tuple[int, int, bytes]] = []
    sha256 = hashlib.sha256  # hot path (a batch of appends): local names, no helper calls
    for leaf in leaves:
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"leaf hash {size} is {len(leaf)} bytes, not {HASH_SIZE}")
        acc = leaf
        level = 0
        index = size  # index of `acc` at `level`
        # Leaf `size` closes one perfect subtree per trailing 1-bit of `size`: merge it with
        # the frontier's last (smallest) subtree, which is exactly its left sibling.
        while index & 1:
            acc = sha256(NODE_PREFIX + stack.pop() + acc).digest()
            level += 1
            index >>= 1
            completed.append((level, index, acc))
        stack.append(acc)
        size += 1
    return stack, completed


def frontier_append(
    frontier: Sequence[bytes], size: int, leaf: bytes
) -> tuple[list[bytes], list[tuple[int, int, bytes]]]:
    """:func:`frontier_extend` with one leaf hash."""
    return frontier_extend(frontier, size, (leaf,))


def frontier_root(frontier: Sequence[bytes], size: int) -> RootHash:
    """The root of the tree of ``size`` leaves with this frontier (:data:`EMPTY_ROOT` for 0)."""
    _check_frontier(frontier, size)
    return RootHash(_fold_right(frontier)) if size else EMPTY_ROOT


def pack_frontier(frontier: Sequence[bytes]) -> bytes:
    """The frontier as stored: its hashes concatenated, largest subtree first."""
    for position, h in enumerate(frontier):
        _require_hash(h, f"frontier hash {position}")
    return b"".join(frontier)


def unpack_frontier(data: bytes, size: int) -> list[bytes]:
    """Inverse of :func:`pack_frontier`; raises ``CryptoError`` if ``data`` cannot be the
    frontier of a tree of ``size`` leaves."""
    if size < 0:
        raise CryptoError(f"stored frontier: tree size {size} is negative")
    expected = HASH_SIZE * size.bit_count()
    if len(data) != expected:
        raise CryptoError(
            f"stored frontier for tree size {size} is {len(data)} bytes, expected {expected} "
            f"({size.bit_count()} hashes of {HASH_SIZE})"
        )
    return [bytes(data[i : i + HASH_SIZE]) for i in range(0, expected, HASH_SIZE)]


# --- proof generation from stored perfect nodes ----------------------------------------------


def range_nodes(start: int, end: int) -> list[tuple[int, int]]:
    """The perfect nodes ``(level, index)`` that exactly tile the leaves ``[start, end)``, left
    to right, each as large as its alignment allows. For ``start == 0`` (or ``start`` aligned
    to a power of two >= ``end - start``, as on a tree's right edge) sizes strictly decrease."""
    if not 0 <= start <= end:
        raise ValueError(f"leaf range [{start}, {end}) is not a range of a tree")
    nodes: list[tuple[int, int]] = []
    while start < end:
        level = (end - start).bit_length() - 1  # the largest power of two that fits…
        if start:
            level = min(level, (start & -start).bit_length() - 1)  # …and `start` is aligned to it
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


# A proof "plan": one entry per proof hash, each the perfect nodes whose right fold is that hash
# (a single node, except for a right-edge sibling that is not perfect).
_Plan = list[list[tuple[int, int]]]


def _path_plan(level: int, index: int, size: int) -> _Plan:
    """The audit path, bottom up, of perfect node ``(level, index)`` in the tree of ``size``.

    Below the level where the node's path meets the path of the last leaf, every sibling is
    perfect. There, the sibling is the right-edge subtree up to ``size``. Above, the path runs
    along the right edge, whose left siblings are the perfect nodes tiling ``[0, fork)``.
    """
    last = (size - 1) >> level  # the node at `level` that holds the last leaf
    inner = (index ^ last).bit_length()  # levels until the two paths meet
    plan: _Plan = [[(level + i, (index >> i) ^ 1)] for i in range(inner - 1)]
    fork = (index >> inner) << (level + inner)  # first leaf of the node where they meet
    if inner:
        plan.append(range_nodes(fork + (1 << (level + inner - 1)), size))
    plan.extend([node] for node in reversed(range_nodes(0, fork)))
    return plan


def _consistency_plan(size1: int, size2: int) -> _Plan:
    """RFC 9162 §2.1.4.1 SUBPROOF as a path: the audit path, in the tree of ``size2``, of the
    last perfect subtree of the tree of ``size1``, preceded by that subtree unless it is the
    whole first tree (``size1`` a power of two), whose root the verifier already holds."""
    if size1 in (0, size2):
        return []
    level = (size1 & -size1).bit_length() - 1
    index = (size1 >> level) - 1
    plan = _path_plan(level, index, size2)
    if index:
        plan.insert(0, [(level, index)])
    return plan


def _plan_nodes(plan: _Plan) -> list[tuple[int, int]]:
    return [node for group in plan for node in group]


def _assemble(plan: _Plan, nodes: Mapping[tuple[int, int], bytes]) -> list[bytes]:
    proof: list[bytes] = []
    for group in plan:
        hashes: list[bytes] = []
        for level, index in group:
            h = nodes.get((level, index))
            if h is None:
                raise ValueError(f"perfect node (level {level}, index {index}) was not supplied")
            _require_hash(h, f"perfect node (level {level}, index {index})")
            hashes.append(h)
        proof.append(_fold_right(hashes))
    return proof


def _check_leaf_index(index: int, size: int) -> None:
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")


def _check_sizes(size1: int, size2: int) -> None:
    if not 0 <= size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")


def inclusion_proof_nodes(index: int, size: int) -> list[tuple[int, int]]:
    """The perfect nodes ``(level, index)`` that :func:`inclusion_proof` needs (O(log size))."""
    _check_leaf_index(index, size)
    return _plan_nodes(_path_plan(0, index, size))


def inclusion_proof(index: int, size: int, nodes: Mapping[tuple[int, int], bytes]) -> list[bytes]:
    """The RFC 9162 §2.1.3.1 audit path of leaf ``index`` in the tree of ``size`` leaves, from
    the perfect nodes named by :func:`inclusion_proof_nodes`."""
    _check_leaf_index(index, size)
    return _assemble(_path_plan(0, index, size), nodes)


def consistency_proof_nodes(size1: int, size2: int) -> list[tuple[int, int]]:
    """The perfect nodes that :func:`consistency_proof` needs (O(log size2))."""
    _check_sizes(size1, size2)
    return _plan_nodes(_consistency_plan(size1, size2))


def consistency_proof(
    size1: int, size2: int, nodes: Mapping[tuple[int, int], bytes]
) -> list[bytes]:
    """The RFC 9162 §2.1.4.1 consistency proof from size ``size1`` to ``size2``, from the perfect
    nodes named by :func:`consistency_proof_nodes`. Empty if ``size1`` is 0 or ``size1 == size2``.
    """
    _check_sizes(size1, size2)
    return _assemble(_consistency_plan(size1, size2), nodes)


# --- verification -----------------------------------------------------------------------------


def _short(h: bytes) -> str:
    return h[:4].hex() + "…"


def _check_hashes(
    error: type[CryptoError], where: str, named: Sequence[tuple[str, bytes]], proof: Sequence[bytes]
) -> None:
    for what, h in [*named, *((f"proof hash {i}", p) for i, p in enumerate(proof))]:
        if len(h) != HASH_SIZE:
            raise error(f"{where}: {what} is {len(h)} bytes, not {HASH_SIZE}")


def _path_length(index: int, size: int) -> int:
    """Length of the audit path of node ``index`` among ``size`` nodes at one level."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> RootHash:
    """The root that ``proof`` leads to from leaf ``index`` of a tree of ``size`` (RFC 9162
    §2.1.3.2 steps 1-4). Raises ``InclusionProofInvalid`` if the proof has the wrong shape;
    the caller still has to compare the root (:func:`verify_inclusion` does)."""
    where = f"leaf {index} of {size}"
    if not 0 <= index < size:
        raise InclusionProofInvalid(f"{where}: the leaf is not in the tree")
    _check_hashes(InclusionProofInvalid, where, [("leaf hash", leaf_hash)], proof)
    expected = _path_length(index, size)
    if len(proof) != expected:
        raise InclusionProofInvalid(f"{where}: proof has {len(proof)} hashes, expected {expected}")

    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:  # unreachable after the length check; kept as the RFC states it
            raise InclusionProofInvalid(f"{where}: proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # On the right edge a lone left child is promoted without hashing: skip its levels.
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InclusionProofInvalid(f"{where}: proof is too short")
    return RootHash(r)


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``
    (RFC 9162 §2.1.3.2). Every hash must be 32 bytes and the proof exactly as long as the RFC
    audit path. Returns ``None`` or raises ``InclusionProofInvalid``, nothing else."""
    where = f"leaf {index} of {size}"
    if len(root) != HASH_SIZE:
        raise InclusionProofInvalid(f"{where}: expected root is {len(root)} bytes, not {HASH_SIZE}")
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if computed != root:
        raise InclusionProofInvalid(
            f"{where}: computed root {_short(computed)} != expected root {_short(root)}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of ``size1`` leaves with ``root1`` is a prefix of the tree of
    ``size2`` leaves with ``root2`` (RFC 9162 §2.1.4.2). Returns ``None`` or raises
    ``ConsistencyProofInvalid``, nothing else.

    Strict: both roots and every proof hash must be 32 bytes, even when the sizes are equal, and
    the proof must be exactly as long as the RFC proof. The cases the RFC leaves open:

    - ``size1 > size2`` (or a negative size) is rejected.
    - ``size1 == 0``: accepted only with an empty proof and ``root1 == EMPTY_ROOT``; ``root2`` is
      then any 32-byte root (the empty tree is a prefix of every tree; a size-0 ``root2`` must be
      ``EMPTY_ROOT`` too). transparency-dev/merkle rejects size 0 outright; C2SP witnesses
      accept it like this.
    - ``size1 == size2``: accepted only with an empty proof and ``root1 == root2``.
    """
    where = f"consistency {size1} -> {size2}"
    if size1 < 0 or size2 < 0:
        raise ConsistencyProofInvalid(f"{where}: a tree size is negative")
    if size1 > size2:
        raise ConsistencyProofInvalid(f"{where}: the first tree is larger than the second")
    _check_hashes(ConsistencyProofInvalid, where, [("root1", root1), ("root2", root2)], proof)
    if size1 in (0, size2):
        _verify_without_proof(size1, size2, proof, root1, root2)
        return
    fr, sr = _roots_from_consistency_proof(size1, size2, proof, root1)
    if fr != root1:
        raise ConsistencyProofInvalid(
            f"{where}: computed root1 {_short(fr)} != expected root1 {_short(root1)}"
        )
    if sr != root2:
        raise ConsistencyProofInvalid(
            f"{where}: computed root2 {_short(sr)} != expected root2 {_short(root2)}"
        )


def _verify_without_proof(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """The cases with nothing to prove: ``size1 == 0`` or ``size1 == size2``."""
    where = f"consistency {size1} -> {size2}"
    if proof:
        raise ConsistencyProofInvalid(f"{where}: proof must be empty, has {len(proof)} hashes")
    if size1 == 0 and root1 != EMPTY_ROOT:
        raise ConsistencyProofInvalid(f"{where}: root1 {_short(root1)} is not the empty-tree root")
    if size1 == size2 and root1 != root2:
        raise ConsistencyProofInvalid(
            f"{where}: same size, root1 {_short(root1)} != root2 {_short(root2)}"
        )


def _roots_from_consistency_proof(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> tuple[bytes, bytes]:
    """RFC 9162 §2.1.4.2 steps 2-7 for ``0 < size1 < size2``: the two roots ``proof`` leads to."""
    where = f"consistency {size1} -> {size2}"
    # Length expected from the shape (see _consistency_plan): the path of the last perfect
    # subtree of tree 1, plus that subtree itself unless size1 is a power of two.
    level = (size1 & -size1).bit_length() - 1
    index = (size1 >> level) - 1
    expected = _path_length(index, ((size2 - 1) >> level) + 1) + (1 if index else 0)
    if len(proof) != expected:
        raise ConsistencyProofInvalid(
            f"{where}: proof has {len(proof)} hashes, expected {expected}"
        )

    path = list(proof)
    if size1 & (size1 - 1) == 0:  # a power of two: the first tree is itself the seed node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:  # unreachable after the length check; kept as the RFC states it
            raise ConsistencyProofInvalid(f"{where}: proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn:  # skip the levels of a promoted lone left child
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ConsistencyProofInvalid(f"{where}: proof is too short")
    return fr, sr
