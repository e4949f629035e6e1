"""Where campaigns live: their storage Protocols (one per consumer) and the PostgreSQL store.

Every fact of a campaign is a row (``campaigns``, ``campaign_files``, ``attempts``), so a
campaign survives any restart: the scheduler re-sends queued attempts never handed to
the broker, workers take back silent claims, and progress is always read afresh.

Starting a campaign is one transaction: the campaign row, one ``campaign_files`` row per
selected file, and the attempts it queues at campaign priority. A file that already has
a queued or running attempt is not queued twice: the campaign answers with that attempt
and lifts it to campaign priority. Without ``force``, a file whose latest conclusive
verdict (anything but ``failed``) was made on the wanted image answers with that verdict.

Cancelling deletes the campaign's attempts that are still queued (a cancelled rebuild is
not a verdict about the file, so it leaves no ``failed`` row behind) and keeps those a
worker already runs: they finish and are reported. A message already sent for a deleted
attempt finds nothing to claim and is dropped by the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Protocol

from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from rebuilder.campaigns import CampaignError
from rebuilder.campaigns.model import (
    CampaignFileRow,
    CampaignRow,
    Created,
    NewCampaign,
    Progress,
    progress_of,
)
from rebuilder.index.model import IndexFile
from rebuilder.store import attempts as attempt_sql
from rebuilder.store import projects as project_sql
from rebuilder.store.db import Connection, Pool, borrow
from rebuilder.store.records import (
    AttemptStatus,
    FileRow,
)
from rebuilder.verdict import Verdict
from rebuilder.worker.queue import Priority

logger = logging.getLogger(__name__)


class SelectionStore(Protocol):
    """What selections and audits read: the recorded files and their latest verdicts."""

    def record_release(self, project: str, version: str, files: Sequence[IndexFile]) -> None:
        """Record a release's files (idempotent)."""
        ...

    def files_by_filename(self, filenames: Iterable[str]) -> dict[str, FileRow]:
        """The recorded files among these names."""
        ...

    def uploaded_between(self, since: datetime | None, until: datetime | None) -> list[FileRow]:
        """Every recorded file uploaded in [since, until)."""
        ...

    def wheels_with_generator_like(self, backend: str) -> list[tuple[FileRow, str]]:
        """Recorded wheels whose Generator starts with ``backend`` (any separator)."""
        ...

    def wheels_without_generator(self) -> int:
        """How many recorded wheels have no Generator read yet."""
        ...

    def latest_verdict_in(self, verdicts: Iterable[Verdict]) -> list[FileRow]:
        """Files whose latest verdict is one of ``verdicts``."""
        ...

    def latest_for(self, file_ids: Sequence[int]) -> dict[int, CampaignFileRow]:
        """The latest finished attempt of each of these files (files never judged: absent)."""
        ...


class CampaignStarter(SelectionStore, Protocol):
    """What starting a campaign needs: its selection, then its rows and their sending."""

    def create(self, new: NewCampaign) -> Created:
        """Record a campaign and queue its attempts, in one transaction."""
        ...

    def mark_dispatched(self, attempt_ids: Sequence[int]) -> None:
        """Note that these attempts were handed to the broker."""
        ...


class CampaignStore(Protocol):
    """What following, cancelling, closing and reporting a campaign read and write."""

    def campaign(self, campaign_id: int) -> CampaignRow | None: ...

    def campaigns(self, *, limit: int = 100) -> list[CampaignRow]:
        """Newest first."""
        ...

    def progress(self, campaign_id: int) -> Progress: ...

    def files(self, campaign_id: int) -> list[CampaignFileRow]:
        """The campaign's files, by project, version and filename."""
        ...

    def cancel(self, campaign_id: int) -> list[int] | None:
        """Cancel a running campaign; the queued attempts deleted (None: not running)."""
        ...

    def close_finished(self) -> list[int]:
        """Mark done the running campaigns with nothing left to run; their ids."""
        ...


# -- PostgreSQL ------------------------------------------------------------------------

_FILE_COLUMNS = """
    f.id, f.release_id, r.project, r.version, f.filename, f.kind, f.url, f.sha256, f.size,
    f.upload_time, f.yanked
"""


def _generator_pattern(backend: str) -> str:
    # "-", "_" and "." are one separator in a name: each becomes LIKE's "_".
    escaped = backend.lower().replace("\\", "\\\\").replace("%", "\\%")
    for sep in "-_.":
        escaped = escaped.replace(sep, "_")
    return escaped + "%"


