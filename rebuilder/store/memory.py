"""The fleet's state in memory: the stand-in for the PostgreSQL store in unit tests.

:class:`MemoryStore` implements every Protocol of :mod:`rebuilder.store.protocols` and
keeps the same promises in memory (one attempt claimed once, at
most one active attempt per file, idempotent recording) for unit tests of actor and
scheduler logic; ``tests/integration/store/test_contract.py`` runs one suite against it
and the PostgreSQL store to prove they agree.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeVar

from rebuilder.index.model import IndexFile
from rebuilder.store import StoreError
from rebuilder.store.outcomes import SignedStatement
from rebuilder.store.projects import normalize
from rebuilder.store.records import (
    AttemptRow,
    AttemptStatus,
    FileRow,
    ProjectRow,
    RunningRow,
    VerdictRow,
    judged_on_discovery,
)
from rebuilder.store.workers import WorkerRow
from rebuilder.verdict import FileResult, Verdict

_T = TypeVar("_T")


class _JobRow(Protocol):
    """What the claim reads of a job row (an attempt or a source check, both dataclasses)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def status(self) -> AttemptStatus: ...
    @property
    def worker(self) -> str | None: ...
    @property
    def tries(self) -> int: ...


_Job = TypeVar("_Job", bound=_JobRow)


def claimed(row: _Job | None, worker: str, now: datetime) -> _Job | None:
    """The in-memory claim of a job row (attempt or source check): queued -> running by
    ``worker``, one more try; None when it is not queued (the SQL claim's guard)."""
    if row is None or row.status is not AttemptStatus.QUEUED:
        return None
    return replace(
        row,
        status=AttemptStatus.RUNNING,
        worker=worker,
        started_at=now,
        heartbeat_at=now,
        tries=row.tries + 1,
    )


def beaten(row: _Job | None, worker: str, now: datetime) -> _Job | None:
    """The row after ``worker``'s heartbeat; None unless ``worker`` holds it running."""
    if row is None or row.status is not AttemptStatus.RUNNING or row.worker != worker:
        return None
    return replace(row, heartbeat_at=now)


