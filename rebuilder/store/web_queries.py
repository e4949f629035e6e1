"""Every SQL query of the status page and API: bounded, keyset-paginated, no N+1.

Functions take an autocommit connection and only read (writes go through
:class:`rebuilder.store.repository.PostgresStore`). Summaries come from the tables that
migration ``0400_web.sql`` keeps up to date by triggers (``file_verdicts``,
``verdict_days``), so no request aggregates the whole ``attempts`` table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Generic, TypeVar

from psycopg.rows import class_row

from rebuilder.store import page_cursors as cursors
from rebuilder.store.attempts import attempt_by_id
from rebuilder.store.db import Connection
from rebuilder.store.jobs import SOURCE_CHECKS
from rebuilder.store.records import AttemptRow
from rebuilder.store.workers import WorkerRow
from rebuilder.verdict import Verdict

logger = logging.getLogger(__name__)

MAX_PAGE = 200
_T = TypeVar("_T")
OK_VERDICTS = frozenset({Verdict.REPRODUCIBLE.value, Verdict.EQUIVALENT.value})


@dataclass(frozen=True)
class Page(Generic[_T]):
    """One page of a list and the cursor of the next one (None on the last page)."""

    items: list[_T]
    next_cursor: str | None


@dataclass(frozen=True)
class ProjectSummary:
    name: str
    watched: bool
    added_at: datetime


@dataclass(frozen=True)
class FileVerdict:
    """A file with its latest verdict (verdict None: never finished a rebuild)."""

    file_id: int
    release_id: int
    project: str
    version: str
    filename: str
    kind: str
    sha256: str
    size: int | None
    upload_time: datetime | None
    yanked: bool
    attempt_id: int | None
    verdict: str | None
    previous_verdict: str | None
    finished_at: datetime | None
    risk: str | None = None  # none / packaging / review (docs/diagnosis.md)


@dataclass(frozen=True)
class ReleaseSummary:
    id: int
    project: str
    version: str
    discovered_at: datetime
    files: list[FileVerdict] = field(default_factory=list)


@dataclass(frozen=True)
class AttemptSummary:
    id: int
    file_id: int
    project: str
    version: str
    filename: str
    status: str
    priority: int
    campaign_id: int | None
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    verdict: str | None
    reason_class: str | None
    seconds: float | None


@dataclass(frozen=True)
class DayRate:
    """Finished attempts of one day by verdict, and the share that verified."""

    day: date
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def rate(self) -> float | None:
        """Reproducible or equivalent among those that could be judged."""
        judged = self.total - self.counts.get(Verdict.UNSUPPORTED.value, 0)
        if judged <= 0:
            return None
        ok = sum(self.counts.get(v, 0) for v in OK_VERDICTS)
        return ok / judged


@dataclass(frozen=True)
class ReleaseTrend:
    version: str
    counts: dict[str, int]

    @property
    def rate(self) -> float | None:
        judged = sum(self.counts.values()) - self.counts.get(Verdict.UNSUPPORTED.value, 0)
        if judged <= 0:
            return None
        return sum(self.counts.get(v, 0) for v in OK_VERDICTS) / judged


@dataclass(frozen=True)
class QueueStatus:
    queued: int
    running: int
    source_queued: int = 0  # source checks (one per release), a queue of their own
    source_running: int = 0


@dataclass(frozen=True)
class Attestation:
    attempt_id: int
    position: int
    kind: str
    log_origin: str
    leaf_index: int


@dataclass(frozen=True)
class FileDetail:
    """Everything the file page shows, read in a few bounded queries."""

    file: FileVerdict
    url: str
    generator: str | None
    latest: AttemptRow | None
    active: AttemptSummary | None
    attestations: list[Attestation]


def _limit(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE))


_FILE_VERDICT_COLUMNS = """
    f.id AS file_id, f.release_id, r.project, r.version, f.filename, f.kind, f.sha256,
    f.size, f.upload_time, f.yanked, fv.attempt_id, fv.verdict, fv.previous_verdict,
    fv.finished_at, (SELECT a.risk FROM attempts a WHERE a.id = fv.attempt_id) AS risk
