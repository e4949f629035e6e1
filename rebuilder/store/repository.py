"""The fleet's store (the Protocols of :mod:`rebuilder.store.protocols`) on PostgreSQL.

Each call borrows a connection for the length of one transaction. Code that must
combine several writes in one commit (a poller recording releases and moving its
cursor) can use the functions of ``projects``, ``attempts`` and ``cursors`` directly on
a connection of :meth:`PostgresStore.connection` inside ``conn.transaction()``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from rebuilder.index.model import IndexFile
from rebuilder.store import attempts, outcomes, projects, workers
from rebuilder.store import poll_cursors as cursors
from rebuilder.store.db import Connection, Pool, borrow
from rebuilder.store.outcomes import SignedStatement
from rebuilder.store.records import (
    AttemptRow,
    FileRow,
    ProjectRow,
    RunningRow,
    VerdictRow,
    judged_on_discovery,
)
from rebuilder.store.workers import WorkerRow
from rebuilder.verdict import FileResult, Verdict

logger = logging.getLogger(__name__)


class PostgresStore:
    """The fleet's state in PostgreSQL. Thread-safe (the pool hands out connections)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @contextmanager
    def connection(self, doing: str = "using the database") -> Iterator[Connection]:
        """A pooled connection (autocommit); psycopg errors become StoreError."""
        with borrow(self._pool, doing) as conn:
            yield conn

    def watch_add(self, names: Iterable[str]) -> list[str]:
        with self.connection("adding to the watch list") as conn:
            return projects.watch_add(conn, names)

    def watch_remove(self, names: Iterable[str]) -> list[str]:
        with self.connection("removing from the watch list") as conn:
            return projects.watch_remove(conn, names)

    def watched(self, *, prefix: str = "") -> list[ProjectRow]:
        with self.connection("reading the watch list") as conn:
            return projects.watched(conn, prefix=prefix)

    def record_release(
        self,
        project: str,
        version: str,
        files: Sequence[IndexFile],
        *,
        cursor: tuple[str, str] | None = None,
    ) -> list[FileRow]:
        with self.connection(f"recording {project} {version}") as conn, conn.transaction():
            new = projects.record_release(conn, project, version, files)
            if cursor is not None:
                cursors.set_cursor(conn, *cursor)
        return new

    def record_and_queue(
        self,
        project: str,
        version: str,
        files: Sequence[IndexFile],
        *,
        priority: int,
        cursor: tuple[str, str] | None = None,
    ) -> tuple[list[FileRow], list[int]]:
        doing = f"recording and queueing {project} {version}"
        with self.connection(doing) as conn, conn.transaction():
            new = projects.record_release(conn, project, version, files)
            wheels = judged_on_discovery(new)
            queued = attempts.request_attempts_bulk(conn, wheels, priority)
            if cursor is not None:
                cursors.set_cursor(conn, *cursor)
        return new, queued

    def release_versions(self, project: str) -> set[str]:
        with self.connection(f"reading the releases of {project}") as conn:
            return projects.release_versions(conn, project)

    def file(self, file_id: int) -> FileRow | None:
        with self.connection(f"reading file {file_id}") as conn:
            return projects.file_by_id(conn, file_id)

    def request_attempt(
        self,
        file_id: int,
        priority: int,
        campaign_id: int | None = None,
        *,
        image: str | None = None,
    ) -> int | None:
        with self.connection(f"queueing file {file_id}") as conn:
            return attempts.request_attempt(conn, file_id, priority, campaign_id, image=image)

    def request_attempts_bulk(
        self,
        file_ids: Sequence[int],
        priority: int,
        campaign_id: int | None = None,
        *,
        image: str | None = None,
    ) -> list[int]:
        with self.connection(f"queueing {len(file_ids)} files") as conn:
            return attempts.request_attempts_bulk(
                conn, file_ids, priority, campaign_id, image=image
            )

    def attempt(self, attempt_id: int) -> AttemptRow | None:
        with self.connection(f"reading attempt {attempt_id}") as conn:
            return attempts.attempt_by_id(conn, attempt_id)

    def start_attempt(self, attempt_id: int, worker: str) -> AttemptRow | None:
        with self.connection(f"claiming attempt {attempt_id}") as conn:
            return attempts.start_attempt(conn, attempt_id, worker)

    def heartbeat(self, attempt_id: int, worker: str) -> bool:
        with self.connection(f"renewing the claim of attempt {attempt_id}") as conn:
            return attempts.heartbeat(conn, attempt_id, worker)

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
        with self.connection(f"recording the outcome of attempt {attempt_id}") as conn:
            return attempts.finish_attempt(
                conn,
                attempt_id,
                result,
                strategy_json,
                image_digest,
                worker=worker,
                evidence_manifest=evidence_manifest,
            )

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
        with self.connection(f"recording the outcome of attempt {attempt_id}") as conn:
            return outcomes.record_outcome(
                conn,
                attempt_id,
                result,
                worker=worker,
                strategy_json=strategy_json,
                image_digest=image_digest,
                evidence_manifest=evidence_manifest,
                statements=statements,
                log_origin=log_origin,
            )

    def bundle_lines(self, file_id: int) -> list[str]:
        with self.connection(f"reading the attestations of file {file_id}") as conn:
            return outcomes.bundle_lines(conn, file_id)

    def release_attempt(self, attempt_id: int, worker: str) -> bool:
        with self.connection(f"giving back attempt {attempt_id}") as conn:
            return attempts.release_attempt(conn, attempt_id, worker)

    def mark_dispatched(self, attempt_ids: Sequence[int]) -> None:
        with self.connection("noting dispatched attempts") as conn:
            attempts.mark_dispatched(conn, attempt_ids)

    def in_flight(self) -> int:
        with self.connection("counting dispatched attempts") as conn:
            return attempts.in_flight(conn)

    def undispatched(self, older_than: timedelta, *, limit: int = 1000) -> list[tuple[int, int]]:
        with self.connection("listing undispatched attempts") as conn:
            return attempts.undispatched(conn, older_than, limit=limit)

    def set_generator(self, file_id: int, generator: str) -> None:
        with self.connection(f"recording the generator of file {file_id}") as conn:
            projects.set_generator(conn, file_id, generator)

    def announce_worker(self, name: str, host: str, pid: int, version: str) -> None:
        with self.connection(f"registering worker {name}") as conn:
            workers.announce(conn, name, host, pid, version)

    def worker_beat(self, name: str, current_attempt: int | None) -> None:
        with self.connection(f"heartbeat of worker {name}") as conn:
            workers.beat(conn, name, current_attempt)

    def retire_worker(self, name: str) -> None:
        with self.connection(f"retiring worker {name}") as conn:
            workers.retire(conn, name)

    def workers(self, *, include_stopped: bool = False) -> list[WorkerRow]:
        with self.connection("listing workers") as conn:
            return workers.workers(conn, include_stopped=include_stopped)

    def requeue_stale(self, older_than: timedelta) -> list[int]:
        with self.connection("requeueing stale attempts") as conn:
            return attempts.requeue_stale(conn, older_than)

    def queued_ids(self, *, limit: int = 1000) -> list[int]:
        with self.connection("listing queued attempts") as conn:
            return attempts.queued_ids(conn, limit=limit)

    def latest_verdicts(
        self, *, project: str | None = None, verdict: Verdict | None = None, limit: int = 100
    ) -> list[VerdictRow]:
        with self.connection("reading verdicts") as conn:
            return attempts.latest_verdicts(conn, project=project, verdict=verdict, limit=limit)

    def verdict_counts(self) -> dict[Verdict, int]:
        with self.connection("counting verdicts") as conn:
            return attempts.verdict_counts(conn)

    def queue_depth(self) -> int:
        with self.connection("measuring the queue") as conn:
            return attempts.queue_depth(conn)

    def running(self) -> list[RunningRow]:
        with self.connection("listing running attempts") as conn:
            return attempts.running(conn)

    def get_cursor(self, name: str) -> str | None:
        with self.connection(f"reading cursor {name}") as conn:
            return cursors.get_cursor(conn, name)

    def set_cursor(self, name: str, value: str) -> None:
        with self.connection(f"saving cursor {name}") as conn:
            cursors.set_cursor(conn, name, value)
