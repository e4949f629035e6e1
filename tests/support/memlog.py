"""A transparency log in memory, for unit tests of what reads the log (export, verify).

It signs checkpoints like :class:`rebuilder.store.log.TransparencyLog` and serves the
same proofs, computed by the same Merkle code over an in-memory leaf store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rebuilder.attest.checkpoint import Checkpoint, sign_checkpoint
from rebuilder.attest.keys import Signer
from rebuilder.attest.log_proofs import InclusionProof, entry_bytes, entry_leaf_hash
from rebuilder.attest.merkle import MemoryLeafStore, MerkleTree
from rebuilder.export import FileBundle
from rebuilder.store.log import StoredCheckpoint


@dataclass
class MemoryLog:
    """One origin's entries and checkpoints; also an ``ExportSource`` of its bundles."""

    origin: str
    entries: list[bytes] = field(default_factory=list)
    checkpoints: list[StoredCheckpoint] = field(default_factory=list)
    files: dict[str, FileBundle] = field(default_factory=dict)
    proofs_served: int = 0
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def _tree(self) -> MerkleTree:
        return MerkleTree(MemoryLeafStore(entry_leaf_hash(e) for e in self.entries))

    def size(self) -> int:
        return len(self.entries)

    def add_file(self, project: str, version: str, filename: str, lines: Sequence[str]) -> None:
        """Log a file's bundle lines and make them its latest bundle."""
        indexes = []
        for line in lines:
            self.entries.append(entry_bytes(line))
            indexes.append(len(self.entries) - 1)
        self.files[filename] = FileBundle(
            project,
            version,
            filename,
            self.origin,
            tuple(entry_bytes(line) for line in lines),
            tuple(indexes),
        )

    def checkpoint(self, signer: Signer, name: str, *, at: datetime | None = None) -> str:
        size = len(self.entries)
        head = Checkpoint(self.origin, size, self._tree().root(size))
        note = sign_checkpoint(head, name, signer)
        self.checkpoints.append(
            StoredCheckpoint(self.origin, size, head.root_hash, name, note, at or self.clock())
        )
        return note

    def latest_checkpoint(self, origin: str | None = None) -> StoredCheckpoint | None:
        assert origin in (None, self.origin)
        return max(self.checkpoints, key=lambda c: c.tree_size, default=None)

    # ExportSource
    def count(self, projects: Sequence[str]) -> int:
        return sum(1 for _ in self.bundles(projects))

    def bundles(self, projects: Sequence[str]) -> Iterator[FileBundle]:
        for name in sorted(self.files):
            bundle = self.files[name]
            if not projects or bundle.project in projects:
                yield bundle

    def inclusion_proof(self, origin: str, index: int, tree_size: int) -> InclusionProof:
        assert origin == self.origin
        self.proofs_served += 1
        return InclusionProof(
            origin,
            index,
            tree_size,
            entry_leaf_hash(self.entries[index]),
            tuple(self._tree().inclusion_proof(index, tree_size)),
        )
