"""The pipeline's decisions, with small fakes for the index, resolver and sandbox."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rebuilder.errors import (
    FailureReason,
    NotFoundError,
    ResolveError,
    SandboxError,
)
from rebuilder.index.model import FileKind, IndexFile, ResolvedPin
from rebuilder.pipeline import Rebuilder, is_pure_wheel
from rebuilder.plan.interpreter import Interpreter
from rebuilder.plan.planner import ImageChoice
from rebuilder.plan.writer import MetadataCache
from rebuilder.sandbox.model import BuildOutcome, BuildRequest, BuildStatus, SandboxLimits
from rebuilder.verdict import DifferenceKind, Verdict
from tests.support.dists import (
    DEFAULT_EPOCH,
    SdistMember,
    SdistSpec,
    WheelEntry,
    make_sdist,
    wheel_entries,
    write_sdist,
    write_wheel,
)
from tests.support.fakes import FakeIndex

UPLOADED = datetime(2024, 3, 1, tzinfo=UTC)
WHEEL_NAME = "demo-1.0-py3-none-any.whl"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def add(
    index: FakeIndex,
    path: Path,
    kind: FileKind,
    project: str = "demo",
    version: str = "1.0",
    sha256: str | None = None,
) -> IndexFile:
    """List the local file at ``path`` on the fake index."""
    file = IndexFile(
        project,
        version,
        path.name,
        f"http://127.0.0.1:9/{path.name}",
        sha256 or _sha(path),
        kind,
        UPLOADED,
    )
    return index.add_local(file, path)


def relist(index: FakeIndex, filename: str, path: Path | None = None, **changes: str) -> None:
    """List ``filename`` again with ``changes`` (and, given ``path``, other bytes)."""
    n = next(n for n, f in enumerate(index.files) if f.filename == filename)
    index.files[n] = replace(index.files[n], **changes)
    if path is not None:
        index.local[filename] = path


@dataclass
class FakeResolver:
    index: FakeIndex
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def resolve(
        self,
        requirements: Sequence[str],
        *,
        as_of: datetime | None,
        python_version: str,
        beyond_as_of: Sequence[str] = (),
    ) -> Sequence[ResolvedPin]:
        assert as_of == UPLOADED
        self.calls.append(tuple(requirements))
        tool = next(f for f in self.index.files if f.filename == "tool-1.0-py3-none-any.whl")
        return [ResolvedPin("tool", "1.0", (tool.sha256,))]


@dataclass
class FakeSandbox:
    """'Builds' by copying a prepared wheel, or answers a prepared status."""

    produce: Path | None
    statuses: list[BuildOutcome] = field(default_factory=list)
    requests: list[BuildRequest] = field(default_factory=list)
    wheelhouses: list[list[str]] = field(default_factory=list)
    sources: list[list[str]] = field(default_factory=list)

    def run(self, request: BuildRequest) -> BuildOutcome:
        self.requests.append(request)
        self.wheelhouses.append(sorted(p.name for p in request.wheelhouse.iterdir()))
        self.sources.append(sorted(p.name for p in request.source_dir.iterdir()))
        if self.statuses:
            return self.statuses.pop(0)
        assert self.produce is not None
        target = request.output_dir / WHEEL_NAME
        shutil.copyfile(self.produce, target)
        return BuildOutcome(BuildStatus.OK, target, "built\n", exit_code=0, timings={"build": 0.5})


@dataclass
class World:
    index: FakeIndex
    resolver: FakeResolver
    sandbox: FakeSandbox
    rebuilder: Rebuilder
    published: Path
    evidence: Path


def _world(
    tmp_path: Path,
    published_entries: list[WheelEntry] | None = None,
    rebuilt_entries: list[WheelEntry] | None = None,
    with_sdist: bool = True,
) -> World:
    (tmp_path / "pub").mkdir()
    (tmp_path / "re").mkdir()
    genuine = wheel_entries()
    published = write_wheel(tmp_path / "pub" / WHEEL_NAME, published_entries or genuine)
    rebuilt = write_wheel(tmp_path / "re" / WHEEL_NAME, rebuilt_entries or genuine)
    index = FakeIndex()
    add(index, published, FileKind.WHEEL)
    if with_sdist:
        add(index, make_sdist(tmp_path / "pub"), FileKind.SDIST)
    tool = write_wheel(tmp_path / "pub" / "tool-1.0-py3-none-any.whl", wheel_entries("tool", "1.0"))
    add(index, tool, FileKind.WHEEL, project="tool")
    resolver = FakeResolver(index)
    sandbox = FakeSandbox(rebuilt)
    evidence = tmp_path / "evidence"
    rebuilder = Rebuilder(
        index=index,
        resolver=resolver,
        sandbox=sandbox,
        image=lambda: ImageChoice("sha256:" + "0" * 64, "sha256:" + "0" * 64, "3.11"),
        evidence_root=evidence,
        work_root=tmp_path / "work",
        limits=SandboxLimits(),
        diffoscope_timeout=60,
    )
    return World(index, resolver, sandbox, rebuilder, published, evidence)


def _wheel_result(world: World):
    results = world.rebuilder.check_release("demo", "1.0")
    [wheel] = [r for r in results if r.filename.endswith(".whl")]
    return wheel, results


def test_identical_rebuild_is_reproducible_and_keeps_evidence(tmp_path: Path) -> None:
    world = _world(tmp_path)
    result, results = _wheel_result(world)
    assert result.verdict is Verdict.REPRODUCIBLE
    assert result.rebuilt_sha256 == result.upstream_sha256 == _sha(world.published)
    [sdist] = [r for r in results if r.filename.endswith(".tar.gz")]
    assert sdist.verdict is Verdict.UNSUPPORTED
    folder = Path(result.evidence or "")
    strategy = json.loads((folder / "strategy.json").read_text())
    assert strategy["backend"]["version"] == "0.42.0"
    assert strategy["archive"]["source_date_epoch"] == DEFAULT_EPOCH
    assert json.loads((folder / "result.json").read_text())["verdict"] == "reproducible"
    assert (folder / "build.log").read_text() == "built\n"
    request = world.sandbox.requests[0]
    assert request.env["SOURCE_DATE_EPOCH"] == str(DEFAULT_EPOCH)
    assert request.requirements == ("tool==1.0",)
    assert world.sandbox.wheelhouses == [["tool-1.0-py3-none-any.whl"]]
    assert "pyproject.toml" in world.sandbox.sources[0]
    assert not request.source_dir.exists()  # the work folder is cleaned up


def test_timestamps_alone_make_it_equivalent(tmp_path: Path) -> None:
    later = [replace(e, date_time=(2025, 1, 1, 0, 0, 0)) for e in wheel_entries()]
    result, _ = _wheel_result(_world(tmp_path, rebuilt_entries=later))
    assert result.verdict is Verdict.EQUIVALENT
    assert [s.name for s in result.stabilizers] == ["zip-timestamps"]


def test_changed_code_in_published_wheel_is_a_mismatch_naming_the_path(tmp_path: Path) -> None:
    tampered = wheel_entries(files={"demo/__init__.py": b'__version__ = "1.0"\nimport os\n'})
    world = _world(tmp_path, published_entries=tampered)
    result, _ = _wheel_result(world)
    assert result.verdict is Verdict.MISMATCH
    kinds = {d.path: d.kind for d in result.differences}
    assert kinds["demo/__init__.py"] is DifferenceKind.CONTENT
    assert (Path(result.evidence or "") / "diffoscope.txt").exists()


def test_build_failure_is_failed_with_reason_class(tmp_path: Path) -> None:
    world = _world(tmp_path)
    world.sandbox.statuses = [BuildOutcome(BuildStatus.TIMEOUT, None, "log", detail="killed")]
    result, _ = _wheel_result(world)
    assert result.verdict is Verdict.FAILED
    assert result.reason_class is FailureReason.TIMEOUT
    assert result.reason == "killed"


def test_dynamic_requirements_get_a_second_resolution_round(tmp_path: Path) -> None:
    world = _world(tmp_path)
    world.sandbox.statuses = [
        BuildOutcome(BuildStatus.MISSING_REQUIREMENTS, None, "", missing=("extra-dep>=1",))
    ]
    result, _ = _wheel_result(world)
    assert result.verdict is Verdict.REPRODUCIBLE
    assert len(world.resolver.calls) == 2
    assert "extra-dep>=1" in world.resolver.calls[1]


def test_requirements_that_stay_missing_fail_as_resolve(tmp_path: Path) -> None:
    world = _world(tmp_path)
    missing = BuildOutcome(BuildStatus.MISSING_REQUIREMENTS, None, "", missing=("x",))
    world.sandbox.statuses = [missing, missing, missing]
    result, _ = _wheel_result(world)
    assert (result.verdict, result.reason_class) == (Verdict.FAILED, FailureReason.RESOLVE)


def test_download_hash_mismatch_is_refused_and_recorded(tmp_path: Path) -> None:
    world = _world(tmp_path)
    relist(world.index, WHEEL_NAME, sha256="0" * 64)
    result, _ = _wheel_result(world)
    assert result.verdict is Verdict.FAILED
    assert "sha256" in (result.reason or "")
    assert world.sandbox.requests == []


def test_release_without_sdist_is_unsupported(tmp_path: Path) -> None:
    result, _ = _wheel_result(_world(tmp_path, with_sdist=False))
    assert result.verdict is Verdict.UNSUPPORTED
    assert "no sdist" in (result.reason or "")


def test_a_file_the_fleet_queues_under_a_refused_name_fails_without_download(
    tmp_path: Path,
) -> None:
    """The fleet's unit of work (`judge_file`) for a file listed under an unsafe name."""
    world = _world(tmp_path)
    hostile = IndexFile(
        "demo",
        "1.0",
        "../demo-1.0-py3-none-any.whl",
        "http://127.0.0.1:9/x",
        "a" * 64,
        FileKind.OTHER,
        UPLOADED,
    )
    world.index.add(hostile)

    result = world.rebuilder.judge_file(hostile)

    assert (result.verdict, result.reason_class) == (Verdict.FAILED, FailureReason.SANDBOX)
    assert "unsafe file name" in (result.reason or "")
    assert world.index.downloads == [] and world.sandbox.requests == []


