"""Export every file's latest bundle, with its log proof, as static files.

Layout under the export folder (what ``rebuilder verify --attestations DIR`` reads)::

    pypi/{project}/{version}/{filename}/rebuild.intoto.jsonl           the envelope lines
    pypi/{project}/{version}/{filename}/rebuild.intoto.jsonl.log.json  their log proof
    log/checkpoint    the latest signed checkpoint (C2SP signed note)
    log/key           the log's note verifier key (``name+hash+base64``)
    log/key.pem       the same public key as PEM (``rebuilder verify --key``)

Bundle lines are written exactly as they were logged, byte for byte, so their leaf
hashes are the logged ones. The export is incremental: a file whose bundle is unchanged
and whose proof file already proves these very lines is left alone (an older proof
stays valid: it carries the signed checkpoint it was made against). Every file is
written atomically (a temporary file, fsync, rename) and no symbolic link below the
export folder is followed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import groupby
from pathlib import Path
from typing import Any, Protocol

from rebuilder.attest.bundle import bundle_path
from rebuilder.attest.bundle_proofs import PROOF_SUFFIX, BundleProof
from rebuilder.attest.errors import AttestationError
from rebuilder.attest.log_proofs import InclusionProof
from rebuilder.attest.merkle import MemoryLeafStore, MerkleTree
from rebuilder.errors import RebuilderError
from rebuilder.store.log import (
    LogError,
    LogIntegrityError,
    PostgresLeafStore,
    StoredCheckpoint,
    TransparencyLog,
)

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "log/checkpoint"
KEY_FILE = "log/key"
KEY_PEM_FILE = "log/key.pem"


class ExportError(RebuilderError):
    """The export could not be written or its source could not be read."""


@dataclass(frozen=True)
class FileBundle:
    """One file's latest bundle: the logged envelope lines and where they are in the log."""

    project: str
    version: str
    filename: str
    origin: str
    lines: tuple[bytes, ...]
    leaf_indexes: tuple[int, ...]

    def data(self) -> bytes:
        """The bundle file's bytes: one line each, each ending in a newline."""
        return b"".join(line + b"\n" for line in self.lines)


class ExportSource(Protocol):
    """Where bundles and proofs come from (:class:`PostgresExportSource`)."""

    def count(self, projects: Sequence[str]) -> int:
        """How many files have a bundle (of these projects; all when empty)."""
        ...

    def bundles(self, projects: Sequence[str]) -> Iterator[FileBundle]:
        """Every file's latest bundle (of these projects; all when empty)."""
        ...

    def latest_checkpoint(self, origin: str) -> StoredCheckpoint | None: ...

    def inclusion_proof(self, origin: str, index: int, tree_size: int) -> InclusionProof: ...


class Outcome(StrEnum):
    """What the export did with one file."""

    WRITTEN = "written"
    UNCHANGED = "unchanged"
    UNPROVEN = "unproven"  # written, but no checkpoint covers its lines yet
    SKIPPED = "skipped"  # a name that cannot be a path (refused by the index client)


@dataclass
class ExportReport:
    """Counts of what one export did."""

    written: int = 0
    unchanged: int = 0
    unproven: int = 0
    skipped: int = 0
    checkpoint: StoredCheckpoint | None = None
    files: list[str] = field(default_factory=list)

    def add(self, bundle: FileBundle, outcome: Outcome) -> None:
        if outcome is Outcome.SKIPPED:
            self.skipped += 1
            return
        if outcome is Outcome.UNCHANGED:
            self.unchanged += 1
        else:
            self.written += 1
            self.files.append(bundle.filename)
        if outcome is Outcome.UNPROVEN:
            self.unproven += 1


@dataclass(frozen=True)
class LogKey:
    """The log's public key as consumers get it."""

    vkey: str  # NoteVerifier.vkey()
    pem: str


