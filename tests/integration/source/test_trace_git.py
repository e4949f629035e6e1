"""Source tracing against real git repositories made in the test (``file://``, no network).

No Docker here: the sdist is written by the test, the repository is real, fetched through
the real cloner into a real cache, and reached through the mirror setting as an
operator's internal mirror would be. The sandbox's regeneration of the generated files is
stood in for by a test double giving what setuptools writes for the tree (the real one
runs in test_tamper.py); without it, generated files are ``unexplained``.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli.main import main
from rebuilder.errors import FailureReason
from rebuilder.source.clone import CloneLimits, GitCloner
from rebuilder.source.errors import RepositoryUnreachableError
from rebuilder.source.rebuild import FromGit
from rebuilder.source.result import SourceResult
from rebuilder.source.rules import Regeneration
from rebuilder.source.trace import FromGitStep, SourceConfig, trace_release
from tests.integration.source.gitrepo import GitRepo, pkg_info, project_files
from tests.support.dists import SdistMember, SdistSpec, write_sdist
from tests.support.index_server import FixtureIndex

SETUP_CFG = b"[egg_info]\ntag_build = \ntag_date = 0\n\n"


def _sdist(tmp: Path, files: dict[str, bytes], version: str = "1.2.3", name: str = "demo") -> Path:
    members = [SdistMember(path, data) for path, data in sorted(files.items())]
    out = tmp / "published"
    out.mkdir(exist_ok=True)
    return write_sdist(out / f"{name}-{version}.tar.gz", SdistSpec(name, version, members))


def _genuine(files: dict[str, bytes], version: str = "1.2.3") -> dict[str, bytes]:
    """What setuptools puts in the sdist of this tree: git's files and generated ones."""
    kept = {k: v for k, v in files.items() if not k.startswith((".github/", "tests/"))}
    info = pkg_info(version=version)
    return {
        **kept,
        "PKG-INFO": info,
        "setup.cfg": SETUP_CFG,
        "src/demo.egg-info/PKG-INFO": info,
        "src/demo.egg-info/SOURCES.txt": b"pyproject.toml\nsrc/demo/__init__.py\n",
        "src/demo.egg-info/top_level.txt": b"demo\n",
    }


def _generated(version: str = "1.2.3", **extra: bytes) -> dict[str, bytes]:
    """The files setuptools generates for the tree of ``project_files`` (and ``extra``)."""
    genuine = _genuine(project_files(version=version), version)
    return {k: genuine[k] for k in genuine if "egg-info" in k or k in {"PKG-INFO", "setup.cfg"}}


def _regenerated(files: dict[str, bytes]) -> FromGitStep:
    """A test double of the from-git rebuild: it "regenerates" ``files``."""

    def from_git(tar: Path, subdir: str, commit_time: int | None) -> FromGit:
        del tar, subdir, commit_time
        return FromGit((), Regeneration(files, "the backend (a test double)", ""))

    return from_git


def _trace(
    tmp: Path,
    repo: GitRepo,
    sdist: Path,
    version: str = "1.2.3",
    limits: CloneLimits | None = None,
    regenerated: dict[str, bytes] | None = None,
) -> SourceResult:
    # the metadata names the upstream forge; the operator's mirror maps it to the local repo
    config = SourceConfig(mirrors={"https://github.com/example/demo": repo.url})
    return trace_release(
        project="demo",
        version=version,
        sdist_path=sdist,
        cloner=GitCloner(tmp / "cache", limits),
        config=config,
        work_dir=tmp / "work",
        evidence_dir=tmp / "evidence" / "source",
        from_git=_regenerated(_generated(version) if regenerated is None else regenerated),
    )


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "upstream")


def test_clean_release_is_consistent_with_every_generated_file_explained(
    tmp_path: Path, repo: GitRepo
) -> None:
    files = project_files()
    commit = repo.commit(files, "release 1.2.3")
    repo.tag("v1.2.3", annotated=True)
    result = _trace(tmp_path, repo, _sdist(tmp_path, _genuine(files)))
    assert result.verdict.value == "consistent", result
    assert (result.tag, result.commit) == ("v1.2.3", commit)
    assert result.repository == repo.url
    assert result.declared_repository == "https://github.com/example/demo"
    assert not result.differing
    rules = {e.path: e.rule for e in result.explained}
    assert rules == {
        "PKG-INFO": "pkg-info@2",
        "setup.cfg": "setup-cfg-egg-info@2",
        "src/demo.egg-info/PKG-INFO": "egg-info@2",
        "src/demo.egg-info/SOURCES.txt": "egg-info@2",
        "src/demo.egg-info/top_level.txt": "egg-info@2",
    }
    assert result.repo_only == (".github/workflows/ci.yml", "tests/test_demo.py")
    report = json.loads((tmp_path / "evidence" / "source" / "report.json").read_text())
    assert report["verdict"] == "consistent"
    assert report["commit"] == commit


