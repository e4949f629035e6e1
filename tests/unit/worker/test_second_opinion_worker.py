"""Fleet workers give a mismatch the second opinion from git, as `rebuilder check
--second-opinion` does: the git-tag route when the published wheel holds files the sdist
lacks, signed and kept as the rebuild from git. In-memory store, fakes of the pipeline
and of the source check."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from rebuilder.index.model import IndexFile
from rebuilder.second_opinion import ProjectLocks, SecondOpinionJudge
from rebuilder.source.result import GitBuild, SourceResult, SourceVerdict
from rebuilder.store.records import AttemptStatus
from rebuilder.verdict import (
    Cause,
    Diagnosis,
    Difference,
    DifferenceKind,
    FileResult,
    Risk,
    Verdict,
)
from tests.unit.worker.test_runner import Harness, verdict, wheel_file

COMMIT = "ab" * 20
WHEEL = wheel_file().filename
FROM_GIT = b"the wheel rebuilt from git"
LACKED = Diagnosis("demo/extra.py", DifferenceKind.ADDED, Cause.ONLY_PUBLISHED,
                   "module file the sdist does not contain", Risk.REVIEW)  # fmt: skip


@dataclass
class MismatchJudge:
    """The sdist route: a mismatch whose wheel holds a module the sdist lacks."""

    root: Path
    result: Verdict = Verdict.MISMATCH

    def judge_file(self, file: IndexFile) -> FileResult:
        folder = self.root / file.project / file.version / file.filename
        folder.mkdir(parents=True)
        (folder / "strategy.json").write_text(json.dumps({"backend": {"generator": "sdist"}}))
        (folder / "build.log").write_text("sdist route\n")
        mismatch = self.result is Verdict.MISMATCH
        return FileResult(
            file.project, file.version, file.filename, self.result, file.sha256, "c" * 64,
            differences=(Difference("demo/extra.py", DifferenceKind.ADDED),) if mismatch else (),
            diagnosis=(LACKED,) if mismatch else (),
            evidence=str(folder),
        )  # fmt: skip


@dataclass
class FakeTracer:
    """The source check: writes its from-git evidence below the root, as SourceTracer."""

    root: Path
    reachable: bool = True
    calls: list[tuple[str, str]] = field(default_factory=list)

    def check_release(self, project: str, version: str) -> SourceResult:
        self.calls.append((project, version))
        if not self.reachable:
            return SourceResult(project, version, SourceVerdict.NO_SOURCE,
                                reason="not checked: the host did not answer")  # fmt: skip
        source = self.root / project / version / "source"
        (source / "from-git" / "rebuilt").mkdir(parents=True)
        (source / "from-git" / "rebuilt" / WHEEL).write_bytes(FROM_GIT)
        strategy = {"backend": {"generator": "from git"}}
        (source / "from-git" / "strategy.json").write_text(json.dumps(strategy))
        (source / "from-git" / "wheel-build.log").write_text("from git\n")
        build = GitBuild(WHEEL, "reproducible", hashlib.sha256(FROM_GIT).hexdigest())
        return SourceResult(project, version, SourceVerdict.CONSISTENT,
                            repository="https://forge.invalid/demo.git", tag="v1.0",
                            commit=COMMIT, from_git=(build,), evidence=str(source))  # fmt: skip


class OpinionHarness(Harness):
    def __init__(self, tmp_path: Path, result: Verdict = Verdict.MISMATCH,
                 reachable: bool = True) -> None:  # fmt: skip
        super().__init__(tmp_path, [verdict(result)])
        self.result = result
        self.reachable = reachable
        self.tracers: list[FakeTracer] = []
        self.locks = ProjectLocks()

    def judge(self, image: str | None, evidence_root: Path) -> SecondOpinionJudge:  # type: ignore[override]
        tracer = FakeTracer(evidence_root, self.reachable)
        self.tracers.append(tracer)
        return SecondOpinionJudge(MismatchJudge(evidence_root, self.result), tracer, self.locks)


def test_the_worker_takes_the_git_tag_route_signs_and_keeps_the_rebuild_from_git(
    tmp_path: Path,
) -> None:
    h = OpinionHarness(tmp_path)
    attempt = h.request()
    h.runner.run(attempt)
    row = h.store.attempt(attempt)
    assert row is not None and row.status is AttemptStatus.DONE
    assert row.verdict is Verdict.REPRODUCIBLE
    [signed] = h.signer.signed
    assert signed.verdict is Verdict.REPRODUCIBLE
    assert signed.second_opinion is not None
    assert signed.second_opinion["route"] == "git"
    assert (signed.second_opinion["tag"], signed.second_opinion["commit"]) == ("v1.0", COMMIT)
    assert signed.reason is not None and "the sdist lacks (demo/extra.py)" in signed.reason
    # the kept evidence is the rebuild from git, the sdist route's apart
    assert row.evidence_manifest is not None
    kept = {"strategy.json", "build.log", f"rebuilt/{WHEEL}", "result.json"}
    kept |= {"sdist-route/strategy.json", "sdist-route/build.log"}
    assert kept <= set(row.evidence_manifest)
    assert h.store.generators[h.file_id] == "from git"  # read from the adopted strategy


def test_an_unreachable_repository_leaves_the_mismatch_and_says_why(tmp_path: Path) -> None:
    h = OpinionHarness(tmp_path, reachable=False)
    attempt = h.request()
    h.runner.run(attempt)
    row = h.store.attempt(attempt)
    assert row is not None and row.verdict is Verdict.MISMATCH
    [signed] = h.signer.signed
    assert signed.second_opinion is not None
    assert signed.second_opinion["verdict"] == "not checked"
    assert "did not answer" in signed.second_opinion["reason"]


def test_a_file_that_does_not_mismatch_is_not_traced(tmp_path: Path) -> None:
    h = OpinionHarness(tmp_path, result=Verdict.REPRODUCIBLE)
    h.runner.run(h.request())
    assert [t.calls for t in h.tracers] == [[]]
    assert h.signer.signed[0].second_opinion is None
