from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rebuilder.attest.checkpoint import (
    Checkpoint,
    NoteVerifier,
    note_key_hash,
    parse_note,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
    verify_note,
)
from rebuilder.attest.errors import AttestationError, VerificationError
from rebuilder.attest.keys import LocalKeySigner
from rebuilder.attest.merkle import MemoryLeafStore, MerkleTree

# Published vectors of the signed-note format: the Go sumdb/note package's example key
# pair and signed note, and the C2SP signed-note specification's example.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIG = (
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
)
GO_NOTE = f"{GO_TEXT}\n\u2014 PeterNeumann {GO_SIG}\n"
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n\u2014 example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)


def go_signer() -> LocalKeySigner:
    seed = base64.b64decode(GO_SKEY.split("+", 4)[4])[1:]
    return LocalKeySigner(Ed25519PrivateKey.from_private_bytes(seed))


def test_key_hash_and_vkey_match_the_go_implementation() -> None:
    signer = go_signer()
    assert note_key_hash("PeterNeumann", signer.public_key).hex() == "c74f20a3"
    assert NoteVerifier("PeterNeumann", signer.public_key).vkey() == GO_VKEY
    assert NoteVerifier.from_vkey(GO_VKEY).public_key == signer.public_key


def test_signing_reproduces_the_go_note_byte_for_byte() -> None:
    # Ed25519 is deterministic, so the same key and text give the same signature.
    assert sign_note(GO_TEXT, "PeterNeumann", go_signer()) == GO_NOTE
    assert verify_note(GO_NOTE, [NoteVerifier.from_vkey(GO_VKEY)]) == (GO_TEXT, "PeterNeumann")


def test_the_spec_example_verifies() -> None:
    text, name = verify_note(SPEC_NOTE, [NoteVerifier.from_vkey(SPEC_VKEY)])
    assert (text, name) == ("This is an example message.\n", "example.com/foo")


@pytest.mark.parametrize(
    "vkey",
    [
        GO_VKEY.replace("c74f20a3", "c74f20a4"),  # hash does not match
        GO_VKEY.replace("PeterNeumann", "PeterNeuman"),
        GO_VKEY[:-4],
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_mangled_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(AttestationError):
        NoteVerifier.from_vkey(vkey)


def test_checkpoint_round_trip(ed_key: LocalKeySigner) -> None:
    store = MemoryLeafStore()
    for i in range(11):
        store.append(b"envelope %d" % i)
    checkpoint = Checkpoint("rebuilder.example/log", 11, MerkleTree(store).root())
    assert checkpoint.body() == (
        f"rebuilder.example/log\n11\n{base64.b64encode(checkpoint.root_hash).decode()}\n"
    )
    note = sign_checkpoint(checkpoint, "rebuilder.example/log", ed_key)
    verifier = NoteVerifier("rebuilder.example/log", ed_key.public_key)
    assert verify_checkpoint(note, [verifier], origin="rebuilder.example/log") == checkpoint
    assert verify_checkpoint(note.encode(), [verifier]) == checkpoint
    with pytest.raises(VerificationError, match="not 'other'"):
        verify_checkpoint(note, [verifier], origin="other")


def test_extension_lines_survive(ed_key: LocalKeySigner) -> None:
    checkpoint = Checkpoint("log", 0, hashlib.sha256(b"").digest(), ("Timestamp: 1700000000",))
    note = sign_checkpoint(checkpoint, "log", ed_key)
    assert verify_checkpoint(note, [NoteVerifier("log", ed_key.public_key)]) == checkpoint


def _signed(ed_key: LocalKeySigner) -> tuple[str, NoteVerifier]:
    checkpoint = Checkpoint("log", 42, bytes(range(32)))
    return sign_checkpoint(checkpoint, "log", ed_key), NoteVerifier("log", ed_key.public_key)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda n: n.replace("\n42\n", "\n43\n"),  # another size
        lambda n: n.replace("log\n42", "gol\n42"),  # another origin
        lambda n: n.replace("AAECAwQF", "AAECAwQG"),  # another root hash
    ],
)
def test_a_tampered_checkpoint_fails(ed_key: LocalKeySigner, tamper: object) -> None:
    note, verifier = _signed(ed_key)
    changed = tamper(note)  # type: ignore[operator]
    assert changed != note
    with pytest.raises(VerificationError, match="invalid"):
        verify_checkpoint(changed, [verifier])


def test_a_tampered_signature_fails(ed_key: LocalKeySigner) -> None:
    note, verifier = _signed(ed_key)
    parsed = parse_note(note)
    sig = parsed.signatures[0]
    blob = bytearray(sig.key_hash + sig.signature)
    blob[10] ^= 1
    broken = note.replace(
        base64.b64encode(sig.key_hash + sig.signature).decode(),
        base64.b64encode(bytes(blob)).decode(),
    )
    with pytest.raises(VerificationError, match="invalid"):
        verify_checkpoint(broken, [verifier])


def test_unknown_keys_are_ignored_but_one_known_key_is_needed(
    ed_key: LocalKeySigner, other_key: LocalKeySigner
) -> None:
    note, verifier = _signed(ed_key)
    stranger = NoteVerifier("log", other_key.public_key)
    with pytest.raises(VerificationError, match="no trusted key"):
        verify_checkpoint(note, [stranger])
    # A witness's cosignature by a key we do not know does not disturb verification.
    witness_line = sign_note(
        "log\n42\n" + base64.b64encode(bytes(range(32))).decode() + "\n", "witness", other_key
    )
    cosigned = note + witness_line.split("\n\n", 1)[1]
    assert verify_checkpoint(cosigned, [verifier]).size == 42
    assert (
        verify_checkpoint(cosigned, [verifier, NoteVerifier("witness", other_key.public_key)]).size
        == 42
    )


@pytest.mark.parametrize(
    "bad",
    [
        "no signature block\n",
        "text\n\n\u2014 log\n",
        "text\n\n- log AAAA\n",
        "text\n\n\u2014 log !!!!\n",
        "text\n\n\u2014 log AAAA",
        "te\x01xt\n\n\u2014 log AAAAAAAAAAAA\n",
    ],
)
def test_malformed_notes_are_rejected(bad: str) -> None:
    with pytest.raises(AttestationError):
        parse_note(bad)


@pytest.mark.parametrize(
    "body",
    [
        "log\n42\n",
        "log\n042\nAAAA\n",
        "log\n-1\nAAAA\n",
        "log\n1\nAAAA\n",
        "log\n1\n" + "A" * 44,
        "\n1\nAAAA\n",
    ],
)
def test_malformed_checkpoint_bodies_are_rejected(body: str) -> None:
    with pytest.raises(AttestationError):
        Checkpoint.parse(body)


def test_checkpoints_need_ed25519(ec_key: LocalKeySigner) -> None:
    with pytest.raises(AttestationError):
        sign_checkpoint(Checkpoint("log", 1, bytes(32)), "log", ec_key)
