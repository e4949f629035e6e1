"""Where campaigns live: the :class:`CampaignStore` Protocol, on PostgreSQL and in memory.

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
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from rebuilder.errors import FailureReason
from rebuilder.index.model import FileKind, IndexFile
from rebuilder.store import attempts as attempt_sql
from rebuilder.store import projects as project_sql
from rebuilder.store.db import Connection, Pool, borrow
from rebuilder.store.projects import normalize
from rebuilder.store.records import (
    AttemptStatus,
    FileRow,
    diagnosis_from_json,
    differences_from_json,
    stabilizers_from_json,
)
from rebuilder.verdict import Diagnosis, Difference, Risk, StabilizerUse, Verdict, file_risk
from rebuilder.worker.queue import Priority
from scheduler.campaigns import CampaignError

logger = logging.getLogger(__name__)


class CampaignStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


class FindingKind(StrEnum):
    """What a selection found besides files to rebuild."""

    LOCK_HASH = "lock-hash"  # a hash in the lock differs from the index's: a finding in itself
    NOT_FOUND = "not-found"  # a pinned release or file the index does not have
    SKIPPED = "skipped"  # a lock entry naming no index release (VCS, path, unpinned)
    NO_GENERATOR = "no-generator"  # wheels whose Generator is not known yet


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    subject: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind.value, "subject": self.subject, "detail": self.detail}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        return cls(FindingKind(data["kind"]), str(data["subject"]), str(data["detail"]))

    @property
    def fails_audit(self) -> bool:
        """A lock whose hash differs from the index's is as bad as a mismatch."""
        return self.kind is FindingKind.LOCK_HASH

    def disowns(self, filename: str, note: str | None) -> bool:
        """True when this lock-hash finding means the lock does not vouch for the file.

        The file the index serves was judged in place of bytes the lock names (its hash
        differs, or none of the release's hashes matched): whatever the fleet found about
        it, it is not the file the lock pins.
        """
        if self.kind is not FindingKind.LOCK_HASH:
            return False
        return self.subject == filename or (note is not None and self.detail in note)


def not_vouched(filename: str, note: str | None, findings: Sequence[Finding]) -> bool:
    """True when a lock-hash finding disowns the file (never show it as verified)."""
    return any(f.disowns(filename, note) for f in findings)


@dataclass(frozen=True)
class CampaignRow:
    id: int
    name: str
    selection: Mapping[str, Any]
    force: bool
    image: str | None
    status: CampaignStatus
    created_at: datetime
    finished_at: datetime | None
    findings: tuple[Finding, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", CampaignStatus(self.status))
        object.__setattr__(
            self,
            "findings",
            tuple(f if isinstance(f, Finding) else Finding.from_json(f) for f in self.findings),
        )


@dataclass(frozen=True)
class CampaignFileRow:
    """One file a campaign answers for, with the attempt that answers (if any)."""

    file_id: int
    project: str
    version: str
    filename: str
    kind: FileKind
    sha256: str
    note: str | None
    attempt_id: int | None
    attempt_status: AttemptStatus | None
    attempt_campaign: int | None = None  # the campaign that queued the attempt
    verdict: Verdict | None = None
    reason_class: FailureReason | None = None
    reason: str | None = None
    stabilizers: tuple[StabilizerUse, ...] = ()
    differences: tuple[Difference, ...] = ()
    rebuilt_sha256: str | None = None
    evidence: str | None = None
    finished_at: datetime | None = None
    attested: bool = False
    diagnosis: tuple[Diagnosis, ...] = ()
    risk: Risk | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "kind", FileKind(self.kind))
        if self.attempt_status is not None:
            put(self, "attempt_status", AttemptStatus(self.attempt_status))
        if self.verdict is not None:
            put(self, "verdict", Verdict(self.verdict))
        if self.reason_class is not None:
            put(self, "reason_class", FailureReason(self.reason_class))
        put(self, "stabilizers", stabilizers_from_json(self.stabilizers or ()))
        put(self, "differences", differences_from_json(self.differences or ()))
        put(self, "diagnosis", diagnosis_from_json(self.diagnosis or ()))
        if self.risk is not None:
            put(self, "risk", Risk(self.risk))


@dataclass(frozen=True)
class Progress:
    """How far a campaign is: files by attempt state, finished ones by verdict."""

    total: int
    queued: int
    running: int
    done: int
    cancelled: int  # files left without an attempt by a cancel
    verdicts: Mapping[Verdict, int] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.queued == 0 and self.running == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "queued": self.queued,
            "running": self.running,
            "done": self.done,
            "cancelled": self.cancelled,
            "verdicts": {v.value: self.verdicts.get(v, 0) for v in Verdict},
        }


