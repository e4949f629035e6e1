"""Log checkpoints as C2SP signed notes (Ed25519).

A checkpoint body is ``<origin>\\n<tree size>\\n<base64 root hash>\\n`` followed by
optional extension lines. A signed note is the body, a blank line, and one line per
signature: ``— <key name> <base64(key hash || signature)>``, where the key hash is the
first 4 bytes of ``SHA-256(key name || 0x0A || 0x01 || raw Ed25519 public key)`` and the
signature is Ed25519 over the body bytes. Verifier keys are exchanged as the usual
``<name>+<hex key hash>+<base64(0x01 || public key)>`` strings.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rebuilder.attest.dsse import b64decode
from rebuilder.attest.errors import AttestationError, VerificationError
from rebuilder.attest.keys import KeyAlgorithm, PublicKey, Signer
from rebuilder.attest.merkle import HASH_SIZE

logger = logging.getLogger(__name__)

SIGNATURE_PREFIX = "\u2014 "  # em dash, space
ALG_ED25519 = 0x01
MAX_NOTE_BYTES = 1024 * 1024
MAX_SIGNATURES = 100
_ED25519_SIGNATURE = 64
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_HEX8 = re.compile(r"[0-9a-f]{8}")
_MAX_TREE_SIZE = 2**64 - 1


@dataclass(frozen=True)
class Checkpoint:
    """A log's claimed state: its origin (the log's name), size and root hash."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if not 0 <= self.size <= _MAX_TREE_SIZE:
            raise AttestationError(f"tree size {self.size} out of range")
        if len(self.root_hash) != HASH_SIZE:
            raise AttestationError("a root hash is 32 bytes")
        for line in self.extensions:
            _check_line(line, "extension line")

    def body(self) -> str:
        """The note text that is signed."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii")]
        return "".join(f"{line}\n" for line in (*lines, *self.extensions))

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Parse a checkpoint body (the text of a note, without signatures)."""
        if not body.endswith("\n"):
            raise AttestationError("a checkpoint ends with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise AttestationError("a checkpoint has an origin, a size and a root hash")
        origin, size, root, *extensions = lines
        if not _SIZE.fullmatch(size):
            raise AttestationError(f"tree size {size!r} is not a decimal number")
        root_hash = b64decode_std(root, "root hash")
        return cls(origin, int(size), root_hash, tuple(extensions))


def note_key_hash(name: str, public_key: PublicKey) -> bytes:
    """The 4-byte key hash of an Ed25519 note key: SHA-256(name || 0x0A || 0x01 || key)[:4]."""
    _check_key_name(name)
    material = name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key.raw_ed25519
    return hashlib.sha256(material).digest()[:4]


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted note key: a name and an Ed25519 public key."""

    name: str
    public_key: PublicKey

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if self.public_key.algorithm is not KeyAlgorithm.ED25519:
            raise AttestationError("signed notes use Ed25519 keys")

    @property
    def key_hash(self) -> bytes:
        return note_key_hash(self.name, self.public_key)

    def vkey(self) -> str:
        """The verifier key string ``<name>+<hex key hash>+<base64(0x01 || key)>``."""
        blob = base64.b64encode(bytes([ALG_ED25519]) + self.public_key.raw_ed25519).decode()
        return f"{self.name}+{self.key_hash.hex()}+{blob}"

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key string; its key hash must match its name and key."""
        parts = vkey.split("+", 2)
        if len(parts) != 3 or not _HEX8.fullmatch(parts[1]):
            raise AttestationError("a verifier key is <name>+<8 hex>+<base64 key>")
        name, hash_hex, blob_b64 = parts
        blob = b64decode_std(blob_b64, "verifier key")
        if len(blob) != 33 or blob[0] != ALG_ED25519:
            raise AttestationError("only Ed25519 verifier keys (type 0x01) are supported")
        verifier = cls(name, PublicKey.from_raw_ed25519(blob[1:]))
        if verifier.key_hash.hex() != hash_hex:
            raise AttestationError(f"verifier key {name}: key hash does not match")
        return verifier


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note."""

    name: str
    key_hash: bytes
    signature: bytes


@dataclass(frozen=True)
class SignedNote:
    """A note split into its text and its (not yet verified) signatures."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def render(self) -> str:
        """The note as it is written: text, blank line, signature lines."""
        lines = "".join(
            f"{SIGNATURE_PREFIX}{s.name} "
            f"{base64.b64encode(s.key_hash + s.signature).decode('ascii')}\n"
            for s in self.signatures
        )
        return f"{self.text}\n{lines}"


def sign_note(text: str, name: str, signer: Signer) -> str:
    """Sign ``text`` (ending in a newline) as key ``name``; the whole signed note."""
    _check_text(text)
    verifier = NoteVerifier(name, signer.public_key)
    signature = signer.sign(text.encode("utf-8"))
    note = SignedNote(text, (NoteSignature(name, verifier.key_hash, signature),))
    return note.render()


def parse_note(message: str | bytes) -> SignedNote:
    """Split an untrusted signed note into text and signature lines (nothing verified)."""
    if isinstance(message, bytes):
        if len(message) > MAX_NOTE_BYTES:
            raise AttestationError("note too large")
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AttestationError("a note is UTF-8") from exc
    if len(message) > MAX_NOTE_BYTES:
        raise AttestationError("note too large")
    split = message.rfind("\n\n")
    if split < 0 or not message.endswith("\n"):
        raise AttestationError("a signed note is text, a blank line and signature lines")
    text, block = message[: split + 1], message[split + 2 :]
    _check_text(text)
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise AttestationError(f"more than {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise AttestationError(f"malformed signature line {line[:80]!r}")
        name, _, blob_b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
        _check_key_name(name)
        blob = b64decode_std(blob_b64, "note signature")
        if len(blob) < 5:
            raise AttestationError("a note signature is a key hash and a signature")
        signatures.append(NoteSignature(name, blob[:4], blob[4:]))
    return SignedNote(text, tuple(signatures))


def verify_note(message: str | bytes, verifiers: Sequence[NoteVerifier]) -> tuple[str, str]:
    """Verify a signed note; its text and the name of the first key that signed it.

    Signatures by unknown keys are ignored; a signature that names a known key and
    does not verify rejects the whole note.

    Raises:
        VerificationError: no known key signed it, or a known key's signature is bad.
    """
    note = parse_note(message)
    known = {(v.name, v.key_hash): v for v in verifiers}
    body = note.text.encode("utf-8")
    signed_by: list[str] = []
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_hash))
        if verifier is None:
            continue
        if len(sig.signature) != _ED25519_SIGNATURE or not verifier.public_key.verify(
            sig.signature, body
        ):
            raise VerificationError(f"the signature of {sig.name} on this note is invalid")
        signed_by.append(sig.name)
    if not signed_by:
        raise VerificationError("no trusted key signed this note")
    return note.text, signed_by[0]