def test_unknown_release_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        _world(tmp_path).rebuilder.check_release("demo", "9.9")


def test_latest_version_skips_prereleases(tmp_path: Path) -> None:
    world = _world(tmp_path)
    pre = write_wheel(tmp_path / "pub" / "demo-2.0b1-py3-none-any.whl", wheel_entries())
    add(world.index, pre, FileKind.WHEEL, version="2.0b1")
    assert world.rebuilder.latest_version("demo") == "1.0"


@pytest.mark.parametrize(
    ("filename", "pure"),
    [
        ("a-1-py3-none-any.whl", True),
        ("a-1-py2.py3-none-any.whl", True),
        ("a-1-cp311-cp311-manylinux_2_17_x86_64.whl", False),
        ("a-1-py3-none-win_amd64.whl", False),
        ("not-a-wheel.whl", False),
    ],
)
def test_pure_wheels(filename: str, pure: bool) -> None:
    assert is_pure_wheel(filename) is pure


def test_hostile_sdist_fails_as_no_source_and_nothing_is_built(tmp_path: Path) -> None:
    world = _world(tmp_path)
    (tmp_path / "hostile").mkdir()
    hostile = write_sdist(
        tmp_path / "hostile" / "demo-1.0.tar.gz",
        SdistSpec("demo", "1.0", [SdistMember("../../escape.py", b"x")]),
        top="",
    )
    sdist = next(f for f in world.index.files if f.kind is FileKind.SDIST)
    relist(world.index, sdist.filename, hostile, sha256=_sha(hostile))
    result, _ = _wheel_result(world)
    assert (result.verdict, result.reason_class) == (Verdict.FAILED, FailureReason.NO_SOURCE)
    assert "cannot be used safely" in (result.reason or "")
    assert world.sandbox.requests == []
    assert not (tmp_path / "escape.py").exists()


