"""The job a worker runs for one source-check id: claim, trace, keep evidence, sign, record.

The release-level twin of :class:`~rebuilder.worker.runner.AttemptRunner`. A check is
claimed in the database before anything runs, so a message delivered twice runs once; a
heartbeat keeps the claim while the tracer clones, compares and rebuilds from git. The
verdict, the evidence manifest and the signed source statements (appended to the
transparency log, rows in ``source_attestations``) are recorded in one transaction.

Trouble that may pass (the index or the database away, the disk full) gives the claim
back and raises :class:`RetryLaterError`, so dramatiq retries later; past ``max_tries``
claims, or on a bug, the check is recorded ``failed`` with the reason (no statement is
signed: a source-check statement only ever says consistent, inconsistent or no-source).

A repository host that does not answer is an expected outage, not a bug: one WARNING
line (no traceback), the check waits for a delayed retry of its message, and checks of
a host the tracer backs off are deferred without counting a try
(``rebuilder.source.fleet.HostBackoff``).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from rebuilder.attest.bundle import sign_bundle
from rebuilder.attest.keys import Signer
from rebuilder.errors import RebuilderError
from rebuilder.index.model import IndexFile
from rebuilder.source.attest import source_statements
from rebuilder.source.checks import (
    PROVENANCE_KIND,
    SOURCE_CHECK_KIND,
    SourceCheckRow,
    SourceOutcome,
)
from rebuilder.source.errors import RepositoryUnreachableError
from rebuilder.source.fleet import HostOutageError
from rebuilder.source.result import SourceResult
from rebuilder.source.store import SourceCheckJobs
from rebuilder.store.outcomes import SignedStatement
from rebuilder.store.records import AttemptStatus, FileRow
from rebuilder.worker.localruns import LocalRuns, beating, relative_evidence
from rebuilder.worker.queue import DeferredError, is_transient
from rebuilder.worker.runner import EvidenceKeeper, RetryLaterError

logger = logging.getLogger(__name__)

#: Seconds before a check whose repository host did not answer is tried again, when the
#: tracer does not say (``HostOutageError.retry_after`` does).
OUTAGE_RETRY_SECONDS = 60.0


class ReleaseTracer(Protocol):
    """Judges a recorded sdist against its git tag (``rebuilder.source.fleet``)."""

    def trace(
        self, sdist: IndexFile, files: Sequence[IndexFile], evidence_dir: Path
    ) -> SourceResult: ...


class WorkerPresence(Protocol):
    """The ``workers`` table: a worker says it is alive (``rebuilder health worker``)."""

    def worker_beat(self, name: str, current_attempt: int | None) -> None: ...


class SourceSigner(Protocol):
    """Signs what a source check found; the statements in bundle order."""

    def sign(self, result: SourceResult) -> list[SignedStatement]: ...


@dataclass(frozen=True)
class SourceAttestor:
    """A :class:`SourceSigner` with the operator's key (``rebuilder.source.attest``)."""

    signer: Signer
    builder_id: str
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def sign(self, result: SourceResult) -> list[SignedStatement]:
        statements = source_statements(result, self.builder_id, self.clock())
        envelopes = sign_bundle(statements, self.signer)
        kinds = [SOURCE_CHECK_KIND, *([PROVENANCE_KIND] * (len(envelopes) - 1))]
        return [SignedStatement(k, e.dumps()) for k, e in zip(kinds, envelopes, strict=True)]


@dataclass(frozen=True)
class SourceRunnerConfig:
    """The knobs of :class:`SourceCheckRunner`."""

    worker: str
    log_origin: str
    work_root: Path
    heartbeat_seconds: float = 20.0
    max_tries: int = 3


