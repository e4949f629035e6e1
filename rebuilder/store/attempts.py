"""Rebuild attempts in PostgreSQL: request, claim, finish, recover, and read back.

The life of an attempt is queued -> running -> done, and the database enforces it: the
partial unique index ``attempts_one_active_per_file`` allows one queued-or-running
attempt per file, a claim is a single ``UPDATE ... WHERE status = 'queued'`` (so of two
workers handed the same message only one gets the attempt), and an attempt is finished
once. Functions take a connection in autocommit mode and run in their own transaction
(a savepoint when the caller has one open).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import timedelta
from typing import Any

from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from rebuilder.store import StoreError
from rebuilder.store.db import Connection
from rebuilder.store.jobs import ATTEMPTS
from rebuilder.store.projects import normalize
from rebuilder.store.records import (
    AttemptRow,
    AttemptStatus,
    RunningRow,
    VerdictRow,
    diagnosis_to_json,
    differences_to_json,
    stabilizers_to_json,
)
from rebuilder.verdict import FileResult, Verdict

logger = logging.getLogger(__name__)

# The columns read into AttemptRow are its fields, so the two cannot drift apart.
_ATTEMPT_COLUMNS = sql.SQL(", ").join(sql.Identifier(f.name) for f in fields(AttemptRow))


def request_attempt(
    conn: Connection,
    file_id: int,
    priority: int,
    campaign_id: int | None = None,
    *,
    image: str | None = None,
) -> int | None:
    """Queue an attempt for the file; its id, or None when one is queued or running.

    ``image`` asks for a sandbox image other than the worker's default.
    """
    with conn.transaction():
        row = conn.execute(
            """
            INSERT INTO attempts (file_id, priority, campaign_id, image)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (file_id) WHERE status IN ('queued', 'running') DO NOTHING
            RETURNING id
            """,
            (file_id, priority, campaign_id, image),
        ).fetchone()
    return None if row is None else int(row[0])


def request_attempts_bulk(
    conn: Connection,
    file_ids: Sequence[int],
    priority: int,
    campaign_id: int | None = None,
    *,
    image: str | None = None,
) -> list[int]:
    """Queue attempts for many files in one statement; the ids of the attempts made.

    Files that already have a queued or running attempt are skipped, as are repeats in
    ``file_ids``. An unknown file id is an error (nothing is queued then).
    """
    if not file_ids:
        return []
    with conn.transaction():
        rows = conn.execute(
            """
            INSERT INTO attempts (file_id, priority, campaign_id, image)
            SELECT DISTINCT file_id, %s::smallint, %s::bigint, %s::text
            FROM unnest(%s::bigint[]) AS file_id
            ORDER BY file_id
            ON CONFLICT (file_id) WHERE status IN ('queued', 'running') DO NOTHING
            RETURNING id
            """,
            (priority, campaign_id, image, list(file_ids)),
        ).fetchall()
    return [int(row[0]) for row in rows]


def attempt_by_id(conn: Connection, attempt_id: int) -> AttemptRow | None:
    """The attempt recorded under ``attempt_id``, if any."""
    with conn.cursor(row_factory=class_row(AttemptRow)) as cur:
        return cur.execute(
            sql.SQL("SELECT {} FROM attempts WHERE id = %s").format(_ATTEMPT_COLUMNS),
            (attempt_id,),
        ).fetchone()


def start_attempt(conn: Connection, attempt_id: int, worker: str) -> AttemptRow | None:
    """Claim a queued attempt for ``worker``; None when it is not queued (any more)."""
    return ATTEMPTS.claim(conn, attempt_id, worker, row=AttemptRow, returning=_ATTEMPT_COLUMNS)


def heartbeat(conn: Connection, attempt_id: int, worker: str) -> bool:
    """Tell the attempt is still being worked on; False when ``worker`` no longer holds it."""
    return ATTEMPTS.heartbeat(conn, attempt_id, worker)


def finish_attempt(
    conn: Connection,
    attempt_id: int,
    result: FileResult,
    strategy_json: Mapping[str, Any] | None,
    image_digest: str | None,
    *,
    worker: str | None = None,
    evidence_manifest: Mapping[str, str] | None = None,
) -> bool:
    """Record the outcome of an attempt; False when it already has one (nothing changes).

    With ``worker``, only that worker's running claim is finished: a worker whose stale
    claim was taken back must not overwrite the outcome of the one that took over.
    Raises StoreError when the attempt does not exist or ``result`` is for another file.
    """
    with conn.transaction():
        found = conn.execute(
            """
            SELECT a.status, a.worker, f.filename
            FROM attempts a JOIN files f ON f.id = a.file_id
            WHERE a.id = %s FOR UPDATE OF a
            """,
            (attempt_id,),
        ).fetchone()
        if found is None:
            raise StoreError(f"no attempt {attempt_id} to finish")
        status, holder, filename = AttemptStatus(found[0]), found[1], found[2]
        if filename != result.filename:
            raise StoreError(
                f"attempt {attempt_id} rebuilds {filename}, not {result.filename}: outcome refused"
            )
        if status is AttemptStatus.DONE:
            logger.info("attempt %s already has an outcome; %s ignored", attempt_id, result.verdict)
            return False
        if worker is not None and (status is not AttemptStatus.RUNNING or holder != worker):
            logger.warning(
                "attempt %s is no longer held by %s (status %s, worker %s); outcome dropped",
                attempt_id,
                worker,
                status,
                holder,
            )
            return False
        conn.execute(
            """
            UPDATE attempts SET
                status = 'done', finished_at = now(), strategy = %(strategy)s,
                image_digest = %(image_digest)s, verdict = %(verdict)s,
                reason_class = %(reason_class)s, reason = %(reason)s,
                stabilizers = %(stabilizers)s, differences = %(differences)s,
                timings = %(timings)s, seconds = %(seconds)s, evidence = %(evidence)s,
                evidence_manifest = %(manifest)s, rebuilt_sha256 = %(rebuilt)s,
                diagnosis = %(diagnosis)s, risk = %(risk)s
            WHERE id = %(id)s
            """,
            {
                "id": attempt_id,
                "strategy": None if strategy_json is None else Jsonb(dict(strategy_json)),
                "image_digest": image_digest,
                "verdict": result.verdict.value,
                "reason_class": result.reason_class.value if result.reason_class else None,
                "reason": result.reason,
                "stabilizers": Jsonb(stabilizers_to_json(result.stabilizers)),
                "differences": Jsonb(differences_to_json(result.differences)),
                "timings": Jsonb(dict(result.timings)),
                "seconds": result.seconds,
                "evidence": result.evidence,
                "manifest": None if evidence_manifest is None else Jsonb(dict(evidence_manifest)),
                "rebuilt": result.rebuilt_sha256,
                "diagnosis": Jsonb(diagnosis_to_json(result.diagnosis)),
                "risk": None if result.risk is None else result.risk.value,
            },
        )
    return True


def requeue_stale(conn: Connection, older_than: timedelta) -> list[int]:
    """Put running attempts silent for longer than ``older_than`` back in the queue."""
    return ATTEMPTS.requeue_stale(conn, older_than)


def release_attempt(conn: Connection, attempt_id: int, worker: str) -> bool:
    """Give a claim back: queued again, unsent; False when ``worker`` does not hold it."""
    return ATTEMPTS.give_back(conn, attempt_id, worker)


def mark_dispatched(conn: Connection, attempt_ids: Sequence[int]) -> None:
    """Note that these attempts were handed to the broker."""
    ATTEMPTS.mark_dispatched(conn, attempt_ids)


def in_flight(conn: Connection) -> int:
    """Queued attempts already handed to the broker (messages waiting for a worker)."""
    return ATTEMPTS.in_flight(conn)


def undispatched(
    conn: Connection, older_than: timedelta, *, limit: int = 1000
) -> list[tuple[int, int]]:
    """(id, priority) of queued attempts never sent, older than ``older_than``."""
    return ATTEMPTS.undispatched(conn, older_than, limit=limit)


def queued_ids(conn: Connection, *, limit: int = 1000) -> list[int]:
    """Queued attempts, most urgent first (for re-sending after a broker loss)."""
    return ATTEMPTS.queued_ids(conn, limit=limit)


def latest_verdicts(
    conn: Connection,
    *,
    project: str | None = None,
    verdict: Verdict | None = None,
    limit: int = 100,
) -> list[VerdictRow]:
    """The latest verdict of each file, newest first; of one project / verdict if given."""
    with conn.cursor(row_factory=class_row(VerdictRow)) as cur:
        return cur.execute(
            """
            SELECT f.id AS file_id, r.project, r.version, f.filename, a.id AS attempt_id,
                a.verdict, a.reason_class, a.finished_at
            FROM files f
            JOIN releases r ON r.id = f.release_id
            CROSS JOIN LATERAL (
                SELECT id, verdict, reason_class, finished_at FROM attempts
                WHERE file_id = f.id AND status = 'done'
                ORDER BY id DESC LIMIT 1
            ) a
            WHERE (%(project)s::text IS NULL OR r.project = %(project)s)
              AND (%(verdict)s::text IS NULL OR a.verdict = %(verdict)s)
            ORDER BY a.finished_at DESC, a.id DESC
            LIMIT %(limit)s
            """,
            {
                "project": None if project is None else normalize(project),
                "verdict": None if verdict is None else verdict.value,
                "limit": limit,
            },
        ).fetchall()


def verdict_counts(conn: Connection) -> dict[Verdict, int]:
    """How many files have each verdict as their latest one (every verdict listed)."""
    counts = dict.fromkeys(Verdict, 0)
    counts.update({Verdict(v): n for v, n in ATTEMPTS.latest_verdict_counts(conn).items()})
    return counts


def queue_depth(conn: Connection) -> int:
    """How many attempts wait for a worker."""
    return ATTEMPTS.queue_counts(conn)[0]


def running(conn: Connection) -> list[RunningRow]:
    """The attempts being run now, oldest first."""
    with conn.cursor(row_factory=class_row(RunningRow)) as cur:
        return cur.execute(
            """
            SELECT a.id AS attempt_id, r.project, r.version, f.filename, a.worker, a.started_at
            FROM attempts a
            JOIN files f ON f.id = a.file_id
            JOIN releases r ON r.id = f.release_id
            WHERE a.status = 'running'
            ORDER BY a.started_at, a.id
            """
        ).fetchall()
