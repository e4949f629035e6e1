"""The tamper-evident transparency log, stored in PostgreSQL.

Every envelope line the rebuilder signs becomes a leaf of an append-only RFC 6962
Merkle tree, one tree per *origin* (the log's name, as written in its checkpoints).
Tables are created by migration ``0100_transparency_log.sql``.

* Appends to one origin are serialized by the row lock on its ``log_heads`` row: the
  appending transaction increments ``tree_size`` (which locks the row until commit),
  takes the old size as the new entry's index and inserts the entry. Any number of
  workers and processes may append at once; indexes have no gaps and no duplicates,
  and a committed ``tree_size`` always covers committed entries only.
* Tree heads and proofs are computed by :class:`~rebuilder.attest.merkle.MerkleTree`
  over a :class:`PostgresLeafStore`, which reads leaf hashes (32 bytes each) in index
  ranges. The tree keeps the hashes of complete subtrees in memory, so one
  :class:`TransparencyLog` per process pays a pass over the leaves once, and later
  proofs cost a few queries.
* A checkpoint is a C2SP signed note of the tree head. Before signing one, the log
  checks that its entries still lead to the latest stored checkpoint, so it never signs
  a rewritten history.

Connections: pass a :class:`psycopg_pool.ConnectionPool` (shared by threads) or one
``psycopg.Connection`` (one thread). Connections must run at READ COMMITTED, the
PostgreSQL default; a connection given directly should be in autocommit mode, or the
append lock is held until the caller's own transaction ends.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import IsolationLevel
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from rebuilder.attest.checkpoint import (
    Checkpoint,
    NoteVerifier,
    parse_note,
    sign_checkpoint,
    verify_note,
)
from rebuilder.attest.errors import AttestationError
from rebuilder.attest.keys import Signer
from rebuilder.attest.log_proofs import (
    ConsistencyProof,
    InclusionProof,
    entry_bytes,
    entry_leaf_hash,
)
from rebuilder.attest.merkle import EMPTY_ROOT, HASH_SIZE, MemoryLeafStore, MerkleTree
from rebuilder.errors import RebuilderError

logger = logging.getLogger(__name__)

Connection = psycopg.Connection[TupleRow]
ConnectionSource = ConnectionPool[Connection] | Connection

_AUDIT_BATCH = 4096

_HEAD_SIZE = "SELECT tree_size FROM log_heads WHERE origin = %s"
_CREATE_HEAD = "INSERT INTO log_heads (origin) VALUES (%s) ON CONFLICT (origin) DO NOTHING"
_BUMP_HEAD = (
    "UPDATE log_heads SET tree_size = tree_size + 1 WHERE origin = %s RETURNING tree_size - 1"
)
_LOCK_HEAD = "SELECT tree_size, now() FROM log_heads WHERE origin = %s FOR UPDATE"
_SET_HEAD = "UPDATE log_heads SET tree_size = %s WHERE origin = %s"
_INSERT_ENTRY = (
    "INSERT INTO log_entries (origin, leaf_index, leaf_hash, entry) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (origin, leaf_hash) DO NOTHING RETURNING appended_at"
)
_COPY_ENTRIES = "COPY log_entries (origin, leaf_index, leaf_hash, entry) FROM STDIN"
_LEAF_HASHES = (
    "SELECT leaf_hash FROM log_entries "
    "WHERE origin = %s AND leaf_index >= %s AND leaf_index < %s ORDER BY leaf_index"
)
_ENTRY = "SELECT leaf_hash, entry FROM log_entries WHERE origin = %s AND leaf_index = %s"
_FIND = "SELECT leaf_index, appended_at FROM log_entries WHERE origin = %s AND leaf_hash = %s"
_FIND_MANY = (
    "SELECT leaf_hash, leaf_index, appended_at FROM log_entries "
    "WHERE origin = %s AND leaf_hash = ANY(%s)"
)
_AUDIT_ENTRIES = (
    "SELECT leaf_index, leaf_hash, entry FROM log_entries "
    "WHERE origin = %s AND leaf_index < %s ORDER BY leaf_index"
)
_CHECKPOINT_COLUMNS = "SELECT tree_size, root_hash, key_name, note, created_at FROM log_checkpoints"
_LATEST_CHECKPOINT = (
    f"{_CHECKPOINT_COLUMNS} WHERE origin = %s ORDER BY tree_size DESC, id DESC LIMIT 1"
)
_CHECKPOINT_AT = (
    f"{_CHECKPOINT_COLUMNS} WHERE origin = %s AND tree_size = %s ORDER BY id DESC LIMIT 1"
)
_ALL_CHECKPOINTS = f"{_CHECKPOINT_COLUMNS} WHERE origin = %s ORDER BY tree_size, id"
_INSERT_CHECKPOINT = (
    "INSERT INTO log_checkpoints (origin, tree_size, root_hash, key_name, note) "
    "VALUES (%s, %s, %s, %s, %s) RETURNING created_at"
)


class LogError(RebuilderError):
    """The transparency log refused an operation or could not reach its database."""


class LogIntegrityError(LogError):
    """The stored log contradicts itself or a checkpoint it signed: it was altered."""


@dataclass(frozen=True)
class LogEntry:
    """Where an entry sits in the log: its index and RFC 6962 leaf hash."""

    index: int
    leaf_hash: bytes
    appended_at: datetime


@dataclass(frozen=True)
class StoredCheckpoint:
    """A signed checkpoint as the log keeps it; ``note`` is what clients verify."""

    origin: str
    tree_size: int
    root_hash: bytes
    key_name: str
    note: str
    created_at: datetime


class PostgresLeafStore:
    """The :class:`~rebuilder.attest.merkle.LeafStore` of one origin, in ``log_entries``."""

    def __init__(self, connections: ConnectionSource, origin: str) -> None:
        self._connections = connections
        self._origin = origin

    def size(self) -> int:
        """The committed number of leaves (0 for a log that has none yet)."""
        with _borrow(self._connections, self._origin) as conn:
            return _head_size(conn, self._origin)

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        """The leaf hashes of ``[start, end)``; a missing one is an integrity error."""
        if not 0 <= start <= end:
            raise LogError(f"leaf range [{start}, {end}) is invalid")
        with _borrow(self._connections, self._origin) as conn:
            rows = conn.execute(_LEAF_HASHES, (self._origin, start, end)).fetchall()
        # (origin, leaf_index) is the primary key, so n rows in a range of n are all of it.
        if len(rows) != end - start:
            raise LogIntegrityError(
                f"log {self._origin!r}: {end - start - len(rows)} entries missing "
                f"in [{start}, {end})"
            )
        return [bytes(row[0]) for row in rows]


class TransparencyLog:
    """The append-only Merkle log of one origin: appends, checkpoints and proofs.

    ``origin`` names the log in its checkpoints (for example ``rebuilder.example/log``).
    One instance can be shared by threads when ``connections`` is a pool.
    """

    def __init__(
        self, connections: ConnectionSource, origin: str, *, cache_min_size: int = 64
    ) -> None:
        try:
            Checkpoint(origin, 0, EMPTY_ROOT)
        except AttestationError as exc:
            raise LogError(f"unusable log origin {origin!r}: {exc}") from exc
        self._connections = connections
        self._origin = origin
        self._store = PostgresLeafStore(connections, origin)
        self._tree = MerkleTree(self._store, cache_min_size=cache_min_size)

    @property
    def origin(self) -> str:
        """The log's name, the first line of its checkpoints."""
        return self._origin

    def size(self) -> int:
        """The number of entries committed so far."""
        return self._store.size()

    def append(self, entry: bytes | str) -> LogEntry:
        """Append one envelope line; where it now is in the log.

        Appending bytes that are already logged returns their existing entry and adds
        nothing, so a retried worker cannot log the same envelope twice.

        Raises:
            LogError: the entry is malformed or the database failed.
        """
        data = _checked_entry(entry)
        hashed = entry_leaf_hash(data)
        with _borrow(self._connections, self._origin) as conn:
            with conn.transaction() as tx:
                index = _bump_head(conn, self._origin)
                row = _one(conn, _INSERT_ENTRY, (self._origin, index, hashed, data))
                if row is not None:
                    logger.debug("log %s: appended entry %d", self._origin, index)
                    return LogEntry(index, hashed, row[0])
                # Already logged: undo the size increment along with the transaction.
                raise psycopg.Rollback(tx)
            existing = _find(conn, self._origin, hashed)
        if existing is None:
            raise LogError(f"log {self._origin!r}: an entry vanished while appending")
        logger.debug("log %s: entry already logged at %d", self._origin, existing.index)
        return existing

    def append_many(self, entries: Iterable[bytes | str]) -> list[LogEntry]:
        """Append envelope lines in one transaction, in order; their entries, in order.

        Lines already in the log (or repeated in ``entries``) map to their first entry.
        Meant for batches up to some ten thousand lines.

        Raises:
            LogError: an entry is malformed or the database failed.
        """
        datas = [_checked_entry(e) for e in entries]
        hashes = [entry_leaf_hash(d) for d in datas]
        if not datas:
            return []
        with _borrow(self._connections, self._origin) as conn, conn.transaction():
            size, now = _lock_head(conn, self._origin)
            found: dict[bytes, LogEntry] = {
                bytes(h): LogEntry(i, bytes(h), t)
                for h, i, t in conn.execute(_FIND_MANY, (self._origin, hashes)).fetchall()
            }
            start = size
            with conn.cursor() as cur, cur.copy(_COPY_ENTRIES) as copy:
                for data, hashed in zip(datas, hashes, strict=True):
                    if hashed in found:
                        continue
                    copy.write_row((self._origin, size, hashed, data))
                    found[hashed] = LogEntry(size, hashed, now)
                    size += 1
            if size != start:
                conn.execute(_SET_HEAD, (size, self._origin))
        logger.debug("log %s: appended %d entries at %d", self._origin, size - start, start)
        return [found[h] for h in hashes]

    def entry(self, index: int) -> bytes:
        """The envelope line at ``index``, checked against its stored leaf hash.

        Raises:
            LogError: no such entry.
            LogIntegrityError: the stored bytes do not match their leaf hash.
        """
        with _borrow(self._connections, self._origin) as conn:
            row = _one(conn, _ENTRY, (self._origin, index))
        if row is None:
            raise LogError(f"log {self._origin!r} has no entry {index}")
        stored_hash, data = bytes(row[0]), bytes(row[1])
        if entry_leaf_hash(data) != stored_hash:
            raise LogIntegrityError(f"log {self._origin!r}: entry {index} was altered")
        return data

    def find(self, entry: bytes | str) -> LogEntry | None:
        """The entry holding this envelope line, if it was logged."""
        return self.find_by_leaf_hash(entry_leaf_hash(_checked_entry(entry)))

    def find_by_leaf_hash(self, hashed: bytes) -> LogEntry | None:
        """The entry with this RFC 6962 leaf hash, if any."""
        if len(hashed) != HASH_SIZE:
            raise LogError("a leaf hash is 32 bytes")
        with _borrow(self._connections, self._origin) as conn:
            return _find(conn, self._origin, hashed)

    def root(self, tree_size: int | None = None) -> bytes:
        """The root hash of the first ``tree_size`` entries (default: all committed)."""
        size = self.size() if tree_size is None else tree_size
        self._check_size(size)
        return self._tree.root(size)

    def checkpoint(self, signer: Signer, name: str) -> str:
        """Sign the current tree head as key ``name`` and store it; the signed note.

        When nothing was appended since the latest checkpoint signed by this key, that
        checkpoint is returned instead of a new one.

        Raises:
            LogIntegrityError: the entries no longer lead to the latest checkpoint
                (the log was rewritten): nothing is signed.
            LogError: the key cannot sign notes, or the database failed.
        """
        try:
            verifier = NoteVerifier(name, signer.public_key)
        except AttestationError as exc:
            raise LogError(f"cannot sign checkpoints with this key: {exc}") from exc
        # Previous first: a checkpoint stored meanwhile by another process can then
        # never be larger than the size read after it.
        previous = self.latest_checkpoint()
        size = self.size()
        if previous is not None:
            signed_by_us = self._check_extends(previous, size, verifier)
            if previous.tree_size == size and signed_by_us:
                return previous.note
        head = Checkpoint(self._origin, size, self._tree.root(size))
        note = sign_checkpoint(head, name, signer)
        with _borrow(self._connections, self._origin) as conn, conn.transaction():
            conn.execute(_CREATE_HEAD, (self._origin,))
            conn.execute(_INSERT_CHECKPOINT, (self._origin, size, head.root_hash, name, note))
        logger.info("log %s: signed checkpoint at size %d as %s", self._origin, size, name)
        return note

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The stored checkpoint of the largest tree size, if any."""
        with _borrow(self._connections, self._origin) as conn:
            row = _one(conn, _LATEST_CHECKPOINT, (self._origin,))
        return None if row is None else self._stored_checkpoint(row)

    def checkpoint_at(self, tree_size: int) -> StoredCheckpoint | None:
        """The latest stored checkpoint of exactly ``tree_size`` entries, if any."""
        with _borrow(self._connections, self._origin) as conn:
            row = _one(conn, _CHECKPOINT_AT, (self._origin, tree_size))
        return None if row is None else self._stored_checkpoint(row)

    def inclusion_proof(self, index: int, tree_size: int) -> InclusionProof:
        """The proof that entry ``index`` is in the tree of ``tree_size`` entries.

        The proof carries the stored checkpoint of that size when there is one.

        Raises:
            LogError: the index or size is outside the log.
            LogIntegrityError: an entry below ``tree_size`` is missing.
        """
        self._check_size(tree_size)
        if not 0 <= index < tree_size:
            raise LogError(f"entry {index} is not in a tree of {tree_size} entries")
        hashed = self._store.leaf_hashes(index, index + 1)[0]
        path = self._tree.inclusion_proof(index, tree_size)
        stored = self.checkpoint_at(tree_size)
        return InclusionProof(
            origin=self._origin,
            index=index,
            tree_size=tree_size,
            leaf_hash=hashed,
            hashes=tuple(path),
            checkpoint=None if stored is None else stored.note,
        )

    def inclusion_proof_for(
        self, entry: bytes | str, tree_size: int | None = None
    ) -> InclusionProof:
        """The inclusion proof of an envelope line, by default at the latest checkpoint.

        Raises:
            LogError: the line is not logged, not in that tree, or there is no checkpoint.
        """
        found = self.find(entry)
        if found is None:
            raise LogError(f"this entry is not in log {self._origin!r}")
        if tree_size is None:
            latest = self.latest_checkpoint()
            if latest is None:
                raise LogError(f"log {self._origin!r} has no checkpoint yet")
            tree_size = latest.tree_size
        if found.index >= tree_size:
            raise LogError(f"entry {found.index} was appended after tree size {tree_size}")
        return self.inclusion_proof(found.index, tree_size)

    def consistency_proof(self, old_size: int, new_size: int) -> ConsistencyProof:
        """The proof that the tree of ``old_size`` entries is a prefix of ``new_size``.

        Raises:
            LogError: the sizes are outside the log or out of order.
        """
        self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise LogError(f"cannot prove size {old_size} consistent with {new_size}")
        path = self._tree.consistency_proof(old_size, new_size)
        return ConsistencyProof(self._origin, old_size, new_size, tuple(path))

    def audit(self) -> int:
        """Re-read every entry and check the whole stored log; the number of entries.

        Checks each entry's bytes against its leaf hash, that indexes run without a
        gap up to the head's size, and that every stored checkpoint's root (as signed
        in its note) is the root of a tree rebuilt from scratch, not from any cache.

        Raises:
            LogIntegrityError: any of it does not hold.
        """
        leaves = MemoryLeafStore()
        with _borrow(self._connections, self._origin) as conn, conn.transaction():
            # Checkpoints before the head: each statement sees a later state, and both
            # only grow, so every checkpoint read is covered by the size read after it.
            checkpoints = conn.execute(_ALL_CHECKPOINTS, (self._origin,)).fetchall()
            size = _head_size(conn, self._origin)
            with conn.cursor(name="log_audit") as cur:
                cur.itersize = _AUDIT_BATCH
                cur.execute(_AUDIT_ENTRIES, (self._origin, size))
                for expected, (index, stored_hash, data) in enumerate(cur):
                    if index != expected:
                        raise LogIntegrityError(f"log {self._origin!r}: entry {expected} missing")
                    if entry_leaf_hash(bytes(data)) != bytes(stored_hash):
                        raise LogIntegrityError(f"log {self._origin!r}: entry {index} was altered")
                    leaves.append_leaf_hash(bytes(stored_hash))
        if leaves.size() != size:
            raise LogIntegrityError(
                f"log {self._origin!r}: head says {size} entries, {leaves.size()} stored"
            )
        fresh = MerkleTree(leaves)
        for row in checkpoints:
            stored = self._stored_checkpoint(row)
            if stored.tree_size > size:
                raise LogIntegrityError(
                    f"log {self._origin!r}: checkpoint of size {stored.tree_size} "
                    f"beyond the {size} stored entries"
                )
            if fresh.root(stored.tree_size) != stored.root_hash:
                raise LogIntegrityError(
                    f"log {self._origin!r}: entries do not lead to the signed checkpoint "
                    f"of size {stored.tree_size}"
                )
        logger.info(
            "log %s: audited %d entries, %d checkpoints", self._origin, size, len(checkpoints)
        )
        return size

    def _check_size(self, tree_size: int) -> None:
        available = self.size()
        if not 0 <= tree_size <= available:
            raise LogError(f"tree size {tree_size} outside log {self._origin!r} of {available}")

    def _check_extends(self, previous: StoredCheckpoint, size: int, ours: NoteVerifier) -> bool:
        """Refuse to sign past a checkpoint the entries no longer lead to; True if ours."""
        note = parse_note(previous.note)
        signed_by_us = any(
            (s.name, s.key_hash) == (ours.name, ours.key_hash) for s in note.signatures
        )
        if signed_by_us:
            # Signed by this very key: a rewritten row cannot carry a valid signature.
            try:
                verify_note(previous.note, [ours])
            except AttestationError as exc:
                raise LogIntegrityError(
                    f"log {self._origin!r}: stored checkpoint {previous.tree_size} "
                    f"does not verify: {exc}"
                ) from exc
        if previous.tree_size > size:
            raise LogIntegrityError(
                f"log {self._origin!r} shrank from {previous.tree_size} to {size} entries"
            )
        if self._tree.root(previous.tree_size) != previous.root_hash:
            raise LogIntegrityError(
                f"log {self._origin!r}: entries no longer lead to the checkpoint of size "
                f"{previous.tree_size}; refusing to sign"
            )
        return signed_by_us

    def _stored_checkpoint(self, row: tuple[Any, ...]) -> StoredCheckpoint:
        tree_size, root_hash, key_name, note, created_at = row
        try:
            signed = Checkpoint.parse(parse_note(note).text)
        except AttestationError as exc:
            raise LogIntegrityError(f"log {self._origin!r}: unreadable checkpoint: {exc}") from exc
        if (signed.origin, signed.size, signed.root_hash) != (
            self._origin,
            tree_size,
            bytes(root_hash),
        ):
            raise LogIntegrityError(
                f"log {self._origin!r}: checkpoint row of size {tree_size} differs from its note"
            )
        return StoredCheckpoint(
            self._origin, signed.size, signed.root_hash, key_name, note, created_at
        )


def _checked_entry(entry: bytes | str) -> bytes:
    try:
        return entry_bytes(entry)
    except AttestationError as exc:
        raise LogError(str(exc)) from exc


@contextlib.contextmanager
def _borrow(connections: ConnectionSource, origin: str) -> Iterator[Connection]:
    """A connection for one operation; database failures become :class:`LogError`."""
    try:
        with (
            connections.connection()
            if isinstance(connections, ConnectionPool)
            else contextlib.nullcontext(connections)
        ) as conn:
            if conn.isolation_level not in (None, IsolationLevel.READ_COMMITTED):
                # Under stricter levels the append lock would fail instead of waiting.
                raise LogError("the transparency log needs READ COMMITTED connections")
            yield conn
    except psycopg.errors.UniqueViolation as exc:
        raise LogIntegrityError(f"log {origin!r}: head and entries disagree: {exc}") from exc
    except psycopg.Error as exc:
        raise LogError(f"log {origin!r}: database error: {exc}") from exc


def _one(conn: Connection, query: str, params: Sequence[object]) -> TupleRow | None:
    return conn.execute(query, params).fetchone()


def _head_size(conn: Connection, origin: str) -> int:
    row = _one(conn, _HEAD_SIZE, (origin,))
    return 0 if row is None else int(row[0])


def _bump_head(conn: Connection, origin: str) -> int:
    row = _one(conn, _BUMP_HEAD, (origin,))
    if row is None:
        conn.execute(_CREATE_HEAD, (origin,))
        row = _one(conn, _BUMP_HEAD, (origin,))
    if row is None:
        raise LogError(f"log {origin!r}: could not create its head row")
    return int(row[0])


def _lock_head(conn: Connection, origin: str) -> tuple[int, datetime]:
    row = _one(conn, _LOCK_HEAD, (origin,))
    if row is None:
        conn.execute(_CREATE_HEAD, (origin,))
        row = _one(conn, _LOCK_HEAD, (origin,))
    if row is None:
        raise LogError(f"log {origin!r}: could not create its head row")
    return int(row[0]), row[1]


def _find(conn: Connection, origin: str, hashed: bytes) -> LogEntry | None:
    row = _one(conn, _FIND, (origin, hashed))
    return None if row is None else LogEntry(int(row[0]), hashed, row[1])


_LATEST_BUNDLE = """
SELECT t.log_origin, t.leaf_index, e.entry, f.filename FROM attestations t
JOIN files f ON f.id = t.file_id
JOIN log_entries e ON e.origin = t.log_origin AND e.leaf_index = t.leaf_index
WHERE t.attempt_id = (
    SELECT max(a.attempt_id) FROM attestations a JOIN files g ON g.id = a.file_id
    WHERE g.sha256 = %s
)
ORDER BY t.position
"""


def latest_bundle_entries(conn: Connection, sha256: str) -> list[TupleRow]:
    """(origin, leaf index, entry, filename) of each logged statement of the latest
    attested attempt on the file of this sha256, in bundle order."""
    return conn.execute(_LATEST_BUNDLE, (sha256,)).fetchall()