def sign_checkpoint(checkpoint: Checkpoint, name: str, signer: Signer) -> str:
    """The checkpoint as a signed note, signed by ``signer`` as key ``name``."""
    return sign_note(checkpoint.body(), name, signer)


def verify_checkpoint(
    message: str | bytes, verifiers: Sequence[NoteVerifier], *, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint and parse it; ``origin``, if given, must match.

    Raises:
        VerificationError: bad or missing signature, or another log's checkpoint.
    """
    text, _ = verify_note(message, verifiers)
    checkpoint = Checkpoint.parse(text)
    if origin is not None and checkpoint.origin != origin:
        raise VerificationError(f"checkpoint of log {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


def b64decode_std(text: str, what: str) -> bytes:
    """Strict standard base64 with padding (notes do not use the URL-safe alphabet)."""
    if "-" in text or "_" in text or len(text) % 4:
        raise AttestationError(f"{what} is not standard base64")
    return b64decode(text, what)


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise AttestationError("note text ends with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text) or "\x7f" in text:
        raise AttestationError("note text has control characters")


def _check_line(line: str, what: str) -> None:
    if not line or "\n" in line or any(ord(c) < 0x20 or c == "\x7f" for c in line):
        raise AttestationError(f"{what} must be a non-empty single line")


def _check_key_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() or ord(c) < 0x20 for c in name):
        raise AttestationError(f"key name {name!r} is empty or has '+' or spaces")
