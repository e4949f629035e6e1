"""The job a worker runs for one attempt id: claim, rebuild, keep evidence, sign, record.

An attempt is claimed in the database before anything runs, so a message delivered
twice (a redelivery after a lost ack, a re-dispatch by the scheduler) runs once. While
the rebuild runs, a heartbeat keeps the claim; a worker killed mid-build stops beating
and the scheduler takes the attempt back. The outcome, the evidence manifest and the
signed statements (appended to the transparency log) are recorded in one transaction.

Trouble that may pass (the database or the disk away, the Docker engine restarting)
gives the claim back and raises, so dramatiq retries later; after ``max_tries`` claims
of the same attempt the outcome is recorded as ``failed`` (infrastructure), so every
job ends with exactly one outcome. A bug in the rebuilder is recorded the same way and
never stops the worker.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import dramatiq

from rebuilder.attest.bundle import statement_kinds
from rebuilder.attest.dsse import Envelope
from rebuilder.errors import FailureReason, RebuilderError
from rebuilder.index.model import IndexFile
from rebuilder.store.outcomes import SignedStatement
from rebuilder.store.protocols import WorkerStore
from rebuilder.store.records import AttemptRow, AttemptStatus, FileRow
from rebuilder.verdict import FileResult, Verdict
from rebuilder.worker.localruns import (
    LocalRuns,
    beating,
    claim_folder,
    relative_evidence,
    remove_dead_folders,
)
from rebuilder.worker.queue import is_transient

logger = logging.getLogger(__name__)


class FileJudge(Protocol):
    """Rebuilds and judges one published file (``rebuilder.pipeline.Rebuilder``)."""

    def judge_file(self, file: IndexFile) -> FileResult: ...


class JudgeFactory(Protocol):
    """A judge writing evidence under ``evidence_root``, on ``image`` (None: default)."""

    def __call__(self, image: str | None, evidence_root: Path) -> FileJudge: ...


class StatementSigner(Protocol):
    """Signs the statements about a judged file (``rebuilder.attest.publish.Attestor``)."""

    def sign(self, result: FileResult) -> list[Envelope]: ...


class EvidenceKeeper(Protocol):
    """Keeps an evidence folder for good; its manifest {relative path: sha256}."""

    def keep(self, folder: Path) -> dict[str, str]: ...


class JobObserver(Protocol):
    """Told about every finished job (metrics)."""

    def job_finished(self, result: FileResult, *, queued_seconds: float | None) -> None: ...


class RetryLaterError(RebuilderError, dramatiq.Retry):
    """The attempt was given back after trouble that may pass; dramatiq retries it.

    A ``dramatiq.Retry``: the runner logged the trouble as one WARNING line already, so
    dramatiq adds no "unhandled exception" traceback; retries stay bounded
    (``rebuilder.worker.queue.MAX_RETRIES``) and back off as usual.
    """

    reason = FailureReason.INFRASTRUCTURE

    def __init__(self, message: str) -> None:
        dramatiq.Retry.__init__(self, message)
        self.args = (message,)


@dataclass(frozen=True)
class RunnerConfig:
    """The knobs of :class:`AttemptRunner`."""

    worker: str
    log_origin: str
    work_root: Path
    heartbeat_seconds: float = 20.0
    max_tries: int = 3


class _NoObserver:
    def job_finished(self, result: FileResult, *, queued_seconds: float | None) -> None:
        del result, queued_seconds


class AttemptRunner:
    """Runs attempts to their recorded outcome. One instance serves all worker threads."""

    def __init__(
        self,
        *,
        store: WorkerStore,
        judges: JudgeFactory,
        signer: StatementSigner,
        evidence: EvidenceKeeper,
        config: RunnerConfig,
        observer: JobObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._judges = judges
        self._signer = signer
        self._evidence = evidence
        self._config = config
        self._observer = observer or _NoObserver()
        self._clock = clock
        self._local = LocalRuns()

    def busy(self) -> bool:
        """True while an attempt is being run (by any thread)."""
        return self._local.busy()

    def run(self, attempt_id: int) -> None:
        """Run one attempt; returns quietly when it is not ours to run (a duplicate)."""
        with self._local.hold(attempt_id) as mine:
            if not mine:
                logger.info("attempt %s is running here already: duplicate ignored", attempt_id)
                return
            row = self._claim(attempt_id)
            if row is not None:
                self._run(row)

    def _run(self, row: AttemptRow) -> None:
        attempt_id = row.id
        file = self._store.file(row.file_id)
        if file is None:  # the foreign key makes this impossible; say so loudly if not
            raise AssertionError(f"attempt {attempt_id} names a file that does not exist")
        fields = {"attempt": attempt_id, "project": file.project, "file": file.filename}
        logger.info("attempt %s: rebuilding %s", attempt_id, file.filename, extra=fields)
        try:
            with self._heartbeat(attempt_id):
                self._run_claimed(row, file)
        except Exception as exc:
            if not is_transient(exc) or row.tries >= self._config.max_tries:
                logger.exception("attempt %s: gave up", attempt_id, extra=fields)
                self._record_failure(row, file, exc)
                return
            logger.warning(
                "attempt %s: %s; giving it back to retry (try %d of %d)",
                attempt_id,
                exc,
                row.tries,
                self._config.max_tries,
                extra=fields,
            )
            self._give_back(attempt_id)
            raise RetryLaterError(f"attempt {attempt_id}: {exc}") from exc

    def _claim(self, attempt_id: int) -> AttemptRow | None:
        row = self._store.start_attempt(attempt_id, self._config.worker)
        if row is not None:
            return row
        current = self._store.attempt(attempt_id)
        if current is None:
            logger.warning("attempt %s does not exist; message dropped", attempt_id)
            return None
        if current.status is AttemptStatus.RUNNING and current.worker == self._config.worker:
            # Our own claim, left behind when giving it back failed: carry on with it.
            logger.info("attempt %s: resuming our own claim", attempt_id)
            return current
        logger.info(
            "attempt %s is %s (worker %s): duplicate message ignored",
            attempt_id,
            current.status,
            current.worker,
        )
        return None

    def _run_claimed(self, row: AttemptRow, file: FileRow) -> None:
        # Named for the worker too: workers sharing a data folder (one host, or a shared
        # volume) must not share a work folder when an attempt is taken over from a
        # silent one that later comes back and cleans up after itself.
        # A folder an earlier holder of this attempt left when it died goes now.
        slug = re.sub(r"[^A-Za-z0-9_.-]", "_", self._config.worker)
        folder = self._config.work_root / f"attempt-{row.id}.{slug}"
        remove_dead_folders(self._config.work_root, f"attempt-{row.id}.*", keep=folder)
        claim_folder(folder)
        try:
            judge = self._judges(row.image, folder)
            result = judge.judge_file(file.to_index_file())
            if (
                result.verdict is Verdict.FAILED
                and result.reason_class is FailureReason.INFRASTRUCTURE
                and row.tries < self._config.max_tries
            ):
                raise RetryLaterError(result.reason or "infrastructure failure")
            strategy = _strategy_json(result)
            if strategy is not None:
                generator = strategy.get("backend", {}).get("generator")
                if isinstance(generator, str) and generator:
                    self._store.set_generator(file.id, generator)
            envelopes = self._signer.sign(result)
            manifest = self._evidence.keep(Path(result.evidence)) if result.evidence else None
            kept = replace(result, evidence=relative_evidence(result.evidence, folder))
            self._record(row, kept, strategy, manifest, envelopes)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _record(
        self,
        row: AttemptRow,
        result: FileResult,
        strategy: Mapping[str, Any] | None,
        manifest: Mapping[str, str] | None,
        envelopes: list[Envelope],
    ) -> None:
        kinds = statement_kinds(result.verdict)
        statements = [
            SignedStatement(kind, envelope.dumps())
            for kind, envelope in zip(kinds, envelopes, strict=True)
        ]
        digest = strategy.get("image_digest") if strategy else None
        recorded = self._store.record_outcome(
            row.id,
            result,
            worker=self._config.worker,
            strategy_json=strategy,
            image_digest=digest if isinstance(digest, str) else None,
            evidence_manifest=manifest,
            statements=statements,
            log_origin=self._config.log_origin,
        )
        fields = {
            "attempt": row.id,
            "project": result.project,
            "file": result.filename,
            "verdict": result.verdict.value,
            "reason_class": result.reason_class.value if result.reason_class else None,
            "seconds": round(result.seconds, 3),
        }
        if not recorded:
            logger.warning("attempt %s: outcome refused (claim lost)", row.id, extra=fields)
            return
        queued = (row.started_at - row.requested_at).total_seconds() if row.started_at else None
        self._observer.job_finished(result, queued_seconds=queued)
        logger.info("attempt %s: %s", row.id, result.verdict.value, extra=fields)

    def _record_failure(self, row: AttemptRow, file: FileRow, error: BaseException) -> None:
        reason_class = (
            error.reason if isinstance(error, RebuilderError) else FailureReason.INFRASTRUCTURE
        )
        detail = error.diagnostics() if isinstance(error, RebuilderError) else repr(error)
        result = FileResult(
            file.project,
            file.version,
            file.filename,
            Verdict.FAILED,
            file.sha256,
            reason=f"the worker could not finish this attempt: {detail}"[:2000],
            reason_class=reason_class,
        )
        try:
            envelopes = self._signer.sign(result)
            self._record(row, result, None, None, envelopes)
        except Exception:
            # Nothing more can be done here: the claim goes stale and is taken back.
            logger.exception("attempt %s: could not record its failure", row.id)

    def _give_back(self, attempt_id: int) -> None:
        try:
            self._store.release_attempt(attempt_id, self._config.worker)
        except Exception:
            logger.exception("attempt %s: could not give it back; it will go stale", attempt_id)

    @contextmanager
    def _heartbeat(self, attempt_id: int) -> Iterator[None]:
        def beat() -> None:
            if not self._store.heartbeat(attempt_id, self._config.worker):
                logger.warning("attempt %s: our claim was taken back", attempt_id)
            self._store.worker_beat(self._config.worker, attempt_id)

        self._store.worker_beat(self._config.worker, attempt_id)
        try:
            with beating(beat, self._config.heartbeat_seconds, f"heartbeat-{attempt_id}"):
                yield
        finally:
            try:
                self._store.worker_beat(self._config.worker, None)
            except RebuilderError as exc:
                logger.warning("worker heartbeat failed: %s", exc)


def _strategy_json(result: FileResult) -> dict[str, Any] | None:
    if result.evidence is None:
        return None
    path = Path(result.evidence) / "strategy.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        logger.warning("%s: unreadable strategy", path)
        return None
    return data if isinstance(data, dict) else None
