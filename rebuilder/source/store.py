"""What the source-check worker and the scheduler need from storage, and its PostgreSQL side.

:class:`SourceCheckJobs` is what a worker's :class:`~rebuilder.source.job.
SourceCheckRunner` uses, :class:`SourceCheckQueue` what the scheduler's hook uses;
:class:`PostgresSourceChecks` implements both over a connection pool with the functions
of :mod:`rebuilder.source.checks`. Unit tests use the in-memory twin in
``tests/support/source_checks.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Protocol

from rebuilder.source import checks as sources
from rebuilder.source.checks import (
    SourceCheckRow,
    SourceCheckVerdict,
    SourceOutcome,
    SourceVerdictRow,
)
from rebuilder.store.db import Connection, Pool, borrow
from rebuilder.store.outcomes import SignedStatement
from rebuilder.store.records import FileRow

logger = logging.getLogger(__name__)


class SourceCheckJobs(Protocol):
    """The source checks as a worker sees them."""

    def source_check(self, check_id: int) -> SourceCheckRow | None:
        """One check, whatever its status."""
        ...

    def start_source_check(self, check_id: int, worker: str) -> SourceCheckRow | None:
        """Claim a queued check; None when it is not queued (a duplicate message)."""
        ...

    def source_heartbeat(self, check_id: int, worker: str) -> bool:
        """Keep a claim alive; False when ``worker`` no longer holds it."""
        ...

    def release_files(self, release_id: int) -> list[FileRow]:
        """The recorded files of a release."""
        ...

    def record_source_outcome(
        self,
        check_id: int,
        outcome: SourceOutcome,
        *,
        worker: str,
        evidence_manifest: Mapping[str, str] | None,
        statements: Sequence[SignedStatement],
        log_origin: str,
    ) -> bool:
        """Finish ``worker``'s check and log its statements, all or nothing."""
        ...

    def give_back_source_check(self, check_id: int, worker: str) -> bool:
        """Give back ``worker``'s claim: queued again and marked unsent."""
        ...

    def defer_source_check(
        self, check_id: int, worker: str, *, count_try: bool, repository: str | None
    ) -> bool:
        """Queue ``worker``'s claim again, still marked sent (the broker retries it later)."""
        ...


class SourceCheckQueue(Protocol):
    """The source checks as the scheduler sees them."""

    def request_missing_source_checks(
        self,
        *,
        new_priority: int,
        backfill_priority: int,
        after_release: int,
        limit: int,
        newest_per_project: int | None = None,
    ) -> list[tuple[int, int]]:
        """Queue checks of never-checked releases with an sdist; (id, priority) pairs.

        With ``newest_per_project``: only releases with rebuilds, or among the newest
        recorded of their project (``rebuilder.source.checks.request_missing``).
        """
        ...

    def max_release_id(self) -> int:
        """The highest release id recorded."""
        ...

    def requeue_stale_source_checks(self, older_than: timedelta) -> list[int]:
        """Queue again the running checks whose worker went silent; their ids."""
        ...

    def undispatched_source_checks(
        self, older_than: timedelta, *, limit: int = 1000
    ) -> list[tuple[int, int]]:
        """(id, priority) of queued checks never sent, older than ``older_than``."""
        ...

    def mark_source_checks_dispatched(self, check_ids: Sequence[int]) -> None:
        """Note that these checks were handed to the broker."""
        ...