class PostgresCampaignStore:
    """A :class:`CampaignStore` on the fleet's PostgreSQL."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @contextmanager
    def _conn(self, doing: str) -> Iterator[Connection]:
        with borrow(self._pool, doing) as conn:
            yield conn

    def _file_rows(
        self, conn: Connection, where: str, params: Mapping[str, object] | Sequence[object]
    ) -> list[FileRow]:
        # ``where`` is always one of this module's constant conditions, never user text.
        query = sql.SQL(
            "SELECT {columns} FROM files f JOIN releases r ON r.id = f.release_id "
            "WHERE {where} ORDER BY r.project, r.version, f.filename"
        ).format(columns=sql.SQL(_FILE_COLUMNS), where=sql.SQL(where))
        with conn.cursor(row_factory=class_row(FileRow)) as cur:
            return cur.execute(query, params).fetchall()

    def record_release(self, project: str, version: str, files: Sequence[IndexFile]) -> None:
        with self._conn(f"recording {project} {version}") as conn:
            project_sql.record_release(conn, project, version, files)

    def files_by_filename(self, filenames: Iterable[str]) -> dict[str, FileRow]:
        names = sorted(set(filenames))
        if not names:
            return {}
        with self._conn("reading files") as conn:
            rows = self._file_rows(conn, "f.filename = ANY(%s)", (names,))
        return {row.filename: row for row in rows}

    def uploaded_between(self, since: datetime | None, until: datetime | None) -> list[FileRow]:
        with self._conn("reading files by upload time") as conn:
            return self._file_rows(
                conn,
                """f.upload_time IS NOT NULL
                   AND (%(since)s::timestamptz IS NULL OR f.upload_time >= %(since)s)
                   AND (%(until)s::timestamptz IS NULL OR f.upload_time < %(until)s)""",
                {"since": since, "until": until},
            )

    def wheels_with_generator_like(self, backend: str) -> list[tuple[FileRow, str]]:
        with self._conn("reading wheels by generator") as conn:
            rows = self._file_rows(
                conn,
                "f.kind = 'wheel' AND lower(f.generator) LIKE %s",
                (_generator_pattern(backend),),
            )
            generators = dict(
                conn.execute(
                    "SELECT id, generator FROM files WHERE id = ANY(%s)",
                    ([r.id for r in rows],),
                ).fetchall()
            )
        return [(row, str(generators[row.id])) for row in rows]

    def wheels_without_generator(self) -> int:
        with self._conn("counting wheels without generator") as conn:
            found = conn.execute(
                "SELECT count(*) FROM files WHERE kind = 'wheel' AND generator IS NULL"
            ).fetchone()
        return 0 if found is None else int(found[0])

    def latest_verdict_in(self, verdicts: Iterable[Verdict]) -> list[FileRow]:
        wanted = sorted(v.value for v in verdicts)
        with self._conn("reading files by verdict") as conn:
            return self._file_rows(
                conn,
                """(SELECT a.verdict FROM attempts a
                    WHERE a.file_id = f.id AND a.status = 'done'
                    ORDER BY a.id DESC LIMIT 1) = ANY(%s)""",
                (wanted,),
            )

    def create(self, new: NewCampaign) -> Created:
        file_ids = sorted(new.files)
        with self._conn(f"starting campaign {new.name!r}") as conn, conn.transaction():
            found = conn.execute(
                """
                INSERT INTO campaigns (name, selection, force, image, findings)
                VALUES (%s, %s, %s, %s, %s) RETURNING id
                """,
                (
                    new.name,
                    Jsonb(dict(new.selection)),
                    new.force,
                    new.image,
                    Jsonb([f.to_json() for f in new.findings]),
                ),
            ).fetchone()
            if found is None:
                raise CampaignError("the campaign row was not made")
            campaign_id = int(found[0])
            answers: dict[int, int] = {}
            reused = 0
            if not new.force:
                rows = conn.execute(
                    """
                    SELECT DISTINCT ON (file_id) file_id, id, verdict, image
                    FROM attempts WHERE file_id = ANY(%s) AND status = 'done'
                    ORDER BY file_id, id DESC
                    """,
                    (file_ids,),
                ).fetchall()
                for file_id, attempt_id, verdict, image in rows:
                    if verdict != Verdict.FAILED.value and image == new.image:
                        answers[int(file_id)] = int(attempt_id)
                reused = len(answers)
            queued: list[int] = []
            adopted: list[int] = []
            wanted = [i for i in file_ids if i not in answers]
            for _round in range(3):  # an active attempt may finish between two statements
                queued += attempt_sql.request_attempts_bulk(
                    conn, wanted, int(Priority.CAMPAIGN), campaign_id, image=new.image
                )
                made = conn.execute(
                    "SELECT file_id, id FROM attempts WHERE campaign_id = %s", (campaign_id,)
                ).fetchall()
                answers.update({int(f): int(a) for f, a in made})
                busy = [i for i in wanted if i not in answers]
                if busy:
                    adopted += self._adopt(conn, busy, answers)
                wanted = [i for i in file_ids if i not in answers]
                if not wanted:
                    break
            else:
                raise CampaignError(f"files kept changing while starting: {wanted[:10]}")
            conn.execute(
                """
                INSERT INTO campaign_files (campaign_id, file_id, attempt_id, note)
                SELECT %s, * FROM unnest(%s::bigint[], %s::bigint[], %s::text[])
                """,
                (
                    campaign_id,
                    file_ids,
                    [answers[i] for i in file_ids],
                    [new.files[i] for i in file_ids],
                ),
            )
        logger.info(
            "campaign %s %r: %s files, %s queued, %s adopted, %s answered by a verdict",
            campaign_id,
            new.name,
            len(file_ids),
            len(queued),
            len(adopted),
            reused,
        )
        return Created(campaign_id, sorted(queued), sorted(adopted), reused)

    @staticmethod
    def _adopt(conn: Connection, busy: list[int], answers: dict[int, int]) -> list[int]:
        """Answer busy files with their active attempt, lifted to campaign priority."""
        adopted = []
        active = conn.execute(
            """
            UPDATE attempts SET
                dispatched_at = CASE WHEN status = 'queued' AND priority < %(priority)s
                                THEN NULL ELSE dispatched_at END,
                priority = GREATEST(priority, %(priority)s)
            WHERE file_id = ANY(%(files)s) AND status IN ('queued', 'running')
            RETURNING file_id, id, status
            """,
            {"priority": int(Priority.CAMPAIGN), "files": busy},
        ).fetchall()
        for file_id, attempt_id, status in active:
            answers[int(file_id)] = int(attempt_id)
            if status == AttemptStatus.QUEUED.value:
                adopted.append(int(attempt_id))
        return adopted

    def latest_for(self, file_ids: Sequence[int]) -> dict[int, CampaignFileRow]:
        with (
            self._conn("reading the latest verdicts of files") as conn,
            conn.cursor(row_factory=class_row(CampaignFileRow)) as cur,
        ):
            rows = cur.execute(
                """
                SELECT f.id AS file_id, r.project, r.version, f.filename, f.kind,
                    f.sha256, NULL::text AS note, a.id AS attempt_id,
                    a.status AS attempt_status, a.campaign_id AS attempt_campaign,
                    a.verdict, a.reason_class, a.reason, a.stabilizers, a.differences,
                    a.rebuilt_sha256, a.evidence, a.finished_at,
                    EXISTS (SELECT 1 FROM attestations t WHERE t.attempt_id = a.id)
                        AS attested, COALESCE(a.diagnosis, '[]'::jsonb) AS diagnosis, a.risk
                FROM files f
                JOIN releases r ON r.id = f.release_id
                CROSS JOIN LATERAL (
                    SELECT * FROM attempts WHERE file_id = f.id AND status = 'done'
                    ORDER BY id DESC LIMIT 1
                ) a
                WHERE f.id = ANY(%s)
                """,
                (list(file_ids),),
            ).fetchall()
        return {row.file_id: row for row in rows}

    def mark_dispatched(self, attempt_ids: Sequence[int]) -> None:
        with self._conn("noting dispatched attempts") as conn:
            attempt_sql.mark_dispatched(conn, attempt_ids)

    def campaign(self, campaign_id: int) -> CampaignRow | None:
        with (
            self._conn(f"reading campaign {campaign_id}") as conn,
            conn.cursor(row_factory=class_row(CampaignRow)) as cur,
        ):
            return cur.execute(
                """
                SELECT id, name, selection, force, image, status, created_at,
                    finished_at, findings
                FROM campaigns WHERE id = %s
                """,
                (campaign_id,),
            ).fetchone()

    def campaigns(self, *, limit: int = 100) -> list[CampaignRow]:
        with (
            self._conn("listing campaigns") as conn,
            conn.cursor(row_factory=class_row(CampaignRow)) as cur,
        ):
            return cur.execute(
                """
                SELECT id, name, selection, force, image, status, created_at,
                    finished_at, findings
                FROM campaigns ORDER BY id DESC LIMIT %s
                """,
                (limit,),
            ).fetchall()

    def progress(self, campaign_id: int) -> Progress:
        with self._conn(f"reading the progress of campaign {campaign_id}") as conn:
            rows = conn.execute(
                """
                SELECT a.status, a.verdict, count(*)
                FROM campaign_files cf LEFT JOIN attempts a ON a.id = cf.attempt_id
                WHERE cf.campaign_id = %s
                GROUP BY a.status, a.verdict
                """,
                (campaign_id,),
            ).fetchall()
        return progress_of((status, verdict, int(n)) for status, verdict, n in rows)

    def files(self, campaign_id: int) -> list[CampaignFileRow]:
        with (
            self._conn(f"reading the files of campaign {campaign_id}") as conn,
            conn.cursor(row_factory=class_row(CampaignFileRow)) as cur,
        ):
            return cur.execute(
                """
                SELECT f.id AS file_id, r.project, r.version, f.filename, f.kind,
                    f.sha256, cf.note, a.id AS attempt_id, a.status AS attempt_status,
                    a.campaign_id AS attempt_campaign, a.verdict, a.reason_class,
                    a.reason, a.stabilizers, a.differences, a.rebuilt_sha256,
                    a.evidence, a.finished_at,
                    EXISTS (SELECT 1 FROM attestations t WHERE t.attempt_id = a.id)
                        AS attested, COALESCE(a.diagnosis, '[]'::jsonb) AS diagnosis, a.risk
                FROM campaign_files cf
                JOIN files f ON f.id = cf.file_id
                JOIN releases r ON r.id = f.release_id
                LEFT JOIN attempts a ON a.id = cf.attempt_id
                WHERE cf.campaign_id = %s
                ORDER BY r.project, r.version, f.filename
                """,
                (campaign_id,),
            ).fetchall()

    def cancel(self, campaign_id: int) -> list[int] | None:
        with self._conn(f"cancelling campaign {campaign_id}") as conn, conn.transaction():
            found = conn.execute(
                """
                UPDATE campaigns SET status = 'cancelled', finished_at = now()
                WHERE id = %s AND status = 'running' RETURNING id
                """,
                (campaign_id,),
            ).fetchone()
            if found is None:
                return None
            # Lock the queued attempts first: a worker claiming one now either got it
            # (status running: it is kept) or waits and then finds nothing to claim.
            rows = conn.execute(
                """
                SELECT a.id FROM attempts a
                WHERE a.campaign_id = %(c)s AND a.status = 'queued'
                  AND NOT EXISTS (
                      SELECT 1 FROM campaign_files cf JOIN campaigns c ON c.id = cf.campaign_id
                      WHERE cf.attempt_id = a.id AND cf.campaign_id <> %(c)s
                        AND c.status = 'running')
                FOR UPDATE OF a
                """,
                {"c": campaign_id},
            ).fetchall()
            doomed = sorted(int(r[0]) for r in rows)
            if doomed:
                conn.execute(
                    "UPDATE campaign_files SET attempt_id = NULL WHERE attempt_id = ANY(%s)",
                    (doomed,),
                )
                conn.execute("DELETE FROM attempts WHERE id = ANY(%s)", (doomed,))
        logger.info("campaign %s cancelled; %s queued attempts withdrawn", campaign_id, len(doomed))
        return doomed

    def close_finished(self) -> list[int]:
        with self._conn("closing finished campaigns") as conn, conn.transaction():
            rows = conn.execute(
                """
                UPDATE campaigns c SET status = 'done', finished_at = now()
                WHERE c.status = 'running' AND NOT EXISTS (
                    SELECT 1 FROM campaign_files cf JOIN attempts a ON a.id = cf.attempt_id
                    WHERE cf.campaign_id = c.id AND a.status <> 'done')
                RETURNING c.id
                """
            ).fetchall()
        return sorted(int(r[0]) for r in rows)
