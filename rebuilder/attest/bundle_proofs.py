"""The log proof that travels beside an exported bundle, and its offline check.

``rebuilder export`` writes, next to every ``rebuild.intoto.jsonl``, a
``rebuild.intoto.jsonl.log.json``: the log's origin, one signed checkpoint, and for
each envelope line of the bundle (in order) its inclusion proof at that checkpoint's
tree size. ``rebuilder verify`` checks it with nothing but the files and a trusted key.

Everything read here is untrusted: the JSON is checked field by field, every line of
the bundle must have its proof, and the checkpoint counts only once its signature
verifies with a trusted key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rebuilder.attest.checkpoint import (
    Checkpoint,
    NoteVerifier,
    note_key_hash,
    parse_note,
    verify_checkpoint,
)
from rebuilder.attest.errors import AttestationError, VerificationError
from rebuilder.attest.keys import KeyAlgorithm, PublicKey
from rebuilder.attest.log_proofs import (
    INCLUSION_PROOF_FORMAT,
    InclusionProof,
    entry_leaf_hash,
    verify_inclusion_proof,
)

logger = logging.getLogger(__name__)

BUNDLE_PROOF_FORMAT = "https://pypi-rebuilder.dev/log/bundle-proof/v1"
"""The ``format`` field of a bundle's proof file."""

PROOF_SUFFIX = ".log.json"
"""The proof file of ``X/rebuild.intoto.jsonl`` is ``X/rebuild.intoto.jsonl.log.json``."""

MAX_BUNDLE_PROOF_BYTES = 16 * 1024 * 1024
MAX_BUNDLE_LINES = 10_000