class PostgresSourceChecks:
    """Source checks in PostgreSQL. Thread-safe (the pool hands out connections)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @contextmanager
    def connection(self, doing: str = "using the database") -> Iterator[Connection]:
        """A pooled connection (autocommit); psycopg errors become StoreError."""
        with borrow(self._pool, doing) as conn:
            yield conn

    def request_source_check(self, release_id: int, priority: int) -> int | None:
        with self.connection(f"queueing the source check of release {release_id}") as conn:
            return sources.request_source_check(conn, release_id, priority)

    def request_missing_source_checks(
        self,
        *,
        new_priority: int,
        backfill_priority: int,
        after_release: int,
        limit: int,
        newest_per_project: int | None = None,
    ) -> list[tuple[int, int]]:
        with self.connection("queueing source checks") as conn:
            return sources.request_missing(
                conn,
                new_priority=new_priority,
                backfill_priority=backfill_priority,
                after_release=after_release,
                limit=limit,
                newest_per_project=newest_per_project,
            )

    def max_release_id(self) -> int:
        with self.connection("reading the newest release") as conn:
            return sources.max_release_id(conn)

    def source_check(self, check_id: int) -> SourceCheckRow | None:
        with self.connection(f"reading source check {check_id}") as conn:
            return sources.check_by_id(conn, check_id)

    def start_source_check(self, check_id: int, worker: str) -> SourceCheckRow | None:
        with self.connection(f"claiming source check {check_id}") as conn:
            return sources.start_check(conn, check_id, worker)

    def source_heartbeat(self, check_id: int, worker: str) -> bool:
        with self.connection(f"renewing the claim of source check {check_id}") as conn:
            return sources.heartbeat(conn, check_id, worker)

    def release_files(self, release_id: int) -> list[FileRow]:
        with self.connection(f"reading the files of release {release_id}") as conn:
            return sources.release_files(conn, release_id)

    def record_source_outcome(
        self,
        check_id: int,
        outcome: SourceOutcome,
        *,
        worker: str,
        evidence_manifest: Mapping[str, str] | None,
        statements: Sequence[SignedStatement],
        log_origin: str,
    ) -> bool:
        with self.connection(f"recording the outcome of source check {check_id}") as conn:
            return sources.record_check_outcome(
                conn,
                check_id,
                outcome,
                worker=worker,
                evidence_manifest=evidence_manifest,
                statements=statements,
                log_origin=log_origin,
            )

    def give_back_source_check(self, check_id: int, worker: str) -> bool:
        with self.connection(f"giving back source check {check_id}") as conn:
            return sources.give_back(conn, check_id, worker)

    def defer_source_check(
        self, check_id: int, worker: str, *, count_try: bool, repository: str | None
    ) -> bool:
        with self.connection(f"deferring source check {check_id}") as conn:
            return sources.defer(conn, check_id, worker, count_try=count_try, repository=repository)

    def requeue_stale_source_checks(self, older_than: timedelta) -> list[int]:
        with self.connection("requeueing stale source checks") as conn:
            return sources.requeue_stale(conn, older_than)

    def undispatched_source_checks(
        self, older_than: timedelta, *, limit: int = 1000
    ) -> list[tuple[int, int]]:
        with self.connection("listing undispatched source checks") as conn:
            return sources.undispatched(conn, older_than, limit=limit)

    def mark_source_checks_dispatched(self, check_ids: Sequence[int]) -> None:
        with self.connection("noting dispatched source checks") as conn:
            sources.mark_dispatched(conn, check_ids)

    def latest_source_checks(
        self,
        *,
        project: str | None = None,
        verdict: SourceCheckVerdict | None = None,
        limit: int = 100,
    ) -> list[SourceVerdictRow]:
        with self.connection("reading source verdicts") as conn:
            return sources.latest_checks(conn, project=project, verdict=verdict, limit=limit)

    def source_verdict_counts(self) -> dict[SourceCheckVerdict, int]:
        with self.connection("counting source verdicts") as conn:
            return sources.verdict_counts(conn)

    def source_queue_depth(self) -> tuple[int, int]:
        with self.connection("measuring the source-check queue") as conn:
            return sources.queue_depth(conn)

    def source_bundle_lines(self, release_id: int) -> list[str]:
        with self.connection(f"reading the source attestations of release {release_id}") as conn:
            return sources.bundle_lines(conn, release_id)