def export(
    source: ExportSource,
    root: Path,
    *,
    origin: str,
    key: LogKey | None = None,
    projects: Sequence[str] = (),
    progress: Callable[[FileBundle, Outcome], None] | None = None,
) -> ExportReport:
    """Write every file's latest bundle and log proof under ``root``; what was done.

    ``origin`` is the log whose latest checkpoint is published as ``log/checkpoint``;
    bundles logged elsewhere are proven against their own log's latest checkpoint.

    Raises:
        ExportError: a file could not be written, or a bundle has lines of two logs.
        LogError: the log could not be read.
    """
    root.mkdir(parents=True, exist_ok=True)
    report = ExportReport()
    heads: dict[str, StoredCheckpoint | None] = {}
    for bundle in source.bundles(projects):
        if bundle.origin not in heads:
            heads[bundle.origin] = source.latest_checkpoint(bundle.origin)
        outcome = _export_one(source, root, bundle, heads[bundle.origin])
        report.add(bundle, outcome)
        if progress is not None:
            progress(bundle, outcome)
    head = heads[origin] if origin in heads else source.latest_checkpoint(origin)
    report.checkpoint = head
    if head is not None:
        write_atomic(root, CHECKPOINT_FILE, head.note.encode("utf-8"))
    if key is not None:
        write_atomic(root, KEY_FILE, f"{key.vkey}\n".encode())
        write_atomic(root, KEY_PEM_FILE, key.pem.encode("ascii"))
    logger.info(
        "exported to %s: %d written, %d unchanged, %d without proof, %d skipped",
        root,
        report.written,
        report.unchanged,
        report.unproven,
        report.skipped,
    )
    return report


def _export_one(
    source: ExportSource, root: Path, bundle: FileBundle, head: StoredCheckpoint | None
) -> Outcome:
    try:
        relative = bundle_path(bundle.project, bundle.version, bundle.filename)
    except AttestationError as exc:
        # The index listed a file under an unsafe name; its `failed` statement stays in
        # the log (and the API), but no file of the export may be named after it.
        logger.warning("%r: not exported: %s", bundle.filename, exc)
        return Outcome.SKIPPED
    proof_relative = relative.with_name(relative.name + PROOF_SUFFIX)
    data = bundle.data()
    if _read_if_file(root / relative) == data and _proves(root / proof_relative, bundle):
        return Outcome.UNCHANGED
    proof = _proof(source, bundle, head)
    write_atomic(root, str(relative), data)
    if proof is None:
        # An older proof file would not match the new lines; a missing one reads as
        # "not checked" until the next export after a checkpoint.
        _remove(root / proof_relative)
        return Outcome.UNPROVEN
    write_atomic(root, str(proof_relative), proof.dumps().encode("utf-8"))
    return Outcome.WRITTEN


def _proof(
    source: ExportSource, bundle: FileBundle, head: StoredCheckpoint | None
) -> BundleProof | None:
    if head is None or max(bundle.leaf_indexes) >= head.tree_size:
        return None
    proofs = tuple(
        source.inclusion_proof(bundle.origin, index, head.tree_size)
        for index in bundle.leaf_indexes
    )
    return BundleProof(
        origin=bundle.origin,
        checkpoint=head.note,
        proofs=tuple(_without_note(p) for p in proofs),
    )


def _without_note(proof: InclusionProof) -> InclusionProof:
    return InclusionProof(
        proof.origin, proof.index, proof.tree_size, proof.leaf_hash, proof.hashes, None
    )


def _proves(path: Path, bundle: FileBundle) -> bool:
    data = _read_if_file(path)
    if data is None:
        return False
    try:
        proof = BundleProof.from_json(data)
    except AttestationError:
        return False
    return (
        proof.origin == bundle.origin
        and proof.proves(bundle.lines)
        and [p.index for p in proof.proofs] == list(bundle.leaf_indexes)
    )