def test_injected_file_is_inconsistent_and_named(tmp_path: Path, repo: GitRepo) -> None:
    files = project_files()
    repo.commit(files)
    repo.tag("1.2.3")
    published = {**_genuine(files), "src/demo/_hook.py": b"import os\nos.system('id')\n"}
    result = _trace(tmp_path, repo, _sdist(tmp_path, published))
    assert result.verdict.value == "inconsistent"
    assert [d.to_json() for d in result.differing] == [
        {"path": "src/demo/_hook.py", "kind": "sdist-only"}
    ]
    diff = (tmp_path / "evidence" / "source" / "diff.patch").read_text()
    assert "+++ sdist/src/demo/_hook.py" in diff
    assert "+os.system('id')" in diff


def test_one_changed_line_is_inconsistent_with_its_diff(tmp_path: Path, repo: GitRepo) -> None:
    files = project_files()
    repo.commit(files)
    repo.tag("demo-1.2.3")
    published = _genuine(files)
    published["src/demo/__init__.py"] = published["src/demo/__init__.py"].replace(
        b"ANSWER = 42", b"ANSWER = 43"
    )
    result = _trace(tmp_path, repo, _sdist(tmp_path, published))
    assert result.verdict.value == "inconsistent"
    assert result.tag == "demo-1.2.3"
    assert [d.to_json() for d in result.differing] == [
        {"path": "src/demo/__init__.py", "kind": "content"}
    ]
    diff = (tmp_path / "evidence" / "source" / "diff.patch").read_text()
    assert "-ANSWER = 42\n+ANSWER = 43\n" in diff


def test_missing_tag_is_no_source_with_what_was_tried(tmp_path: Path, repo: GitRepo) -> None:
    files = project_files()
    repo.commit(files)
    repo.tag("v1.2.30")
    repo.tag("v1.2.3rc1")
    result = _trace(tmp_path, repo, _sdist(tmp_path, _genuine(files)))
    assert result.verdict.value == "no-source"
    assert result.tag is None
    assert result.commit is None
    assert "v1.2.3" in result.tried
    assert "demo-1.2.3" in result.tried
    assert result.reason is not None
    assert "no tag among 2" in result.reason


def test_1_2_30_is_never_taken_for_1_2_3(tmp_path: Path, repo: GitRepo) -> None:
    files = project_files()
    right = repo.commit(files, "1.2.3")
    repo.tag("v1.2.3")
    repo.commit({"src/demo/__init__.py": b"__version__ = '1.2.30'\n"}, "1.2.30")
    repo.tag("v1.2.30")
    repo.tag("1.2.30")
    result = _trace(tmp_path, repo, _sdist(tmp_path, _genuine(files)))
    assert (result.verdict.value, result.tag, result.commit) == ("consistent", "v1.2.3", right)


def test_a_moved_tag_is_followed_and_judged(tmp_path: Path, repo: GitRepo) -> None:
    files = project_files()
    first = repo.commit(files)
    repo.tag("v1.2.3")
    sdist = _sdist(tmp_path, _genuine(files))
    assert _trace(tmp_path, repo, sdist).verdict.value == "consistent"
    moved = repo.commit({"src/demo/__init__.py": b"__version__ = '1.2.3'\nEVIL = 1\n"})
    repo.tag("v1.2.3", force=True)
    again = _trace(tmp_path, repo, sdist)  # the same cache: the old tag must not stick
    assert again.commit == moved != first
    assert again.verdict.value == "inconsistent"
    assert [d.path for d in again.differing] == ["src/demo/__init__.py"]