def test_garbage_published_wheel_fails_clearly(tmp_path: Path) -> None:
    world = _world(tmp_path)
    world.published.write_bytes(b"this is not a zip file")
    relist(world.index, WHEEL_NAME, world.published, sha256=_sha(world.published))
    result, _ = _wheel_result(world)
    assert result.verdict is Verdict.FAILED
    assert "published wheel cannot be read safely" in (result.reason or "")


def _matrix_world(tmp_path: Path, published: list[WheelEntry] | None = None) -> tuple[World, list]:
    """A world whose rebuilder can make an image per interpreter (recording each ask)."""
    world = _world(tmp_path, published_entries=published, rebuilt_entries=published)
    asked: list = []

    def interpreter_image(interpreter: Interpreter) -> ImageChoice:
        asked.append(interpreter.version)
        digest = "sha256:" + interpreter.version.replace(".", "").ljust(64, "a")
        return ImageChoice(digest, digest, interpreter.version)

    world.rebuilder._interpreter_image = interpreter_image
    return world, asked


def test_a_nspkg_trace_builds_with_that_interpreter_and_says_why(tmp_path: Path) -> None:
    entries = wheel_entries(
        files={
            "demo/__init__.py": b"",
            "demo-1.0-py3.9-nspkg.pth": b"import sys\n",
        }
    )
    world, asked = _matrix_world(tmp_path, entries)
    result, _ = _wheel_result(world)
    assert result.verdict is Verdict.REPRODUCIBLE
    assert asked == ["3.9"]
    assert world.sandbox.requests[0].image.startswith("sha256:39")
    strategy = json.loads((Path(result.evidence or "") / "strategy.json").read_text())
    assert strategy["python_version"] == "3.9"
    assert "namespace .pth files name Python 3.9" in strategy["interpreter_reason"]


