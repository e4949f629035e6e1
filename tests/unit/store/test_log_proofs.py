"""Offline checks of log proofs: JSON round trips, hostile JSON, and every way to fail."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from rebuilder.attest.checkpoint import Checkpoint, NoteVerifier, sign_checkpoint
from rebuilder.attest.errors import AttestationError, VerificationError
from rebuilder.attest.keys import LocalKeySigner, generate_key
from rebuilder.attest.log_proofs import (
    CONSISTENCY_PROOF_FORMAT,
    INCLUSION_PROOF_FORMAT,
    ConsistencyProof,
    InclusionProof,
    entry_bytes,
    entry_leaf_hash,
    verify_consistency_proof,
    verify_inclusion_proof,
)
from rebuilder.attest.merkle import MemoryLeafStore, MerkleTree, leaf_hash

ORIGIN = "rebuilder.test/log"
NAME = "rebuilder.test"
LINES = [f'{{"payload":"{i}","payloadType":"application/vnd.in-toto+json"}}' for i in range(13)]


@pytest.fixture(scope="module")
def key() -> LocalKeySigner:
    return generate_key()


@pytest.fixture(scope="module")
def verifiers(key: LocalKeySigner) -> list[NoteVerifier]:
    return [NoteVerifier(NAME, key.public_key)]


def tree(lines: list[str]) -> MerkleTree:
    return MerkleTree(MemoryLeafStore(leaf_hash(line.encode()) for line in lines))


def note(key: LocalKeySigner, size: int, lines: list[str] = LINES, origin: str = ORIGIN) -> str:
    return sign_checkpoint(Checkpoint(origin, size, tree(lines).root(size)), NAME, key)


def inclusion(index: int, size: int, lines: list[str] = LINES) -> InclusionProof:
    t = tree(lines)
    return InclusionProof(
        ORIGIN,
        index,
        size,
        leaf_hash(lines[index].encode()),
        tuple(t.inclusion_proof(index, size)),
    )


def test_inclusion_proof_json_round_trips(key: LocalKeySigner) -> None:
    proof = replace(inclusion(4, 13), checkpoint=note(key, 13))
    doc = json.loads(proof.dumps())
    assert doc["format"] == INCLUSION_PROOF_FORMAT
    assert (doc["logIndex"], doc["treeSize"], doc["origin"]) == (4, 13, ORIGIN)
    assert all(len(h) == 64 for h in doc["hashes"])
    assert InclusionProof.from_json(proof.dumps()) == proof
    assert InclusionProof.from_json(proof.dumps().encode()) == proof
    assert InclusionProof.from_json(doc) == proof


def test_consistency_proof_json_round_trips() -> None:
    proof = ConsistencyProof(ORIGIN, 5, 13, tuple(tree(LINES).consistency_proof(5, 13)))
    doc = json.loads(proof.dumps())
    assert doc["format"] == CONSISTENCY_PROOF_FORMAT
    assert (doc["oldSize"], doc["newSize"]) == (5, 13)
    assert ConsistencyProof.from_json(proof.dumps()) == proof


def _mutated(change: dict[str, Any], drop: str | None = None) -> dict[str, Any]:
    doc = inclusion(4, 13).to_json()
    doc.update(change)
    if drop:
        del doc[drop]
    return doc


@pytest.mark.parametrize(
    ("change", "drop"),
    [
        ({"format": "https://example.invalid/other"}, None),
        ({}, "hashes"),
        ({}, "leafHash"),
        ({"logIndex": True}, None),
        ({"logIndex": "4"}, None),
        ({"logIndex": -1}, None),
        ({"logIndex": 13}, None),
        ({"treeSize": 2**63}, None),
        ({"leafHash": "AB" * 32}, None),
        ({"leafHash": "ab" * 31}, None),
        ({"hashes": ["zz" * 32]}, None),
        ({"hashes": "ab" * 32}, None),
        ({"hashes": ["ab" * 32] * 65}, None),
        ({"origin": ""}, None),
        ({"origin": "a\nb"}, None),
        ({"checkpoint": 7}, None),
    ],
)
def test_malformed_inclusion_proofs_are_refused(change: dict[str, Any], drop: str | None) -> None:
    with pytest.raises(AttestationError):
        InclusionProof.from_json(_mutated(change, drop))


@pytest.mark.parametrize("text", ["", "[]", "{", "null", "1" * 3_000_000])
def test_proof_text_that_is_no_object_is_refused(text: str) -> None:
    with pytest.raises(AttestationError):
        InclusionProof.from_json(text)
    with pytest.raises(AttestationError):
        ConsistencyProof.from_json(text)


def test_consistency_proof_sizes_must_grow() -> None:
    with pytest.raises(AttestationError):
        ConsistencyProof(ORIGIN, 5, 4, ())


@pytest.mark.parametrize("size", range(1, 14))
def test_every_inclusion_proof_verifies(
    size: int, key: LocalKeySigner, verifiers: list[NoteVerifier]
) -> None:
    signed = note(key, size)
    for index in range(size):
        proof = InclusionProof.from_json(inclusion(index, size).dumps())
        head = verify_inclusion_proof(LINES[index], proof, signed, verifiers, origin=ORIGIN)
        assert head.size == size


def test_inclusion_fails_loudly(key: LocalKeySigner, verifiers: list[NoteVerifier]) -> None:
    proof, signed = inclusion(6, 13), note(key, 13)
    verify_inclusion_proof(LINES[6].encode() + b"\n", proof, signed, verifiers)
    cases: list[tuple[str | bytes, InclusionProof, str | None, list[NoteVerifier]]] = [
        (LINES[7], proof, signed, verifiers),  # another entry
        (LINES[6], proof, None, verifiers),  # no checkpoint at all
        (LINES[6], proof, note(key, 12), verifiers),  # checkpoint of another size
        (LINES[6], proof, note(key, 13, origin="other/log"), verifiers),
        (LINES[6], proof, signed, [NoteVerifier(NAME, generate_key().public_key)]),
        (LINES[6], proof, signed.replace("13\n", "14\n", 1), verifiers),  # edited note
        (LINES[6], proof, note(key, 13, [*LINES[:12], "{}"]), verifiers),  # forked tree
    ]
    for entry, p, checkpoint, keys in cases:
        with pytest.raises(VerificationError):
            verify_inclusion_proof(entry, p, checkpoint, keys)
    bad_path = replace(proof, hashes=proof.hashes[::-1])
    with pytest.raises(VerificationError):
        verify_inclusion_proof(LINES[6], bad_path, signed, verifiers)
    short = replace(proof, hashes=proof.hashes[:-1])
    with pytest.raises(VerificationError):
        verify_inclusion_proof(LINES[6], short, signed, verifiers)
    moved = replace(proof, index=7)
    with pytest.raises(VerificationError):
        verify_inclusion_proof(LINES[6], moved, signed, verifiers)
    with pytest.raises(VerificationError):
        verify_inclusion_proof(LINES[6], proof, signed, verifiers, origin="other/log")


def test_the_checkpoint_carried_in_the_proof_must_still_be_trusted(
    key: LocalKeySigner, verifiers: list[NoteVerifier]
) -> None:
    carried = replace(inclusion(2, 13), checkpoint=note(key, 13))
    assert verify_inclusion_proof(LINES[2], carried, None, verifiers).size == 13
    forged = replace(inclusion(2, 13), checkpoint=note(generate_key(), 13))
    with pytest.raises(VerificationError):
        verify_inclusion_proof(LINES[2], forged, None, verifiers)


def test_consistency_between_checkpoints(
    key: LocalKeySigner, verifiers: list[NoteVerifier]
) -> None:
    t = tree(LINES)
    for old in range(1, 14):
        for new in range(old, 14):
            proof = ConsistencyProof(ORIGIN, old, new, tuple(t.consistency_proof(old, new)))
            wire = ConsistencyProof.from_json(proof.dumps())
            head = verify_consistency_proof(wire, note(key, old), note(key, new), verifiers)
            assert head.size == new


def test_a_forked_or_rewritten_log_fails_consistency(
    key: LocalKeySigner, verifiers: list[NoteVerifier]
) -> None:
    rewritten = [*LINES[:3], '{"payload":"evil"}', *LINES[4:]]
    old = note(key, 5)
    fork = note(key, 13, rewritten)
    # The honest proof does not lead to the fork, nor does the fork's own proof.
    for lines in (LINES, rewritten):
        proof = ConsistencyProof(ORIGIN, 5, 13, tuple(tree(lines).consistency_proof(5, 13)))
        with pytest.raises(VerificationError):
            verify_consistency_proof(proof, old, fork, verifiers)
    honest = ConsistencyProof(ORIGIN, 5, 13, tuple(tree(LINES).consistency_proof(5, 13)))
    with pytest.raises(VerificationError):
        verify_consistency_proof(honest, old, note(key, 12), verifiers)  # sizes differ
    with pytest.raises(VerificationError):
        verify_consistency_proof(honest, old, note(key, 13, origin="other/log"), verifiers)
    with pytest.raises(VerificationError):
        verify_consistency_proof(
            ConsistencyProof("other/log", 5, 13, honest.hashes), old, note(key, 13), verifiers
        )


@pytest.mark.parametrize("bad", [b"", b"a\nb", b"a\rb", b"\xc3", "x" * (16 * 1024 * 1024 + 1)])
def test_entries_are_single_utf8_lines(bad: bytes | str) -> None:
    with pytest.raises(AttestationError):
        entry_bytes(bad)


def test_one_trailing_line_break_is_dropped_by_consumers() -> None:
    assert entry_leaf_hash("{}\n") == entry_leaf_hash(b"{}") == leaf_hash(b"{}")
    with pytest.raises(AttestationError):
        entry_leaf_hash("{}\n\n")
