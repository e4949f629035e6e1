from __future__ import annotations

import hashlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rebuilder.attest.errors import AttestationError, VerificationError
from rebuilder.attest.merkle import (
    EMPTY_ROOT,
    MemoryLeafStore,
    MerkleTree,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

# The RFC 6962 test vectors of the certificate-transparency reference implementations:
# eight leaves and the tree heads of the first 1..8 of them.
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}
CT_CONSISTENCY = {
    (1, 1): [],
    (1, 8): CT_INCLUSION[(0, 8)],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}


def ct_tree(cache: bool = True) -> MerkleTree:
    store = MemoryLeafStore()
    for leaf in CT_LEAVES:
        store.append(leaf)
    return MerkleTree(store, cache=cache, cache_min_size=2)


def make_tree(
    n: int, *, cache: bool = True, salt: bytes = b""
) -> tuple[MemoryLeafStore, MerkleTree]:
    store = MemoryLeafStore(leaf_hash(salt + i.to_bytes(4, "big")) for i in range(n))
    return store, MerkleTree(store, cache=cache, cache_min_size=2)


def naive_root(hashes: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 MTH, written as directly as the definition reads."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node_hash(naive_root(hashes[:k]), naive_root(hashes[k:]))


def test_hashing_is_domain_separated() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("cache", [True, False])
def test_rfc6962_tree_heads(cache: bool) -> None:
    tree = ct_tree(cache)
    assert tree.root(0) == EMPTY_ROOT
    assert [tree.root(n).hex() for n in range(1, 9)] == CT_ROOTS


def test_hand_checked_three_leaf_tree() -> None:
    a, b, c = (leaf_hash(x) for x in (b"a", b"b", b"c"))
    _, tree = make_tree(0)
    store = MemoryLeafStore([a, b, c])
    tree = MerkleTree(store)
    assert tree.root() == node_hash(node_hash(a, b), c)
    assert tree.inclusion_proof(2) == [node_hash(a, b)]
    assert tree.inclusion_proof(0) == [b, c]
    assert tree.consistency_proof(2, 3) == [c]


def test_rfc6962_inclusion_and_consistency_vectors() -> None:
    tree = ct_tree()
    for (index, size), proof in CT_INCLUSION.items():
        assert [h.hex() for h in tree.inclusion_proof(index, size)] == proof
        verify_inclusion(
            leaf_hash(CT_LEAVES[index]),
            index,
            size,
            [bytes.fromhex(h) for h in proof],
            bytes.fromhex(CT_ROOTS[size - 1]),
        )
    for (m, n), proof in CT_CONSISTENCY.items():
        assert [h.hex() for h in tree.consistency_proof(m, n)] == proof
        verify_consistency(
            m,
            n,
            bytes.fromhex(CT_ROOTS[m - 1]),
            bytes.fromhex(CT_ROOTS[n - 1]),
            [bytes.fromhex(h) for h in proof],
        )


def test_every_proof_up_to_40_leaves_verifies_and_tampering_fails() -> None:
    store, tree = make_tree(40)
    hashes = list(store.leaf_hashes(0, 40))
    roots = [tree.root(n) for n in range(41)]
    for n in range(41):
        assert roots[n] == naive_root(hashes[:n])
    for n in range(1, 41):
        for i in range(n):
            proof = tree.inclusion_proof(i, n)
            verify_inclusion(hashes[i], i, n, proof, roots[n])
            with pytest.raises(VerificationError):
                verify_inclusion(hashes[(i + 1) % 40], i, n, proof, roots[n])  # another leaf
            if n > 1:
                with pytest.raises(VerificationError):
                    verify_inclusion(hashes[i], (i + 1) % n, n, proof, roots[n])  # another index
                bad = list(proof)
                bad[0] = bytes([bad[0][0] ^ 1]) + bad[0][1:]
                with pytest.raises(VerificationError):
                    verify_inclusion(hashes[i], i, n, bad, roots[n])
                with pytest.raises(VerificationError):
                    verify_inclusion(hashes[i], i, n, proof[:-1], roots[n])
            with pytest.raises(VerificationError):
                verify_inclusion(hashes[i], i, n, [*proof, roots[n]], roots[n])
            with pytest.raises(VerificationError):
                verify_inclusion(hashes[i], i, 2 * n, proof, roots[n])  # another size
        for m in range(0, n + 1):
            proof = tree.consistency_proof(m, n)
            verify_consistency(m, n, roots[m], roots[n], proof)
            if 0 < m < n:
                with pytest.raises(VerificationError):
                    verify_consistency(m, n, roots[m], roots[n - 1], proof)  # other new head
                with pytest.raises(VerificationError):
                    verify_consistency(m, n, roots[m - 1], roots[n], proof)  # other old head
                with pytest.raises(VerificationError):
                    verify_consistency(m, n, roots[m], roots[n], proof[:-1])
                with pytest.raises(VerificationError):
                    verify_consistency(m, 2 * n, roots[m], roots[n], proof)  # another size
                with pytest.raises(VerificationError):
                    verify_consistency(m, n, roots[m], roots[n], [*proof, roots[0]])
                bad = list(proof)
                bad[-1] = bytes(32)
                with pytest.raises(VerificationError):
                    verify_consistency(m, n, roots[m], roots[n], bad)


def test_a_rewritten_history_is_not_consistent() -> None:
    """A log that removed, reordered or changed an old entry cannot prove consistency."""
    store, tree = make_tree(20)
    old_root = tree.root(13)
    hashes = list(store.leaf_hashes(0, 20))
    forks = {
        "changed": [*hashes[:5], leaf_hash(b"evil"), *hashes[6:]],
        "reordered": [hashes[1], hashes[0], *hashes[2:]],
        "removed": [*hashes[:7], *hashes[8:]],
    }
    for name, leaves in forks.items():
        fork = MerkleTree(MemoryLeafStore(leaves))
        size = len(leaves)
        assert fork.root(13) != old_root, name
        with pytest.raises(VerificationError):
            verify_consistency(
                13, size, old_root, fork.root(size), fork.consistency_proof(13, size)
            )
    # The old entry can no longer be proven at its place in any forked tree.
    for name, index in {"changed": 5, "reordered": 0, "removed": 7}.items():
        fork = MerkleTree(MemoryLeafStore(forks[name]))
        size = len(forks[name])
        with pytest.raises(VerificationError):
            verify_inclusion(
                hashes[index], index, size, fork.inclusion_proof(index, size), fork.root(size)
            )


def test_bad_arguments_fail_loudly() -> None:
    _, tree = make_tree(5)
    with pytest.raises(AttestationError):
        tree.root(6)
    with pytest.raises(AttestationError):
        tree.inclusion_proof(5, 5)
    with pytest.raises(AttestationError):
        tree.consistency_proof(4, 3)
    with pytest.raises(VerificationError):
        verify_consistency(5, 3, tree.root(5), tree.root(3), [])
    with pytest.raises(VerificationError):
        root_from_inclusion_proof(b"short", 0, 1, [])
    with pytest.raises(VerificationError):
        verify_inclusion(leaf_hash(b"x"), 0, 2, [b"\x00" * 31], tree.root(2))
    with pytest.raises(VerificationError):
        verify_consistency(0, 3, tree.root(1), tree.root(3), [])  # empty tree has the empty head
    with pytest.raises(AttestationError):
        MemoryLeafStore([b"short"])


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 300).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n - 1), st.integers(0, n))
    )
)
def test_property_inclusion_and_consistency(args: tuple[int, int, int]) -> None:
    n, index, m = args
    store, tree = make_tree(n, cache=bool(index % 2))
    hashes = list(store.leaf_hashes(0, n))
    assert tree.root() == naive_root(hashes)
    verify_inclusion(hashes[index], index, n, tree.inclusion_proof(index), tree.root())
    verify_consistency(m, n, tree.root(m), tree.root(), tree.consistency_proof(m))