def test_a_traced_interpreter_that_fails_is_not_second_guessed(tmp_path: Path) -> None:
    entries = wheel_entries(files={"demo-1.0-py3.9-nspkg.pth": b""})
    world, _ = _matrix_world(tmp_path, entries)
    world.sandbox.statuses = [BuildOutcome(BuildStatus.FAILED, None, "log", detail="boom")]
    result, _ = _wheel_result(world)
    assert (result.verdict, result.reason) == (Verdict.FAILED, "boom")
    assert len(world.sandbox.requests) == 1


def test_an_untraced_build_that_fails_gets_one_older_interpreter(tmp_path: Path) -> None:
    world, asked = _matrix_world(tmp_path)
    world.sandbox.statuses = [
        BuildOutcome(BuildStatus.FAILED, None, "log", detail="backend: no attribute 'unescape'")
    ]
    result, _ = _wheel_result(world)
    assert result.verdict is Verdict.REPRODUCIBLE
    assert asked == ["3.9"]
    first, second = world.sandbox.requests
    assert first.image == "sha256:" + "0" * 64  # the default image first (uploaded 2024)
    assert second.image.startswith("sha256:39")
    strategy = json.loads((Path(result.evidence or "") / "strategy.json").read_text())
    assert strategy["python_version"] == "3.9"
    assert (
        "Python 3.11 failed (backend: no attribute 'unescape')" in (strategy["interpreter_reason"])
    )


def test_a_timeout_is_not_retried_with_another_interpreter(tmp_path: Path) -> None:
    world, asked = _matrix_world(tmp_path)
    world.sandbox.statuses = [BuildOutcome(BuildStatus.TIMEOUT, None, "log", detail="killed")]
    result, _ = _wheel_result(world)
    assert result.reason_class is FailureReason.TIMEOUT
    assert (asked, len(world.sandbox.requests)) == ([], 1)


def test_an_image_that_cannot_be_made_falls_back_to_the_default_and_says_so(
    tmp_path: Path,
) -> None:
    entries = wheel_entries(files={"demo-1.0-py3.9-nspkg.pth": b""})
    world, _ = _matrix_world(tmp_path, entries)

    def broken(interpreter: Interpreter) -> ImageChoice:
        raise SandboxError(f"debootstrap of {interpreter.suite} failed")

    world.rebuilder._interpreter_image = broken
    result, _ = _wheel_result(world)
    assert result.verdict is Verdict.REPRODUCIBLE
    strategy = json.loads((Path(result.evidence or "") / "strategy.json").read_text())
    assert strategy["python_version"] == "3.11"
    assert "could not be made (debootstrap of bullseye failed)" in strategy["interpreter_reason"]


