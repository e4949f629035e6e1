"""Proofs of the transparency log as they travel, and their offline checks.

The log service (:mod:`rebuilder.store.log`) serves an :class:`InclusionProof` for an
entry and a :class:`ConsistencyProof` between two tree sizes, as JSON. A consumer needs
nothing but this module, the envelope line, a signed checkpoint and the log's verifier
key: no database, no network. The JSON formats are described in
``docs/transparency-log.md``; hashes are lowercase hex.

Everything read here is untrusted: the JSON is checked field by field before use, and
a proof is accepted only against a checkpoint whose note signature verified.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rebuilder.attest.checkpoint import Checkpoint, NoteVerifier, verify_checkpoint
from rebuilder.attest.dsse import MAX_ENVELOPE_BYTES
from rebuilder.attest.errors import AttestationError, VerificationError
from rebuilder.attest.merkle import (
    HASH_SIZE,
    MAX_PROOF_LENGTH,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

logger = logging.getLogger(__name__)

INCLUSION_PROOF_FORMAT = "https://pypi-rebuilder.dev/log/inclusion-proof/v1"
"""The ``format`` field of an inclusion proof."""

CONSISTENCY_PROOF_FORMAT = "https://pypi-rebuilder.dev/log/consistency-proof/v1"
"""The ``format`` field of a consistency proof."""

MAX_ENTRY_BYTES = MAX_ENVELOPE_BYTES
"""The largest entry (envelope line) the log accepts."""

MAX_PROOF_JSON_BYTES = 2 * 1024 * 1024  # room for an embedded checkpoint note
_MAX_TREE_SIZE = 2**63 - 1  # a PostgreSQL bigint
_HEX_HASH = re.compile(r"[0-9a-f]{64}")


def entry_bytes(entry: bytes | str) -> bytes:
    """The leaf bytes of an entry: one envelope line, UTF-8, without its line break.

    Raises:
        AttestationError: the entry is empty, too large, not UTF-8, or spans lines.
    """
    data = entry.encode("utf-8") if isinstance(entry, str) else bytes(entry)
    if not data:
        raise AttestationError("a log entry is not empty")
    if len(data) > MAX_ENTRY_BYTES:
        raise AttestationError(f"a log entry is at most {MAX_ENTRY_BYTES} bytes")
    if b"\n" in data or b"\r" in data:
        raise AttestationError("a log entry is one line, without its line break")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AttestationError("a log entry is UTF-8") from exc
    return data


def entry_leaf_hash(entry: bytes | str) -> bytes:
    """The RFC 6962 leaf hash of an entry, ``SHA-256(0x00 || line)``.

    One trailing ``\\n`` (as read from a bundle file) is dropped first; a leaf never
    contains a line break, so this cannot make two different entries collide.
    """
    data = entry.encode("utf-8") if isinstance(entry, str) else bytes(entry)
    if data.endswith(b"\n"):
        data = data[:-1]
    return leaf_hash(entry_bytes(data))


@dataclass(frozen=True)
class InclusionProof:
    """That the entry with ``leaf_hash`` is leaf ``index`` of the tree of ``tree_size``.

    ``checkpoint``, when present, is the signed note of that tree size as the log
    served it; it is verified like any other note before it is believed.
    """

    origin: str
    index: int
    tree_size: int
    leaf_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        _check_origin(self.origin)
        _check_size(self.tree_size, "treeSize")
        if not 0 <= self.index < self.tree_size:
            raise AttestationError(f"leaf {self.index} is not in a tree of {self.tree_size}")
        _check_hashes((self.leaf_hash, *self.hashes))

    def to_json(self) -> dict[str, Any]:
        """The proof as a JSON object."""
        doc: dict[str, Any] = {
            "format": INCLUSION_PROOF_FORMAT,
            "origin": self.origin,
            "logIndex": self.index,
            "treeSize": self.tree_size,
            "leafHash": self.leaf_hash.hex(),
            "hashes": [h.hex() for h in self.hashes],
        }
        if self.checkpoint is not None:
            doc["checkpoint"] = self.checkpoint
        return doc

    def dumps(self) -> str:
        """Compact JSON with sorted keys."""
        return _dumps(self.to_json())

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> InclusionProof:
        """Parse an untrusted inclusion proof (nothing is verified yet)."""
        doc = _load(data, INCLUSION_PROOF_FORMAT, "logIndex", "treeSize", "leafHash")
        checkpoint = doc.get("checkpoint")
        if checkpoint is not None and not isinstance(checkpoint, str):
            raise AttestationError("proof field 'checkpoint' is a signed note string")
        return cls(
            origin=_str(doc, "origin"),
            index=_int(doc, "logIndex"),
            tree_size=_int(doc, "treeSize"),
            leaf_hash=_hex_hash(doc["leafHash"], "leafHash"),
            hashes=_hash_list(doc),
            checkpoint=checkpoint,
        )


@dataclass(frozen=True)
class ConsistencyProof:
    """That the tree of ``old_size`` leaves is a prefix of the tree of ``new_size``."""

    origin: str
    old_size: int
    new_size: int
    hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _check_origin(self.origin)
        _check_size(self.old_size, "oldSize")
        _check_size(self.new_size, "newSize")
        if self.old_size > self.new_size:
            raise AttestationError(f"tree size cannot go from {self.old_size} to {self.new_size}")
        _check_hashes(self.hashes)

    def to_json(self) -> dict[str, Any]:
        """The proof as a JSON object."""
        return {
            "format": CONSISTENCY_PROOF_FORMAT,
            "origin": self.origin,
            "oldSize": self.old_size,
            "newSize": self.new_size,
            "hashes": [h.hex() for h in self.hashes],
        }

    def dumps(self) -> str:
        """Compact JSON with sorted keys."""
        return _dumps(self.to_json())

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> ConsistencyProof:
        """Parse an untrusted consistency proof (nothing is verified yet)."""
        doc = _load(data, CONSISTENCY_PROOF_FORMAT, "oldSize", "newSize")
        return cls(
            origin=_str(doc, "origin"),
            old_size=_int(doc, "oldSize"),
            new_size=_int(doc, "newSize"),
            hashes=_hash_list(doc),
        )


def verify_inclusion_proof(
    entry: bytes | str,
    proof: InclusionProof,
    checkpoint: str | bytes | None,
    verifiers: Sequence[NoteVerifier],
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Check that ``entry`` is in the log state a trusted key signed.

    ``checkpoint`` is the signed note to check against; ``None`` uses the note carried
    in the proof (it must then still be signed by one of ``verifiers``). ``origin``, if
    given, pins the log. The proof must be for exactly the checkpoint's tree size: to
    trust a newer checkpoint than the one you hold, first check a consistency proof
    with :func:`verify_consistency_proof`.

    Returns:
        The verified checkpoint the entry is included in.

    Raises:
        VerificationError: anything does not check out.
        AttestationError: the entry or the note is malformed.
    """
    note = checkpoint if checkpoint is not None else proof.checkpoint
    if note is None:
        raise VerificationError("no checkpoint to check the inclusion proof against")
    head = verify_checkpoint(note, verifiers, origin=origin)
    if proof.origin != head.origin:
        raise VerificationError(f"proof of log {proof.origin!r}, checkpoint of {head.origin!r}")
    if proof.tree_size != head.size:
        raise VerificationError(
            f"proof for tree size {proof.tree_size}, checkpoint of tree size {head.size}"
        )
    hashed = entry_leaf_hash(entry)
    if hashed != proof.leaf_hash:
        raise VerificationError("the proof is for another entry than this one")
    verify_inclusion(hashed, proof.index, proof.tree_size, proof.hashes, head.root_hash)
    logger.debug("entry %d verified in %s at size %d", proof.index, head.origin, head.size)
    return head


