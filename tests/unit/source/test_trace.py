from __future__ import annotations

from pathlib import Path

from rebuilder.source.rebuild import FromGit
from rebuilder.source.result import GitBuild
from rebuilder.source.rules import Regeneration
from rebuilder.source.trace import SourceConfig, trace_release
from tests.support.dists import SdistMember, SdistSpec, write_sdist
from tests.unit.source.fakes import FakeCloner, FakeRepository

URL = "https://github.com/example/demo"
PKG_INFO = f"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nProject-URL: Source, {URL}\n"
TREE = {"pyproject.toml": b"[project]\nname = 'demo'\n", "demo/__init__.py": b"X = 1\n"}


def _sdist(tmp: Path, files: dict[str, bytes]) -> Path:
    members = [SdistMember(p, d) for p, d in sorted(files.items())]
    return write_sdist(tmp / "demo-1.0.tar.gz", SdistSpec("demo", "1.0", members))


def _cloner(tree: dict[str, bytes], tags: dict[str, str]) -> FakeCloner:
    repo = FakeRepository(URL, {"c" * 40: tree}, tags)
    return FakeCloner({URL: repo})


def _trace(tmp: Path, files: dict[str, bytes], cloner: FakeCloner, **kwargs: object):  # type: ignore[no-untyped-def]
    return trace_release(
        project="demo",
        version="1.0",
        sdist_path=_sdist(tmp, files),
        cloner=cloner,
        config=SourceConfig(),
        work_dir=tmp / "work",
        **kwargs,  # type: ignore[arg-type]
    )


def _from_git(regenerated: dict[str, bytes], calls: list[str]):  # type: ignore[no-untyped-def]
    def from_git(tar: Path, subdir: str, commit_time: int | None) -> FromGit:
        assert tar.is_file()
        assert commit_time is not None
        calls.append(subdir)
        builds = (GitBuild("demo-1.0-py3-none-any.whl", "reproducible"),)
        return FromGit(builds, Regeneration(regenerated, "sdist rebuilt from git (fake)", ""))

    return from_git


def test_consistent_and_from_git_is_called_with_the_tree(tmp_path: Path) -> None:
    calls: list[str] = []
    from_git = _from_git({**TREE, "PKG-INFO": PKG_INFO.encode()}, calls)
    cloner = _cloner(TREE, {"v1.0": "c" * 40})
    result = _trace(tmp_path, {**TREE, "PKG-INFO": PKG_INFO.encode()}, cloner, from_git=from_git)
    assert result.verdict.value == "consistent"
    assert result.commit == "c" * 40
    assert calls == [""]
    assert result.to_json()["from_git"][0]["verdict"] == "reproducible"
    assert [e.to_json() for e in result.explained] == [
        {
            "path": "PKG-INFO",
            "rule": "pkg-info@2",
            "reproduced": "the same as regenerated (sdist rebuilt from git (fake))",
        }
    ]
    assert cloner.opened == [URL]


def test_a_pkg_info_not_as_regenerated_is_inconsistent_naming_the_field(tmp_path: Path) -> None:
    from_git = _from_git({**TREE, "PKG-INFO": PKG_INFO.encode()}, [])
    cloner = _cloner(TREE, {"v1.0": "c" * 40})
    tampered = PKG_INFO + "Requires-Dist: evilpkg\n"
    result = _trace(tmp_path, {**TREE, "PKG-INFO": tampered.encode()}, cloner, from_git=from_git)
    assert result.verdict.value == "inconsistent"
    [differing] = result.differing
    assert (differing.path, differing.kind.value) == ("PKG-INFO", "content")
    assert "requires-dist: +evilpkg" in differing.detail


def test_without_a_rebuild_generated_files_are_unexplained(tmp_path: Path) -> None:
    cloner = _cloner(TREE, {"v1.0": "c" * 40})
    result = _trace(tmp_path, {**TREE, "PKG-INFO": PKG_INFO.encode()}, cloner)
    assert result.verdict.value == "inconsistent"
    assert [d.to_json() for d in result.differing] == [
        {
            "path": "PKG-INFO",
            "kind": "unexplained",
            "detail": "pkg-info@2: not regenerated: no rebuild from git was asked for",
        }
    ]


def test_monorepo_subfolder_is_found(tmp_path: Path) -> None:
    tree = {f"packages/demo/{p}": d for p, d in TREE.items()}
    tree["packages/other/pyproject.toml"] = b"[project]\nname = 'other'\n"
    cloner = _cloner(tree, {"demo-1.0": "c" * 40})
    regenerated = {**TREE, "PKG-INFO": PKG_INFO.encode()}
    calls: list[str] = []
    from_git = _from_git(regenerated, calls)
    result = _trace(tmp_path, regenerated, cloner, from_git=from_git)
    assert (result.verdict.value, result.subdir) == ("consistent", "packages/demo")
    assert calls == ["packages/demo"]


def test_unreachable_repository_is_no_source(tmp_path: Path) -> None:
    result = _trace(tmp_path, {**TREE, "PKG-INFO": PKG_INFO.encode()}, FakeCloner())
    assert result.verdict.value == "no-source"
    assert result.reason is not None
    assert "repository not found" in result.reason
    assert result.repository == URL


def test_no_metadata_url_is_no_source(tmp_path: Path) -> None:
    bare = "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
    result = _trace(tmp_path, {**TREE, "PKG-INFO": bare.encode()}, FakeCloner())
    assert result.verdict.value == "no-source"
    assert result.reason is not None
    assert "REBUILDER_SOURCE_OVERRIDES" in result.reason
