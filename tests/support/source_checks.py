"""An in-memory twin of the source-check store (``rebuilder.source.store``).

It keeps the PostgreSQL store's promises (one active check per release, a check claimed
once and finished once, statements logged only with an accepted outcome), for unit tests
of the worker's source job and the scheduler's source-check step. Releases are added by
the test with :meth:`MemorySourceChecks.add_release`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from rebuilder.index.model import FileKind
from rebuilder.source.checks import SourceCheckRow, SourceOutcome
from rebuilder.store import StoreError
from rebuilder.store.memory import beaten, claimed
from rebuilder.store.outcomes import SignedStatement
from rebuilder.store.records import AttemptStatus, FileRow


@dataclass
class _Release:
    id: int
    project: str
    version: str
    files: list[FileRow]
    attempt_priorities: list[int] = field(default_factory=list)


class MemorySourceChecks:
    """Source checks in memory, safe to share between threads. For tests only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._releases: dict[int, _Release] = {}
        self._checks: dict[int, SourceCheckRow] = {}
        self._dispatched: set[int] = set()
        self.logged: list[str] = []  # every envelope line "logged", in order
        self.attestations: dict[int, list[SignedStatement]] = {}  # by check id
        self.manifests: dict[int, Mapping[str, str] | None] = {}
        self._ids = 0
        self.fail_next: list[Exception] = []  # raised by the next store calls, in order

    def _next(self) -> int:
        self._ids += 1
        return self._ids

    def _maybe_fail(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)

    # -- set-up -----------------------------------------------------------------

    def add_release(
        self,
        project: str,
        version: str,
        kinds: Sequence[FileKind] = (FileKind.SDIST, FileKind.WHEEL),
        *,
        attempt_priorities: Sequence[int] = (),
        yanked_sdist: bool = False,
    ) -> int:
        """Record a release with one file of each kind; its id."""
        with self._lock:
            release_id = self._next()
            files = []
            for kind in kinds:
                file_id = self._next()
                name = (
                    f"{project}-{version}.tar.gz"
                    if kind is FileKind.SDIST
                    else f"{project}-{version}-py3-none-any.whl"
                )
                files.append(
                    FileRow(
                        file_id,
                        release_id,
                        project,
                        version,
                        name,
                        kind,
                        f"http://127.0.0.1:9/{name}",
                        f"{file_id:064x}",
                        10,
                        None,
                        yanked_sdist and kind is FileKind.SDIST,
                    )
                )
            self._releases[release_id] = _Release(
                release_id, project, version, files, list(attempt_priorities)
            )
        return release_id

    def checks_of(self, release_id: int) -> list[SourceCheckRow]:
        with self._lock:
            return [c for c in self._checks.values() if c.release_id == release_id]

    # -- SourceCheckQueue ---------------------------------------------------------

    def request_missing_source_checks(
        self,
        *,
        new_priority: int,
        backfill_priority: int,
        after_release: int,
        limit: int,
        newest_per_project: int | None = None,
    ) -> list[tuple[int, int]]:
        self._maybe_fail()
        made: list[tuple[int, int]] = []
        with self._lock:
            checked = {c.release_id for c in self._checks.values()}
            for release in sorted(self._releases.values(), key=lambda r: -r.id):
                if len(made) >= limit:
                    break
                newer = sum(
                    1
                    for r in self._releases.values()
                    if r.project == release.project and r.id > release.id
                )
                if (
                    newest_per_project is not None
                    and not release.attempt_priorities
                    and newer >= newest_per_project
                ):
                    continue
                sdists = sorted(
                    (f for f in release.files if f.kind is FileKind.SDIST and not f.yanked),
                    key=lambda f: (not f.filename.endswith(".tar.gz"), f.filename),
                )
                if release.id <= after_release or release.id in checked or not sdists:
                    continue
                top = max(release.attempt_priorities, default=-1)
                if top >= new_priority:
                    priority = top
                elif not any(f.kind is FileKind.WHEEL for f in release.files):
                    priority = new_priority
                else:
                    priority = backfill_priority
                check_id = self._new_check(release, sdists[0].id, priority)
                made.append((check_id, priority))
        return sorted(made, key=lambda p: (-p[1], p[0]))

    def max_release_id(self) -> int:
        with self._lock:
            return max(self._releases, default=0)

    def requeue_stale_source_checks(self, older_than: timedelta) -> list[int]:
        self._maybe_fail()
        limit = datetime.now(UTC) - older_than
        with self._lock:
            stale = [
                c.id
                for c in self._checks.values()
                if c.status is AttemptStatus.RUNNING
                and (c.heartbeat_at or c.started_at or limit) < limit
            ]
            for check_id in stale:
                self._requeue(check_id)
        return sorted(stale)

    def undispatched_source_checks(
        self, older_than: timedelta, *, limit: int = 1000
    ) -> list[tuple[int, int]]:
        cutoff = datetime.now(UTC) - older_than
        with self._lock:
            rows = [
                c
                for c in self._checks.values()
                if c.status is AttemptStatus.QUEUED
                and c.id not in self._dispatched
                and c.requested_at < cutoff
            ]
        rows.sort(key=lambda c: (-c.priority, c.id))
        return [(c.id, c.priority) for c in rows[:limit]]

    def mark_source_checks_dispatched(self, check_ids: Sequence[int]) -> None:
        with self._lock:
            self._dispatched.update(
                i for i in check_ids if self._checks[i].status is AttemptStatus.QUEUED
            )

    # -- SourceCheckJobs ----------------------------------------------------------

    def request_source_check(self, release_id: int, priority: int) -> int | None:
        with self._lock:
            release = self._releases[release_id]
            if any(
                c.release_id == release_id and c.status is not AttemptStatus.DONE
                for c in self._checks.values()
            ):
                return None
            sdist = next((f for f in release.files if f.kind is FileKind.SDIST), None)
            if sdist is None:
                raise StoreError(f"release {release_id} has no sdist")
            return self._new_check(release, sdist.id, priority)

    def source_check(self, check_id: int) -> SourceCheckRow | None:
        with self._lock:
            return self._checks.get(check_id)

    def start_source_check(self, check_id: int, worker: str) -> SourceCheckRow | None:
        self._maybe_fail()
        with self._lock:
            row = claimed(self._checks.get(check_id), worker, datetime.now(UTC))
            if row is not None:
                self._checks[check_id] = row
            return row

    def source_heartbeat(self, check_id: int, worker: str) -> bool:
        with self._lock:
            row = beaten(self._checks.get(check_id), worker, datetime.now(UTC))
            if row is None:
                return False
            self._checks[check_id] = row
            return True

    def release_files(self, release_id: int) -> list[FileRow]:
        self._maybe_fail()
        with self._lock:
            return sorted(self._releases[release_id].files, key=lambda f: f.filename)

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
        del log_origin  # one log in memory
        self._maybe_fail()
        with self._lock:
            row = self._checks.get(check_id)
            if row is None:
                raise StoreError(f"no source check {check_id} to finish")
            if row.status is not AttemptStatus.RUNNING or row.worker != worker:
                return False
            self._checks[check_id] = replace(
                row,
                status=AttemptStatus.DONE,
                finished_at=datetime.now(UTC),
                verdict=outcome.verdict,
                reason=outcome.reason,
                repository=outcome.repository,
                tag=outcome.tag,
                commit=outcome.commit,
                result=outcome.result,
                seconds=outcome.seconds,
                evidence_manifest=evidence_manifest,
            )
            self.logged.extend(s.line for s in statements)
            self.attestations[check_id] = list(statements)
            self.manifests[check_id] = evidence_manifest
            return True

    def give_back_source_check(self, check_id: int, worker: str) -> bool:
        with self._lock:
            row = self._checks.get(check_id)
            if row is None or row.status is not AttemptStatus.RUNNING or row.worker != worker:
                return False
            self._requeue(check_id)
            return True

    def defer_source_check(
        self, check_id: int, worker: str, *, count_try: bool, repository: str | None
    ) -> bool:
        self._maybe_fail()
        with self._lock:
            row = self._checks.get(check_id)
            if row is None or row.status is not AttemptStatus.RUNNING or row.worker != worker:
                return False
            self._checks[check_id] = replace(
                row,
                status=AttemptStatus.QUEUED,
                worker=None,
                started_at=None,
                heartbeat_at=None,
                tries=row.tries if count_try else row.tries - 1,
                repository=repository or row.repository,
            )
            self._dispatched.add(check_id)
            return True

    # -- inside the lock --------------------------------------------------------

    def _new_check(self, release: _Release, sdist_id: int, priority: int) -> int:
        check_id = self._next()
        self._checks[check_id] = SourceCheckRow(
            check_id,
            release.id,
            sdist_id,
            release.project,
            release.version,
            AttemptStatus.QUEUED,
            priority,
            datetime.now(UTC),
        )
        return check_id

    def _requeue(self, check_id: int) -> None:
        row = self._checks[check_id]
        self._checks[check_id] = replace(
            row, status=AttemptStatus.QUEUED, worker=None, started_at=None, heartbeat_at=None
        )
        self._dispatched.discard(check_id)

    def backdate(self, check_id: int, seconds: float) -> None:
        """Make a check look requested (and last heard of) ``seconds`` earlier."""
        with self._lock:
            row = self._checks[check_id]
            delta = timedelta(seconds=seconds)
            self._checks[check_id] = replace(
                row,
                requested_at=row.requested_at - delta,
                started_at=None if row.started_at is None else row.started_at - delta,
                heartbeat_at=None if row.heartbeat_at is None else row.heartbeat_at - delta,
            )
