"""``rebuilder audit --local``: every pinned file judged here, bounded, cached by sha256."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest

from rebuilder.campaigns.audit import (
    EXIT_MISMATCH,
    EXIT_OK,
    EXIT_UNCHECKED,
    AuditResult,
    AuditState,
)
from rebuilder.campaigns.local_audit import VerdictCache, audit_local
from rebuilder.campaigns.selection import LockInput
from rebuilder.errors import UsageError
from rebuilder.index.model import IndexFile
from rebuilder.verdict import Cause, Diagnosis, DifferenceKind, FileResult, Risk, Verdict
from tests.support.fakes import FakeIndex
from tests.unit.campaigns.fakes import wheel

FILES = [wheel(name, "1.0") for name in "abcdef"]


def lock(*files: IndexFile, digest: str | None = None) -> LockInput:
    lines = [f"{f.project}=={f.version} --hash=sha256:{digest or f.sha256}" for f in files]
    return LockInput("requirements.txt", "\n".join(lines))


class Judge:
    """Answers from a table, records what it was asked and how many ran at once."""

    def __init__(self, verdicts: dict[str, Verdict], delay: float = 0.0) -> None:
        self.verdicts = verdicts
        self.delay = delay
        self.asked: list[str] = []
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def __call__(self, file: IndexFile) -> FileResult:
        with self._lock:
            self.asked.append(file.filename)
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.delay)
        with self._lock:
            self.running -= 1
        verdict = self.verdicts.get(file.project, Verdict.REPRODUCIBLE)
        return FileResult(file.project, file.version, file.filename, verdict, file.sha256)


def run(
    text: LockInput, judge: Judge, cache: Path, *, image: str = "sha256:one", jobs: int = 2
) -> tuple[AuditResult, list[tuple[str, bool]]]:
    seen: list[tuple[str, bool]] = []
    result = audit_local(
        text,
        index=FakeIndex(FILES),
        judge=judge,
        cache=VerdictCache(cache),
        image=image,
        jobs=jobs,
        report=lambda f, line, cached: seen.append((f.filename, cached)),
    )
    return result, seen


def test_every_pinned_file_is_judged_with_the_fleet_audit_states(tmp_path: Path) -> None:
    judge = Judge({"b": Verdict.MISMATCH})
    result, seen = run(lock(FILES[0], FILES[1]), judge, tmp_path)
    assert sorted(judge.asked) == sorted(f.filename for f in FILES[:2])
    states = {line.filename: line.state for line in result.lines}
    assert states == {
        FILES[0].filename: AuditState.VERIFIED,
        FILES[1].filename: AuditState.MISMATCH,
    }
    assert result.exit_code == EXIT_MISMATCH
    assert sorted(seen) == sorted((f.filename, False) for f in FILES[:2])


def test_settled_verdicts_come_from_the_cache_on_the_same_image(tmp_path: Path) -> None:
    run(lock(*FILES[:3]), Judge({"c": Verdict.FAILED}), tmp_path)
    again = Judge({})
    result, seen = run(lock(*FILES[:3]), again, tmp_path)
    assert again.asked == [FILES[2].filename]  # a failure may be an outage: tried again
    assert sorted(seen) == [
        (FILES[0].filename, True),
        (FILES[1].filename, True),
        (FILES[2].filename, False),
    ]
    assert result.exit_code == EXIT_OK
    other_image = Judge({})
    run(lock(*FILES[:3]), other_image, tmp_path, image="sha256:two")
    assert len(other_image.asked) == 3  # a verdict holds for the image that gave it


def test_a_corrupt_or_foreign_cache_entry_is_not_believed(tmp_path: Path) -> None:
    run(lock(FILES[0]), Judge({"a": Verdict.MISMATCH}), tmp_path)
    entry = tmp_path / f"{FILES[0].sha256}.json"
    entry.write_text(
        entry.read_text().replace('"mismatch"', '"reproducible"').replace(FILES[0].sha256, "0" * 64)
    )
    again = Judge({"a": Verdict.MISMATCH})
    result, _ = run(lock(FILES[0]), again, tmp_path)
    assert again.asked == [FILES[0].filename]
    assert result.exit_code == EXIT_MISMATCH
    entry.write_text("{not json")
    assert VerdictCache(tmp_path).get(FILES[0].sha256, "sha256:one") is None


def test_at_most_jobs_rebuilds_run_at_once(tmp_path: Path) -> None:
    judge = Judge({}, delay=0.05)
    run(lock(*FILES), judge, tmp_path, jobs=2)
    assert len(judge.asked) == len(FILES)
    assert judge.most == 2
    with pytest.raises(UsageError):
        run(lock(*FILES), judge, tmp_path, jobs=0)


def test_a_lock_hash_the_index_does_not_serve_fails_the_audit(tmp_path: Path) -> None:
    result, _ = run(lock(FILES[0], digest="f" * 64), Judge({}), tmp_path)
    assert result.exit_code == EXIT_MISMATCH


def test_a_failed_rebuild_leaves_the_file_unchecked(tmp_path: Path) -> None:
    result, _ = run(lock(FILES[0]), Judge({"a": Verdict.FAILED}), tmp_path)
    assert [line.state for line in result.lines] == [AuditState.FAILED]
    assert result.exit_code == EXIT_UNCHECKED


class DiagnosingJudge(Judge):
    """A judge whose mismatches carry one diagnosis of a given risk."""

    def __init__(self, verdicts: dict[str, Verdict], risk: Risk) -> None:
        super().__init__(verdicts)
        self.risk = risk

    def __call__(self, file: IndexFile) -> FileResult:
        result = super().__call__(file)
        if result.verdict is not Verdict.MISMATCH:
            return result
        cause = Cause.ORDER_ONLY if self.risk is Risk.PACKAGING else Cause.CODE
        found = Diagnosis("x.dist-info/METADATA", DifferenceKind.METADATA, cause, "", self.risk)
        return dataclasses.replace(result, diagnosis=(found,))


@pytest.mark.parametrize(
    ("risk", "fail_on_packaging", "code"),
    [
        (Risk.PACKAGING, False, EXIT_OK),
        (Risk.PACKAGING, True, EXIT_MISMATCH),
        (Risk.REVIEW, False, EXIT_MISMATCH),
    ],
)
def test_the_local_gate_acts_on_risk_as_the_fleet_audit_does(
    tmp_path: Path, risk: Risk, fail_on_packaging: bool, code: int
) -> None:
    judge = DiagnosingJudge({"b": Verdict.MISMATCH}, risk)
    for attempt in ("first", "cached"):  # the cache keeps the diagnosis
        result = audit_local(
            lock(FILES[0], FILES[1]),
            index=FakeIndex(FILES),
            judge=judge,
            cache=VerdictCache(tmp_path),
            image="sha256:one",
            fail_on_packaging=fail_on_packaging,
        )
        assert result.exit_code == code, attempt
        line = next(li for li in result.lines if li.filename == FILES[1].filename)
        assert line.gate_risk is risk and line.why is not None
    assert len(judge.asked) == 2  # the second round came from the cache


def test_a_file_the_lock_does_not_vouch_for_is_never_verified_locally(tmp_path: Path) -> None:
    result, _ = run(lock(FILES[0], digest="0" * 64), Judge({}), tmp_path)
    assert [line.state for line in result.lines] == [AuditState.NOT_VOUCHED]
    assert result.exit_code == EXIT_MISMATCH
