"""Build requirements with no wheel: found on the index, built from their sdist, recorded."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from rebuilder.errors import ResolveError
from rebuilder.index.model import BuildRequirement, FileKind, IndexFile, PinnedFile, ResolvedPin
from rebuilder.index.wheelhouse import sandbox_tags
from rebuilder.plan.sourcedeps import (
    SandboxSourceBuilder,
    resolve_build_requirements,
    source_only,
    wheel_requirements,
)
from rebuilder.plan.strategy import ArchiveInputs, BackendPin, SourceBuild, Strategy
from rebuilder.sandbox.model import BuildOutcome, BuildRequest, BuildStatus, SandboxLimits
from tests.support.dists import SdistSpec, setuptools_sdist_members, wheel_entries, write_sdist
from tests.support.dists import write_wheel as write_entries
from tests.support.fakes import FakeIndex

AS_OF = datetime(2020, 1, 30, tzinfo=UTC)
TAGS = sandbox_tags("3.11")


def _file(
    name: str, version: str, filename: str, *, days: int = -10, data: bytes = b""
) -> IndexFile:
    kind = FileKind.WHEEL if filename.endswith(".whl") else FileKind.SDIST
    return IndexFile(
        canonicalize_name(name),
        version,
        filename,
        f"http://127.0.0.1:9/{filename}",
        hashlib.sha256(data or filename.encode()).hexdigest(),
        kind,
        AS_OF + timedelta(days=days),
    )


def _index() -> FakeIndex:
    return FakeIndex(
        [
            _file("versioner", "1.0", "versioner-1.0.tar.gz"),
            _file("versioner", "2.0", "versioner-2.0.tar.gz"),
            _file("versioner", "2.0", "versioner-2.0.zip"),
            _file("versioner", "3.0", "versioner-3.0.tar.gz", days=5),  # after the upload
            _file("tool", "1.0", "tool-1.0.tar.gz"),
            _file("tool", "1.0", "tool-1.0-py3-none-any.whl"),
            _file("old", "1.0", "old-1.0-cp27-cp27mu-manylinux1_x86_64.whl"),
            _file("old", "1.0", "old-1.0.tar.gz"),
        ]
    )


def test_the_newest_allowed_version_with_only_an_sdist_is_found() -> None:
    found = source_only(
        _index(),
        ["versioner", "tool>=1", "old", "gone", 'win; sys_platform == "win32"'],
        as_of=AS_OF,
        python_version="3.11",
        tags=TAGS,
    )
    assert [(f.name, f.version, f.sdist.filename) for f in found] == [
        ("old", "1.0", "old-1.0.tar.gz"),  # wheels only for another interpreter
        ("versioner", "2.0", "versioner-2.0.tar.gz"),  # .tar.gz first; 3.0 is too new
    ]


def test_every_requirement_on_a_project_narrows_its_version() -> None:
    found = source_only(
        _index(), ["versioner", "versioner<2"], as_of=AS_OF, python_version="3.11", tags=TAGS
    )
    assert [(f.name, f.version) for f in found] == [("versioner", "1.0")]


def test_a_version_with_a_wheel_is_never_built() -> None:
    assert source_only(_index(), ["tool"], as_of=AS_OF, python_version="3.11", tags=TAGS) == []


@dataclass
class ScriptedResolver:
    """Fails while any requirement names a project without wheels; pins the rest."""

    without_wheels: set[str]
    pins: dict[str, ResolvedPin]
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def resolve(
        self,
        requirements: Sequence[str],
        *,
        as_of: datetime | None,
        python_version: str,
        beyond_as_of: Sequence[str] = (),
    ) -> Sequence[ResolvedPin]:
        self.calls.append(tuple(requirements))
        names = {canonicalize_name(r.split(";")[0].split(">")[0].split("=")[0].split("<")[0])
                 for r in requirements}  # fmt: skip
        if names & self.without_wheels:
            raise ResolveError("all versions have no usable wheels")
        return [self.pins[n] for n in sorted(names) if n in self.pins]


@dataclass
class WheelMaker:
    """A :class:`SourceBuilder` that writes a small wheel, or fails as told."""

    requires_dist: str = ""
    failure: str | None = None
    built: list[str] = field(default_factory=list)

    def build_wheel(
        self,
        sdist: IndexFile,
        *,
        as_of: datetime | None,
        image: str,
        python_version: str,
        glibc_minor: int | None,
        scratch: Path,
    ) -> Path:
        self.built.append(sdist.filename)
        if self.failure:
            raise ResolveError(self.failure)
        scratch.mkdir(parents=True, exist_ok=True)
        entries = wheel_entries(
            sdist.project, sdist.version, generator="setuptools (45.0.0)",
            metadata_extra=self.requires_dist,
        )  # fmt: skip
        return write_entries(scratch / f"{sdist.project}-{sdist.version}-py3-none-any.whl", entries)


def _tool_index(tmp_path: Path) -> tuple[FakeIndex, ResolvedPin]:
    index = _index()
    wheel = write_entries(tmp_path / "tool-1.0-py3-none-any.whl", wheel_entries("tool", "1.0"))
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    listed = IndexFile(
        "tool", "1.0", wheel.name, "http://127.0.0.1:9/t", digest, FileKind.WHEEL, AS_OF
    )
    index.files = [f for f in index.files if f.filename != wheel.name]
    index.add_local(listed, wheel)
    return index, ResolvedPin("tool", "1.0", (digest,))


def test_an_sdist_only_requirement_is_built_and_joins_the_wheelhouse(tmp_path: Path) -> None:
    index, tool = _tool_index(tmp_path)
    resolver = ScriptedResolver({"versioner"}, {"tool": tool})
    maker = WheelMaker(requires_dist="Requires-Dist: tool>=1\nRequires-Dist: win; os_name == 'nt'")
    wheelhouse = tmp_path / "wheelhouse"

    resolved, built = resolve_build_requirements(
        ["setuptools-free-backend-is-not-needed; python_version < '3'", "versioner"],
        as_of=AS_OF, python_version="3.11", glibc_minor=None, image="img",
        resolver=resolver, index=index, wheelhouse=wheelhouse, builder=maker,
    )  # fmt: skip

    assert maker.built == ["versioner-2.0.tar.gz"]
    # resolved again without it, with the built wheel's own dependencies for this Python
    assert resolver.calls[-1] == (
        "setuptools-free-backend-is-not-needed; python_version < '3'",
        "tool>=1",
    )
    assert [r.spec for r in resolved] == ["tool==1.0"]
    (record,) = built
    wheel = wheelhouse / "versioner-2.0-py3-none-any.whl"
    assert record == SourceBuild(
        "versioner",
        "2.0",
        PinnedFile("versioner-2.0.tar.gz", "http://127.0.0.1:9/versioner-2.0.tar.gz",
                   hashlib.sha256(b"versioner-2.0.tar.gz").hexdigest()),
        PinnedFile(wheel.name, "", hashlib.sha256(wheel.read_bytes()).hexdigest()),
    )  # fmt: skip
    assert sorted(p.name for p in wheelhouse.iterdir()) == [
        "tool-1.0-py3-none-any.whl",
        wheel.name,
    ]


def test_without_a_builder_or_an_sdist_only_requirement_the_failure_stands(
    tmp_path: Path,
) -> None:
    index, _ = _tool_index(tmp_path)
    resolver = ScriptedResolver({"versioner", "tool"}, {})
    for builder, requirements in ((None, ["versioner"]), (WheelMaker(), ["tool"])):
        with pytest.raises(ResolveError, match="no usable wheels"):
            resolve_build_requirements(
                requirements, as_of=AS_OF, python_version="3.11", glibc_minor=None,
                image="img", resolver=resolver, index=index, wheelhouse=tmp_path / "wh",
                builder=builder,
            )  # fmt: skip


def test_a_failed_source_build_is_a_resolve_failure_saying_why(tmp_path: Path) -> None:
    index, _ = _tool_index(tmp_path)
    maker = WheelMaker(failure="versioner==2.0 has no wheel and its sdist did not build (timeout)")
    with pytest.raises(ResolveError, match=r"did not build \(timeout\)"):
        resolve_build_requirements(
            ["versioner"], as_of=AS_OF, python_version="3.11", glibc_minor=None,
            image="img", resolver=ScriptedResolver({"versioner"}, {}), index=index,
            wheelhouse=tmp_path / "wh", builder=maker,
        )  # fmt: skip


def test_only_requirements_for_this_interpreter_are_read_from_the_built_wheel(
    tmp_path: Path,
) -> None:
    extra = (
        "Requires-Dist: a>=1\nRequires-Dist: b; python_version < '3'\n"
        "Requires-Dist: c; extra == 'test'\nRequires-Dist: d; python_version >= '3.8'"
    )
    wheel = write_entries(
        tmp_path / "x-1.0-py3-none-any.whl", wheel_entries("x", "1.0", metadata_extra=extra)
    )
    assert wheel_requirements(wheel, "3.11") == ["a>=1", "d"]


@dataclass
class ScriptedSandbox:
    """A :class:`Sandbox` answering each run with the next outcome; a wheel when OK."""

    outcomes: list[BuildStatus]
    missing: tuple[str, ...] = ()
    requests: list[BuildRequest] = field(default_factory=list)

    def run(self, request: BuildRequest) -> BuildOutcome:
        self.requests.append(request)
        status = self.outcomes.pop(0)
        if status is BuildStatus.OK:
            artifact = write_entries(
                request.output_dir / "versioner-2.0-py3-none-any.whl",
                wheel_entries("versioner", "2.0"),
            )
            return BuildOutcome(status, artifact, "log")
        missing = self.missing if status is BuildStatus.MISSING_REQUIREMENTS else ()
        detail = "the build exceeded 900s" if status is BuildStatus.TIMEOUT else ""
        return BuildOutcome(status, None, "log", missing=missing, detail=detail)


def _sdist_index(tmp_path: Path) -> tuple[FakeIndex, IndexFile]:
    path = write_sdist(
        tmp_path / "versioner-2.0.tar.gz",
        SdistSpec("versioner", "2.0", setuptools_sdist_members("versioner", "2.0")),
    )
    sdist = IndexFile(
        "versioner", "2.0", path.name, "http://127.0.0.1:9/v.tar.gz",
        hashlib.sha256(path.read_bytes()).hexdigest(), FileKind.SDIST, AS_OF,
    )  # fmt: skip
    index = FakeIndex()
    index.add_local(sdist, path)
    return index, sdist


@dataclass
class NoPins:
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def resolve(
        self,
        requirements: Sequence[str],
        *,
        as_of: datetime | None,
        python_version: str,
        beyond_as_of: Sequence[str] = (),
    ) -> Sequence[ResolvedPin]:
        self.calls.append(tuple(requirements))
        return ()


def test_the_sandbox_builds_the_sdist_with_its_own_build_system_in_rounds(
    tmp_path: Path,
) -> None:
    index, sdist = _sdist_index(tmp_path)
    sandbox = ScriptedSandbox(
        [BuildStatus.MISSING_REQUIREMENTS, BuildStatus.OK], missing=("wheel",)
    )
    resolver = NoPins()
    limits = SandboxLimits(timeout_seconds=60)
    builder = SandboxSourceBuilder(index=index, resolver=resolver, sandbox=sandbox, limits=limits)
    kwargs = {"as_of": AS_OF, "image": "img", "python_version": "3.11", "glibc_minor": None}

    wheel = builder.build_wheel(sdist, scratch=tmp_path / "s1", **kwargs)  # type: ignore[arg-type]

    assert wheel.name == "versioner-2.0-py3-none-any.whl"
    assert resolver.calls == [("setuptools>=61",), ("setuptools>=61", "wheel")]
    first = sandbox.requests[0]
    assert (first.image, first.distribution, first.limits) == ("img", "wheel", limits)
    assert first.env["SOURCE_DATE_EPOCH"] == str(int(AS_OF.timestamp()))
    assert index.downloads == [sdist.filename]
    # built once per sdist and image: the next round of the same rebuild reuses it
    again = builder.build_wheel(sdist, scratch=tmp_path / "s2", **kwargs)  # type: ignore[arg-type]
    assert again.read_bytes() == wheel.read_bytes()
    assert len(sandbox.requests) == 2


@pytest.mark.parametrize(
    ("status", "words"),
    [(BuildStatus.TIMEOUT, r"did not build \(timeout\): the build exceeded 900s"),
     (BuildStatus.FAILED, r"did not build \(failed\)"),
     (BuildStatus.SANDBOX, r"did not build \(sandbox\)")],
)  # fmt: skip
def test_a_source_build_that_fails_or_times_out_says_so(
    tmp_path: Path, status: BuildStatus, words: str
) -> None:
    index, sdist = _sdist_index(tmp_path)
    builder = SandboxSourceBuilder(
        index=index, resolver=NoPins(), sandbox=ScriptedSandbox([status]), limits=SandboxLimits()
    )
    with pytest.raises(ResolveError, match=f"versioner==2.0 has no wheel .*{words}"):
        builder.build_wheel(
            sdist, as_of=AS_OF, image="img", python_version="3.11", glibc_minor=None,
            scratch=tmp_path / "s",
        )  # fmt: skip


def test_built_requirements_are_installed_and_survive_strategy_json() -> None:
    built = SourceBuild(
        "versioner", "2.0", PinnedFile("v.tar.gz", "http://x/v", "1" * 64),
        PinnedFile("versioner-2.0-py3-none-any.whl", "", "2" * 64),
    )  # fmt: skip
    strategy = Strategy(
        project="demo", version="1.0", target="demo-1.0-py3-none-any.whl",
        distribution="wheel", source=PinnedFile("demo-1.0.tar.gz", "u", "3" * 64),
        backend=BackendPin("x", None, None),
        requirements=(BuildRequirement("tool", "1.0", PinnedFile("t.whl", "u", "4" * 64)),),
        archive=ArchiveInputs(None, None), image="img", image_digest="d",
        python_version="3.11", resolved_as_of=None, built_from_source=(built,),
    )  # fmt: skip
    assert strategy.install_specs == ("tool==1.0", "versioner==2.0")
    assert Strategy.from_json(strategy.to_json()) == strategy