class MemoryStore:
    """A :class:`Store` in memory, safe to share between threads. For tests only."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._projects: dict[str, ProjectRow] = {}
        self._releases: dict[tuple[str, str], int] = {}
        self._files: dict[int, FileRow] = {}
        self._filenames: dict[str, int] = {}
        self._attempts: dict[int, AttemptRow] = {}
        self._cursors: dict[str, str] = {}
        self._dispatched: set[int] = set()
        self._bundles: dict[int, tuple[int, list[str]]] = {}
        self.logged: list[str] = []  # every envelope line "logged", in order
        self.generators: dict[int, str] = {}
        self._workers: dict[str, WorkerRow] = {}
        self._next_id = 0

    def watch_add(self, names: Iterable[str]) -> list[str]:
        wanted = sorted({normalize(n) for n in names})
        with self._lock:
            added = [n for n in wanted if not self._project(n).watched]
            for name in added:
                self._projects[name] = replace(self._projects[name], watched=True)
        return added

    def watch_remove(self, names: Iterable[str]) -> list[str]:
        wanted = sorted({normalize(n) for n in names})
        with self._lock:
            removed = [n for n in wanted if n in self._projects and self._projects[n].watched]
            for name in removed:
                self._projects[name] = replace(self._projects[name], watched=False)
        return removed

    def watched(self, *, prefix: str = "") -> list[ProjectRow]:
        with self._lock:
            rows = [p for p in self._projects.values() if p.watched and p.name.startswith(prefix)]
        return sorted(rows, key=lambda p: p.name)

    def record_release(
        self,
        project: str,
        version: str,
        files: Sequence[IndexFile],
        *,
        cursor: tuple[str, str] | None = None,
    ) -> list[FileRow]:
        name = normalize(project)
        for file in files:
            if normalize(file.project) != name or file.version != version:
                msg = f"{file.filename} is not a file of {name} {version}"
                raise ValueError(msg)
        with self._lock:
            self._project(name)
            release_id = self._releases.get((name, version))
            if release_id is None:
                release_id = self._releases[(name, version)] = self._new_id()
            new: list[FileRow] = []
            for file in files:
                if file.filename in self._filenames:
                    continue
                row = FileRow.from_index_file(
                    file, id=self._new_id(), release_id=release_id, project=name, version=version
                )
                self._files[row.id] = row
                self._filenames[row.filename] = row.id
                new.append(row)
            if cursor is not None:
                self._cursors[cursor[0]] = cursor[1]
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
        new = self.record_release(project, version, files, cursor=cursor)
        wheels = judged_on_discovery(new)
        return new, self.request_attempts_bulk(wheels, priority)

    def release_versions(self, project: str) -> set[str]:
        name = normalize(project)
        with self._lock:
            return {version for (p, version) in self._releases if p == name}

    def file(self, file_id: int) -> FileRow | None:
        with self._lock:
            return self._files.get(file_id)

    def request_attempt(
        self,
        file_id: int,
        priority: int,
        campaign_id: int | None = None,
        *,
        image: str | None = None,
    ) -> int | None:
        made = self.request_attempts_bulk([file_id], priority, campaign_id, image=image)
        return made[0] if made else None

    def request_attempts_bulk(
        self,
        file_ids: Sequence[int],
        priority: int,
        campaign_id: int | None = None,
        *,
        image: str | None = None,
    ) -> list[int]:
        with self._lock:
            unknown = sorted(set(file_ids) - set(self._files))
            if unknown:
                raise StoreError(f"no such files: {unknown[:10]}")
            busy = {
                a.file_id for a in self._attempts.values() if a.status is not AttemptStatus.DONE
            }
            made = []
            for file_id in sorted(set(file_ids) - busy):
                row = AttemptRow(
                    id=self._new_id(),
                    file_id=file_id,
                    status=AttemptStatus.QUEUED,
                    priority=priority,
                    campaign_id=campaign_id,
                    requested_at=self._clock(),
                    image=image,
                )
                self._attempts[row.id] = row
                made.append(row.id)
        return made

    def attempt(self, attempt_id: int) -> AttemptRow | None:
        with self._lock:
            return self._attempts.get(attempt_id)

    def start_attempt(self, attempt_id: int, worker: str) -> AttemptRow | None:
        with self._lock:
            row = claimed(self._attempts.get(attempt_id), worker, self._clock())
            if row is not None:
                self._attempts[attempt_id] = row
            return row

    def heartbeat(self, attempt_id: int, worker: str) -> bool:
        with self._lock:
            row = beaten(self._attempts.get(attempt_id), worker, self._clock())
            if row is None:
                return False
            self._attempts[attempt_id] = row
            return True

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
        with self._lock:
            row = self._attempts.get(attempt_id)
            if row is None:
                raise StoreError(f"no attempt {attempt_id} to finish")
            filename = self._files[row.file_id].filename
            if filename != result.filename:
                raise StoreError(
                    f"attempt {attempt_id} rebuilds {filename}, not {result.filename}: "
                    "outcome refused"
                )
            if row.status is AttemptStatus.DONE:
                return False
            if worker is not None and (
                row.status is not AttemptStatus.RUNNING or row.worker != worker
            ):
                return False
            self._attempts[attempt_id] = replace(
                row,
                status=AttemptStatus.DONE,
                finished_at=self._clock(),
                strategy=None if strategy_json is None else dict(strategy_json),
                image_digest=image_digest,
                verdict=result.verdict,
                reason_class=result.reason_class,
                reason=result.reason,
                stabilizers=result.stabilizers,
                differences=result.differences,
                diagnosis=result.diagnosis,
                risk=result.risk,
                timings=dict(result.timings),
                seconds=result.seconds,
                evidence=result.evidence,
                evidence_manifest=None if evidence_manifest is None else dict(evidence_manifest),
                rebuilt_sha256=result.rebuilt_sha256,
            )
            return True

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
        del log_origin  # one log in memory
        finished = self.finish_attempt(
            attempt_id,
            result,
            strategy_json,
            image_digest,
            worker=worker,
            evidence_manifest=evidence_manifest,
        )
        if finished and statements:
            with self._lock:
                lines = [s.line for s in statements]
                self.logged.extend(line for line in lines if line not in self.logged)
                file_id = self._attempts[attempt_id].file_id
                self._bundles[file_id] = (attempt_id, lines)
        return finished

    def bundle_lines(self, file_id: int) -> list[str]:
        with self._lock:
            return list(self._bundles.get(file_id, (0, []))[1])

    def release_attempt(self, attempt_id: int, worker: str) -> bool:
        with self._lock:
            row = self._attempts.get(attempt_id)
            if row is None or row.status is not AttemptStatus.RUNNING or row.worker != worker:
                return False
            self._attempts[attempt_id] = replace(
                row, status=AttemptStatus.QUEUED, worker=None, started_at=None, heartbeat_at=None
            )
            self._dispatched.discard(attempt_id)
            return True

    def mark_dispatched(self, attempt_ids: Sequence[int]) -> None:
        with self._lock:
            self._dispatched.update(
                i
                for i in attempt_ids
                if i in self._attempts and self._attempts[i].status is AttemptStatus.QUEUED
            )

    def in_flight(self) -> int:
        with self._lock:
            return sum(
                1
                for a in self._attempts.values()
                if a.status is AttemptStatus.QUEUED and a.id in self._dispatched
            )

    def undispatched(self, older_than: timedelta, *, limit: int = 1000) -> list[tuple[int, int]]:
        with self._lock:
            before = self._clock() - older_than
            rows = [
                a
                for a in self._attempts.values()
                if a.status is AttemptStatus.QUEUED
                and a.id not in self._dispatched
                and a.requested_at < before
            ]
        rows.sort(key=lambda a: (-a.priority, a.id))
        return [(a.id, a.priority) for a in rows[:limit]]

    def set_generator(self, file_id: int, generator: str) -> None:
        with self._lock:
            self.generators.setdefault(file_id, generator[:200])

    def announce_worker(self, name: str, host: str, pid: int, version: str) -> None:
        now = self._clock()
        with self._lock:
            self._workers[name] = WorkerRow(name, host, pid, version, now, now, None, None)

    def worker_beat(self, name: str, current_attempt: int | None) -> None:
        with self._lock:
            if name in self._workers:
                self._workers[name] = replace(
                    self._workers[name], heartbeat_at=self._clock(), current_attempt=current_attempt
                )

    def retire_worker(self, name: str) -> None:
        with self._lock:
            if name in self._workers:
                self._workers[name] = replace(
                    self._workers[name], stopped_at=self._clock(), current_attempt=None
                )

    def workers(self, *, include_stopped: bool = False) -> list[WorkerRow]:
        with self._lock:
            rows = [w for w in self._workers.values() if include_stopped or w.stopped_at is None]
        return sorted(rows, key=lambda w: (-w.heartbeat_at.timestamp(), w.name))

    def requeue_stale(self, older_than: timedelta) -> list[int]:
        with self._lock:
            limit = self._clock() - older_than
            stale = [
                a
                for a in self._attempts.values()
                if a.status is AttemptStatus.RUNNING
                and (a.heartbeat_at or a.started_at or limit) < limit
            ]
            for row in stale:
                self._attempts[row.id] = replace(
                    row,
                    status=AttemptStatus.QUEUED,
                    worker=None,
                    started_at=None,
                    heartbeat_at=None,
                )
                self._dispatched.discard(row.id)
        return sorted(a.id for a in stale)

    def queued_ids(self, *, limit: int = 1000) -> list[int]:
        with self._lock:
            queued = [a for a in self._attempts.values() if a.status is AttemptStatus.QUEUED]
        queued.sort(key=lambda a: (-a.priority, a.id))
        return [a.id for a in queued[:limit]]

    def latest_verdicts(
        self, *, project: str | None = None, verdict: Verdict | None = None, limit: int = 100
    ) -> list[VerdictRow]:
        wanted = None if project is None else normalize(project)
        with self._lock:
            rows = []
            for done in self._latest_done().values():
                file = self._files[done.file_id]
                if wanted is not None and file.project != wanted:
                    continue
                if verdict is not None and done.verdict is not verdict:
                    continue
                rows.append(
                    VerdictRow(
                        file_id=file.id,
                        project=file.project,
                        version=file.version,
                        filename=file.filename,
                        attempt_id=done.id,
                        verdict=_known(done.verdict),
                        reason_class=done.reason_class,
                        finished_at=_known(done.finished_at),
                    )
                )
        rows.sort(key=lambda r: (r.finished_at, r.attempt_id), reverse=True)
        return rows[:limit]

    def verdict_counts(self) -> dict[Verdict, int]:
        counts = dict.fromkeys(Verdict, 0)
        with self._lock:
            for done in self._latest_done().values():
                counts[_known(done.verdict)] += 1
        return counts

    def queue_depth(self) -> int:
        with self._lock:
            return sum(a.status is AttemptStatus.QUEUED for a in self._attempts.values())

    def running(self) -> list[RunningRow]:
        with self._lock:
            rows = [
                RunningRow(
                    attempt_id=a.id,
                    project=self._files[a.file_id].project,
                    version=self._files[a.file_id].version,
                    filename=self._files[a.file_id].filename,
                    worker=_known(a.worker),
                    started_at=_known(a.started_at),
                )
                for a in self._attempts.values()
                if a.status is AttemptStatus.RUNNING
            ]
        return sorted(rows, key=lambda r: (r.started_at, r.attempt_id))

    def get_cursor(self, name: str) -> str | None:
        with self._lock:
            return self._cursors.get(name)

    def set_cursor(self, name: str, value: str) -> None:
        with self._lock:
            self._cursors[name] = value

    def _project(self, name: str) -> ProjectRow:
        row = self._projects.get(name)
        if row is None:
            row = self._projects[name] = ProjectRow(name, watched=False, added_at=self._clock())
        return row

    def _latest_done(self) -> dict[int, AttemptRow]:
        latest: dict[int, AttemptRow] = {}
        for row in sorted(self._attempts.values(), key=lambda a: a.id):
            if row.status is AttemptStatus.DONE:
                latest[row.file_id] = row
        return latest

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id


def _known(value: _T | None) -> _T:
    # Fields a status guarantees (a done attempt has a verdict): a None is a bug here.
    if value is None:
        msg = "a row is missing a field its status guarantees"
        raise AssertionError(msg)
    return value