class SourceCheckRunner:
    """Runs source checks to their recorded outcome. One instance serves all threads."""

    def __init__(
        self,
        *,
        store: SourceCheckJobs,
        tracer: ReleaseTracer,
        signer: SourceSigner,
        evidence: EvidenceKeeper,
        config: SourceRunnerConfig,
        presence: WorkerPresence,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._presence = presence
        self._tracer = tracer
        self._signer = signer
        self._evidence = evidence
        self._config = config
        self._clock = clock
        self._local = LocalRuns()

    def busy(self) -> bool:
        """True while a check is being run (by any thread)."""
        return self._local.busy()

    def run(self, check_id: int) -> None:
        """Run one check; returns quietly when it is not ours to run (a duplicate)."""
        with self._local.hold(check_id) as mine:
            if not mine:
                logger.info("source check %s is running here already: duplicate", check_id)
                return
            row = self._claim(check_id)
            if row is not None:
                self._run(row)

    def _claim(self, check_id: int) -> SourceCheckRow | None:
        row = self._store.start_source_check(check_id, self._config.worker)
        if row is not None:
            return row
        current = self._store.source_check(check_id)
        if current is None:
            logger.warning("source check %s does not exist; message dropped", check_id)
            return None
        if current.status is AttemptStatus.RUNNING and current.worker == self._config.worker:
            logger.info("source check %s: resuming our own claim", check_id)
            return current
        logger.info(
            "source check %s is %s (worker %s): duplicate message ignored",
            check_id,
            current.status,
            current.worker,
        )
        return None

    def _run(self, row: SourceCheckRow) -> None:
        fields = {"source_check": row.id, "project": row.project, "version": row.version}
        logger.info(
            "source check %s: tracing %s %s", row.id, row.project, row.version, extra=fields
        )
        try:
            with self._heartbeat(row.id):
                self._run_claimed(row)
        except RepositoryUnreachableError as exc:
            self._outage(row, exc, fields)
        except Exception as exc:
            if not is_transient(exc) or row.tries >= self._config.max_tries:
                logger.exception("source check %s: gave up", row.id, extra=fields)
                self._record_failure(row, exc)
                return
            logger.warning(
                "source check %s: %s; giving it back to retry (try %d of %d)",
                row.id,
                exc,
                row.tries,
                self._config.max_tries,
                extra=fields,
            )
            self._give_back(row.id)
            raise RetryLaterError(f"source check {row.id}: {exc}") from exc

    def _run_claimed(self, row: SourceCheckRow) -> None:
        files = self._store.release_files(row.release_id)
        sdist = _sdist(row, files)
        folder = self._config.work_root / f"source-check-{row.id}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            evidence = folder / "source"
            result = self._tracer.trace(
                sdist.to_index_file(), [f.to_index_file() for f in files], evidence
            )
            # Signed while the evidence is still there: a from-git provenance reads the
            # strategy the wheel was rebuilt with from it.
            statements = self._signer.sign(result)
            kept = Path(result.evidence) if result.evidence else None
            manifest = self._evidence.keep(kept) if kept is not None and kept.is_dir() else None
            outcome = SourceOutcome.from_result(
                replace(result, evidence=relative_evidence(result.evidence, folder))
            )
            self._record(row, outcome, manifest, statements)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _record(
        self,
        row: SourceCheckRow,
        outcome: SourceOutcome,
        manifest: dict[str, str] | None,
        statements: list[SignedStatement],
    ) -> None:
        recorded = self._store.record_source_outcome(
            row.id,
            outcome,
            worker=self._config.worker,
            evidence_manifest=manifest,
            statements=statements,
            log_origin=self._config.log_origin,
        )
        fields = {
            "source_check": row.id,
            "project": row.project,
            "version": row.version,
            "verdict": outcome.verdict.value,
            "commit": outcome.commit,
            "seconds": None if outcome.seconds is None else round(outcome.seconds, 3),
        }
        if not recorded:
            logger.warning("source check %s: outcome refused (claim lost)", row.id, extra=fields)
            return
        logger.info("source check %s: %s", row.id, outcome.verdict.value, extra=fields)

    def _outage(
        self, row: SourceCheckRow, exc: RepositoryUnreachableError, fields: dict[str, object]
    ) -> None:
        """An expected outage of a repository host: one log line, no traceback.

        A try that reached the network counts; past ``max_tries`` the check is recorded
        ``failed`` (with the repository URL). Otherwise the check waits, still marked
        sent, for its message's delayed retry (:class:`DeferredError`): when the host is
        backed off, nothing was tried and the try is given back.
        """
        url = exc.url if isinstance(exc, HostOutageError) else None
        tried = exc.tried if isinstance(exc, HostOutageError) else True
        wait = exc.retry_after if isinstance(exc, HostOutageError) else OUTAGE_RETRY_SECONDS
        if tried and row.tries >= self._config.max_tries:
            logger.warning(
                "source check %s: repository host did not answer; recorded failed after %d "
                "tries: %s",
                row.id,
                row.tries,
                exc.diagnostics(),
                extra=fields,
            )
            self._record_failure(row, exc, repository=url)
            return
        try:
            deferred = self._store.defer_source_check(
                row.id, self._config.worker, count_try=tried, repository=url
            )
        except RebuilderError as store_error:  # the database away too: retry as usual
            logger.warning("source check %s: %s", row.id, store_error, extra=fields)
            self._give_back(row.id)
            raise RetryLaterError(f"source check {row.id}: {store_error}") from store_error
        if not deferred:
            logger.warning("source check %s: claim lost while deferring it", row.id, extra=fields)
            return
        if tried:
            logger.warning(
                "source check %s: %s; retrying in %.0f s (try %d of %d)",
                row.id,
                exc.diagnostics(),
                wait,
                row.tries,
                self._config.max_tries,
                extra=fields,
            )
        else:
            logger.info("source check %s deferred: %s", row.id, exc.diagnostics(), extra=fields)
        raise DeferredError(f"source check {row.id}: repository host away", delay=int(wait * 1000))

    def _record_failure(
        self, row: SourceCheckRow, error: BaseException, *, repository: str | None = None
    ) -> None:
        detail = error.diagnostics() if isinstance(error, RebuilderError) else repr(error)
        outcome = SourceOutcome.failed(
            f"the worker could not finish this source check: {detail}", repository=repository
        )
        try:
            self._record(row, outcome, None, [])
        except Exception:
            # Nothing more can be done here: the claim goes stale and is taken back.
            logger.exception("source check %s: could not record its failure", row.id)

    def _give_back(self, check_id: int) -> None:
        try:
            self._store.give_back_source_check(check_id, self._config.worker)
        except Exception:
            logger.exception("source check %s: could not give it back; it will go stale", check_id)

    def _heartbeat(self, check_id: int) -> AbstractContextManager[None]:
        # Two beats: the check's claim, and the worker's own row, which the health check
        # and ``rebuilder status`` read (a worker busy with a long check is not dead).
        def beat() -> None:
            if not self._store.source_heartbeat(check_id, self._config.worker):
                logger.warning("source check %s: our claim was taken back", check_id)
            self._presence.worker_beat(self._config.worker, None)

        self._beat_worker()

        return beating(beat, self._config.heartbeat_seconds, f"source-heartbeat-{check_id}")

    def _beat_worker(self) -> None:
        try:
            self._presence.worker_beat(self._config.worker, None)
        except RebuilderError as exc:
            logger.warning("worker heartbeat failed: %s", exc)


def _sdist(row: SourceCheckRow, files: Sequence[FileRow]) -> FileRow:
    for file in files:
        if file.id == row.sdist_id:
            return file
    # The foreign key makes this impossible; say so loudly if not.
    raise AssertionError(f"source check {row.id} names sdist {row.sdist_id}, not of its release")
