"""The from-git rebuild of a release with no pure wheel: planned from the sdist itself.

Real GitRebuilder and trace_release; fakes for the index, the resolver, the sandbox and
the git remote. The fake backend "builds" the sdist from the tree it is given, adding the
PKG-INFO it generates, so the rules compare the published PKG-INFO with that twin.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rebuilder.index.model import FileKind, IndexFile, ResolvedPin
from rebuilder.plan.planner import ImageChoice
from rebuilder.sandbox.model import BuildOutcome, BuildRequest, BuildStatus, SandboxLimits
from rebuilder.source.rebuild import GitRebuilder
from rebuilder.source.result import SourceResult
from rebuilder.source.trace import SourceConfig, from_git_step, trace_release
from tests.support.dists import SdistMember, SdistSpec, wheel_entries, write_sdist, write_wheel
from tests.support.fakes import FakeIndex
from tests.unit.source.fakes import FakeCloner, FakeRepository

URL = "https://github.com/example/demo"
COMMIT = "c" * 40
SDIST_UPLOADED = datetime(2024, 3, 1, tzinfo=UTC)
PLATFORM_WHEEL = "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
PYPROJECT = b'[build-system]\nrequires = ["tool>=1"]\nbuild-backend = "tool.api"\n'
TREE = {"pyproject.toml": PYPROJECT, "demo/__init__.py": b"X = 1\n"}
PKG_INFO = f"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nProject-URL: Source, {URL}\n"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _listed(index: FakeIndex, path: Path, kind: FileKind, project: str = "demo") -> IndexFile:
    version = "1.0"
    file = IndexFile(project, version, path.name, f"http://127.0.0.1:9/{path.name}",
                     _sha(path), kind, SDIST_UPLOADED)  # fmt: skip
    return index.add_local(file, path)


@dataclass
class FakeResolver:
    tool: IndexFile
    calls: list[tuple[tuple[str, ...], datetime | None]] = field(default_factory=list)

    def resolve(
        self,
        requirements: Sequence[str],
        *,
        as_of: datetime | None,
        python_version: str,
        beyond_as_of: Sequence[str] = (),
    ) -> Sequence[ResolvedPin]:
        self.calls.append((tuple(requirements), as_of))
        return [ResolvedPin("tool", "1.0", (self.tool.sha256,))]


@dataclass
class BackendSandbox:
    """Builds an sdist of the tree it is given plus the PKG-INFO the backend writes."""

    pkg_info: bytes
    requests: list[BuildRequest] = field(default_factory=list)

    def run(self, request: BuildRequest) -> BuildOutcome:
        self.requests.append(request)
        assert request.distribution == "sdist", "no wheel may be built without a pure wheel"
        files = {
            p.relative_to(request.source_dir).as_posix(): p.read_bytes()
            for p in sorted(request.source_dir.rglob("*"))
            if p.is_file()
        }
        files["PKG-INFO"] = self.pkg_info
        target = request.output_dir / "demo-1.0.tar.gz"
        with tarfile.open(target, "w:gz") as tar:
            for name, data in sorted(files.items()):
                info = tarfile.TarInfo(f"demo-1.0/{name}")
                info.size, info.mtime = len(data), request.build_clock or 0
                tar.addfile(info, io.BytesIO(data))
        return BuildOutcome(BuildStatus.OK, target, "built\n", exit_code=0)


@dataclass
class World:
    result: SourceResult
    resolver: FakeResolver
    sandbox: BackendSandbox
    evidence: Path


def _check(tmp: Path, published: dict[str, bytes], tree: dict[str, bytes] = TREE) -> World:
    (tmp / "pub").mkdir()
    index = FakeIndex()
    members = [SdistMember(p, d) for p, d in sorted(published.items())]
    sdist_path = write_sdist(tmp / "pub" / "demo-1.0.tar.gz", SdistSpec("demo", "1.0", members))
    sdist = _listed(index, sdist_path, FileKind.SDIST)
    _listed(index, write_wheel(tmp / "pub" / PLATFORM_WHEEL, wheel_entries()), FileKind.WHEEL)
    tool_path = write_wheel(tmp / "pub" / "tool-1.0-py3-none-any.whl", wheel_entries("tool", "1.0"))
    resolver = FakeResolver(_listed(index, tool_path, FileKind.WHEEL, project="tool"))
    sandbox = BackendSandbox(PKG_INFO.encode())
    rebuilder = GitRebuilder(
        index=index,
        resolver=resolver,
        sandbox=sandbox,
        image=lambda: ImageChoice("sha256:" + "0" * 64, "sha256:" + "0" * 64, "3.11"),
        work_root=tmp / "work",
        limits=SandboxLimits(),
    )
    evidence = tmp / "evidence"
    files = index.release_files("demo", "1.0")
    step = from_git_step(rebuilder, sdist, sdist_path, files, evidence)
    repo = FakeRepository(URL, {COMMIT: tree}, {"v1.0": COMMIT})
    result = trace_release(
        project="demo",
        version="1.0",
        sdist_path=sdist_path,
        cloner=FakeCloner({URL: repo}),
        config=SourceConfig(),
        work_dir=tmp / "trace",
        evidence_dir=evidence,
        from_git=step,
    )
    return World(result, resolver, sandbox, evidence)


def test_with_only_a_platform_wheel_pkg_info_is_explained_by_the_sdist_rebuilt_from_git(
    tmp_path: Path,
) -> None:
    world = _check(tmp_path, {**TREE, "PKG-INFO": PKG_INFO.encode()})
    assert world.result.verdict.value == "consistent", world.result.differing
    [explained] = world.result.explained
    assert (explained.path, explained.rule) == ("PKG-INFO", "pkg-info@2")
    assert "sdist rebuilt from git with tool==1.0, SOURCE_DATE_EPOCH=" in explained.reproduced
    # planned from the sdist's own [build-system], resolved as of the sdist's upload
    assert world.resolver.calls == [(("tool>=1",), SDIST_UPLOADED)]
    [request] = world.sandbox.requests  # the sdist only: no wheel is built or judged
    assert request.distribution == "sdist"
    assert request.requirements == ("tool==1.0",)
    assert request.env["SOURCE_DATE_EPOCH"] == str(request.build_clock)
    assert [b.filename for b in world.result.from_git] == ["demo-1.0.tar.gz"]
    strategy = json.loads((world.evidence / "from-git" / "strategy.json").read_text())
    assert (strategy["distribution"], strategy["target"]) == ("sdist", "demo-1.0.tar.gz")
    assert strategy["resolved_as_of"] == SDIST_UPLOADED.isoformat()


def test_with_only_a_platform_wheel_a_tampered_pkg_info_is_still_inconsistent(
    tmp_path: Path,
) -> None:
    tampered = PKG_INFO + "Requires-Dist: evilpkg\n"
    world = _check(tmp_path, {**TREE, "PKG-INFO": tampered.encode()})
    assert world.result.verdict.value == "inconsistent"
    [differing] = world.result.differing
    assert (differing.path, differing.kind.value) == ("PKG-INFO", "content")
    assert "requires-dist: +evilpkg" in differing.detail


def test_an_sdist_declaring_no_build_system_is_planned_with_setuptools_legacy_default(
    tmp_path: Path,
) -> None:
    tree = {"setup.py": b"from setuptools import setup\nsetup()\n", "demo/__init__.py": b""}
    world = _check(tmp_path, {**tree, "PKG-INFO": PKG_INFO.encode()}, tree)
    assert world.result.verdict.value == "consistent", world.result.differing
    assert world.resolver.calls == [(("setuptools>=40.8.0",), SDIST_UPLOADED)]
