"""Signing keys: generation, files, key ids, and the :class:`Signer` protocol.

Private keys are PKCS#8 PEM files (unencrypted, mode 0600); public keys are
SubjectPublicKeyInfo PEM. A key id is the lowercase hex SHA-256 of the public key's
DER-encoded SubjectPublicKeyInfo, so anyone holding the public key can compute it.

Signing and signature verification go through securesystemslib's ``CryptoSigner``
and ``SSlibKey`` (pyca/cryptography underneath); this module only adds our key ids,
the file handling and a narrow protocol the rest of the package depends on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
    load_pem_private_key,
    load_pem_public_key,
)
from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.exceptions import VerificationError as SslibVerificationError

# securesystemslib.signer re-exports these without __all__, which mypy's strict mode
# reads as private; the public import path is still the one the library documents.
from securesystemslib.signer import (  # type: ignore[attr-defined]
    CryptoSigner,
    SSlibKey,
)
from securesystemslib.signer import Signature as SslibSignature  # type: ignore[attr-defined]

from rebuilder.attest.errors import AttestationError

logger = logging.getLogger(__name__)

_MAX_KEY_FILE = 64 * 1024


class KeyAlgorithm(StrEnum):
    """The signature algorithms a local key may use."""

    ED25519 = "ed25519"
    ECDSA_P256 = "ecdsa-p256"


_SSLIB_SCHEMES = {
    KeyAlgorithm.ED25519: "ed25519",
    KeyAlgorithm.ECDSA_P256: "ecdsa-sha2-nistp256",
}


@dataclass(frozen=True)
class PublicKey:
    """A public key, identified by the SHA-256 of its SubjectPublicKeyInfo DER."""

    spki_der: bytes

    def __post_init__(self) -> None:
        # Fails early on keys we cannot verify with, rather than at first use.
        _algorithm_of(_load_spki(self.spki_der))

    @property
    def algorithm(self) -> KeyAlgorithm:
        return _algorithm_of(_load_spki(self.spki_der))

    @property
    def key_id(self) -> str:
        """Lowercase hex SHA-256 of the SubjectPublicKeyInfo DER."""
        return hashlib.sha256(self.spki_der).hexdigest()

    @property
    def raw_ed25519(self) -> bytes:
        """The 32 raw bytes of an Ed25519 key (signed notes need them)."""
        key = _load_spki(self.spki_der)
        if not isinstance(key, Ed25519PublicKey):
            raise AttestationError(f"key {self.key_id} is not an Ed25519 key")
        return key.public_bytes(Encoding.Raw, PublicFormat.Raw)

    def to_pem(self) -> str:
        """The key as a SubjectPublicKeyInfo PEM block."""
        key = _load_spki(self.spki_der)
        return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")

    @classmethod
    def from_pem(cls, pem: str | bytes) -> PublicKey:
        """Parse a SubjectPublicKeyInfo PEM block (untrusted input)."""
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        try:
            key = load_pem_public_key(data)
        except (ValueError, TypeError) as exc:
            raise AttestationError(f"not a public key PEM: {exc}") from exc
        return cls(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))

    @classmethod
    def from_raw_ed25519(cls, raw: bytes) -> PublicKey:
        """Wrap 32 raw Ed25519 public key bytes."""
        try:
            key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError as exc:
            raise AttestationError(f"not an Ed25519 public key: {exc}") from exc
        return cls(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))

    def to_sslib(self) -> SSlibKey:
        """The securesystemslib view of this key, carrying our key id."""
        key = _load_spki(self.spki_der)
        return SSlibKey.from_crypto(key, self.key_id, _SSLIB_SCHEMES[self.algorithm])

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` is this key's signature over ``data``."""
        sslib_key = self.to_sslib()
        try:
            sslib_key.verify_signature(SslibSignature(self.key_id, signature.hex()), data)
        except (UnverifiedSignatureError, SslibVerificationError):
            return False
        return True


@runtime_checkable
class Signer(Protocol):
    """Anything that can sign bytes for us: a key file today, a KMS or Sigstore later."""

    @property
    def public_key(self) -> PublicKey: ...

    @property
    def key_id(self) -> str: ...

    def sign(self, data: bytes) -> bytes:
        """The raw signature over ``data`` (Ed25519: 64 bytes; ECDSA: DER)."""
        ...