def test_a_retry_that_cannot_resolve_keeps_the_first_failure(tmp_path: Path) -> None:
    world, asked = _matrix_world(tmp_path)
    world.sandbox.statuses = [BuildOutcome(BuildStatus.FAILED, None, "log", detail="boom")]
    calls: list[str] = []
    original = world.resolver.resolve

    def resolve(
        requirements: Sequence[str],
        *,
        as_of: datetime | None,
        python_version: str,
        beyond_as_of: Sequence[str] = (),
    ) -> Sequence[ResolvedPin]:
        calls.append(python_version)
        if python_version == "3.9":
            raise ResolveError("no wheel for 3.9")
        return original(requirements, as_of=as_of, python_version=python_version)

    world.resolver.resolve = resolve  # type: ignore[method-assign]
    result, _ = _wheel_result(world)
    assert (result.verdict, result.reason) == (Verdict.FAILED, "boom")
    # on 3.9 once as of the upload, once more with setuptools' floor for 3.9 (floor.py)
    assert calls == ["3.11", "3.9", "3.9"]
    assert asked == ["3.9"]
    strategy = json.loads((Path(result.evidence or "") / "strategy.json").read_text())
    assert strategy["python_version"] == "3.11"


DRIFTED = wheel_entries()  # what today's setuptools writes: no Platform line
ORIGINAL = wheel_entries(metadata_extra="Platform: UNKNOWN\n")  # the maintainer's older one
WRITERS = {"61.0.0": "Platform: UNKNOWN\n", "65.0.0": "Platform: any\n"}


@dataclass
class WriterSandbox(FakeSandbox):
    """Builds what the setuptools the last resolution pinned writes (none: today's)."""

    resolver: FakeResolver | None = None
    writes: dict[str, str] = field(default_factory=dict)
    failing_builds: tuple[str, ...] = ()  # versions whose full build fails

    def _pinned(self) -> str | None:
        assert self.resolver is not None
        asked = [r for r in self.resolver.calls[-1] if r.startswith("setuptools==")]
        return asked[0].split("==")[1] if asked else None

    def run(self, request: BuildRequest) -> BuildOutcome:
        self.requests.append(request)
        pinned = self._pinned()
        extra = self.writes.get(pinned, "") if pinned else ""
        entries = wheel_entries(metadata_extra=extra)
        if request.distribution == "metadata":
            if pinned not in self.writes:
                return BuildOutcome(BuildStatus.FAILED, None, "", 1, (), "hook failed")
            target = request.output_dir / "METADATA"
            target.write_bytes(next(e.data for e in entries if e.name.endswith("/METADATA")))
            return BuildOutcome(BuildStatus.OK, target, "", 0)
        if pinned is not None and pinned in self.failing_builds:
            return BuildOutcome(BuildStatus.FAILED, None, "no\n", 1, (), "the backend failed")
        target = write_wheel(request.output_dir / WHEEL_NAME, entries)
        return BuildOutcome(BuildStatus.OK, target, "built\n", exit_code=0)


def _writer_world(tmp_path: Path, writes: dict[str, str]) -> tuple[World, WriterSandbox]:
    world = _world(tmp_path, published_entries=ORIGINAL, rebuilt_entries=DRIFTED)
    # the sdist asks for setuptools>=61 (and the wheel's era for <70.1): 50.0.0 is no
    # candidate, and 71.0.0 is newer than the upload
    for version in ("50.0.0", "61.0.0", "65.0.0", "70.0.0"):
        name = f"setuptools-{version}-py3-none-any.whl"
        path = write_wheel(tmp_path / "pub" / name, wheel_entries("setuptools", version))
        add(world.index, path, FileKind.WHEEL, project="setuptools", version=version)
    newer = write_wheel(
        tmp_path / "pub" / "setuptools-71.0.0-py3-none-any.whl",
        wheel_entries("setuptools", "71.0.0"),
    )
    add(world.index, newer, FileKind.WHEEL, project="setuptools", version="71.0.0")
    world.index.files[-1] = replace(
        world.index.files[-1], upload_time=datetime(2024, 4, 1, tzinfo=UTC)
    )
    sandbox = WriterSandbox(None, resolver=world.resolver, writes=writes)
    world.rebuilder._sandbox = sandbox
    world.rebuilder._metadata_cache = MetadataCache(tmp_path / "metadata")
    return world, sandbox