def verify_consistency_proof(
    proof: ConsistencyProof,
    old_checkpoint: str | bytes,
    new_checkpoint: str | bytes,
    verifiers: Sequence[NoteVerifier],
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Check that the newer signed checkpoint extends the older one (no fork, no rewrite).

    Returns:
        The verified newer checkpoint, now as trustworthy as the older one.

    Raises:
        VerificationError: a signature, an origin, a size or the proof does not check out.
    """
    old = verify_checkpoint(old_checkpoint, verifiers, origin=origin)
    new = verify_checkpoint(new_checkpoint, verifiers, origin=old.origin)
    if proof.origin != old.origin:
        raise VerificationError(f"proof of log {proof.origin!r}, checkpoints of {old.origin!r}")
    if (proof.old_size, proof.new_size) != (old.size, new.size):
        raise VerificationError(
            f"proof from size {proof.old_size} to {proof.new_size}, "
            f"checkpoints of sizes {old.size} and {new.size}"
        )
    verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof.hashes)
    return new


def _dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _load(data: str | bytes | Mapping[str, Any], fmt: str, *required: str) -> Mapping[str, Any]:
    if isinstance(data, str | bytes):
        if len(data) > MAX_PROOF_JSON_BYTES:
            raise AttestationError("proof too large")
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise AttestationError(f"a proof is a JSON object: {exc}") from exc
    if not isinstance(data, Mapping):
        raise AttestationError("a proof is a JSON object")
    if data.get("format") != fmt:
        raise AttestationError(f"not a proof of format {fmt}")
    missing = [k for k in ("origin", *required, "hashes") if k not in data]
    if missing:
        raise AttestationError(f"proof lacks {', '.join(missing)}")
    return data


def _str(doc: Mapping[str, Any], key: str) -> str:
    value = doc[key]
    if not isinstance(value, str):
        raise AttestationError(f"proof field {key!r} is a string")
    return value


def _int(doc: Mapping[str, Any], key: str) -> int:
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise AttestationError(f"proof field {key!r} is an integer")
    return value


def _hex_hash(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not _HEX_HASH.fullmatch(value):
        raise AttestationError(f"{what} is 64 lowercase hex digits")
    return bytes.fromhex(value)


def _hash_list(doc: Mapping[str, Any]) -> tuple[bytes, ...]:
    value = doc["hashes"]
    if not isinstance(value, list):
        raise AttestationError("proof field 'hashes' is a list")
    if len(value) > MAX_PROOF_LENGTH:
        raise AttestationError("proof is longer than any tree allows")
    return tuple(_hex_hash(h, "a proof hash") for h in value)


def _check_origin(origin: str) -> None:
    if not origin or any(ord(c) < 0x20 or c == "\x7f" for c in origin):
        raise AttestationError("a log origin is a non-empty single line")


def _check_size(size: int, what: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= _MAX_TREE_SIZE:
        raise AttestationError(f"{what} {size!r} out of range")


def _check_hashes(hashes: Sequence[bytes]) -> None:
    if len(hashes) > MAX_PROOF_LENGTH + 1:
        raise AttestationError("proof is longer than any tree allows")
    if any(not isinstance(h, bytes) or len(h) != HASH_SIZE for h in hashes):
        raise AttestationError("every hash in a proof is 32 bytes")