"""

RISKS = ("review", "packaging", "none")


# ---------------------------------------------------------------- home page


def verdict_counts(conn: Connection, project: str | None = None) -> dict[str, int]:
    """How many files have each latest verdict (every verdict listed), of one project."""
    if project is None:
        rows = conn.execute(
            "SELECT verdict, sum(n) FROM project_verdicts GROUP BY verdict"
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT verdict, n FROM project_verdicts WHERE project = %s", (project,)
        ).fetchall()
    counts = dict.fromkeys((v.value for v in Verdict), 0)
    counts.update({str(name): int(n) for name, n in rows})
    return counts


def daily_rates(conn: Connection, days: int = 90) -> list[DayRate]:
    """Finished attempts per day over the last ``days`` days (days without any left out)."""
    rows = conn.execute(
        """
        SELECT day, verdict, n FROM verdict_days
        WHERE day > (now() AT TIME ZONE 'UTC')::date - %s::int
        ORDER BY day
        """,
        (max(1, min(days, 3660)),),
    ).fetchall()
    by_day: dict[date, dict[str, int]] = {}
    for day, verdict, n in rows:
        by_day.setdefault(day, {})[str(verdict)] = int(n)
    return [DayRate(day, counts) for day, counts in by_day.items()]


def latest_rebuilds(
    conn: Connection,
    *,
    limit: int = 20,
    verdict: str | None = None,
    cursor: str | None = None,
    risk: str | None = None,
) -> Page[FileVerdict]:
    """Files by their latest finished attempt, newest first (``/api/v1/verdicts``)."""
    limit = _limit(limit)
    after = cursors.decode("verdicts", cursor, int)[0] if cursor else None
    with conn.cursor(row_factory=class_row(FileVerdict)) as cur:
        rows = cur.execute(
            f"""
            SELECT {_FILE_VERDICT_COLUMNS}
            FROM (
                SELECT * FROM file_verdicts
                WHERE (%(verdict)s::text IS NULL OR verdict = %(verdict)s)
                  AND (%(after)s::bigint IS NULL OR attempt_id < %(after)s)
                  AND (%(risk)s::text IS NULL OR EXISTS (
                      SELECT 1 FROM attempts a
                      WHERE a.id = file_verdicts.attempt_id AND a.risk = %(risk)s))
                ORDER BY attempt_id DESC LIMIT %(limit)s
            ) fv
            JOIN files f ON f.id = fv.file_id
            JOIN releases r ON r.id = f.release_id
            ORDER BY fv.attempt_id DESC
            """,  # noqa: S608 - only our own column list is formatted in
            {"verdict": verdict, "after": after, "limit": limit + 1, "risk": risk},
        ).fetchall()
    return _page(rows, limit, "verdicts", lambda row: (_int(row.attempt_id),))


def recent_by_finish(
    conn: Connection, *, verdict: str | None = None, risk: str | None = None, limit: int = 50
) -> list[FileVerdict]:
    """Files by their latest verdict, most recently finished first (the home page's list),
    optionally only one verdict and one risk."""
    with conn.cursor(row_factory=class_row(FileVerdict)) as cur:
        return cur.execute(
            f"""
            SELECT {_FILE_VERDICT_COLUMNS}
            FROM (
                SELECT fv.* FROM file_verdicts fv
                WHERE (%(verdict)s::text IS NULL OR fv.verdict = %(verdict)s)
                  AND (%(risk)s::text IS NULL OR EXISTS (
                      SELECT 1 FROM attempts a WHERE a.id = fv.attempt_id AND a.risk = %(risk)s))
                ORDER BY fv.finished_at DESC, fv.file_id LIMIT %(limit)s
            ) fv
            JOIN files f ON f.id = fv.file_id
            JOIN releases r ON r.id = f.release_id
            ORDER BY fv.finished_at DESC, fv.file_id
            """,  # noqa: S608 - only our own column list is formatted in
            {"verdict": verdict, "risk": risk, "limit": _limit(limit)},
        ).fetchall()


def new_mismatches(conn: Connection, *, limit: int = 20) -> list[FileVerdict]:
    """Files whose latest verdict is a mismatch and whose one before was not."""
    with conn.cursor(row_factory=class_row(FileVerdict)) as cur:
        return cur.execute(
            f"""
            SELECT {_FILE_VERDICT_COLUMNS}
            FROM (
                SELECT * FROM file_verdicts
                WHERE verdict = 'mismatch' AND previous_verdict IS DISTINCT FROM 'mismatch'
                ORDER BY finished_at DESC, file_id LIMIT %s
            ) fv
            JOIN files f ON f.id = fv.file_id
            JOIN releases r ON r.id = f.release_id
            ORDER BY fv.finished_at DESC, fv.file_id
            """,  # noqa: S608 - only our own column list is formatted in
            (_limit(limit),),
        ).fetchall()


def problems(conn: Connection, *, project: str | None = None, limit: int = 50) -> list[FileVerdict]:
    """Files whose latest verdict is mismatch or failed, newest first (the Atom feeds)."""
    limit = _limit(limit)
    with conn.cursor(row_factory=class_row(FileVerdict)) as cur:
        if project is None:
            return cur.execute(
                f"""
                SELECT {_FILE_VERDICT_COLUMNS}
                FROM (
                    (SELECT * FROM file_verdicts WHERE verdict = 'mismatch'
                     ORDER BY attempt_id DESC LIMIT %(limit)s)
                    UNION ALL
                    (SELECT * FROM file_verdicts WHERE verdict = 'failed'
                     ORDER BY attempt_id DESC LIMIT %(limit)s)
                    ORDER BY attempt_id DESC LIMIT %(limit)s
                ) fv
                JOIN files f ON f.id = fv.file_id
                JOIN releases r ON r.id = f.release_id
                ORDER BY fv.attempt_id DESC
                """,  # noqa: S608 - only our own column list is formatted in
                {"limit": limit},
            ).fetchall()
        return cur.execute(
            f"""
            SELECT {_FILE_VERDICT_COLUMNS}
            FROM releases r
            JOIN files f ON f.release_id = r.id
            JOIN file_verdicts fv ON fv.file_id = f.id
            WHERE r.project = %s AND fv.verdict IN ('mismatch', 'failed')
            ORDER BY fv.attempt_id DESC LIMIT %s
            """,  # noqa: S608 - only our own column list is formatted in
            (project, limit),
        ).fetchall()


def queue_status(conn: Connection) -> QueueStatus:
    """Attempts and source checks waiting and running."""
    row = conn.execute(
        """
        SELECT count(*) FILTER (WHERE status = 'queued'), count(*) FILTER (WHERE status = 'running')
        FROM attempts WHERE status <> 'done'
        """
    ).fetchone()
    assert row is not None  # noqa: S101 - an aggregate always answers one row
    source_queued, source_running = SOURCE_CHECKS.queue_counts(conn)
    return QueueStatus(
        queued=int(row[0]),
        running=int(row[1]),
        source_queued=source_queued,
        source_running=source_running,
    )


def workers(conn: Connection, *, limit: int = 100) -> list[WorkerRow]:
    """Workers that have not said goodbye, the most recently heard first."""
    with conn.cursor(row_factory=class_row(WorkerRow)) as cur:
        return cur.execute(
            """
            SELECT name, host, pid, version, started_at, heartbeat_at, current_attempt,
                stopped_at
            FROM workers WHERE stopped_at IS NULL
            ORDER BY heartbeat_at DESC, name LIMIT %s
            """,
            (_limit(limit),),
        ).fetchall()


def database_now(conn: Connection) -> datetime:
    """The database's clock (worker health is judged against it, not the web host's)."""
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None  # noqa: S101 - SELECT now() always answers
    value: datetime = row[0]
    return value


# ---------------------------------------------------------------- projects


def projects(
    conn: Connection, *, prefix: str = "", limit: int = 50, cursor: str | None = None
) -> Page[ProjectSummary]:
    """Projects by name, optionally those starting with ``prefix`` (already normalized)."""
    limit = _limit(limit)
    after = str(cursors.decode("projects", cursor, str)[0]) if cursor else ""
    with conn.cursor(row_factory=class_row(ProjectSummary)) as cur:
        rows = cur.execute(
            """
            SELECT name, watched, added_at FROM projects
            WHERE name LIKE %(prefix)s AND name > %(after)s
            ORDER BY name LIMIT %(limit)s
            """,
            {"prefix": like_prefix(prefix), "after": after, "limit": limit + 1},
        ).fetchall()
    return _page(rows, limit, "projects", lambda row: (row.name,))


def suggestions(conn: Connection, text: str, *, limit: int = 10) -> list[str]:
    """Project names near ``text`` (normalized): prefix matches first, then containing."""
    limit = _limit(limit)
    rows = conn.execute(
        """
        (SELECT name, 0 AS rank FROM projects WHERE name LIKE %(prefix)s
         ORDER BY name LIMIT %(limit)s)
        UNION ALL
        (SELECT name, 1 FROM projects
         WHERE strpos(name, %(text)s) > 1
         ORDER BY length(name), name LIMIT %(limit)s)
        ORDER BY rank, name LIMIT %(limit)s
        """,
        {"prefix": like_prefix(text), "text": text, "limit": limit},
    ).fetchall()
    return [str(r[0]) for r in rows]


def project(conn: Connection, name: str) -> ProjectSummary | None:
    """One project by its normalized name."""
    with conn.cursor(row_factory=class_row(ProjectSummary)) as cur:
        return cur.execute(
            "SELECT name, watched, added_at FROM projects WHERE name = %s", (name,)
        ).fetchone()


def releases(
    conn: Connection, name: str, *, limit: int = 20, cursor: str | None = None
) -> Page[ReleaseSummary]:
    """A project's releases, newest first, each with its files and their verdicts."""
    limit = _limit(limit)
    after = _int(cursors.decode("releases", cursor, int)[0]) if cursor else None
    rows = conn.execute(
        """
        SELECT id, project, version, discovered_at FROM releases
        WHERE project = %(name)s AND (%(after)s::bigint IS NULL OR id < %(after)s)
        ORDER BY id DESC LIMIT %(limit)s
        """,
        {"name": name, "after": after, "limit": limit + 1},
    ).fetchall()
    found = [ReleaseSummary(int(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]
    page = _page(found, limit, "releases", lambda release: (release.id,))
    by_release = {release.id: release for release in page.items}
    for item in files_of_releases(conn, list(by_release)):
        by_release[item.release_id].files.append(item)
    return page


def release(conn: Connection, name: str, version: str) -> ReleaseSummary | None:
    """One release of a project with its files."""
    row = conn.execute(
        "SELECT id, project, version, discovered_at FROM releases "
        "WHERE project = %s AND version = %s",
        (name, version),
    ).fetchone()
    if row is None:
        return None
    found = ReleaseSummary(int(row[0]), str(row[1]), str(row[2]), row[3])
    found.files.extend(files_of_releases(conn, [found.id]))
    return found


def files_of_releases(conn: Connection, release_ids: Sequence[int]) -> list[FileVerdict]:
    """The files of these releases with their latest verdicts, by filename."""
    if not release_ids:
        return []
    with conn.cursor(row_factory=class_row(FileVerdict)) as cur:
        return cur.execute(
            f"""
            SELECT {_FILE_VERDICT_COLUMNS}
            FROM files f
            JOIN releases r ON r.id = f.release_id
            LEFT JOIN file_verdicts fv ON fv.file_id = f.id
            WHERE f.release_id = ANY(%s)
            ORDER BY f.release_id DESC, f.filename
            LIMIT 5000
            """,  # noqa: S608 - only our own column list is formatted in
            (list(release_ids),),
        ).fetchall()


def project_attempts(conn: Connection, name: str, *, limit: int = 30) -> list[AttemptSummary]:
    """The latest attempts on any file of a project, newest first."""
    limit = _limit(limit)
    with conn.cursor(row_factory=class_row(AttemptSummary)) as cur:
        return cur.execute(
            """
            SELECT a.id, a.file_id, r.project, r.version, f.filename, a.status, a.priority,
                a.campaign_id, a.requested_at, a.started_at, a.finished_at, a.worker,
                a.verdict, a.reason_class, a.seconds
            FROM (
                SELECT attempt_id FROM attempt_projects WHERE project = %(name)s
                ORDER BY attempt_id DESC LIMIT %(limit)s
            ) p
            JOIN attempts a ON a.id = p.attempt_id
            JOIN files f ON f.id = a.file_id
            JOIN releases r ON r.id = f.release_id
            ORDER BY a.id DESC
            """,
            {"name": name, "limit": limit},
        ).fetchall()


def release_trend(conn: Connection, name: str, *, releases: int = 30) -> list[ReleaseTrend]:
    """Latest verdicts counted per release, for the project's last ``releases`` releases."""
    rows = conn.execute(
        """
        SELECT r.id, r.version, fv.verdict, count(*)
        FROM (SELECT id, version FROM releases WHERE project = %s
              ORDER BY id DESC LIMIT %s) r
        JOIN files f ON f.release_id = r.id
        JOIN file_verdicts fv ON fv.file_id = f.id
        GROUP BY r.id, r.version, fv.verdict
        ORDER BY r.id
        """,
        (name, max(1, min(releases, 200))),
    ).fetchall()
    by_release: dict[int, ReleaseTrend] = {}
    for release_id, version, verdict, n in rows:
        trend = by_release.setdefault(int(release_id), ReleaseTrend(str(version), {}))
        trend.counts[str(verdict)] = int(n)
    return list(by_release.values())


# ---------------------------------------------------------------- files and attempts


def file_verdict(conn: Connection, file_id: int) -> FileVerdict | None:
    """One file with its latest verdict."""
    with conn.cursor(row_factory=class_row(FileVerdict)) as cur:
        return cur.execute(
            f"""
            SELECT {_FILE_VERDICT_COLUMNS}
            FROM files f
            JOIN releases r ON r.id = f.release_id
            LEFT JOIN file_verdicts fv ON fv.file_id = f.id
            WHERE f.id = %s
            """,  # noqa: S608 - only our own column list is formatted in
            (file_id,),
        ).fetchone()


def file_id_by_name(conn: Connection, project: str, version: str, filename: str) -> int | None:
    """The id of a release's file by its name."""
    row = conn.execute(
        """
        SELECT f.id FROM files f JOIN releases r ON r.id = f.release_id
        WHERE f.filename = %s AND r.project = %s AND r.version = %s
        """,
        (filename, project, version),
    ).fetchone()
    return None if row is None else int(row[0])


def file_detail(conn: Connection, file_id: int) -> FileDetail | None:
    """The file page's data: the file, its latest outcome, active attempt, attestations."""
    found = file_verdict(conn, file_id)
    if found is None:
        return None
    extra = conn.execute("SELECT url, generator FROM files WHERE id = %s", (file_id,)).fetchone()
    assert extra is not None  # noqa: S101 - the row was just read
    latest = None if found.attempt_id is None else attempt_by_id(conn, found.attempt_id)
    active = attempts(conn, file_id=file_id, limit=1, status="active").items
    with conn.cursor(row_factory=class_row(Attestation)) as cur:
        attested = cur.execute(
            """
            SELECT attempt_id, position, kind, log_origin, leaf_index FROM attestations
            WHERE attempt_id = (
                SELECT attempt_id FROM attestations WHERE file_id = %s
                ORDER BY attempt_id DESC LIMIT 1
            )
            ORDER BY position
            """,
            (file_id,),
        ).fetchall()
    return FileDetail(
        file=found,
        url=str(extra[0]),
        generator=None if extra[1] is None else str(extra[1]),
        latest=latest,
        active=active[0] if active else None,
        attestations=attested,
    )


def attempts(
    conn: Connection,
    *,
    file_id: int | None = None,
    verdict: str | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[AttemptSummary]:
    """Attempts newest first, of one file or all; ``status`` 'active' = queued or running."""
    limit = _limit(limit)
    after = _int(cursors.decode("attempts", cursor, int)[0]) if cursor else None
    statuses = ["queued", "running"] if status == "active" else None if status is None else [status]
    with conn.cursor(row_factory=class_row(AttemptSummary)) as cur:
        rows = cur.execute(
            """
            SELECT a.id, a.file_id, r.project, r.version, f.filename, a.status, a.priority,
                a.campaign_id, a.requested_at, a.started_at, a.finished_at, a.worker,
                a.verdict, a.reason_class, a.seconds
            FROM (
                SELECT * FROM attempts
                WHERE (%(file)s::bigint IS NULL OR file_id = %(file)s)
                  AND (%(verdict)s::text IS NULL OR verdict = %(verdict)s)
                  AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s))
                  AND (%(after)s::bigint IS NULL OR id < %(after)s)
                ORDER BY id DESC LIMIT %(limit)s
            ) a
            JOIN files f ON f.id = a.file_id
            JOIN releases r ON r.id = f.release_id
            ORDER BY a.id DESC
            """,
            {
                "file": file_id,
                "verdict": verdict,
                "statuses": statuses,
                "after": after,
                "limit": limit + 1,
            },
        ).fetchall()
    return _page(rows, limit, "attempts", lambda row: (row.id,))


def attempt(conn: Connection, attempt_id: int) -> AttemptRow | None:
    """One attempt with its whole outcome."""
    return attempt_by_id(conn, attempt_id)


# ---------------------------------------------------------------- helpers


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching names that start with ``prefix`` literally."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _int(value: int | str | None) -> int:
    if value is None:
        raise ValueError("missing key")
    return int(value)


def _page(rows: list[_T], limit: int, kind: str, key: Callable[[_T], cursors.Key]) -> Page[_T]:
    """The first ``limit`` rows, and a cursor when one more row was read."""
    if len(rows) > limit:
        items = rows[:limit]
        return Page(items, cursors.encode(kind, key(items[-1])))
    return Page(rows, None)