def test_the_setuptools_that_wrote_the_published_metadata_is_found_and_pinned(
    tmp_path: Path,
) -> None:
    world, sandbox = _writer_world(tmp_path, WRITERS)

    result, _ = _wheel_result(world)

    assert result.verdict is Verdict.REPRODUCIBLE
    kinds = [r.distribution for r in sandbox.requests]
    assert kinds == ["wheel", "metadata", "metadata", "metadata", "wheel"]
    strategy = json.loads((Path(result.evidence or "") / "strategy.json").read_text())
    assert "setuptools==61.0.0" in strategy["build_requires"]
    [note] = [n for n in strategy["notes"] if n.startswith("metadata writer")]
    assert "setuptools==61.0.0 writes the published METADATA byte for byte" in note
    assert "(tried 70.0.0 (metadata hook failed), 65.0.0 (differs), 61.0.0 (match))" in note
    # the first build's reports are set aside: none describes the reproducible rebuild
    folder = Path(result.evidence or "")
    assert not (folder / "diffoscope.txt").exists()
    assert (folder / "before-writer" / "diffoscope.txt").exists()
    assert (folder / "before-writer" / "build.log").exists()
    assert (folder / "build.log").exists()


def test_no_candidate_writing_it_keeps_the_planners_choice_and_says_what_was_tried(
    tmp_path: Path,
) -> None:
    world, sandbox = _writer_world(tmp_path, {"65.0.0": "Platform: any\n"})

    result, _ = _wheel_result(world)

    assert result.verdict is Verdict.MISMATCH
    assert [r.distribution for r in sandbox.requests].count("wheel") == 1
    strategy = json.loads((Path(result.evidence or "") / "strategy.json").read_text())
    assert not any(r.startswith("setuptools==") for r in strategy["build_requires"])
    [note] = [n for n in strategy["notes"] if n.startswith("metadata writer")]
    assert "no setuptools candidate wrote the published METADATA" in note
    assert "the planner's choice kept" in note


def test_a_mismatch_elsewhere_than_metadata_runs_no_candidate(tmp_path: Path) -> None:
    world, sandbox = _writer_world(tmp_path, WRITERS)
    tampered = wheel_entries(files={"demo/__init__.py": b"import os\n"})
    (tmp_path / "t").mkdir()
    path = write_wheel(tmp_path / "t" / WHEEL_NAME, tampered)
    relist(world.index, WHEEL_NAME, path, sha256=_sha(path))

    result, _ = _wheel_result(world)

    assert result.verdict is Verdict.MISMATCH
    assert [r.distribution for r in sandbox.requests] == ["wheel"]


def test_a_writer_whose_full_build_fails_keeps_the_first_result(tmp_path: Path) -> None:
    world, sandbox = _writer_world(tmp_path, WRITERS)
    sandbox.failing_builds = ("61.0.0",)

    result, _ = _wheel_result(world)

    assert result.verdict is Verdict.MISMATCH  # the first build's answer, not "failed"
    assert [r.distribution for r in sandbox.requests][-1] == "wheel"
    folder = Path(result.evidence or "")
    strategy = json.loads((folder / "strategy.json").read_text())
    [note] = [n for n in strategy["notes"] if n.startswith("metadata writer")]
    assert "setuptools==61.0.0 writes the published METADATA" in note
    assert "did not succeed: the first result kept" in note
    assert (folder / "before-writer" / "diffoscope.txt").exists()
