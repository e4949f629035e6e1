"""The job lifecycle, written once for every job table (``attempts``, ``source_checks``).

A job row is ``queued`` (``dispatched_at`` set once its message went to the broker),
claimed by exactly one worker (``running``, its ``heartbeat_at`` kept fresh), then
``done``; a worker that meets trouble that may pass gives it back (queued and unsent
again), and a worker that went silent loses it to :meth:`JobTable.requeue_stale`. Every
table of jobs has the columns ``id``, ``status``, ``priority``, ``worker``, ``tries``,
``requested_at``, ``started_at``, ``heartbeat_at`` and ``dispatched_at``.

``attempts.py`` and ``sources.py`` keep what differs (requesting, finishing, what a
verdict is) and call these for the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from psycopg import sql
from psycopg.rows import class_row

from rebuilder.store.db import Connection

logger = logging.getLogger(__name__)

_Row = TypeVar("_Row")


@dataclass(frozen=True)
class JobTable:
    """One table of jobs: its name, what its rows are called in logs, what they judge."""

    table: str
    noun: str  # "attempts", "source checks"
    subject: str  # the column a verdict is about: "file_id", "release_id"

    def claim(
        self,
        conn: Connection,
        job_id: int,
        worker: str,
        *,
        row: type[_Row],
        returning: sql.Composable,
        join: sql.Composable | None = None,
    ) -> _Row | None:
        """Claim a queued job for ``worker``; its row, or None when it is not queued (any more).

        Exactly one of several concurrent claims of one job succeeds: the row lock
        serializes them and the losers find the status no longer ``queued``. ``join``
        is a ``FROM other o WHERE o.id = j.column`` clause for ``returning`` to read
        (the job table's alias is ``j``).
        """
        joined = join if join is not None else sql.SQL("WHERE")
        query = sql.SQL(
            """
            UPDATE {table} j
            SET status = 'running', worker = %s, started_at = now(),
                heartbeat_at = now(), tries = j.tries + 1
            {joined} j.id = %s AND j.status = 'queued'
            RETURNING {returning}
            """
        ).format(table=sql.Identifier(self.table), joined=joined, returning=returning)
        with conn.transaction(), conn.cursor(row_factory=class_row(row)) as cur:
            return cur.execute(query, (worker, job_id)).fetchone()

    def heartbeat(self, conn: Connection, job_id: int, worker: str) -> bool:
        """Keep ``worker``'s claim alive; False when it no longer holds the job."""
        query = sql.SQL(
            """
            UPDATE {} SET heartbeat_at = now()
            WHERE id = %s AND status = 'running' AND worker = %s
            RETURNING id
            """
        ).format(sql.Identifier(self.table))
        with conn.transaction():
            return conn.execute(query, (job_id, worker)).fetchone() is not None

    def give_back(self, conn: Connection, job_id: int, worker: str) -> bool:
        """Give a claim back (trouble that may pass): queued again, unsent.

        False when ``worker`` does not hold the job (any more).
        """
        query = sql.SQL(
            """
            UPDATE {}
            SET status = 'queued', worker = NULL, started_at = NULL, heartbeat_at = NULL,
                dispatched_at = NULL
            WHERE id = %s AND status = 'running' AND worker = %s
            RETURNING id
            """
        ).format(sql.Identifier(self.table))
        with conn.transaction():
            return conn.execute(query, (job_id, worker)).fetchone() is not None

    def requeue_stale(self, conn: Connection, older_than: timedelta) -> list[int]:
        """Queue again the running jobs silent for longer than ``older_than``; their ids.

        A worker that died (SIGKILL, lost host) stops beating; its job is queued again
        with its claim cleared, to be sent to the workers again.
        """
        query = sql.SQL(
            """
            UPDATE {}
            SET status = 'queued', worker = NULL, started_at = NULL, heartbeat_at = NULL,
                dispatched_at = NULL
            WHERE status = 'running' AND coalesce(heartbeat_at, started_at) < now() - %s
            RETURNING id
            """
        ).format(sql.Identifier(self.table))
        with conn.transaction():
            rows = conn.execute(query, (older_than,)).fetchall()
        requeued = sorted(int(row[0]) for row in rows)
        if requeued:
            logger.warning("requeued %s stale %s: %s", len(requeued), self.noun, requeued[:20])
        return requeued

    def mark_dispatched(self, conn: Connection, job_ids: Sequence[int]) -> None:
        """Note that these jobs were handed to the broker."""
        if job_ids:
            conn.execute(
                sql.SQL(
                    "UPDATE {} SET dispatched_at = now() WHERE id = ANY(%s) AND status = 'queued'"
                ).format(sql.Identifier(self.table)),
                (list(job_ids),),
            )

    def in_flight(self, conn: Connection) -> int:
        """Queued jobs already handed to the broker (messages waiting for a worker)."""
        row = conn.execute(
            sql.SQL(
                "SELECT count(*) FROM {} WHERE status = 'queued' AND dispatched_at IS NOT NULL"
            ).format(sql.Identifier(self.table))
        ).fetchone()
        return 0 if row is None else int(row[0])

    def undispatched(
        self, conn: Connection, older_than: timedelta, *, limit: int = 1000
    ) -> list[tuple[int, int]]:
        """(id, priority) of queued jobs never sent (or taken back), requested before
        ``older_than`` ago; most urgent first."""
        rows = conn.execute(
            sql.SQL(
                """
                SELECT id, priority FROM {}
                WHERE status = 'queued' AND dispatched_at IS NULL AND requested_at < now() - %s
                ORDER BY priority DESC, id LIMIT %s
                """
            ).format(sql.Identifier(self.table)),
            (older_than, limit),
        ).fetchall()
        return [(int(r[0]), int(r[1])) for r in rows]

    def queued_ids(self, conn: Connection, *, limit: int = 1000) -> list[int]:
        """Queued jobs, most urgent first."""
        rows = conn.execute(
            sql.SQL(
                "SELECT id FROM {} WHERE status = 'queued' ORDER BY priority DESC, id LIMIT %s"
            ).format(sql.Identifier(self.table)),
            (limit,),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def latest_verdict_counts(self, conn: Connection) -> dict[str, int]:
        """How many subjects (files, releases) have each verdict as their latest one."""
        rows = conn.execute(
            sql.SQL(
                """
                SELECT verdict, count(*) FROM (
                    SELECT DISTINCT ON ({subject}) verdict FROM {table}
                    WHERE status = 'done' ORDER BY {subject}, id DESC
                ) latest
                GROUP BY verdict
                """
            ).format(subject=sql.Identifier(self.subject), table=sql.Identifier(self.table))
        ).fetchall()
        return {str(name): int(n) for name, n in rows}

    def queue_counts(self, conn: Connection) -> tuple[int, int]:
        """(queued, running) jobs."""
        row = conn.execute(
            sql.SQL(
                """
                SELECT count(*) FILTER (WHERE status = 'queued'),
                       count(*) FILTER (WHERE status = 'running')
                FROM {} WHERE status <> 'done'
                """
            ).format(sql.Identifier(self.table))
        ).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))


ATTEMPTS = JobTable("attempts", "attempts", "file_id")
SOURCE_CHECKS = JobTable("source_checks", "source checks", "release_id")
