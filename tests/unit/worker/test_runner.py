"""The job runner against the in-memory store and small fakes of the pipeline."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from rebuilder.attest.dsse import PAYLOAD_TYPE, Envelope, Signature
from rebuilder.errors import ArchiveError, FailureReason
from rebuilder.index.model import FileKind, IndexFile
from rebuilder.store import StoreError
from rebuilder.store.memory import MemoryStore
from rebuilder.store.records import AttemptStatus
from rebuilder.verdict import FileResult, Verdict
from rebuilder.worker.runner import AttemptRunner, RetryLaterError, RunnerConfig

SHA = "a" * 64


def wheel_file() -> IndexFile:
    return IndexFile(
        project="demo",
        version="1.0",
        filename="demo-1.0-py3-none-any.whl",
        url="http://127.0.0.1:9/demo-1.0-py3-none-any.whl",
        sha256=SHA,
        kind=FileKind.WHEEL,
        upload_time=None,
    )


@dataclass
class FakeJudge:
    """Writes an evidence folder like the pipeline and returns a scripted verdict."""

    root: Path
    verdicts: list[FileResult | Exception]
    seen_images: list[str | None]
    image: str | None = None

    def judge_file(self, file: IndexFile) -> FileResult:
        self.seen_images.append(self.image)
        outcome = self.verdicts.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        folder = self.root / file.project / file.version / file.filename
        folder.mkdir(parents=True)
        strategy = {"backend": {"generator": "hatchling 1.26.3"}, "image_digest": "sha256:" + SHA}
        (folder / "strategy.json").write_text(json.dumps(strategy))
        (folder / "build.log").write_text("built\n")
        return FileResult(
            file.project,
            file.version,
            file.filename,
            outcome.verdict,
            file.sha256,
            reason=outcome.reason,
            reason_class=outcome.reason_class,
            seconds=1.5,
            evidence=str(folder),
        )


@dataclass
class FakeSigner:
    signed: list[FileResult] = field(default_factory=list)

    def sign(self, result: FileResult) -> list[Envelope]:
        self.signed.append(result)
        count = 1 if result.verdict in {Verdict.FAILED, Verdict.UNSUPPORTED} else 2
        return [
            Envelope(
                payload=f"{result.filename}:{n}:{len(self.signed)}".encode(),
                payload_type=PAYLOAD_TYPE,
                signatures=(Signature("k", b"s"),),
            )
            for n in range(count)
        ]


@dataclass
class FakeKeeper:
    kept: list[dict[str, str]] = field(default_factory=list)
    fail_with: Exception | None = None

    def keep(self, folder: Path) -> dict[str, str]:
        if self.fail_with is not None:
            raise self.fail_with
        manifest = {p.relative_to(folder).as_posix(): "b" * 64 for p in folder.rglob("*.*")}
        self.kept.append(manifest)
        return manifest


def verdict(v: Verdict, reason_class: FailureReason | None = None) -> FileResult:
    return FileResult(
        "demo",
        "1.0",
        "x",
        v,
        SHA,
        reason="why" if reason_class else None,
        reason_class=reason_class,
    )


class Harness:
    def __init__(self, tmp_path: Path, outcomes: list[FileResult | Exception]) -> None:
        self.store = MemoryStore()
        (row,) = self.store.record_release("demo", "1.0", [wheel_file()])
        self.file_id = row.id
        self.images: list[str | None] = []
        self.outcomes = outcomes
        self.signer = FakeSigner()
        self.keeper = FakeKeeper()
        self.work = tmp_path / "work"
        self.runner = AttemptRunner(
            store=self.store,
            judges=self.judge,
            signer=self.signer,
            evidence=self.keeper,
            config=RunnerConfig(
                worker="w1", log_origin="test/log", work_root=self.work, heartbeat_seconds=0.01
            ),
        )

    def judge(self, image: str | None, evidence_root: Path) -> FakeJudge:
        return FakeJudge(evidence_root, self.outcomes, self.images, image)

    def request(self, image: str | None = None) -> int:
        attempt = self.store.request_attempt(self.file_id, 5, image=image)
        assert attempt is not None
        return attempt


def test_an_attempt_is_judged_signed_logged_and_its_evidence_kept(tmp_path: Path) -> None:
    h = Harness(tmp_path, [verdict(Verdict.REPRODUCIBLE)])
    attempt = h.request()
    h.runner.run(attempt)
    row = h.store.attempt(attempt)
    assert row is not None
    assert row.status is AttemptStatus.DONE and row.verdict is Verdict.REPRODUCIBLE
    assert row.image_digest == "sha256:" + SHA
    assert row.evidence_manifest == {
        "strategy.json": "b" * 64,
        "build.log": "b" * 64,
    }
    # the recorded evidence names the kept folder, not the deleted work folder
    assert row.evidence == "demo/1.0/demo-1.0-py3-none-any.whl"
    assert len(h.store.bundle_lines(h.file_id)) == 2
    assert h.store.generators[h.file_id] == "hatchling 1.26.3"
    assert not any(h.work.iterdir())  # the work folder is cleaned up


def test_a_duplicate_message_runs_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path, [verdict(Verdict.REPRODUCIBLE)])
    attempt = h.request()
    h.runner.run(attempt)
    h.runner.run(attempt)  # delivered again: already done
    assert len(h.signer.signed) == 1
    assert len(h.store.logged) == 2


def test_an_attempt_claimed_by_another_worker_is_left_alone(tmp_path: Path) -> None:
    h = Harness(tmp_path, [verdict(Verdict.REPRODUCIBLE)])
    attempt = h.request()
    assert h.store.start_attempt(attempt, "someone-else") is not None
    h.runner.run(attempt)
    assert h.images == []
    row = h.store.attempt(attempt)
    assert row is not None and row.worker == "someone-else"


def test_the_requested_image_is_used(tmp_path: Path) -> None:
    h = Harness(tmp_path, [verdict(Verdict.REPRODUCIBLE)])
    h.runner.run(h.request(image="sandbox@sha256:" + "c" * 64))
    assert h.images == ["sandbox@sha256:" + "c" * 64]


def test_an_infrastructure_failure_is_retried_then_recorded(tmp_path: Path) -> None:
    infra = verdict(Verdict.FAILED, FailureReason.INFRASTRUCTURE)
    h = Harness(tmp_path, [infra, infra, infra])
    attempt = h.request()
    for _ in range(2):
        with pytest.raises(RetryLaterError):
            h.runner.run(attempt)
        row = h.store.attempt(attempt)
        assert row is not None and row.status is AttemptStatus.QUEUED  # given back
        # ... and marked unsent, so the scheduler sends it again
        assert [a for a, _ in h.store.undispatched(timedelta(seconds=-1))] == [attempt]
    h.runner.run(attempt)  # third try: recorded as it is
    row = h.store.attempt(attempt)
    assert row is not None and row.status is AttemptStatus.DONE
    assert row.verdict is Verdict.FAILED and row.reason_class is FailureReason.INFRASTRUCTURE
    assert row.tries == 3


def test_a_build_failure_is_recorded_at_once(tmp_path: Path) -> None:
    h = Harness(tmp_path, [verdict(Verdict.FAILED, FailureReason.BUILD)])
    attempt = h.request()
    h.runner.run(attempt)
    row = h.store.attempt(attempt)
    assert row is not None and row.verdict is Verdict.FAILED and row.tries == 1
    assert len(h.store.bundle_lines(h.file_id)) == 1  # a failure statement


def test_a_bug_in_the_pipeline_is_recorded_and_the_worker_survives(tmp_path: Path) -> None:
    h = Harness(tmp_path, [KeyError("boom"), verdict(Verdict.REPRODUCIBLE)])
    attempt = h.request()
    h.runner.run(attempt)  # does not raise
    row = h.store.attempt(attempt)
    assert row is not None and row.verdict is Verdict.FAILED
    assert row.reason_class is FailureReason.INFRASTRUCTURE
    assert row.reason is not None and "KeyError" in row.reason
    second = h.request()  # the next job runs normally
    h.runner.run(second)
    done = h.store.attempt(second)
    assert done is not None and done.verdict is Verdict.REPRODUCIBLE


def test_disk_full_on_the_evidence_store_gives_the_attempt_back(tmp_path: Path) -> None:
    h = Harness(tmp_path, [verdict(Verdict.REPRODUCIBLE), verdict(Verdict.REPRODUCIBLE)])
    h.keeper.fail_with = OSError(28, "No space left on device")
    attempt = h.request()
    with pytest.raises(RetryLaterError):
        h.runner.run(attempt)
    row = h.store.attempt(attempt)
    assert row is not None and row.status is AttemptStatus.QUEUED
    assert h.store.logged == []  # nothing was signed into the log for a lost outcome
    h.keeper.fail_with = None
    h.runner.run(attempt)
    row = h.store.attempt(attempt)
    assert row is not None and row.verdict is Verdict.REPRODUCIBLE and row.tries == 2


def test_a_claim_taken_back_is_not_overwritten(tmp_path: Path) -> None:
    h = Harness(tmp_path, [verdict(Verdict.MISMATCH)])
    attempt = h.request()
    original_judge = h.judge

    def judge_then_lose_claim(image: str | None, root: Path) -> FakeJudge:
        # While "we" build, the scheduler declares us dead and another worker finishes it.
        h.store.requeue_stale(older_than=timedelta(seconds=-1))
        h.store.start_attempt(attempt, "w2")
        h.store.finish_attempt(
            attempt, verdict_for_file(Verdict.REPRODUCIBLE), None, None, worker="w2"
        )
        return original_judge(image, root)

    h.runner._judges = judge_then_lose_claim
    h.runner.run(attempt)
    row = h.store.attempt(attempt)
    assert row is not None and row.verdict is Verdict.REPRODUCIBLE and row.worker == "w2"
    assert h.store.logged == []


def verdict_for_file(v: Verdict) -> FileResult:
    f = wheel_file()
    return FileResult(f.project, f.version, f.filename, v, f.sha256)


def test_a_store_outage_while_recording_gives_back_and_retries(tmp_path: Path) -> None:
    h = Harness(tmp_path, [verdict(Verdict.REPRODUCIBLE), verdict(Verdict.REPRODUCIBLE)])
    attempt = h.request()
    real = h.store.record_outcome
    calls = {"n": 0}

    def flaky(*args: object, **kwargs: object) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise StoreError("database restarting")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    h.store.record_outcome = flaky  # type: ignore[method-assign]
    with pytest.raises(RetryLaterError):
        h.runner.run(attempt)
    h.runner.run(attempt)
    row = h.store.attempt(attempt)
    assert row is not None and row.verdict is Verdict.REPRODUCIBLE


def test_errors_that_will_not_pass_are_not_retried(tmp_path: Path) -> None:
    h = Harness(tmp_path, [ArchiveError("hostile wheel")])
    attempt = h.request()
    h.runner.run(attempt)
    row = h.store.attempt(attempt)
    assert row is not None and row.verdict is Verdict.FAILED
    assert row.reason_class is FailureReason.SANDBOX


def test_duplicate_messages_through_the_broker_run_once(tmp_path: Path) -> None:
    import dramatiq  # noqa: PLC0415
    from dramatiq.brokers.stub import StubBroker  # noqa: PLC0415

    from rebuilder.worker.queue import ActorDispatcher, Priority, declare_rebuild_actor  # noqa: PLC0415

    h = Harness(tmp_path, [verdict(Verdict.REPRODUCIBLE)])
    attempt = h.request()
    broker = StubBroker()
    broker.emit_after("process_boot")
    try:
        dispatcher = ActorDispatcher(declare_rebuild_actor(broker, lambda: h.runner))
        for _ in range(3):  # a redelivery and a re-dispatch by the scheduler
            dispatcher.enqueue(attempt, Priority.NEW_RELEASE)
        worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=2)
        worker.start()
        broker.join("rebuilds", fail_fast=True)
        worker.join()
        worker.stop()
    finally:
        broker.close()
    assert len(h.signer.signed) == 1
    row = h.store.attempt(attempt)
    assert row is not None and row.status is AttemptStatus.DONE and row.tries == 1