@dataclass(frozen=True)
class NewCampaign:
    """What :meth:`CampaignStore.create` records."""

    name: str
    selection: Mapping[str, Any]
    files: Mapping[int, str | None]  # file id -> note
    findings: Sequence[Finding] = ()
    force: bool = False
    image: str | None = None


@dataclass(frozen=True)
class Created:
    campaign_id: int
    queued: list[int]  # attempts made by this campaign
    adopted: list[int]  # attempts of others it waits for (lifted to campaign priority)
    reused: int  # files answered by an existing verdict

    @property
    def to_dispatch(self) -> list[int]:
        return sorted(self.queued + self.adopted)


class CampaignStore(Protocol):
    """What campaigns need from storage (selection queries, the campaign's own rows)."""

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

    def create(self, new: NewCampaign) -> Created:
        """Record a campaign and queue its attempts, in one transaction."""
        ...

    def mark_dispatched(self, attempt_ids: Sequence[int]) -> None:
        """Note that these attempts were handed to the broker."""
        ...

    def latest_for(self, file_ids: Sequence[int]) -> dict[int, CampaignFileRow]:
        """The latest finished attempt of each of these files (files never judged: absent)."""
        ...

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
        return _progress((status, verdict, int(n)) for status, verdict, n in rows)

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


def _progress(rows: Iterable[tuple[str | None, str | None, int]]) -> Progress:
    counts = {"queued": 0, "running": 0, "done": 0, None: 0}
    verdicts = dict.fromkeys(Verdict, 0)
    total = 0
    for status, verdict, n in rows:
        total += n
        counts[status] = counts.get(status, 0) + n
        if verdict is not None:
            verdicts[Verdict(verdict)] += n
    return Progress(
        total=total,
        queued=counts["queued"],
        running=counts["running"],
        done=counts["done"],
        cancelled=counts[None],
        verdicts=verdicts,
    )


# -- in memory (tests) -----------------------------------------------------------------


@dataclass(frozen=True)
class MemoryAttempt:
    id: int
    file_id: int
    status: AttemptStatus
    priority: int
    campaign_id: int | None = None
    image: str | None = None
    verdict: Verdict | None = None
    reason_class: FailureReason | None = None
    reason: str | None = None
    differences: tuple[Difference, ...] = ()
    stabilizers: tuple[StabilizerUse, ...] = ()
    rebuilt_sha256: str | None = None
    evidence: str | None = None
    finished_at: datetime | None = None
    dispatched: bool = False
    diagnosis: tuple[Diagnosis, ...] = ()


