from __future__ import annotations

from pathlib import Path

from rebuilder.source.result import GitBuild
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


def test_consistent_and_from_git_is_called_with_the_tree(tmp_path: Path) -> None:
    calls: list[str] = []

    def from_git(tar: Path, subdir: str) -> tuple[GitBuild, ...]:
        assert tar.is_file()
        calls.append(subdir)
        return (GitBuild("demo-1.0-py3-none-any.whl", "reproducible"),)

    cloner = _cloner(TREE, {"v1.0": "c" * 40})
    result = _trace(tmp_path, {**TREE, "PKG-INFO": PKG_INFO.encode()}, cloner, from_git=from_git)
    assert result.verdict.value == "consistent"
    assert result.commit == "c" * 40
    assert calls == [""]
    assert result.to_json()["from_git"][0]["verdict"] == "reproducible"
    assert cloner.opened == [URL]


def test_monorepo_subfolder_is_found(tmp_path: Path) -> None:
    tree = {f"packages/demo/{p}": d for p, d in TREE.items()}
    tree["packages/other/pyproject.toml"] = b"[project]\nname = 'other'\n"
    cloner = _cloner(tree, {"demo-1.0": "c" * 40})
    result = _trace(tmp_path, {**TREE, "PKG-INFO": PKG_INFO.encode()}, cloner)
    assert (result.verdict.value, result.subdir) == ("consistent", "packages/demo")


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
