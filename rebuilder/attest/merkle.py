"""Merkle tree math of RFC 6962 / RFC 9162 (SHA-256): tree heads and proofs.

Leaves live behind the small :class:`LeafStore` protocol (an in-memory store here; the
database one belongs to the log service). :class:`MerkleTree` computes tree heads and
proofs for any tree size up to the store's; the ``verify_*`` functions need only the
proof, so consumers can check them offline.

A complete, aligned subtree of an append-only log never changes, so :class:`MerkleTree`
caches the hashes of those above a minimum size: after the first tree head, later heads
and proofs cost a few dozen hashes instead of a pass over every leaf.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from typing import Protocol

from rebuilder.attest.errors import AttestationError, VerificationError

logger = logging.getLogger(__name__)

HASH_SIZE = 32
MAX_PROOF_LENGTH = 64  # enough for 2**64 leaves; longer proofs are rejected unread
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The tree head of the empty tree: SHA-256 of the empty string."""

_REDUCE_CHUNK = 4096  # leaves fetched and hashed in one go for a complete subtree


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class LeafStore(Protocol):
    """Where the leaf hashes of an append-only log are kept."""

    def size(self) -> int:
        """The number of leaves."""
        ...

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        """The leaf hashes of indexes ``start`` (inclusive) to ``end`` (exclusive)."""
        ...


class MemoryLeafStore:
    """A :class:`LeafStore` in a Python list (tests and small tools)."""

    def __init__(self, hashes: Iterable[bytes] = ()) -> None:
        self._hashes: list[bytes] = []
        for h in hashes:
            self.append_leaf_hash(h)

    def append(self, data: bytes) -> int:
        """Append the leaf for ``data``; its index."""
        return self.append_leaf_hash(leaf_hash(data))

    def append_leaf_hash(self, hashed: bytes) -> int:
        """Append an already hashed leaf; its index."""
        if len(hashed) != HASH_SIZE:
            raise AttestationError("a leaf hash is 32 bytes")
        self._hashes.append(hashed)
        return len(self._hashes) - 1

    def size(self) -> int:
        return len(self._hashes)

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        if not 0 <= start <= end <= len(self._hashes):
            raise AttestationError(f"leaf range [{start}, {end}) outside the log")
        return self._hashes[start:end]