class MemoryCampaignStore:
    """A :class:`CampaignStore` in memory, with helpers to stage verdicts.

    For tests, and for ``audit --local``, whose empty store knows no file (no database).
    """

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._files: dict[int, FileRow] = {}
        self._releases: dict[tuple[str, str], int] = {}
        self.generators: dict[int, str] = {}
        self.attempts: dict[int, MemoryAttempt] = {}
        self._campaigns: dict[int, CampaignRow] = {}
        self._campaign_files: dict[int, dict[int, tuple[int | None, str | None]]] = {}
        self._next = 0

    def _id(self) -> int:
        self._next += 1
        return self._next

    # staging helpers
    def add_file(self, file: IndexFile, *, generator: str | None = None) -> FileRow:
        self.record_release(file.project, file.version, [file])
        row = self.files_by_filename([file.filename])[file.filename]
        if generator is not None:
            self.generators[row.id] = generator
        return row

    def add_verdict(
        self,
        file_id: int,
        verdict: Verdict,
        *,
        image: str | None = None,
        differences: tuple[Difference, ...] = (),
        reason: str | None = None,
        diagnosis: tuple[Diagnosis, ...] = (),
    ) -> int:
        with self._lock:
            attempt = MemoryAttempt(
                id=self._id(),
                file_id=file_id,
                status=AttemptStatus.QUEUED,
                priority=0,
                image=image,
            )
            self.attempts[attempt.id] = attempt
        self.finish(
            attempt.id, verdict, differences=differences, reason=reason, diagnosis=diagnosis
        )
        return attempt.id

    def finish(
        self,
        attempt_id: int,
        verdict: Verdict,
        *,
        differences: tuple[Difference, ...] = (),
        reason: str | None = None,
        diagnosis: tuple[Diagnosis, ...] = (),
    ) -> None:
        failed = verdict is Verdict.FAILED
        with self._lock:
            self.attempts[attempt_id] = replace(
                self.attempts[attempt_id],
                status=AttemptStatus.DONE,
                verdict=verdict,
                finished_at=self._clock(),
                differences=differences,
                diagnosis=diagnosis,
                reason=reason or ("build failed" if failed else None),
                reason_class=FailureReason.BUILD if failed else None,
                evidence=f"evidence/{attempt_id}",
            )

    def set_status(self, attempt_id: int, status: AttemptStatus) -> None:
        with self._lock:
            self.attempts[attempt_id] = replace(self.attempts[attempt_id], status=status)

    # the Protocol
    def record_release(self, project: str, version: str, files: Sequence[IndexFile]) -> None:
        name = normalize(project)
        with self._lock:
            release = self._releases.setdefault((name, version), self._id())
            known = {f.filename for f in self._files.values()}
            for file in files:
                if file.filename in known:
                    continue
                row = FileRow.from_index_file(
                    file, id=self._id(), release_id=release, project=name, version=version
                )
                self._files[row.id] = row

    def _sorted(self, rows: Iterable[FileRow]) -> list[FileRow]:
        return sorted(rows, key=lambda r: (r.project, r.version, r.filename))

    def files_by_filename(self, filenames: Iterable[str]) -> dict[str, FileRow]:
        wanted = set(filenames)
        with self._lock:
            return {f.filename: f for f in self._files.values() if f.filename in wanted}

    def uploaded_between(self, since: datetime | None, until: datetime | None) -> list[FileRow]:
        with self._lock:
            return self._sorted(
                f
                for f in self._files.values()
                if f.upload_time is not None
                and (since is None or f.upload_time >= since)
                and (until is None or f.upload_time < until)
            )

    def wheels_with_generator_like(self, backend: str) -> list[tuple[FileRow, str]]:
        prefix = backend.lower().replace("-", "_").replace(".", "_")
        with self._lock:
            rows = [
                (self._files[i], g)
                for i, g in self.generators.items()
                if self._files[i].kind is FileKind.WHEEL
                and g.lower().replace("-", "_").replace(".", "_").startswith(prefix)
            ]
        return sorted(rows, key=lambda r: (r[0].project, r[0].version, r[0].filename))

    def wheels_without_generator(self) -> int:
        with self._lock:
            return sum(
                f.kind is FileKind.WHEEL and f.id not in self.generators
                for f in self._files.values()
            )

    def _latest_done(self) -> dict[int, MemoryAttempt]:
        latest: dict[int, MemoryAttempt] = {}
        for a in sorted(self.attempts.values(), key=lambda a: a.id):
            if a.status is AttemptStatus.DONE:
                latest[a.file_id] = a
        return latest

    def latest_verdict_in(self, verdicts: Iterable[Verdict]) -> list[FileRow]:
        wanted = set(verdicts)
        with self._lock:
            return self._sorted(
                self._files[i] for i, a in self._latest_done().items() if a.verdict in wanted
            )

    def create(self, new: NewCampaign) -> Created:
        with self._lock:
            campaign_id = self._id()
            answers: dict[int, int] = {}
            reused = 0
            if not new.force:
                for file_id, a in self._latest_done().items():
                    if (
                        file_id in new.files
                        and a.verdict is not Verdict.FAILED
                        and a.image == new.image
                    ):
                        answers[file_id] = a.id
                reused = len(answers)
            active = {
                a.file_id: a for a in self.attempts.values() if a.status is not AttemptStatus.DONE
            }
            queued: list[int] = []
            adopted: list[int] = []
            for file_id in sorted(new.files):
                if file_id in answers:
                    continue
                if file_id not in self._files:
                    raise CampaignError(f"no such file {file_id}")
                if file_id in active:
                    a = active[file_id]
                    lifted = replace(a, priority=max(a.priority, int(Priority.CAMPAIGN)))
                    self.attempts[a.id] = lifted
                    answers[file_id] = a.id
                    if a.status is AttemptStatus.QUEUED:
                        adopted.append(a.id)
                    continue
                attempt = MemoryAttempt(
                    id=self._id(),
                    file_id=file_id,
                    status=AttemptStatus.QUEUED,
                    priority=int(Priority.CAMPAIGN),
                    campaign_id=campaign_id,
                    image=new.image,
                )
                self.attempts[attempt.id] = attempt
                answers[file_id] = attempt.id
                queued.append(attempt.id)
            self._campaigns[campaign_id] = CampaignRow(
                id=campaign_id,
                name=new.name,
                selection=dict(new.selection),
                force=new.force,
                image=new.image,
                status=CampaignStatus.RUNNING,
                created_at=self._clock(),
                finished_at=None,
                findings=tuple(new.findings),
            )
            self._campaign_files[campaign_id] = {
                i: (answers[i], note) for i, note in new.files.items()
            }
        return Created(campaign_id, queued, adopted, reused)

    def mark_dispatched(self, attempt_ids: Sequence[int]) -> None:
        with self._lock:
            for i in attempt_ids:
                if i in self.attempts and self.attempts[i].status is AttemptStatus.QUEUED:
                    self.attempts[i] = replace(self.attempts[i], dispatched=True)

    def campaign(self, campaign_id: int) -> CampaignRow | None:
        with self._lock:
            return self._campaigns.get(campaign_id)

    def campaigns(self, *, limit: int = 100) -> list[CampaignRow]:
        with self._lock:
            return sorted(self._campaigns.values(), key=lambda c: -c.id)[:limit]

    def progress(self, campaign_id: int) -> Progress:
        with self._lock:
            rows: list[tuple[str | None, str | None, int]] = []
            for attempt_id, _note in self._campaign_files.get(campaign_id, {}).values():
                a = None if attempt_id is None else self.attempts.get(attempt_id)
                rows.append(
                    (
                        None if a is None else a.status.value,
                        None if a is None or a.verdict is None else a.verdict.value,
                        1,
                    )
                )
        return _progress(rows)

    def files(self, campaign_id: int) -> list[CampaignFileRow]:
        with self._lock:
            out = [
                _memory_row(
                    self._files[file_id],
                    None if attempt_id is None else self.attempts.get(attempt_id),
                    note,
                )
                for file_id, (attempt_id, note) in self._campaign_files.get(campaign_id, {}).items()
            ]
        return sorted(out, key=lambda r: (r.project, r.version, r.filename))

    def latest_for(self, file_ids: Sequence[int]) -> dict[int, CampaignFileRow]:
        wanted = set(file_ids)
        with self._lock:
            return {
                i: _memory_row(self._files[i], a, None)
                for i, a in self._latest_done().items()
                if i in wanted
            }

    def cancel(self, campaign_id: int) -> list[int] | None:
        with self._lock:
            row = self._campaigns.get(campaign_id)
            if row is None or row.status is not CampaignStatus.RUNNING:
                return None
            self._campaigns[campaign_id] = replace(
                row, status=CampaignStatus.CANCELLED, finished_at=self._clock()
            )
            still_wanted = {
                attempt_id
                for cid, files in self._campaign_files.items()
                if cid != campaign_id and self._campaigns[cid].status is CampaignStatus.RUNNING
                for attempt_id, _ in files.values()
            }
            doomed = sorted(
                a.id
                for a in self.attempts.values()
                if a.campaign_id == campaign_id
                and a.status is AttemptStatus.QUEUED
                and a.id not in still_wanted
            )
            for files in self._campaign_files.values():
                for file_id, (attempt_id, note) in list(files.items()):
                    if attempt_id in doomed:
                        files[file_id] = (None, note)
            for attempt_id in doomed:
                del self.attempts[attempt_id]
        return doomed

    def close_finished(self) -> list[int]:
        closed = []
        with self._lock:
            for cid, row in list(self._campaigns.items()):
                if row.status is not CampaignStatus.RUNNING:
                    continue
                pending = [
                    a
                    for a, _ in self._campaign_files[cid].values()
                    if a is not None and self.attempts[a].status is not AttemptStatus.DONE
                ]
                if not pending:
                    self._campaigns[cid] = replace(
                        row, status=CampaignStatus.DONE, finished_at=self._clock()
                    )
                    closed.append(cid)
        return closed


def _memory_row(f: FileRow, a: MemoryAttempt | None, note: str | None) -> CampaignFileRow:
    return CampaignFileRow(
        file_id=f.id,
        project=f.project,
        version=f.version,
        filename=f.filename,
        kind=f.kind,
        sha256=f.sha256,
        note=note,
        attempt_id=None if a is None else a.id,
        attempt_status=None if a is None else a.status,
        attempt_campaign=None if a is None else a.campaign_id,
        verdict=None if a is None else a.verdict,
        reason_class=None if a is None else a.reason_class,
        reason=None if a is None else a.reason,
        stabilizers=() if a is None else a.stabilizers,
        differences=() if a is None else a.differences,
        rebuilt_sha256=None if a is None else a.rebuilt_sha256,
        evidence=None if a is None else a.evidence,
        finished_at=None if a is None else a.finished_at,
        diagnosis=() if a is None else a.diagnosis,
        risk=None if a is None or a.verdict is None else file_risk(a.verdict, a.diagnosis),
    )
