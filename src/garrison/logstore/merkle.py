"""RFC 6962 / RFC 9162 Merkle tree hashing, audit paths and their verification.

Leaves are ``SHA-256(0x00 || data)`` and nodes ``SHA-256(0x01 || left || right)``; the tree over
``n`` leaves splits at the largest power of two below ``n``. Sealed segments keep the root of
each block of `BLOCK` leaves: because `BLOCK` is a power of two, those are nodes of the very
same tree, so the segment root and any audit path can be computed from block roots plus the
leaves of one block.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

BLOCK = 1024  # leaves per block; must be a power of two


def leaf_hash(data: bytes) -> bytes:
    """Hash of one leaf."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an inner node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root(hashes: Sequence[bytes]) -> bytes:
    """Root over already-hashed nodes (leaf hashes, or block roots of one tree)."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    level = list(hashes)
    # Bottom-up pairing gives the same root as RFC 6962's recursive split.
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def audit_path(index: int, size: int, subtree: Callable[[int, int], bytes]) -> list[bytes]:
    """The inclusion proof of leaf `index` in a tree of `size` leaves.

    `subtree(lo, hi)` returns the hash of the node over leaves ``[lo, hi)``; it is only asked
    for ranges that are nodes of the tree.
    """
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree(lo, lo + k))
            lo = lo + k
    path.reverse()
    return path


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], expected: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2: does `path` prove `leaf` at `index` under root `expected`?"""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected
