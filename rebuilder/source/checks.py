"""Source checks in PostgreSQL: request, claim, finish (with their log entries), recover.

A source check judges a release's published sdist against the git tag naming its version
(``rebuilder.source``). Its life is the life of an attempt (``attempts.py``): queued ->
running -> done, at most one queued-or-running check per release (the partial unique
index ``source_checks_one_active_per_release``), a claim is one ``UPDATE ... WHERE status
= 'queued'``, and a check is finished once. Finishing also appends the check's signed
statements to the transparency log and records them in ``source_attestations``, in the
same transaction: a verdict is never recorded without its statements, and a statement is
never logged for a verdict that was refused.

Functions take a connection in autocommit mode and run in their own transaction (a
savepoint when the caller has one open).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from rebuilder.source.result import SourceResult
from rebuilder.store import StoreError
from rebuilder.store.db import Connection
from rebuilder.store.jobs import SOURCE_CHECKS
from rebuilder.store.log import TransparencyLog
from rebuilder.store.outcomes import SignedStatement
from rebuilder.store.projects import normalize
from rebuilder.store.records import AttemptStatus, FileRow

logger = logging.getLogger(__name__)

#: The kinds of statement a source check signs, in bundle order.
SOURCE_CHECK_KIND = "source-check"
PROVENANCE_KIND = "provenance"

_REASON_LIMIT = 2000


class SourceCheckVerdict(StrEnum):
    """A source check's recorded verdict: a SourceVerdict, or ``failed``."""

    CONSISTENT = "consistent"
    INCONSISTENT = "inconsistent"
    NO_SOURCE = "no-source"
    FAILED = "failed"  # the worker could not finish the check (a bug, lasting trouble)


@dataclass(frozen=True)
class SourceCheckRow:
    """One source check of one release, and its outcome once ``status`` is done."""

    id: int
    release_id: int
    sdist_id: int
    project: str
    version: str
    status: AttemptStatus
    priority: int
    requested_at: datetime
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    finished_at: datetime | None = None
    tries: int = 0
    worker: str | None = None
    verdict: SourceCheckVerdict | None = None
    reason: str | None = None
    repository: str | None = None
    tag: str | None = None
    commit: str | None = None
    result: Mapping[str, Any] | None = None
    seconds: float | None = None
    evidence_manifest: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", AttemptStatus(self.status))
        if self.verdict is not None:
            object.__setattr__(self, "verdict", SourceCheckVerdict(self.verdict))


@dataclass(frozen=True)
class SourceOutcome:
    """What a finished source check records."""

    verdict: SourceCheckVerdict
    reason: str | None = None
    repository: str | None = None
    tag: str | None = None
    commit: str | None = None
    result: Mapping[str, Any] | None = None  # SourceResult.to_json()
    seconds: float | None = None

    @classmethod
    def from_result(cls, result: SourceResult) -> SourceOutcome:
        return cls(
            SourceCheckVerdict(result.verdict.value),
            reason=None if result.reason is None else result.reason[:_REASON_LIMIT],
            repository=result.repository,
            tag=result.tag,
            commit=result.commit,
            result=result.to_json(),
            seconds=max(0.0, result.seconds),
        )

    @classmethod
    def failed(cls, reason: str, *, repository: str | None = None) -> SourceOutcome:
        return cls(
            SourceCheckVerdict.FAILED,
            reason=reason[:_REASON_LIMIT] or "failed",
            repository=repository,
        )


@dataclass(frozen=True)
class SourceVerdictRow:
    """The latest finished source check of one release."""

    release_id: int
    project: str
    version: str
    check_id: int
    verdict: SourceCheckVerdict
    repository: str | None
    tag: str | None
    commit: str | None
    reason: str | None
    finished_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", SourceCheckVerdict(self.verdict))


# Columns of SourceCheckRow: every field is a column of source_checks (alias c) except
# the release's project and version (alias r), so the two cannot drift apart.
_RELEASE_FIELDS = {"project", "version"}
_CHECK_COLUMNS = sql.SQL(", ").join(
    sql.Identifier("r" if f.name in _RELEASE_FIELDS else "c", f.name)
    for f in fields(SourceCheckRow)
)
_CLAIMED_COLUMNS = sql.SQL(", ").join(  # the same, the check aliased j (JobTable.claim)
    sql.Identifier("r" if f.name in _RELEASE_FIELDS else "j", f.name)
    for f in fields(SourceCheckRow)
)


def request_source_check(conn: Connection, release_id: int, priority: int) -> int | None:
    """Queue a check of the release's sdist; its id, or None when one is active.

    Raises StoreError when the release has no sdist (nothing to check).
    """
    with conn.transaction():
        sdist = conn.execute(
            """
            SELECT id FROM files WHERE release_id = %s AND kind = 'sdist'
            ORDER BY yanked, filename NOT LIKE '%%.tar.gz', filename LIMIT 1
            """,
            (release_id,),
        ).fetchone()
        if sdist is None:
            raise StoreError(f"release {release_id} has no sdist to check against its source")
        row = conn.execute(
            """
            INSERT INTO source_checks (release_id, sdist_id, priority) VALUES (%s, %s, %s)
            ON CONFLICT (release_id) WHERE status IN ('queued', 'running') DO NOTHING
            RETURNING id
            """,
            (release_id, int(sdist[0]), priority),
        ).fetchone()
    return None if row is None else int(row[0])


def request_missing(
    conn: Connection,
    *,
    new_priority: int,
    backfill_priority: int,
    after_release: int = 0,
    limit: int = 500,
    newest_per_project: int | None = None,
) -> list[tuple[int, int]]:
    """Queue a check for every release with an sdist that was never checked.

    Only releases whose id is above ``after_release`` are looked at (0: all). With
    ``newest_per_project``, a release qualifies only when the rebuild policy chose it (it
    has attempts: a new release, a backfilled one, a campaign's) or it is among the
    ``newest_per_project`` last recorded releases of its project (an sdist-only project);
    the history recorded without rebuilds is not checked. None: every release. Newest
    releases first, at most ``limit``. The priority follows the release's rebuilds: the
    highest priority of its attempts when that is at least ``new_priority`` (a new
    release, a campaign), ``new_priority`` when it has no wheel (nothing else will be
    checked of it), else ``backfill_priority``. Returns (check id, priority) pairs.
    """
    with conn.transaction():
        rows = conn.execute(
            """
            INSERT INTO source_checks (release_id, sdist_id, priority)
            SELECT r.id, s.id, CASE
                    WHEN a.top >= %(new)s THEN a.top
                    WHEN NOT EXISTS (
                        SELECT 1 FROM files w WHERE w.release_id = r.id AND w.kind = 'wheel'
                    ) THEN %(new)s
                    ELSE %(backfill)s
                END
            FROM releases r
            CROSS JOIN LATERAL (
                SELECT id FROM files
                WHERE release_id = r.id AND kind = 'sdist' AND NOT yanked
                ORDER BY filename NOT LIKE '%%.tar.gz', filename LIMIT 1
            ) s
            CROSS JOIN LATERAL (
                SELECT max(t.priority) AS top FROM attempts t JOIN files f ON f.id = t.file_id
                WHERE f.release_id = r.id
            ) a
            WHERE r.id > %(after)s
              AND NOT EXISTS (SELECT 1 FROM source_checks c WHERE c.release_id = r.id)
              AND (
                %(newest)s::int IS NULL OR a.top IS NOT NULL OR (
                    SELECT count(*) FROM (
                        SELECT 1 FROM releases n
                        WHERE n.project = r.project AND n.id > r.id LIMIT %(newest)s::int
                    ) newer
                ) < %(newest)s::int
              )
            ORDER BY r.id DESC
            LIMIT %(limit)s
            ON CONFLICT (release_id) WHERE status IN ('queued', 'running') DO NOTHING
            RETURNING id, priority
            """,
            {
                "new": new_priority,
                "backfill": backfill_priority,
                "after": after_release,
                "limit": limit,
                "newest": newest_per_project,
            },
        ).fetchall()
    return sorted(((int(r[0]), int(r[1])) for r in rows), key=lambda p: (-p[1], p[0]))


def max_release_id(conn: Connection) -> int:
    """The highest release id recorded (0 when there is none)."""
    row = conn.execute("SELECT coalesce(max(id), 0) FROM releases").fetchone()
    return 0 if row is None else int(row[0])


def check_by_id(conn: Connection, check_id: int) -> SourceCheckRow | None:
    """The source check recorded under ``check_id``, if any."""
    with conn.cursor(row_factory=class_row(SourceCheckRow)) as cur:
        return cur.execute(
            sql.SQL(
                "SELECT {} FROM source_checks c JOIN releases r ON r.id = c.release_id "
                "WHERE c.id = %s"
            ).format(_CHECK_COLUMNS),
            (check_id,),
        ).fetchone()


def release_files(conn: Connection, release_id: int) -> list[FileRow]:
    """Every recorded file of the release, by name."""
    with conn.cursor(row_factory=class_row(FileRow)) as cur:
        return cur.execute(
            """
            SELECT f.id, f.release_id, r.project, r.version, f.filename, f.kind, f.url,
                f.sha256, f.size, f.upload_time, f.yanked
            FROM files f JOIN releases r ON r.id = f.release_id
            WHERE f.release_id = %s ORDER BY f.filename
            """,
            (release_id,),
        ).fetchall()


def start_check(conn: Connection, check_id: int, worker: str) -> SourceCheckRow | None:
    """Claim a queued check for ``worker``; None when it is not queued (any more)."""
    return SOURCE_CHECKS.claim(
        conn,
        check_id,
        worker,
        row=SourceCheckRow,
        returning=_CLAIMED_COLUMNS,
        join=sql.SQL("FROM releases r WHERE r.id = j.release_id AND"),
    )


def heartbeat(conn: Connection, check_id: int, worker: str) -> bool:
    """Keep ``worker``'s claim alive; False when it no longer holds the check."""
    return SOURCE_CHECKS.heartbeat(conn, check_id, worker)


def finish_check(
    conn: Connection,
    check_id: int,
    outcome: SourceOutcome,
    *,
    worker: str | None = None,
    evidence_manifest: Mapping[str, str] | None = None,
) -> bool:
    """Record the outcome of a check; False when it already has one (nothing changes).

    With ``worker``, only that worker's running claim is finished. Raises StoreError
    when the check does not exist.
    """
    with conn.transaction():
        found = conn.execute(
            "SELECT status, worker FROM source_checks WHERE id = %s FOR UPDATE", (check_id,)
        ).fetchone()
        if found is None:
            raise StoreError(f"no source check {check_id} to finish")
        status, holder = AttemptStatus(found[0]), found[1]
        if status is AttemptStatus.DONE:
            logger.info("source check %s already has an outcome; %s ignored", check_id, outcome)
            return False
        if worker is not None and (status is not AttemptStatus.RUNNING or holder != worker):
            logger.warning(
                "source check %s is no longer held by %s (status %s, worker %s); outcome dropped",
                check_id,
                worker,
                status,
                holder,
            )
            return False
        conn.execute(
            """
            UPDATE source_checks SET
                status = 'done', finished_at = now(), verdict = %(verdict)s,
                reason = %(reason)s, repository = %(repository)s, tag = %(tag)s,
                commit = %(commit)s, result = %(result)s, seconds = %(seconds)s,
                evidence_manifest = %(manifest)s
            WHERE id = %(id)s
            """,
            {
                "id": check_id,
                "verdict": outcome.verdict.value,
                "reason": outcome.reason,
                "repository": outcome.repository,
                "tag": outcome.tag,
                "commit": outcome.commit,
                "result": None if outcome.result is None else Jsonb(dict(outcome.result)),
                "seconds": outcome.seconds,
                "manifest": None if evidence_manifest is None else Jsonb(dict(evidence_manifest)),
            },
        )
    return True


def record_check_outcome(
    conn: Connection,
    check_id: int,
    outcome: SourceOutcome,
    *,
    worker: str,
    evidence_manifest: Mapping[str, str] | None,
    statements: Sequence[SignedStatement],
    log_origin: str,
) -> bool:
    """Finish ``worker``'s check and log its statements, all or nothing; False if refused."""
    with conn.transaction() as tx:
        finished = finish_check(
            conn, check_id, outcome, worker=worker, evidence_manifest=evidence_manifest
        )
        if not finished:
            raise psycopg.Rollback(tx)
        if statements:
            entries = TransparencyLog(conn, log_origin).append_many(s.line for s in statements)
            with conn.cursor() as cur:
                cur.executemany(
                    """
                    INSERT INTO source_attestations
                        (check_id, release_id, position, kind, log_origin, leaf_index)
                    SELECT id, release_id, %s, %s, %s, %s FROM source_checks WHERE id = %s
                    """,
                    [
                        (i, s.kind, log_origin, e.index, check_id)
                        for i, (s, e) in enumerate(zip(statements, entries, strict=True))
                    ],
                )
        return True
    return False


