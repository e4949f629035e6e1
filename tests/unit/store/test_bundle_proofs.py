"""The proof file beside an exported bundle: round trip, hostile JSON, every way to fail."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rebuilder.attest.bundle_proofs import (
    BUNDLE_PROOF_FORMAT,
    BundleProof,
    bundle_lines,
    verifiers_for_note,
    verify_bundle_proof,
)
from rebuilder.attest.checkpoint import NoteVerifier
from rebuilder.attest.errors import AttestationError, VerificationError
from rebuilder.attest.keys import KeyAlgorithm, LocalKeySigner, generate_key
from tests.support.memlog import MemoryLog

ORIGIN = "rebuilder.test/log"
NAME = "rebuilder.test"


@pytest.fixture(scope="module")
def key() -> LocalKeySigner:
    return generate_key()


def _line(tag: str) -> str:
    return json.dumps({"payload": tag, "payloadType": "application/vnd.in-toto+json"})


def _log(key: LocalKeySigner) -> tuple[MemoryLog, list[str], BundleProof]:
    log = MemoryLog(ORIGIN)
    for n in range(5):
        log.add_file("other", "1", f"other-{n}.whl", [_line(f"o{n}")])
    lines = [_line("prov"), _line("vsa")]
    log.add_file("demo", "1.0", "demo-1.0-py3-none-any.whl", lines)
    log.add_file("late", "1", "late-1.whl", [_line("late")])
    note = log.checkpoint(key, NAME)
    bundle = log.files["demo-1.0-py3-none-any.whl"]
    proofs = tuple(log.inclusion_proof(ORIGIN, i, log.size()) for i in bundle.leaf_indexes)
    return log, lines, BundleProof(ORIGIN, note, proofs)


def test_round_trip_and_verify(key: LocalKeySigner) -> None:
    _, lines, proof = _log(key)
    text = proof.dumps()
    doc = json.loads(text)
    assert doc["format"] == BUNDLE_PROOF_FORMAT
    assert (doc["origin"], doc["treeSize"]) == (ORIGIN, 8)
    assert [e["line"] for e in doc["entries"]] == [1, 2]
    assert [e["logIndex"] for e in doc["entries"]] == [5, 6]
    parsed = BundleProof.from_json(text)
    assert parsed == proof
    assert BundleProof.from_json(text.encode()) == proof
    assert parsed.proves(lines) and not parsed.proves(lines[::-1])
    head = verify_bundle_proof(
        [line.encode() for line in lines], parsed, [NoteVerifier(NAME, key.public_key)]
    )
    assert (head.origin, head.size) == (ORIGIN, 8)


def test_bundle_lines_are_the_logged_bytes() -> None:
    assert bundle_lines(b'{"a":1}\n\n{"b":2}\n') == [b'{"a":1}', b'{"b":2}']
    assert bundle_lines(b'{"a":1}') == [b'{"a":1}']


def _doc(key: LocalKeySigner) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(_log(key)[2].dumps())
    return doc


@pytest.mark.parametrize(
    "hostile",
    [
        "not json",
        "[]",
        '"a string"',
        "null",
        "[" * 100_000,
        '{"format": "https://pypi-rebuilder.dev/log/bundle-proof/v2"}',
    ],
)
def test_hostile_text_is_refused(hostile: str) -> None:
    with pytest.raises(AttestationError):
        BundleProof.from_json(hostile)


def test_too_large_is_refused() -> None:
    with pytest.raises(AttestationError, match="too large"):
        BundleProof.from_json(b" " * (16 * 1024 * 1024 + 1))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"origin": 7}, "strings"),
        ({"checkpoint": ["x"]}, "strings"),
        ({"treeSize": True}, "integer"),
        ({"treeSize": -1}, "out of range"),
        ({"treeSize": "8"}, "integer"),
        ({"entries": {}}, "list"),
        ({"entries": []}, "at least one"),
        ({"entries": [1]}, "object"),
    ],
)
def test_malformed_fields_are_refused(
    key: LocalKeySigner, change: dict[str, Any], message: str
) -> None:
    doc = _doc(key)
    doc.update(change)
    with pytest.raises(AttestationError, match=message):
        BundleProof.from_json(doc)


@pytest.mark.parametrize("field", ["origin", "treeSize", "checkpoint", "entries", "format"])
def test_missing_fields_are_refused(key: LocalKeySigner, field: str) -> None:
    doc = _doc(key)
    del doc[field]
    with pytest.raises(AttestationError):
        BundleProof.from_json(doc)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"line": 2}, "out of order"),
        ({"logIndex": 8}, "not in a tree"),
        ({"logIndex": 1.5}, "integer"),
        ({"leafHash": "AB" * 32}, "hex"),
        ({"leafHash": "ab" * 31}, "hex"),
        ({"hashes": ["00" * 32] * 65}, "longer"),
        ({"hashes": "00"}, "list"),
    ],
)
def test_malformed_entries_are_refused(
    key: LocalKeySigner, change: dict[str, Any], message: str
) -> None:
    doc = _doc(key)
    doc["entries"][0].update(change)
    with pytest.raises(AttestationError, match=message):
        BundleProof.from_json(doc)


def test_an_entry_without_a_field_is_refused(key: LocalKeySigner) -> None:
    doc = _doc(key)
    del doc["entries"][1]["hashes"]
    with pytest.raises(AttestationError, match="lacks hashes"):
        BundleProof.from_json(doc)


def _fails(lines: list[str], proof: BundleProof, key: LocalKeySigner, match: str) -> None:
    with pytest.raises(VerificationError, match=match):
        verify_bundle_proof(lines, proof, [NoteVerifier(NAME, key.public_key)])


def test_every_way_to_break_it_fails(key: LocalKeySigner) -> None:
    log, lines, proof = _log(key)
    _fails([lines[0]], proof, key, "has 1 lines")
    _fails([*lines, _line("extra")], proof, key, "has 3 lines")
    _fails([lines[0], _line("other vsa")], proof, key, "line 2: the proof is for another")
    _fails(lines[::-1], proof, key, "line 1: the proof is for another")
    # a path hash changed: the leaf does not lead to the signed root
    doc = json.loads(proof.dumps())
    doc["entries"][1]["hashes"][0] = "00" * 32
    _fails(lines, BundleProof.from_json(doc), key, "line 2: leaf 6 is not in the tree of size 8")
    # a checkpoint signed by someone else, or a forged root under our signature
    stranger = generate_key()
    forged = BundleProof(ORIGIN, log.checkpoint(stranger, NAME), proof.proofs)
    _fails(lines, forged, key, "no trusted key")
    body, _, signatures = proof.checkpoint.partition("\n\n")
    origin, size, _root = body.split("\n")[:3]
    altered = f"{origin}\n{size}\n{'A' * 43}=\n\n{signatures}"
    _fails(lines, BundleProof(ORIGIN, altered, proof.proofs), key, "invalid")
    with pytest.raises(VerificationError, match="not 'elsewhere"):
        verify_bundle_proof(
            lines, proof, [NoteVerifier(NAME, key.public_key)], origin="elsewhere/log"
        )


def test_trusted_keys_become_note_verifiers_under_the_names_they_signed(
    key: LocalKeySigner,
) -> None:
    _, lines, proof = _log(key)
    ecdsa = generate_key(KeyAlgorithm.ECDSA_P256)
    found = verifiers_for_note(proof.checkpoint, [ecdsa.public_key, key.public_key])
    assert found == [NoteVerifier(NAME, key.public_key)]
    assert verify_bundle_proof(lines, proof, found).size == 8
    assert verifiers_for_note(proof.checkpoint, [generate_key().public_key]) == []
