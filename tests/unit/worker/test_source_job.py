"""The source-check job runner against the in-memory store and small fakes of the tracer."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli.fleet import live_workers
from rebuilder.attest.dsse import open_statement, parse_envelope
from rebuilder.attest.keys import KeyAlgorithm, Keyring, generate_key
from rebuilder.attest.statements import SOURCE_CHECK_PREDICATE_TYPE
from rebuilder.errors import IndexError_
from rebuilder.index.model import FileKind, IndexFile
from rebuilder.source.checks import SourceCheckVerdict
from rebuilder.source.fleet import HostOutageError
from rebuilder.source.job import (
    SourceAttestor,
    SourceCheckRunner,
    SourceRunnerConfig,
)
from rebuilder.source.result import ExplainedFile, SourceResult, SourceVerdict
from rebuilder.source.store import SourceCheckJobs
from rebuilder.store import StoreError
from rebuilder.store.memory import MemoryStore
from rebuilder.store.outcomes import SignedStatement
from rebuilder.store.records import AttemptStatus
from rebuilder.worker.queue import DeferredError
from rebuilder.worker.runner import RetryLaterError
from tests.support.source_checks import MemorySourceChecks

COMMIT = "c0ffee" + "0" * 34


@dataclass
class FakeTracer:
    """Writes an evidence folder like trace_release and returns scripted results."""

    outcomes: list[SourceVerdict | Exception]
    seen: list[tuple[str, list[str]]] = field(default_factory=list)
    during: list[object] = field(default_factory=list)  # callables run mid-trace

    def trace(
        self, sdist: IndexFile, files: Sequence[IndexFile], evidence_dir: Path
    ) -> SourceResult:
        self.seen.append((sdist.filename, [f.filename for f in files]))
        for step in self.during:
            assert callable(step)
            step()
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        evidence_dir.mkdir(parents=True)
        (evidence_dir / "report.json").write_text(json.dumps({"verdict": outcome.value}))
        found = outcome is not SourceVerdict.NO_SOURCE
        return SourceResult(
            sdist.project,
            sdist.version,
            outcome,
            sdist=sdist.filename,
            sdist_sha256=sdist.sha256,
            repository="file:///repos/demo" if found else None,
            tag="v1.0" if found else None,
            commit=COMMIT if found else None,
            explained=(ExplainedFile("PKG-INFO", "pkg-info@1"),),
            reason=None if found else "no tag names version 1.0",
            evidence=str(evidence_dir),
            seconds=0.25,
        )


@dataclass
class FakeSigner:
    signed: list[SourceResult] = field(default_factory=list)

    def sign(self, result: SourceResult) -> list[SignedStatement]:
        self.signed.append(result)
        return [SignedStatement("source-check", f"{result.version}:{len(self.signed)}")]


@dataclass
class FakeKeeper:
    kept: list[Path] = field(default_factory=list)

    def keep(self, folder: Path) -> dict[str, str]:
        self.kept.append(folder)
        return {p.relative_to(folder).as_posix(): "b" * 64 for p in folder.rglob("*.*")}


class Harness:
    def __init__(
        self, tmp_path: Path, outcomes: list[SourceVerdict | Exception], worker: str = "w1"
    ) -> None:
        self.store = MemorySourceChecks()
        jobs: SourceCheckJobs = self.store  # the twin keeps the Protocol
        self.release = self.store.add_release("demo", "1.0")
        self.tracer = FakeTracer(outcomes)
        self.signer = FakeSigner()
        self.keeper = FakeKeeper()
        self.work = tmp_path / "work"
        self.workers = MemoryStore()
        self.workers.announce_worker(worker, "host-1", 1, "test")
        self.runner = SourceCheckRunner(
            store=jobs,
            tracer=self.tracer,
            signer=self.signer,
            evidence=self.keeper,
            config=SourceRunnerConfig(
                worker=worker, log_origin="test/log", work_root=self.work, heartbeat_seconds=0.01
            ),
            presence=self.workers,
        )

    def request(self) -> int:
        check = self.store.request_source_check(self.release, 5)
        assert check is not None
        return check


def test_a_check_is_traced_signed_logged_and_its_evidence_kept(tmp_path: Path) -> None:
    h = Harness(tmp_path, [SourceVerdict.CONSISTENT])
    check = h.request()
    h.runner.run(check)
    row = h.store.source_check(check)
    assert row is not None and row.status is AttemptStatus.DONE
    assert row.verdict is SourceCheckVerdict.CONSISTENT
    assert (row.repository, row.tag, row.commit) == ("file:///repos/demo", "v1.0", COMMIT)
    assert row.evidence_manifest == {"report.json": "b" * 64}
    assert row.result is not None and row.result["commit"] == COMMIT
    # the recorded evidence names the kept folder, not the deleted work folder
    assert row.result["evidence"] == "source"
    assert row.seconds == 0.25
    # the sdist of the release, with every file of the release
    assert h.tracer.seen == [("demo-1.0.tar.gz", ["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"])]
    assert h.store.logged == ["1.0:1"]
    assert [s.kind for s in h.store.attestations[check]] == ["source-check"]
    assert not any(h.work.iterdir())  # the work folder is cleaned up


def test_no_source_is_a_verdict_and_is_signed(tmp_path: Path) -> None:
    h = Harness(tmp_path, [SourceVerdict.NO_SOURCE])
    check = h.request()
    h.runner.run(check)
    row = h.store.source_check(check)
    assert row is not None and row.verdict is SourceCheckVerdict.NO_SOURCE
    assert row.commit is None and row.reason == "no tag names version 1.0"
    assert len(h.store.logged) == 1


def test_a_duplicate_message_runs_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path, [SourceVerdict.CONSISTENT])
    check = h.request()
    h.runner.run(check)
    h.runner.run(check)  # delivered again: already done
    assert len(h.tracer.seen) == 1
    assert len(h.signer.signed) == 1 and len(h.store.logged) == 1


def test_a_check_claimed_by_another_worker_is_left_alone(tmp_path: Path) -> None:
    h = Harness(tmp_path, [SourceVerdict.CONSISTENT])
    check = h.request()
    assert h.store.start_source_check(check, "someone-else") is not None
    h.runner.run(check)
    assert h.tracer.seen == []
    row = h.store.source_check(check)
    assert row is not None and row.worker == "someone-else"


def test_an_unknown_check_is_dropped(tmp_path: Path) -> None:
    h = Harness(tmp_path, [SourceVerdict.CONSISTENT])
    h.runner.run(9999)
    assert h.tracer.seen == []


def test_index_trouble_is_retried_then_recorded_failed(tmp_path: Path) -> None:
    down = IndexError_("the index answered 503")
    h = Harness(tmp_path, [down, down, down])
    check = h.request()
    for _ in range(2):
        with pytest.raises(RetryLaterError):
            h.runner.run(check)
        row = h.store.source_check(check)
        assert row is not None and row.status is AttemptStatus.QUEUED  # given back
        # ... and marked unsent, so the scheduler sends it again
        assert h.store.undispatched_source_checks(timedelta(seconds=-1)) == [(check, 5)]
    h.runner.run(check)  # third try: recorded as it is
    row = h.store.source_check(check)
    assert row is not None and row.status is AttemptStatus.DONE
    assert row.verdict is SourceCheckVerdict.FAILED and row.tries == 3
    assert row.reason is not None and "503" in row.reason
    assert h.store.logged == []  # a failed check signs nothing


def _outage(tried: bool) -> HostOutageError:
    return HostOutageError(
        "git ls-remote https://forge.example/demo: the host did not answer",
        url="https://forge.example/demo",
        host="forge.example",
        retry_after=120.0,
        tried=tried,
    )


def test_a_repository_outage_is_a_warning_line_and_a_delayed_retry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(tmp_path, [_outage(True), _outage(False), _outage(False), _outage(True)])
    h.tracer.outcomes += [_outage(True)]
    check = h.request()
    caplog.set_level(logging.INFO)
    tries = []
    for _ in range(4):
        with pytest.raises(DeferredError) as raised:
            h.runner.run(check)
        assert raised.value.delay == 120_000  # the host's backoff, not dramatiq's
        row = h.store.source_check(check)
        assert row is not None and row.status is AttemptStatus.QUEUED
        assert row.repository == "https://forge.example/demo"
        # still marked sent: the broker's delayed retry brings it back, not the scheduler
        assert h.store.undispatched_source_checks(timedelta(seconds=-1)) == []
        tries.append(row.tries)
    assert tries == [1, 1, 1, 2]  # a backed-off host costs no try
    h.runner.run(check)  # the third real try: recorded failed, with the URL the worker knew
    row = h.store.source_check(check)
    assert row is not None and row.verdict is SourceCheckVerdict.FAILED and row.tries == 3
    assert row.repository == "https://forge.example/demo"
    assert row.reason is not None and "did not answer" in row.reason
    records = [r for r in caplog.records if r.name == "rebuilder.source.job"]
    assert not [r for r in records if r.levelno >= logging.ERROR or r.exc_info]
    assert sum(r.levelno == logging.WARNING for r in records) == 3  # one line per real try


def test_the_database_away_while_deferring_an_outage_gives_the_check_back(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, [_outage(True)])
    check = h.request()

    def database_goes_away() -> None:
        h.store.fail_next.append(StoreError("the database is away"))

    h.tracer.during.append(database_goes_away)
    with pytest.raises(RetryLaterError):
        h.runner.run(check)
    row = h.store.source_check(check)
    assert row is not None and row.status is AttemptStatus.QUEUED and row.worker is None
    assert h.store.undispatched_source_checks(timedelta(seconds=-1)) == [(check, 5)]


def test_a_bug_is_recorded_failed_at_once(tmp_path: Path) -> None:
    h = Harness(tmp_path, [ValueError("boom")])
    check = h.request()
    h.runner.run(check)  # does not raise: the worker goes on
    row = h.store.source_check(check)
    assert row is not None and row.verdict is SourceCheckVerdict.FAILED and row.tries == 1
    assert row.reason is not None and "boom" in row.reason
    assert not any(h.work.iterdir())


def test_the_database_away_at_record_time_gives_the_check_back(tmp_path: Path) -> None:
    h = Harness(tmp_path, [SourceVerdict.CONSISTENT, SourceVerdict.CONSISTENT])
    check = h.request()
    h.tracer.during.append(lambda: h.store.fail_next.append(StoreError("PostgreSQL went away")))
    with pytest.raises(RetryLaterError):
        h.runner.run(check)
    row = h.store.source_check(check)
    assert row is not None and row.status is AttemptStatus.QUEUED
    assert h.store.logged == []
    h.tracer.during.clear()
    h.runner.run(check)
    row = h.store.source_check(check)
    assert row is not None and row.verdict is SourceCheckVerdict.CONSISTENT and row.tries == 2
    assert len(h.store.logged) == 1


def test_an_outcome_after_the_claim_was_taken_back_is_dropped(tmp_path: Path) -> None:
    h = Harness(tmp_path, [SourceVerdict.INCONSISTENT])
    check = h.request()

    def taken_over() -> None:  # the scheduler thought us dead; another worker claimed it
        h.store.backdate(check, 600)
        assert h.store.requeue_stale_source_checks(timedelta(seconds=60)) == [check]
        assert h.store.start_source_check(check, "w2") is not None

    h.tracer.during.append(taken_over)
    h.runner.run(check)
    row = h.store.source_check(check)
    assert row is not None and row.status is AttemptStatus.RUNNING and row.worker == "w2"
    assert h.store.logged == []  # nothing logged for a refused outcome


def test_the_claim_is_kept_alive_while_tracing(tmp_path: Path) -> None:
    h = Harness(tmp_path, [SourceVerdict.CONSISTENT])
    check = h.request()
    beats: list[datetime | None] = []
    release = threading.Event()

    def slow() -> None:
        first = h.store.source_check(check)
        assert first is not None
        release.wait(0.2)
        later = h.store.source_check(check)
        assert later is not None
        beats.extend([first.heartbeat_at, later.heartbeat_at])

    h.tracer.during.append(slow)
    h.runner.run(check)
    assert beats[0] is not None and beats[1] is not None and beats[1] > beats[0]


def test_a_worker_busy_with_a_long_source_check_stays_healthy(tmp_path: Path) -> None:
    # The health check's threshold (the claim timeout, 120 s by default) shrunk to 0.3 s;
    # the check is held three times as long. The worker's own row must keep beating.
    h = Harness(tmp_path, [SourceVerdict.CONSISTENT])
    check = h.request()
    limit = 0.3
    seen: list[list[str]] = []

    def long_check() -> None:
        deadline = time.monotonic() + 3 * limit
        while time.monotonic() < deadline:
            time.sleep(limit / 3)
            now = datetime.now(UTC)
            seen.append([w.name for w in live_workers(h.workers.workers(), "host-1", limit, now)])

    h.tracer.during.append(long_check)
    h.runner.run(check)
    assert len(seen) >= 6
    assert all(names == ["w1"] for names in seen), seen


def test_the_attestor_signs_a_source_check_statement_about_the_sdist(tmp_path: Path) -> None:
    signer = generate_key(KeyAlgorithm.ED25519)
    attestor = SourceAttestor(
        signer, "https://rebuilder.example/builders/test", lambda: datetime(2026, 1, 2, tzinfo=UTC)
    )
    sha = "d" * 64
    result = SourceResult(
        "demo",
        "1.0",
        SourceVerdict.CONSISTENT,
        sdist="demo-1.0.tar.gz",
        sdist_sha256=sha,
        repository="file:///repos/demo",
        tag="v1.0",
        commit=COMMIT,
        evidence=str(tmp_path),
    )
    (signed,) = attestor.sign(result)
    assert signed.kind == "source-check"
    statement, _ = open_statement(parse_envelope(signed.line), Keyring((signer.public_key,)))
    assert statement.predicate_type == SOURCE_CHECK_PREDICATE_TYPE
    assert statement.check_subject(sha, "demo-1.0.tar.gz")
    assert statement.predicate["verdict"] == "consistent"
    assert COMMIT in json.dumps(statement.predicate["source"])


def test_an_sdist_only_release_has_no_wheel_to_pass(tmp_path: Path) -> None:
    h = Harness(tmp_path, [SourceVerdict.CONSISTENT])
    release = h.store.add_release("solo", "2.0", (FileKind.SDIST,))
    check = h.store.request_source_check(release, 5)
    assert check is not None
    h.runner.run(check)
    assert h.tracer.seen == [("solo-2.0.tar.gz", ["solo-2.0.tar.gz"])]