def test_setuptools_scm_version_file_is_explained(tmp_path: Path, repo: GitRepo) -> None:
    files = project_files()
    files["pyproject.toml"] = files["pyproject.toml"].replace(
        b'"setuptools>=61"', b'"setuptools>=61", "setuptools_scm>=8"'
    )
    repo.commit({**files, ".gitignore": b"src/demo/_version.py\n"})
    repo.tag("v1.2.3")
    version_file = (
        b"# file generated by setuptools-scm\n# don't change, don't track in version control\n"
        b"__version__ = version = '1.2.3'\n__version_tuple__ = version_tuple = (1, 2, 3)\n"
    )
    published = {**_genuine(files), "src/demo/_version.py": version_file}
    regenerated = {**_generated(), "src/demo/_version.py": version_file}
    result = _trace(tmp_path, repo, _sdist(tmp_path, published), regenerated=regenerated)
    assert result.verdict.value == "consistent", result.differing
    assert {
        "path": "src/demo/_version.py",
        "rule": "scm-version-file@2",
        "reproduced": "the same as regenerated (the backend (a test double))",
    } in [e.to_json() for e in result.explained]
    # the malicious twin: code added to the file, the version string still in it
    published["src/demo/_version.py"] = version_file + b"import os; os.system('id')\n"
    result = _trace(tmp_path, repo, _sdist(tmp_path, published), regenerated=regenerated)
    assert [(d.path, d.kind.value) for d in result.differing] == [
        ("src/demo/_version.py", "content")
    ]


def test_a_folder_symlink_copied_into_the_sdist_is_consistent(
    tmp_path: Path, repo: GitRepo
) -> None:
    files = {**project_files(), "tests/certs/expired/ca/ca.pem": b"pem\n"}
    (repo.path / "tests/certs/valid").mkdir(parents=True)
    repo.symlink("tests/certs/valid/ca", "../expired/ca")
    repo.commit(files)
    repo.tag("v1.2.3")
    copies = {"tests/certs/expired/ca/ca.pem": b"pem\n", "tests/certs/valid/ca/ca.pem": b"pem\n"}
    result = _trace(tmp_path, repo, _sdist(tmp_path, {**_genuine(files), **copies}))
    assert result.verdict.value == "consistent", result.differing
    assert {
        "path": "tests/certs/valid/ca/ca.pem",
        "rule": "git-symlink@1",
        "reproduced": "a copy of ../expired/ca/ca.pem, a symlink in git inside the tree",
    } in [e.to_json() for e in result.explained]
    # the malicious twin: other bytes in the copy
    copies["tests/certs/valid/ca/ca.pem"] = b"attacker\n"
    result = _trace(tmp_path, repo, _sdist(tmp_path, {**_genuine(files), **copies}))
    assert [(d.path, d.kind.value) for d in result.differing] == [
        ("tests/certs/valid/ca/ca.pem", "content")
    ]


def test_a_folder_symlink_out_of_the_tree_is_refused(tmp_path: Path, repo: GitRepo) -> None:
    files = project_files()
    (repo.path / "tests").mkdir()
    repo.symlink("tests/ssl", "/etc/ssl")
    repo.commit(files)
    repo.tag("v1.2.3")
    published = {**_genuine(files), "tests/ssl/openssl.cnf": b"anything\n"}
    result = _trace(tmp_path, repo, _sdist(tmp_path, published))
    assert [(d.path, d.kind.value) for d in result.differing] == [
        ("tests/ssl/openssl.cnf", "sdist-only")
    ]


def test_a_huge_repository_hits_the_limit(tmp_path: Path, repo: GitRepo) -> None:
    files = project_files()
    repo.commit({**files, "data.bin": os.urandom(3 * 1024**2)})
    repo.tag("v1.2.3")
    limits = CloneLimits(max_bytes=1024**2, timeout_seconds=60)
    result = _trace(tmp_path, repo, _sdist(tmp_path, _genuine(files)), limits=limits)
    assert result.verdict.value == "no-source"
    assert result.reason is not None
    assert "1048576 bytes" in result.reason


def test_a_hostile_symlink_is_never_followed(tmp_path: Path, repo: GitRepo) -> None:
    files = project_files()
    repo.symlink("README.md", "/etc/hostname")
    repo.commit({k: v for k, v in files.items() if k != "README.md"})
    repo.tag("v1.2.3")
    published = {**_genuine(files), "README.md": Path("/etc/hostname").read_bytes()}
    result = _trace(tmp_path, repo, _sdist(tmp_path, published))
    assert result.verdict.value == "inconsistent"
    assert [d.path for d in result.differing] == ["README.md"]