@dataclass(frozen=True)
class BundleProof:
    """A checkpoint and, for each line of one bundle in order, its inclusion proof."""

    origin: str
    checkpoint: str
    proofs: tuple[InclusionProof, ...]

    def __post_init__(self) -> None:
        if not self.proofs:
            raise AttestationError("a bundle proof proves at least one line")
        if len(self.proofs) > MAX_BUNDLE_LINES:
            raise AttestationError(f"a bundle proof proves at most {MAX_BUNDLE_LINES} lines")
        sizes = {p.tree_size for p in self.proofs}
        origins = {p.origin for p in self.proofs}
        if len(sizes) != 1 or origins != {self.origin}:
            raise AttestationError("every line is proven in the same log at the same size")

    @property
    def tree_size(self) -> int:
        return self.proofs[0].tree_size

    def to_json(self) -> dict[str, Any]:
        """The proof file as a JSON object."""
        return {
            "format": BUNDLE_PROOF_FORMAT,
            "origin": self.origin,
            "treeSize": self.tree_size,
            "checkpoint": self.checkpoint,
            "entries": [
                {
                    "line": number,
                    "logIndex": p.index,
                    "leafHash": p.leaf_hash.hex(),
                    "hashes": [h.hex() for h in p.hashes],
                }
                for number, p in enumerate(self.proofs, start=1)
            ],
        }

    def dumps(self) -> str:
        """Indented JSON with sorted keys and a final newline (people read these)."""
        return json.dumps(self.to_json(), sort_keys=True, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> BundleProof:
        """Parse an untrusted proof file (nothing is verified yet).

        Raises:
            AttestationError: it is not a well-formed bundle proof.
        """
        doc = _load(data)
        origin, checkpoint, size = doc["origin"], doc["checkpoint"], doc["treeSize"]
        if not isinstance(origin, str) or not isinstance(checkpoint, str):
            raise AttestationError("bundle proof fields 'origin' and 'checkpoint' are strings")
        entries = doc["entries"]
        if not isinstance(entries, list):
            raise AttestationError("bundle proof field 'entries' is a list")
        if len(entries) > MAX_BUNDLE_LINES:
            raise AttestationError(f"a bundle proof proves at most {MAX_BUNDLE_LINES} lines")
        proofs = []
        for number, entry in enumerate(entries, start=1):
            if not isinstance(entry, Mapping):
                raise AttestationError(f"bundle proof entry {number} is an object")
            if entry.get("line") != number:
                raise AttestationError(f"bundle proof entry {number} is out of order")
            inclusion = {
                "format": INCLUSION_PROOF_FORMAT,
                "origin": origin,
                "treeSize": size,
                **{k: entry[k] for k in ("logIndex", "leafHash", "hashes") if k in entry},
            }
            try:
                proofs.append(InclusionProof.from_json(inclusion))
            except AttestationError as exc:
                raise AttestationError(f"bundle proof entry {number}: {exc}") from exc
        return cls(origin=origin, checkpoint=checkpoint, proofs=tuple(proofs))

    def proves(self, lines: Sequence[bytes | str]) -> bool:
        """Whether this proof names exactly these lines (by leaf hash; nothing verified)."""
        if len(lines) != len(self.proofs):
            return False
        return all(
            entry_leaf_hash(line) == p.leaf_hash for line, p in zip(lines, self.proofs, strict=True)
        )


def bundle_lines(data: bytes) -> list[bytes]:
    """The envelope lines of a bundle file's bytes, as they were logged (blank lines out)."""
    return [line for line in data.split(b"\n") if line.strip()]


def verify_bundle_proof(
    lines: Sequence[bytes | str],
    proof: BundleProof,
    verifiers: Sequence[NoteVerifier],
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Check that every line of a bundle is in the log state a trusted key signed.

    Returns:
        The verified checkpoint all lines are included in.

    Raises:
        VerificationError: a line is missing a proof or has an extra one, the
            checkpoint is not signed by a trusted key, or a proof does not lead to its
            root.
    """
    if len(lines) != len(proof.proofs):
        raise VerificationError(
            f"the bundle has {len(lines)} lines and its log proof proves {len(proof.proofs)}"
        )
    if origin is not None and proof.origin != origin:
        raise VerificationError(f"proof of log {proof.origin!r}, not {origin!r}")
    head = verify_checkpoint(proof.checkpoint, verifiers, origin=proof.origin)
    for number, (line, inclusion) in enumerate(zip(lines, proof.proofs, strict=True), start=1):
        try:
            verify_inclusion_proof(line, inclusion, proof.checkpoint, verifiers, origin=head.origin)
        except VerificationError as exc:
            raise VerificationError(f"bundle line {number}: {exc}") from exc
    logger.debug("%d lines verified in %s at size %d", len(lines), head.origin, head.size)
    return head


def verifiers_for_note(note: str, keys: Iterable[PublicKey]) -> list[NoteVerifier]:
    """Note verifiers for the trusted ``keys`` under the names that signed ``note``.

    A note signature names its key; trusting a public key means trusting it under
    whatever name it signs with (the key hash binds the name to the key). Only Ed25519
    keys can sign notes; others are left out.

    Raises:
        AttestationError: the note is malformed.
    """
    names = {(s.name, s.key_hash) for s in parse_note(note).signatures}
    ed25519 = [k for k in keys if k.algorithm is KeyAlgorithm.ED25519]
    return [
        NoteVerifier(name, key)
        for name, key_hash in sorted(names)
        for key in ed25519
        if note_key_hash(name, key) == key_hash
    ]


def _load(data: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(data, str | bytes):
        if len(data) > MAX_BUNDLE_PROOF_BYTES:
            raise AttestationError("bundle proof too large")
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise AttestationError(f"a bundle proof is a JSON object: {exc}") from exc
    if not isinstance(data, Mapping):
        raise AttestationError("a bundle proof is a JSON object")
    if data.get("format") != BUNDLE_PROOF_FORMAT:
        raise AttestationError(f"not a bundle proof of format {BUNDLE_PROOF_FORMAT}")
    missing = [k for k in ("origin", "treeSize", "checkpoint", "entries") if k not in data]
    if missing:
        raise AttestationError(f"bundle proof lacks {', '.join(missing)}")
    return data