class MerkleTree:
    """Tree heads and proofs over a :class:`LeafStore`.

    ``cache_min_size`` is the smallest complete subtree (in leaves) whose hash is kept;
    ``cache=False`` keeps nothing (every call reads the leaves it needs).
    """

    def __init__(self, store: LeafStore, *, cache: bool = True, cache_min_size: int = 64) -> None:
        if cache_min_size < 1 or cache_min_size & (cache_min_size - 1):
            raise AttestationError("cache_min_size must be a power of two")
        self._store = store
        self._cache: dict[tuple[int, int], bytes] | None = {} if cache else None
        self._cache_min = cache_min_size

    def size(self) -> int:
        """The number of leaves in the store."""
        return self._store.size()

    def root(self, size: int | None = None) -> bytes:
        """The tree head (Merkle Tree Hash) of the first ``size`` leaves (default: all)."""
        n = self._checked_size(size)
        return EMPTY_ROOT if n == 0 else self._range_hash(0, n)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of ``size`` leaves (RFC 9162 2.1.3.1)."""
        n = self._checked_size(size)
        if not 0 <= index < n:
            raise AttestationError(f"leaf {index} is not in a tree of {n} leaves")
        path: list[bytes] = []
        start, end = 0, n
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                path.append(self._range_hash(start + k, end))
                end = start + k
            else:
                path.append(self._range_hash(start, start + k))
                start += k
        path.reverse()
        return path

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The proof that the tree of ``old_size`` leaves is a prefix of ``new_size`` ones.

        Empty when ``old_size`` is 0 or equals ``new_size`` (RFC 9162 2.1.4.1).
        """
        n = self._checked_size(new_size)
        if not 0 <= old_size <= n:
            raise AttestationError(f"cannot prove {old_size} leaves consistent with {n}")
        if old_size in (0, n):
            return []
        return self._subproof(old_size, 0, n, complete=True)

    def _subproof(self, m: int, start: int, end: int, *, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [self._range_hash(start, end)]
        k = _split(n)
        if m <= k:
            return [
                *self._subproof(m, start, start + k, complete=complete),
                self._range_hash(start + k, end),
            ]
        return [
            *self._subproof(m - k, start + k, end, complete=False),
            self._range_hash(start, start + k),
        ]

    def _checked_size(self, size: int | None) -> int:
        available = self._store.size()
        n = available if size is None else size
        if not 0 <= n <= available:
            raise AttestationError(f"tree size {n} outside the log of {available} leaves")
        return n

    def _range_hash(self, start: int, end: int) -> bytes:
        n = end - start
        if n & (n - 1):
            k = _split(n)
            return node_hash(self._range_hash(start, start + k), self._range_hash(start + k, end))
        return self._complete_hash(start, n)

    def _complete_hash(self, start: int, n: int) -> bytes:
        cached = self._cache.get((start, n)) if self._cache is not None else None
        if cached is not None:
            return cached
        if n <= _REDUCE_CHUNK:
            return self._reduce(start, n)
        half = n // 2
        result = node_hash(
            self._complete_hash(start, half), self._complete_hash(start + half, half)
        )
        self._remember(start, n, result)
        return result

    def _reduce(self, start: int, n: int) -> bytes:
        level = list(self._store.leaf_hashes(start, start + n))
        if len(level) != n:
            raise AttestationError(f"the leaf store returned {len(level)} of {n} leaves")
        width = 1
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
            width *= 2
            if width >= self._cache_min:
                for i, h in enumerate(level):
                    self._remember(start + i * width, width, h)
        return level[0]

    def _remember(self, start: int, n: int, value: bytes) -> None:
        if self._cache is not None and n >= self._cache_min:
            self._cache[(start, n)] = value


def root_from_inclusion_proof(
    hashed_leaf: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The tree head an inclusion proof leads to (RFC 9162 2.1.3.2).

    Raises:
        VerificationError: the proof cannot belong to a tree of this size.
    """
    _check_hashes([hashed_leaf, *proof])
    if not 0 <= index < size:
        raise VerificationError(f"leaf {index} is not in a tree of {size} leaves")
    fn, sn, r = index, size - 1, hashed_leaf
    for p in proof:
        if sn == 0:
            raise VerificationError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion proof is too short")
    return r


def verify_inclusion(
    hashed_leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``hashed_leaf`` is leaf ``index`` of the tree of ``size`` with head ``root``.

    Raises:
        VerificationError: it is not.
    """
    if root_from_inclusion_proof(hashed_leaf, index, size, proof) != root:
        raise VerificationError(f"leaf {index} is not in the tree of size {size} with this root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that tree ``old_root`` (``old_size``) is a prefix of ``new_root`` (RFC 9162 2.1.4.2).

    Raises:
        VerificationError: the trees are not consistent (a fork, or a rewritten history).
    """
    _check_hashes([old_root, new_root, *proof])
    if not 0 <= old_size <= new_size:
        raise VerificationError(f"tree size went from {old_size} down to {new_size}")
    if old_size in (0, new_size):
        _verify_trivial_consistency(old_size, new_size, old_root, new_root, proof)
        return
    if not proof:
        raise VerificationError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise VerificationError(f"tree {old_size} is not a prefix of tree {new_size}")


def _verify_trivial_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    # Nothing to prove: the empty tree is a prefix of every tree, a tree of itself.
    if proof or old_root != (EMPTY_ROOT if old_size == 0 else new_root):
        raise VerificationError(f"tree {old_size} is not a prefix of tree {new_size}")
    if new_size == 0 and new_root != EMPTY_ROOT:
        raise VerificationError("the empty tree has another head")


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_hashes(hashes: Sequence[bytes]) -> None:
    if len(hashes) > MAX_PROOF_LENGTH + 3:
        raise VerificationError("proof is longer than any tree allows")
    if any(not isinstance(h, bytes) or len(h) != HASH_SIZE for h in hashes):
        raise VerificationError("every hash in a proof is 32 bytes")