def bundle_lines(conn: Connection, release_id: int) -> list[str]:
    """The envelope lines of the release's latest attested check, in bundle order."""
    rows = conn.execute(
        """
        SELECT e.entry FROM source_attestations t
        JOIN log_entries e ON e.origin = t.log_origin AND e.leaf_index = t.leaf_index
        WHERE t.check_id = (
            SELECT max(check_id) FROM source_attestations WHERE release_id = %s
        )
        ORDER BY t.position
        """,
        (release_id,),
    ).fetchall()
    return [bytes(r[0]).decode("utf-8") for r in rows]


def give_back(conn: Connection, check_id: int, worker: str) -> bool:
    """Give a claim back (trouble that may pass): queued again, unsent. False if not held."""
    return SOURCE_CHECKS.give_back(conn, check_id, worker)


def defer(
    conn: Connection, check_id: int, worker: str, *, count_try: bool, repository: str | None
) -> bool:
    """Put a claimed check back to wait for its broker message's delayed retry.

    Queued again but still marked sent (the broker holds the retry, so the scheduler
    does not send a second message); the try is taken back unless ``count_try``; the
    repository URL the worker found is kept. False when ``worker`` does not hold it.
    """
    with conn.transaction():
        row = conn.execute(
            """
            UPDATE source_checks
            SET status = 'queued', worker = NULL, started_at = NULL, heartbeat_at = NULL,
                dispatched_at = now(), tries = CASE WHEN %s THEN tries ELSE tries - 1 END,
                repository = coalesce(%s, repository)
            WHERE id = %s AND status = 'running' AND worker = %s
            RETURNING id
            """,
            (count_try, repository, check_id, worker),
        ).fetchone()
    return row is not None


def requeue_stale(conn: Connection, older_than: timedelta) -> list[int]:
    """Queue again the running checks silent for longer than ``older_than``; their ids."""
    return SOURCE_CHECKS.requeue_stale(conn, older_than)


def mark_dispatched(conn: Connection, check_ids: Sequence[int]) -> None:
    """Note that these checks were handed to the broker."""
    SOURCE_CHECKS.mark_dispatched(conn, check_ids)


def undispatched(
    conn: Connection, older_than: timedelta, *, limit: int = 1000
) -> list[tuple[int, int]]:
    """(id, priority) of queued checks never sent, requested before ``older_than`` ago."""
    return SOURCE_CHECKS.undispatched(conn, older_than, limit=limit)


def latest_checks(
    conn: Connection,
    *,
    project: str | None = None,
    verdict: SourceCheckVerdict | None = None,
    limit: int = 100,
) -> list[SourceVerdictRow]:
    """The latest finished check of each release, newest first; filtered if asked."""
    with conn.cursor(row_factory=class_row(SourceVerdictRow)) as cur:
        return cur.execute(
            """
            SELECT r.id AS release_id, r.project, r.version, c.id AS check_id, c.verdict,
                c.repository, c.tag, c.commit, c.reason, c.finished_at
            FROM releases r
            CROSS JOIN LATERAL (
                SELECT id, verdict, repository, tag, commit, reason, finished_at
                FROM source_checks WHERE release_id = r.id AND status = 'done'
                ORDER BY id DESC LIMIT 1
            ) c
            WHERE (%(project)s::text IS NULL OR r.project = %(project)s)
              AND (%(verdict)s::text IS NULL OR c.verdict = %(verdict)s)
            ORDER BY c.finished_at DESC, c.id DESC
            LIMIT %(limit)s
            """,
            {
                "project": None if project is None else normalize(project),
                "verdict": None if verdict is None else verdict.value,
                "limit": limit,
            },
        ).fetchall()


def verdict_counts(conn: Connection) -> dict[SourceCheckVerdict, int]:
    """How many releases have each source verdict as their latest (every verdict listed)."""
    counts = dict.fromkeys(SourceCheckVerdict, 0)
    latest = SOURCE_CHECKS.latest_verdict_counts(conn)
    counts.update({SourceCheckVerdict(v): n for v, n in latest.items()})
    return counts


def running_by_worker(conn: Connection) -> dict[str, int]:
    """{worker: the id of a source check it is running} (``rebuilder status``)."""
    rows = conn.execute(
        "SELECT worker, min(id) FROM source_checks WHERE status = 'running' GROUP BY worker"
    ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def queue_depth(conn: Connection) -> tuple[int, int]:
    """(queued, running) source checks."""
    return SOURCE_CHECKS.queue_counts(conn)
