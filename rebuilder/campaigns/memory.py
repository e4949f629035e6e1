"""Campaigns in memory: the stand-in for the PostgreSQL campaign store.

It keeps the promises of the Protocols of :mod:`rebuilder.campaigns.store`, with helpers
to stage verdicts. For tests, and for ``audit --local``, whose empty store knows no file
(no database).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from rebuilder.campaigns import CampaignError
from rebuilder.campaigns.model import (
    CampaignFileRow,
    CampaignRow,
    CampaignStatus,
    Created,
    NewCampaign,
    Progress,
    progress_of,
)
from rebuilder.errors import FailureReason
from rebuilder.index.model import FileKind, IndexFile
from rebuilder.store.projects import normalize
from rebuilder.store.records import (
    AttemptStatus,
    FileRow,
)
from rebuilder.verdict import Diagnosis, Difference, StabilizerUse, Verdict, file_risk
from rebuilder.worker.queue import Priority

logger = logging.getLogger(__name__)


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
    """A campaign store in memory, with helpers to stage verdicts.

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
        return progress_of(rows)

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