@settings(max_examples=100, deadline=None)
@given(
    st.integers(2, 200).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n - 1), st.integers(1, n - 1))
    )
)
def test_property_one_changed_leaf_breaks_every_old_head(args: tuple[int, int, int]) -> None:
    n, changed, m = args
    store, tree = make_tree(n)
    hashes = list(store.leaf_hashes(0, n))
    hashes[changed] = leaf_hash(b"tampered")
    forked = MerkleTree(MemoryLeafStore(hashes))
    if changed < m:
        with pytest.raises(VerificationError):
            verify_consistency(m, n, tree.root(m), forked.root(), forked.consistency_proof(m))
    else:
        verify_consistency(m, n, tree.root(m), forked.root(), forked.consistency_proof(m))


def test_large_log_uses_the_cache() -> None:
    store, tree = make_tree(1 << 17, salt=b"big")
    store.append(b"one more")
    start = time.perf_counter()
    root = tree.root()
    first = time.perf_counter() - start
    start = time.perf_counter()
    for i in (0, 77_777, 1 << 17):
        verify_inclusion(
            store.leaf_hashes(i, i + 1)[0], i, store.size(), tree.inclusion_proof(i), root
        )
    verify_consistency(
        100_000, store.size(), tree.root(100_000), root, tree.consistency_proof(100_000)
    )
    later = time.perf_counter() - start
    assert later < first, (first, later)
