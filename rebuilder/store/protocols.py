"""What each consumer needs of the fleet's state: one small Protocol per consumer.

:class:`~rebuilder.store.repository.PostgresStore` implements them all on PostgreSQL and
:class:`~rebuilder.store.memory.MemoryStore` in memory;
``tests/integration/store/test_contract.py`` runs one suite against both. The operator's
commands (``rebuilder watch``, ``status``, ``health``) use the PostgreSQL store itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

from rebuilder.index.model import IndexFile
from rebuilder.store.outcomes import SignedStatement
from rebuilder.store.records import AttemptRow, FileRow, ProjectRow
from rebuilder.verdict import FileResult


class WebStore(Protocol):
    """What the web app writes, and the bundles it serves: watch list, requested rebuilds."""

    def watch_add(self, names: Iterable[str]) -> list[str]:
        """Watch these projects; the names newly added."""
        ...

    def file(self, file_id: int) -> FileRow | None:
        """One recorded file, None when unknown."""
        ...

    def request_attempt(self, file_id: int, priority: int) -> int | None:
        """Queue an attempt of a file; None when it already has one queued or running."""
        ...

    def mark_dispatched(self, attempt_ids: Sequence[int]) -> None:
        """Note that these attempts were handed to the broker."""
        ...

    def bundle_lines(self, file_id: int) -> list[str]:
        """The file's attestation bundle, one DSSE envelope a line."""
        ...


class SchedulerStore(Protocol):
    """What the scheduler's loop and the firehose use: discovery, dispatch, recovery."""

    def attempt(self, attempt_id: int) -> AttemptRow | None:
        """One attempt, whatever its status."""
        ...

    def watched(self, *, prefix: str = "") -> list[ProjectRow]:
        """The watched projects by name, optionally only those starting with ``prefix``."""
        ...

    def record_release(
        self,
        project: str,
        version: str,
        files: Sequence[IndexFile],
        *,
        cursor: tuple[str, str] | None = None,
    ) -> list[FileRow]:
        """Record a release and its files; the new files. Idempotent.

        ``cursor`` (name, value) is saved in the same transaction, so a poller that
        crashes resumes after the last release it recorded, never past one it did not.
        """
        ...

    def record_and_queue(
        self,
        project: str,
        version: str,
        files: Sequence[IndexFile],
        *,
        priority: int,
        cursor: tuple[str, str] | None = None,
    ) -> tuple[list[FileRow], list[int]]:
        """Record a release and queue its new wheels in ONE transaction; (new files, attempts).

        A crash after it leaves attempts queued but unsent, which the scheduler sends; a
        crash between recording and queueing can then not lose a rebuild.
        """
        ...

    def release_versions(self, project: str) -> set[str]:
        """The versions of ``project`` already recorded."""
        ...

    def mark_dispatched(self, attempt_ids: Sequence[int]) -> None:
        """Note that these attempts were handed to the broker."""
        ...

    def in_flight(self) -> int:
        """Queued attempts already handed to the broker."""
        ...

    def undispatched(self, older_than: timedelta, *, limit: int = 1000) -> list[tuple[int, int]]:
        """(id, priority) of queued attempts never sent, older than ``older_than``."""
        ...

    def requeue_stale(self, older_than: timedelta) -> list[int]:
        """Queue again the running attempts whose worker went silent; their ids."""
        ...

    def queue_depth(self) -> int:
        """How many attempts wait for a worker."""
        ...

    def get_cursor(self, name: str) -> str | None:
        """A poller's saved position."""
        ...

    def set_cursor(self, name: str, value: str) -> None:
        """Save a poller's position."""
        ...


class WorkerStore(Protocol):
    """What a worker's attempt runner uses: claim, beat, record, give back."""

    def file(self, file_id: int) -> FileRow | None:
        """One recorded file."""
        ...

    def attempt(self, attempt_id: int) -> AttemptRow | None:
        """One attempt, whatever its status."""
        ...

    def start_attempt(self, attempt_id: int, worker: str) -> AttemptRow | None:
        """Claim a queued attempt; None when it is not queued (a duplicate message)."""
        ...

    def heartbeat(self, attempt_id: int, worker: str) -> bool:
        """Keep a claim alive; False when ``worker`` no longer holds it."""
        ...

    def release_attempt(self, attempt_id: int, worker: str) -> bool:
        """Give back ``worker``'s claim: queued again and marked unsent."""
        ...

    def finish_attempt(
        self,
        attempt_id: int,
        result: FileResult,
        strategy_json: Mapping[str, Any] | None,
        image_digest: str | None,
        *,
        worker: str | None = None,
        evidence_manifest: Mapping[str, str] | None = None,
    ) -> bool:
        """Record the outcome once; False when the attempt already had one."""
        ...

    def record_outcome(
        self,
        attempt_id: int,
        result: FileResult,
        *,
        worker: str,
        strategy_json: Mapping[str, Any] | None,
        image_digest: str | None,
        evidence_manifest: Mapping[str, str] | None,
        statements: Sequence[SignedStatement],
        log_origin: str,
    ) -> bool:
        """Finish ``worker``'s attempt and log its signed statements, all or nothing."""
        ...

    def set_generator(self, file_id: int, generator: str) -> None:
        """Record the published wheel's WHEEL Generator line."""
        ...

    def worker_beat(self, name: str, current_attempt: int | None) -> None:
        """A worker is alive, on ``current_attempt``."""
        ...