def _read_if_file(path: Path) -> bytes | None:
    if path.is_symlink() or not path.is_file():
        return None
    return path.read_bytes()


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def write_atomic(root: Path, relative: str, data: bytes) -> Path:
    """Write ``root/relative`` atomically, never through a symbolic link; its path.

    Raises:
        ExportError: a symbolic link is in the way, or the write failed.
    """
    parts = Path(relative).parts
    if not parts or any(p in {"", ".", ".."} for p in parts) or Path(relative).is_absolute():
        raise ExportError(f"{relative!r} is not a relative path inside the export")
    current = root
    try:
        for part in parts[:-1]:
            current = current / part
            if current.is_symlink():
                raise ExportError(f"{current} is a symbolic link; refusing to write through it")
            current.mkdir(exist_ok=True)
        target = current / parts[-1]
        if target.is_symlink():
            raise ExportError(f"{target} is a symbolic link; refusing to replace it")
        fd, tmp = tempfile.mkstemp(dir=current, prefix=".export-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).chmod(0o644)
            Path(tmp).replace(target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ExportError(f"cannot write {root / relative}: {exc}") from exc
    return target


_BUNDLES = """
SELECT t.file_id, r.project, r.version, f.filename, t.log_origin, t.leaf_index, e.entry
FROM (
    SELECT file_id, max(attempt_id) AS attempt_id FROM attestations GROUP BY file_id
) latest
JOIN attestations t ON t.attempt_id = latest.attempt_id
JOIN files f ON f.id = latest.file_id
JOIN releases r ON r.id = f.release_id
JOIN log_entries e ON e.origin = t.log_origin AND e.leaf_index = t.leaf_index
WHERE cardinality(%(projects)s::text[]) = 0 OR r.project = ANY(%(projects)s::text[])
ORDER BY r.project, r.version, f.filename, t.file_id, t.position
"""
_COUNT = """
SELECT count(DISTINCT t.file_id) FROM attestations t
JOIN files f ON f.id = t.file_id
JOIN releases r ON r.id = f.release_id
WHERE cardinality(%(projects)s::text[]) = 0 OR r.project = ANY(%(projects)s::text[])
"""
_BATCH = 2000
_LEAF_BATCH = 100_000


class _MemoryTree(MerkleTree):
    """A Merkle tree that also hands out its leaf hashes."""

    def __init__(self, leaves: MemoryLeafStore) -> None:
        super().__init__(leaves)
        self._leaves = leaves

    def leaf_hash(self, index: int) -> bytes:
        return self._leaves.leaf_hashes(index, index + 1)[0]


class PostgresExportSource:
    """Bundles from the fleet's ``attestations`` and the transparency log in PostgreSQL.

    ``projects`` are matched as the fleet stores them (PEP 503 normalized names). Proofs
    come from an in-memory tree of the leaf hashes up to the checkpoint's size, read
    once per export (32 bytes a leaf) and checked against the signed root first: a few
    microseconds a proof instead of several queries.
    """

    def __init__(self, pool: Any) -> None:  # noqa: ANN401 - a psycopg_pool.ConnectionPool
        self._pool = pool
        self._logs: dict[str, TransparencyLog] = {}
        self._trees: dict[tuple[str, int], _MemoryTree] = {}

    def _log(self, origin: str) -> TransparencyLog:
        if origin not in self._logs:
            self._logs[origin] = TransparencyLog(self._pool, origin)
        return self._logs[origin]

    def count(self, projects: Sequence[str]) -> int:
        with self._pool.connection() as conn:
            row = conn.execute(_COUNT, {"projects": list(projects)}).fetchone()
        return 0 if row is None else int(row[0])

    def bundles(self, projects: Sequence[str]) -> Iterator[FileBundle]:
        with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(name="export_bundles") as cur,
        ):
            cur.itersize = _BATCH
            cur.execute(_BUNDLES, {"projects": list(projects)})
            for _, rows in groupby(cur, key=lambda row: row[0]):
                yield _file_bundle(list(rows))

    def latest_checkpoint(self, origin: str) -> StoredCheckpoint | None:
        return self._log(origin).latest_checkpoint()

    def inclusion_proof(self, origin: str, index: int, tree_size: int) -> InclusionProof:
        tree = self._tree(origin, tree_size)
        if not 0 <= index < tree_size:
            raise LogError(f"entry {index} is not in a tree of {tree_size} entries")
        leaf = tree.leaf_hash(index)
        path = tree.inclusion_proof(index, tree_size)
        return InclusionProof(origin, index, tree_size, leaf, tuple(path))

    def _tree(self, origin: str, tree_size: int) -> _MemoryTree:
        """The tree of the first ``tree_size`` leaves, checked against its checkpoint."""
        if (origin, tree_size) not in self._trees:
            stored = self._log(origin).checkpoint_at(tree_size)
            if stored is None:
                raise LogError(f"log {origin!r} has no checkpoint of size {tree_size}")
            leaves = PostgresLeafStore(self._pool, origin)
            memory = MemoryLeafStore()
            for start in range(0, tree_size, _LEAF_BATCH):
                for hashed in leaves.leaf_hashes(start, min(start + _LEAF_BATCH, tree_size)):
                    memory.append_leaf_hash(hashed)
            tree = _MemoryTree(memory)
            if tree.root(tree_size) != stored.root_hash:
                raise LogIntegrityError(
                    f"log {origin!r}: entries do not lead to the checkpoint of size {tree_size}"
                )
            self._trees[origin, tree_size] = tree
        return self._trees[origin, tree_size]


def _file_bundle(rows: list[tuple[Any, ...]]) -> FileBundle:
    _, project, version, filename, _, _, _ = rows[0]
    origins = {row[4] for row in rows}
    if len(origins) != 1:
        raise ExportError(f"{filename}: its bundle is in {len(origins)} logs")
    return FileBundle(
        project=project,
        version=version,
        filename=filename,
        origin=origins.pop(),
        lines=tuple(bytes(row[6]) for row in rows),
        leaf_indexes=tuple(int(row[5]) for row in rows),
    )
