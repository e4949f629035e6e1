"""`rebuilder check --source` end to end: a local git repository, the fixture index, real
uv and the real Docker sandbox.

The "maintainer" tags a repository, builds the sdist from the tagged tree and the wheel
from that sdist in the sandbox, and publishes both. The check must call the sdist
consistent with its tag and rebuild the wheel from git bit for bit.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from rebuilder.archive.tarread import extract_sdist
from rebuilder.attest.statements import VSA_EXTENSION_KEY
from rebuilder.sandbox.docker import DockerSandbox
from rebuilder.sandbox.image import ImageRef
from rebuilder.sandbox.model import BuildRequest, BuildStatus
from tests.integration.source.gitrepo import GitRepo, project_files
from tests.support.index_server import FixtureIndex
from tests.support.wheelhouse import load_into, require

pytestmark = pytest.mark.docker
SETUPTOOLS = "setuptools==84.2.1"
ENV = {"TZ": "UTC", "SOURCE_DATE_EPOCH": "1700000000"}


@pytest.fixture
def index() -> Iterator[FixtureIndex]:
    with FixtureIndex() as served:
        load_into(served, only=[SETUPTOOLS])
        yield served


def _build(
    sandbox: DockerSandbox, image: ImageRef, source: Path, out: Path, distribution: str
) -> Path:
    wheelhouse = out.parent / "wheelhouse"
    wheelhouse.mkdir(exist_ok=True)
    wheels = require()
    name = next(n for n in wheels if n.startswith("setuptools-84.2.1"))
    (wheelhouse / name).write_bytes(wheels[name].read_bytes())
    out.mkdir()
    outcome = sandbox.run(
        BuildRequest(
            image=image.reference,
            source_dir=source,
            wheelhouse=wheelhouse,
            requirements=(SETUPTOOLS,),
            distribution=distribution,
            env=ENV,
            output_dir=out,
        )
    )
    assert outcome.status is BuildStatus.OK, outcome.log
    assert outcome.artifact is not None
    return outcome.artifact


def _release(tmp: Path, repo: GitRepo, sandbox: DockerSandbox, image: ImageRef) -> list[Path]:
    """sdist from the tagged tree, wheel from the sdist: the usual `python -m build`."""
    tar = tmp / "tagged.tar"
    subprocess.run(
        ["git", "archive", "--format=tar", "--prefix=demo-1.2.3/", "-o", str(tar), "v1.2.3"],
        cwd=repo.path,
        check=True,
    )
    tree = extract_sdist(tar, tmp / "tagged")
    sdist = _build(sandbox, image, tree, tmp / "sdist-out", "sdist")
    wheel = _build(sandbox, image, extract_sdist(sdist, tmp / "sdist-src"), tmp / "whl", "wheel")
    return [sdist, wheel]


def _check(
    index: FixtureIndex,
    repo: GitRepo,
    tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    *,
    attest: bool = False,
) -> tuple[int, list[dict[str, Any]]]:
    monkeypatch.setenv("REBUILDER_CACHE_DIR", str(tmp / "cache"))
    monkeypatch.setenv(
        "REBUILDER_SOURCE_MIRRORS", json.dumps({"https://github.com/example/": f"{repo.url}/../"})
    )
    argv = ["check", "demo==1.2.3", "--index-url", index.url, "--out", str(tmp / "out")]
    code = main([*argv, "--json", "--source", *([] if attest else ["--no-attest"])])
    lines = capsys.readouterr().out.splitlines()
    return code, [json.loads(line) for line in lines if line.startswith("{")]


def test_release_from_a_tagged_repository_is_consistent_and_rebuilds_from_git(
    tmp_path: Path,
    index: FixtureIndex,
    sandbox_image: ImageRef,
    sandbox: DockerSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    repo = GitRepo(tmp_path / "demo")
    commit = repo.commit(project_files(), "release 1.2.3")
    repo.tag("v1.2.3")
    now = datetime.now(UTC)
    for path in _release(tmp_path, repo, sandbox, sandbox_image):
        index.add_file("demo", path.name, path.read_bytes(), now)
    code, lines = _check(index, repo, tmp_path, monkeypatch, capsys)
    wheel = next(r for r in lines if r.get("filename", "").endswith(".whl"))
    assert wheel["verdict"] == "reproducible", wheel
    source = next(r["source"] for r in lines if "source" in r)
    assert source["verdict"] == "consistent", source
    assert (source["tag"], source["commit"]) == ("v1.2.3", commit)
    assert {e["rule"] for e in source["explained"]} >= {"pkg-info@2", "egg-info@2"}
    assert source["repo_only"] == [".github/workflows/ci.yml"]  # not packaged by setuptools
    assert source["repo_only_count"] == 1
    from_git = {b["filename"]: b for b in source["from_git"]}
    assert from_git[wheel["filename"]]["verdict"] == "reproducible", from_git
    assert from_git[wheel["filename"]]["rebuilt_sha256"] == wheel["upstream_sha256"]
    assert from_git["demo-1.2.3.tar.gz"]["verdict"] in {"reproducible", "equivalent"}, from_git
    evidence = Path(source["evidence"])
    assert json.loads((evidence / "report.json").read_text())["commit"] == commit
    assert code == 0


def test_a_wheel_built_from_the_checkout_takes_the_git_tag_route(
    tmp_path: Path,
    index: FixtureIndex,
    sandbox_image: ImageRef,
    sandbox: DockerSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """The maintainer built the wheel from the checkout, where a module lives that the
    sdist leaves out (MANIFEST.in): the sdist route cannot reproduce it and says the
    sdist lacks the module; the wheel rebuilt from the tagged tree becomes the strategy."""
    repo = GitRepo(tmp_path / "demo")
    files = project_files()
    files["src/demo/extra.py"] = b"EXTRA = 1\n"
    files["MANIFEST.in"] = b"exclude src/demo/extra.py\n"
    commit = repo.commit(files, "release 1.2.3")
    repo.tag("v1.2.3")
    tar = tmp_path / "tagged.tar"
    subprocess.run(
        ["git", "archive", "--format=tar", "--prefix=demo-1.2.3/", "-o", str(tar), "v1.2.3"],
        cwd=repo.path,
        check=True,
    )
    tree = extract_sdist(tar, tmp_path / "tagged")
    sdist = _build(sandbox, sandbox_image, tree, tmp_path / "sdist-out", "sdist")
    wheel_path = _build(sandbox, sandbox_image, tree, tmp_path / "whl", "wheel")
    now = datetime.now(UTC)
    for path in (sdist, wheel_path):
        index.add_file("demo", path.name, path.read_bytes(), now)
    code, lines = _check(index, repo, tmp_path, monkeypatch, capsys, attest=True)
    wheel = next(r for r in lines if r.get("filename", "").endswith(".whl"))
    opinion = wheel["second_opinion"]
    assert opinion["route"] == "git", wheel
    assert (opinion["tag"], opinion["commit"]) == ("v1.2.3", commit)
    assert opinion["sdist_lacks"] == ["demo/extra.py"]
    assert opinion["built_from"] == "tree"
    assert wheel["verdict"] == "reproducible", wheel
    assert wheel["rebuilt_sha256"] == wheel["upstream_sha256"]
    assert "the sdist lacks (demo/extra.py)" in wheel["reason"]
    assert code == 0
    # The evidence and the signed statements describe the rebuild from git; the sdist
    # route's build is kept apart.
    evidence = Path(wheel["evidence"])
    assert (evidence / "sdist-route" / "strategy.json").is_file()
    assert (evidence / "rebuilt" / wheel_path.name).read_bytes() == wheel_path.read_bytes()
    _assert_signed_as_rebuilt_from_git(tmp_path, wheel_path, commit, capsys)


def _assert_signed_as_rebuilt_from_git(
    tmp: Path, published: Path, commit: str, capsys: Any
) -> None:
    """The VSA says reproducible from git (source: git, tag, commit), and `rebuilder
    verify` accepts the bundle offline (the local file, this rebuilder's own key)."""
    bundle = tmp / "out" / "pypi" / "demo" / "1.2.3" / published.name / "rebuild.intoto.jsonl"
    statements = [
        json.loads(base64.b64decode(json.loads(line)["payload"]))
        for line in bundle.read_text().splitlines()
    ]
    provenance, summary = (s["predicate"] for s in statements)
    deps = provenance["buildDefinition"]["resolvedDependencies"]
    assert [d["digest"] for d in deps if d["annotations"]["role"] == "source-commit"] == [
        {"gitCommit": commit}
    ]
    assert summary["verificationResult"] == "PASSED"
    extension = summary[VSA_EXTENSION_KEY]
    assert (extension["verdict"], extension["source"]) == ("reproducible", "git")
    assert extension["git"]["digest"] == {"gitCommit": commit}
    assert extension["git"]["annotations"]["tag"] == "v1.2.3"
    capsys.readouterr()
    assert main(["verify", str(published), "--attestations", str(tmp / "out")]) == 0
    out = capsys.readouterr().out
    assert "PASSED" in out and f"rebuilt from git tag v1.2.3 @ {commit[:12]}" in out


def test_a_folder_only_the_checkout_holds_takes_the_git_tag_route(
    tmp_path: Path,
    index: FixtureIndex,
    sandbox_image: ImageRef,
    sandbox: DockerSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """The package finder of a checkout picks up a folder the sdist leaves out: no file
    of the wheel is missing from the sdist, but its ``top_level.txt`` names the folder.
    The wheel built from the tagged tree reproduces it; the git route is the strategy."""
    repo = GitRepo(tmp_path / "demo")
    files = project_files()
    files["pyproject.toml"] += (
        b'\n[tool.setuptools.packages.find]\nwhere = ["src", "."]\nnamespaces = true\n'
        b'include = ["demo*", "testing*"]\n'
    )
    files["testing/constraints.txt"] = b"setuptools==84.2.1\n"
    files["MANIFEST.in"] = b"prune testing\n"
    commit = repo.commit(files, "release 1.2.3")
    repo.tag("v1.2.3")
    tar = tmp_path / "tagged.tar"
    subprocess.run(
        ["git", "archive", "--format=tar", "--prefix=demo-1.2.3/", "-o", str(tar), "v1.2.3"],
        cwd=repo.path,
        check=True,
    )
    tree = extract_sdist(tar, tmp_path / "tagged")
    sdist = _build(sandbox, sandbox_image, tree, tmp_path / "sdist-out", "sdist")
    wheel_path = _build(sandbox, sandbox_image, tree, tmp_path / "whl", "wheel")
    now = datetime.now(UTC)
    for path in (sdist, wheel_path):
        index.add_file("demo", path.name, path.read_bytes(), now)
    code, lines = _check(index, repo, tmp_path, monkeypatch, capsys)
    wheel = next(r for r in lines if r.get("filename", "").endswith(".whl"))
    opinion = wheel["second_opinion"]
    assert opinion["route"] == "git", wheel
    assert opinion["built_from"] == "tree"
    assert opinion["sdist_lacks"] == []
    assert "testing/" in opinion["checkout_only"]
    assert wheel["verdict"] == "reproducible", wheel
    assert "the wheel built from the checkout reproduces it" in wheel["reason"]
    assert (opinion["tag"], opinion["commit"]) == ("v1.2.3", commit)
    assert code == 0