class LocalKeySigner:
    """A :class:`Signer` backed by a private key held in memory (from a key file)."""

    def __init__(self, private_key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> None:
        if isinstance(private_key, ec.EllipticCurvePrivateKey) and not isinstance(
            private_key.curve, ec.SECP256R1
        ):
            raise AttestationError(f"unsupported curve {private_key.curve.name}: use P-256")
        spki = private_key.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )
        self._public_key = PublicKey(spki)
        self._signer = CryptoSigner(private_key, self._public_key.to_sslib())

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    @property
    def key_id(self) -> str:
        return self._public_key.key_id

    @property
    def algorithm(self) -> KeyAlgorithm:
        return self._public_key.algorithm

    def sign(self, data: bytes) -> bytes:
        return bytes.fromhex(self._signer.sign(data).signature)

    def private_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (what :func:`save_private_key` writes)."""
        return self._signer.private_bytes

    def __repr__(self) -> str:
        return f"LocalKeySigner({self.algorithm.value}, key_id={self.key_id[:16]}...)"


def generate_key(algorithm: KeyAlgorithm = KeyAlgorithm.ED25519) -> LocalKeySigner:
    """A new random key pair."""
    if algorithm is KeyAlgorithm.ED25519:
        return LocalKeySigner(Ed25519PrivateKey.generate())
    return LocalKeySigner(ec.generate_private_key(ec.SECP256R1()))


def save_private_key(signer: LocalKeySigner, path: Path, *, overwrite: bool = False) -> None:
    """Write the private key to ``path`` with mode 0600, never replacing a file by default."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError as exc:
        raise AttestationError(f"{path} exists; refusing to overwrite a key") from exc
    try:
        # The mode given to open() only applies to new files; an overwritten one keeps
        # its old mode, so set it explicitly before any secret byte lands in it.
        os.fchmod(fd, 0o600)
        os.write(fd, signer.private_pem())
    finally:
        os.close(fd)
    logger.info("wrote private key %s to %s", signer.key_id, path)


def load_private_key(path: Path) -> LocalKeySigner:
    """Read a PKCS#8 PEM private key (Ed25519 or ECDSA P-256)."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("private key %s is readable by others (mode %o)", path, mode & 0o777)
    data = _read_small(path)
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise AttestationError(f"{path}: not an unencrypted PKCS#8 private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise AttestationError(f"{path}: unsupported key type {type(key).__name__}")
    return LocalKeySigner(key)


def save_public_key(key: PublicKey, path: Path) -> None:
    """Write the public key as PEM."""
    path.write_text(key.to_pem(), encoding="ascii")


def load_public_key(path: Path) -> PublicKey:
    """Read a public key PEM file."""
    return PublicKey.from_pem(_read_small(path))


@dataclass(frozen=True)
class Keyring:
    """The public keys a verifier trusts; several at once so keys can rotate."""

    keys: tuple[PublicKey, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise AttestationError("a keyring needs at least one trusted key")

    def __iter__(self) -> Iterator[PublicKey]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def get(self, key_id: str) -> PublicKey | None:
        """The trusted key with this id, if any."""
        return next((k for k in self.keys if k.key_id == key_id), None)

    @classmethod
    def of(cls, keys: Iterable[PublicKey]) -> Keyring:
        """A keyring of the given keys, duplicates removed, order kept."""
        unique = {k.key_id: k for k in keys}
        return cls(tuple(unique.values()))

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> Keyring:
        """A keyring of the public key PEM files at ``paths``."""
        return cls.of(load_public_key(p) for p in paths)


def _read_small(path: Path) -> bytes:
    with path.open("rb") as fh:
        data = fh.read(_MAX_KEY_FILE + 1)
    if len(data) > _MAX_KEY_FILE:
        raise AttestationError(f"{path}: too large for a key file")
    return data


def _load_spki(der: bytes) -> Ed25519PublicKey | ec.EllipticCurvePublicKey:
    try:
        key = load_der_public_key(der)
    except (ValueError, TypeError) as exc:
        raise AttestationError(f"not a SubjectPublicKeyInfo DER: {exc}") from exc
    if isinstance(key, Ed25519PublicKey | ec.EllipticCurvePublicKey):
        return key
    raise AttestationError(f"unsupported public key type {type(key).__name__}")


def _algorithm_of(key: Ed25519PublicKey | ec.EllipticCurvePublicKey) -> KeyAlgorithm:
    if isinstance(key, Ed25519PublicKey):
        return KeyAlgorithm.ED25519
    if isinstance(key.curve, ec.SECP256R1):
        return KeyAlgorithm.ECDSA_P256
    raise AttestationError(f"unsupported curve {key.curve.name}: use P-256")
