"""A release with an sdist and no wheel, traced with the real from-git rebuild.

With no pure wheel to take a build strategy from, the sdist rebuilt from git is planned
from the sdist's own ``[build-system]`` (real uv against the fixture index, real Docker):
the genuine sdist's generated files are explained by their regenerated twins, and a
``PKG-INFO`` with an added requirement is still ``inconsistent``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cli.wiring import image_choice, sandbox_limits
from rebuilder.index.resolve import UvResolver
from rebuilder.index.simple import SimpleIndex
from rebuilder.sandbox.docker import DockerSandbox
from rebuilder.sandbox.image import ImageRef
from rebuilder.settings import Settings
from rebuilder.source.clone import GitCloner
from rebuilder.source.rebuild import FromGit, GitRebuilder
from rebuilder.source.result import SourceResult
from rebuilder.source.trace import SourceConfig, from_git_step, trace_release
from tests.integration.source import test_tamper as maintainer
from tests.integration.source.gitrepo import GitRepo
from tests.support.index_server import FixtureIndex
from tests.support.wheelhouse import load_into

pytestmark = pytest.mark.docker


@dataclass
class Release:
    tmp: Path
    repo: GitRepo
    commit: str
    sdist: Path
    members: dict[str, bytes]
    step: Any  # the from-git step of the release as the index lists it


@pytest.fixture(scope="module")
def release(
    tmp_path_factory: pytest.TempPathFactory, docker_client: Any, sandbox_image: ImageRef
) -> Iterator[Release]:
    tmp = tmp_path_factory.mktemp("no-wheel")
    repo = GitRepo(tmp / "demo")
    commit = repo.commit(maintainer.FILES, "release 1.2.3")
    repo.tag("v1.2.3")
    checkout = tmp / "checkout" / maintainer.TOP
    shutil.copytree(repo.path, checkout, ignore=shutil.ignore_patterns(".git"))
    sandbox = DockerSandbox(client=docker_client)
    sdist = maintainer._build(sandbox, sandbox_image, checkout, tmp / "sdist-out", "sdist")
    with FixtureIndex() as index:
        load_into(index, only=[maintainer.SETUPTOOLS])
        index.add_file("demo", sdist.name, sdist.read_bytes(), datetime.now(UTC))
        settings = Settings(cache_dir=tmp / "cache", out_dir=tmp / "out")
        simple = SimpleIndex(index.url, tmp / "cache" / "index", page_ttl_seconds=0)
        files = list(simple.release_files("demo", "1.2.3"))
        rebuilder = GitRebuilder(
            index=simple,
            resolver=UvResolver(index.url, tmp / "cache" / "uv"),
            sandbox=sandbox,
            image=lambda: image_choice(settings),
            work_root=tmp / "cache" / "work",
            limits=sandbox_limits(settings),
        )
        step = from_git_step(rebuilder, files[0], sdist, files, tmp / "evidence")
        members = maintainer._members(sdist)
        yield Release(tmp, repo, commit, sdist, members, step)


_CACHE: dict[str, FromGit] = {}


def _check(release: Release, sdist: Path, name: str) -> SourceResult:
    def from_git(tar: Path, subdir: str, commit_time: int | None) -> FromGit:
        # the regeneration depends on the git tree and the sdist's [build-system] only
        if "genuine" not in _CACHE:
            _CACHE["genuine"] = release.step(tar, subdir, commit_time)
        return _CACHE["genuine"]

    return trace_release(
        project="demo",
        version="1.2.3",
        sdist_path=sdist,
        cloner=GitCloner(release.tmp / "git-cache"),
        config=SourceConfig(overrides={"demo": release.repo.url}),
        work_dir=release.tmp / "work" / name,
        evidence_dir=release.tmp / "evidence" / name,
        from_git=from_git,
    )


def test_the_genuine_sdist_without_a_wheel_is_consistent_every_generated_file_regenerated(
    release: Release,
) -> None:
    result = _check(release, release.sdist, "genuine")
    assert result.verdict.value == "consistent", result.differing
    assert result.commit == release.commit
    rules = {e.path: e.rule for e in result.explained}
    assert rules["PKG-INFO"] == "pkg-info@2"
    assert rules["setup.cfg"] == "setup-cfg-egg-info@2"
    assert rules["src/demo.egg-info/requires.txt"] == "egg-info@2"
    regenerated = [e for e in result.explained if e.rule.startswith(("pkg", "egg", "setup"))]
    assert all(
        f"sdist rebuilt from git with {maintainer.SETUPTOOLS}, SOURCE_DATE_EPOCH=" in e.reproduced
        for e in regenerated
    ), regenerated
    # the sdist only: no wheel was published, none is built or judged
    assert [b.filename for b in result.from_git] == [release.sdist.name]


def test_without_a_wheel_a_requirement_added_to_pkg_info_is_inconsistent(
    release: Release,
) -> None:
    members = dict(release.members)
    members["PKG-INFO"] = members["PKG-INFO"].replace(
        b"Requires-Dist: requests>=2\n", b"Requires-Dist: requests>=2\nRequires-Dist: evilpkg\n"
    )
    tampered = maintainer._write(release.tmp / "tampered" / f"{maintainer.TOP}.tar.gz", members)
    result = _check(release, tampered, "tampered")
    assert result.verdict.value == "inconsistent"
    [found] = result.differing
    assert (found.path, found.kind.value) == ("PKG-INFO", "content")
    assert "requires-dist: +evilpkg" in found.detail
