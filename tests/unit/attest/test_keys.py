from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from rebuilder.attest.errors import AttestationError
from rebuilder.attest.keys import (
    KeyAlgorithm,
    Keyring,
    LocalKeySigner,
    PublicKey,
    generate_key,
    load_private_key,
    load_public_key,
    save_private_key,
    save_public_key,
)


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_private_key_round_trips_through_a_0600_file(
    tmp_path: Path, algorithm: KeyAlgorithm
) -> None:
    key = generate_key(algorithm)
    path = tmp_path / "signing.key"
    save_private_key(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_private_key(path)
    assert loaded.key_id == key.key_id
    assert loaded.algorithm is algorithm
    assert key.public_key.verify(loaded.sign(b"data"), b"data")


def test_saving_never_replaces_a_key_unless_asked(tmp_path: Path, ed_key: LocalKeySigner) -> None:
    path = tmp_path / "k"
    save_private_key(ed_key, path)
    other = generate_key()
    with pytest.raises(AttestationError, match="exists"):
        save_private_key(other, path)
    assert load_private_key(path).key_id == ed_key.key_id
    path.chmod(0o644)
    save_private_key(other, path, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_private_key(path).key_id == other.key_id


def test_public_key_pem_round_trip_and_key_id_is_sha256_of_spki(
    tmp_path: Path, ec_key: LocalKeySigner
) -> None:
    path = tmp_path / "key.pub"
    save_public_key(ec_key.public_key, path)
    assert path.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    loaded = load_public_key(path)
    assert loaded == ec_key.public_key
    assert loaded.key_id == hashlib.sha256(loaded.spki_der).hexdigest()
    assert len(loaded.key_id) == 64


def test_garbage_and_unsupported_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AttestationError):
        PublicKey.from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(AttestationError, match="P-256"):
        LocalKeySigner(ec.generate_private_key(ec.SECP384R1()))
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    bad.chmod(0o600)
    with pytest.raises(AttestationError):
        load_private_key(bad)


def test_signatures_do_not_verify_with_another_key_or_other_data(
    ed_key: LocalKeySigner, other_key: LocalKeySigner, ec_key: LocalKeySigner
) -> None:
    sig = ed_key.sign(b"message")
    assert ed_key.public_key.verify(sig, b"message")
    assert not ed_key.public_key.verify(sig, b"messagE")
    assert not other_key.public_key.verify(sig, b"message")
    assert not ec_key.public_key.verify(sig, b"message")
    assert not ed_key.public_key.verify(b"\x00" * 64, b"message")


def test_keyring_deduplicates_and_finds_by_id(
    ed_key: LocalKeySigner, other_key: LocalKeySigner
) -> None:
    ring = Keyring.of([ed_key.public_key, other_key.public_key, ed_key.public_key])
    assert len(ring) == 2
    assert ring.get(other_key.key_id) == other_key.public_key
    assert ring.get("0" * 64) is None
    with pytest.raises(AttestationError):
        Keyring(())