def test_unsafe_urls_are_refused(tmp_path: Path, repo: GitRepo) -> None:
    files = project_files()
    repo.commit(files)
    repo.tag("v1.2.3")
    sdist = _sdist(tmp_path, _genuine(files))
    for url in ("ext::sh -c touch% /tmp/pwned", "ssh://example.org/x", "http://example.org/x"):
        result = trace_release(
            project="demo",
            version="1.2.3",
            sdist_path=sdist,
            cloner=GitCloner(tmp_path / "cache"),
            config=SourceConfig(overrides={"demo": url}),
            work_dir=tmp_path / "work",
        )
        assert result.verdict.value == "no-source"
        assert result.reason is not None
        assert "only https:// and file://" in result.reason


def test_check_source_cli_reports_an_injected_file_and_signs_it(
    tmp_path: Path,
    repo: GitRepo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`rebuilder check --source` on a release with only an sdist its index cannot build."""
    files = project_files()
    commit = repo.commit(files)
    repo.tag("v1.2.3")
    sdist = _sdist(tmp_path, {**_genuine(files), "src/demo/_evil.py": b"import os\n"})
    monkeypatch.setenv("REBUILDER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("REBUILDER_SIGNING_KEY", str(tmp_path / "key.pem"))
    monkeypatch.setenv("REBUILDER_SOURCE_OVERRIDES", json.dumps({"Demo": repo.url}))
    with FixtureIndex() as index:
        index.add_file("demo", sdist.name, sdist.read_bytes(), datetime.now(UTC))
        out = tmp_path / "out"
        code = main(["check", "demo==1.2.3", "--index-url", index.url, "--out", str(out),
                     "--json", "--source"])  # fmt: skip
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    source = next(line["source"] for line in lines if "source" in line)
    assert code == 1
    assert (source["verdict"], source["commit"], source["found_in"]) == (
        "inconsistent", commit, "override",
    )  # fmt: skip
    # no wheel: the sdist's own [build-system] is planned, but the index holds no
    # setuptools, so nothing is regenerated: the generated files are unexplained (with
    # why) and never taken on trust
    assert {"path": "src/demo/_evil.py", "kind": "sdist-only"} in source["differing"]
    unexplained = {
        d["path"]: d["detail"] for d in source["differing"] if d["kind"] == "unexplained"
    }
    assert sorted(unexplained) == ["PKG-INFO", "setup.cfg", *(f"src/demo.egg-info/{n}" for n in
                                   ("PKG-INFO", "SOURCES.txt", "top_level.txt"))]  # fmt: skip
    assert "the index has no project named setuptools" in unexplained["PKG-INFO"]
    assert source["from_git"][0]["verdict"] == "failed"
    bundle = out / "pypi" / "demo" / "1.2.3" / sdist.name / "source.intoto.jsonl"
    payloads = [json.loads(line) for line in bundle.read_text().splitlines()]
    assert len(payloads) == 1
    assert (Path(source["evidence"]) / "diff.patch").is_file()


def test_an_unreachable_repository_is_an_outage_not_a_verdict(
    tmp_path: Path, repo: GitRepo
) -> None:
    files = project_files()
    repo.commit(files)
    sdist = _sdist(tmp_path, _genuine(files))
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RepositoryUnreachableError) as caught:
        trace_release(
            project="demo",
            version="1.2.3",
            sdist_path=sdist,
            cloner=GitCloner(tmp_path / "cache"),
            config=SourceConfig(overrides={"demo": f"https://127.0.0.1:{port}/demo.git"}),
            work_dir=tmp_path / "work",
        )
    assert caught.value.reason is FailureReason.INFRASTRUCTURE  # retried by the fleet


def test_a_missing_repository_is_no_source_with_gits_error_on_one_line(
    tmp_path: Path, repo: GitRepo
) -> None:
    files = project_files()
    repo.commit(files)
    sdist = _sdist(tmp_path, _genuine(files))
    result = trace_release(
        project="demo",
        version="1.2.3",
        sdist_path=sdist,
        cloner=GitCloner(tmp_path / "cache"),
        config=SourceConfig(overrides={"demo": (tmp_path / "nowhere.git").as_uri()}),
        work_dir=tmp_path / "work",
    )
    assert result.verdict.value == "no-source"
    assert result.reason is not None
    assert "nowhere.git" in result.reason
    assert "\n" not in result.reason
