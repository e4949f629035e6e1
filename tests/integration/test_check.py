"""`rebuilder check` end to end: a local index, real uv, the real Docker sandbox.

The "maintainer" builds the published wheel from the sdist in the sandbox, with and
without SOURCE_DATE_EPOCH; the check must then infer how it was built and reproduce it
bit for bit. A tampered copy (code changed, RECORD rewritten to match) must come out as
a mismatch naming the file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from rebuilder.sandbox.docker import DockerSandbox
from rebuilder.sandbox.image import ImageRef
from tests.support.index_server import FixtureIndex
from tests.support.releases import SETUPTOOLS, maintainer_build, publish, tamper
from tests.support.wheelhouse import load_into

pytestmark = pytest.mark.docker


@pytest.fixture
def index() -> Iterator[FixtureIndex]:
    with FixtureIndex() as served:
        load_into(served, only=[SETUPTOOLS])
        yield served


def _check(
    spec: str, index: FixtureIndex, tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> tuple[int, list[dict[str, Any]]]:
    monkeypatch.setenv("REBUILDER_CACHE_DIR", str(tmp / "cache"))
    code = main(["check", spec, "--index-url", index.url, "--out", str(tmp / "out"), "--json"])
    lines = capsys.readouterr().out.splitlines()
    return code, [json.loads(line) for line in lines if line.startswith("{")]


@pytest.mark.parametrize(
    ("version", "env"),
    [("1.0", {"SOURCE_DATE_EPOCH": "1700000000"}), ("1.1", {})],
    ids=["source-date-epoch", "wall-clock"],
)
def test_genuine_release_is_reproducible(
    version: str,
    env: dict[str, str],
    tmp_path: Path,
    index: FixtureIndex,
    sandbox_image: ImageRef,
    sandbox: DockerSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    release = maintainer_build(tmp_path, sandbox_image, sandbox, version, env)
    times = {i.date_time for i in zipfile.ZipFile(release.wheel).infolist()}
    assert (len(times) == 1) == bool(env)  # the wall-clock build really has several times
    publish(index, release)
    code, results = _check(f"demo=={version}", index, tmp_path, monkeypatch, capsys)
    wheel = next(r for r in results if r["filename"].endswith(".whl"))
    assert wheel["verdict"] == "reproducible", wheel
    assert wheel["rebuilt_sha256"] == hashlib.sha256(release.wheel.read_bytes()).hexdigest()
    assert code == 0
    evidence = Path(wheel["evidence"])
    strategy = json.loads((evidence / "strategy.json").read_text())
    assert strategy["backend"]["generator"] == "setuptools (84.2.1)"
    assert [r["version"] for r in strategy["requirements"]] == ["84.2.1"]
    assert (evidence / "rebuilt" / release.wheel.name).is_file()
    # the signed attestation verifies offline against this very file
    verify = ["verify", str(release.wheel), "--attestations", str(tmp_path / "out")]
    assert main(verify) == 0


def test_rerun_reproduces_a_fresh_bundle_from_the_provenance_alone(
    tmp_path: Path,
    index: FixtureIndex,
    sandbox_image: ImageRef,
    sandbox: DockerSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps at 80 columns when not a terminal
    release = maintainer_build(tmp_path, sandbox_image, sandbox, "1.1", {})
    publish(index, release)
    code, results = _check("demo==1.1", index, tmp_path, monkeypatch, capsys)
    wheel = next(r for r in results if r["filename"].endswith(".whl"))
    assert (code, wheel["verdict"]) == (0, "reproducible"), wheel
    key = tmp_path / "cache" / "keys" / "signing-key.pub"
    # the consumer's view: the whole release by spec, its files bound through the index
    spec = ["verify", "demo==1.1", "--attestations", str(tmp_path / "out"), "--key", str(key)]
    assert main([*spec, "--index-url", index.url]) == 0
    assert "NOT REBUILT demo-1.1.tar.gz" in capsys.readouterr().out
    bundle = next((tmp_path / "out" / "pypi" / "demo" / "1.1").glob("*.whl/rebuild.intoto.jsonl"))
    provenance = json.loads(
        base64.b64decode(json.loads(bundle.read_text().splitlines()[0])["payload"])
    )
    deps = provenance["predicate"]["buildDefinition"]["resolvedDependencies"]
    roles = {d["annotations"]["role"] for d in deps}
    assert {"image-packages", "image-recipe", "sandbox-driver", "stabilizer-code"} <= roles
    packages = next(d for d in deps if d["annotations"]["role"] == "image-packages")
    assert any(p.startswith("python3=") for p in packages["annotations"]["packages"])
    # OSS Rebuild's layout beside ours: one statement of each of its build types
    oss = tmp_path / "out" / "oss-rebuild" / bundle.relative_to(tmp_path / "out")
    build_types = [
        json.loads(base64.b64decode(json.loads(line)["payload"]))["predicate"]["buildDefinition"][
            "buildType"
        ]
        for line in oss.read_text().splitlines()
    ]
    assert sorted(build_types) == [
        "https://docs.oss-rebuild.dev/builds/ArtifactEquivalence@v0.1",
        "https://docs.oss-rebuild.dev/builds/Rebuild@v0.1",
    ]
    # another host: an empty cache, nothing but the bundle, the key and the image
    monkeypatch.setenv("REBUILDER_CACHE_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("REBUILDER_INDEX_URL", "http://127.0.0.1:9/simple/")  # never asked
    assert main(["rerun", str(bundle), "--key", str(key)]) == 0
    out = capsys.readouterr().out
    assert f"SAME {release.wheel.name} sha256={wheel['rebuilt_sha256']}" in out
    assert wheel["rebuilt_sha256"] == hashlib.sha256(release.wheel.read_bytes()).hexdigest()


def test_tampered_wheel_is_a_mismatch_naming_the_file(
    tmp_path: Path,
    index: FixtureIndex,
    sandbox_image: ImageRef,
    sandbox: DockerSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    release = maintainer_build(
        tmp_path, sandbox_image, sandbox, "2.0", {"SOURCE_DATE_EPOCH": "1700000000"}
    )
    tampered = tamper(release.wheel, "demo/__init__.py")
    publish(index, release, tampered)
    code, results = _check("pkg:pypi/demo@2.0", index, tmp_path, monkeypatch, capsys)
    wheel = next(r for r in results if r["filename"].endswith(".whl"))
    assert wheel["verdict"] == "mismatch"
    assert {"path": "demo/__init__.py", "kind": "content"} in wheel["differences"]
    assert code == 1
    assert (Path(wheel["evidence"]) / "diffoscope.html").is_file()
    # The diagnosis names the changed module as code, and the file must be reviewed.
    assert wheel["risk"] == "review"
    why = {d["path"]: d for d in wheel["diagnosis"]}
    assert (why["demo/__init__.py"]["cause"], why["demo/__init__.py"]["risk"]) == (
        "code",
        "review",
    )
    assert "demo/__init__.py" in (Path(wheel["evidence"]) / "differences.diff").read_text()
    downloaded = tmp_path / "downloaded" / release.wheel.name
    downloaded.parent.mkdir()
    downloaded.write_bytes(tampered)
    verify = ["verify", str(downloaded), "--attestations", str(tmp_path / "out")]
    assert main(verify) == 1  # signed and about this file, but the verdict is FAILED


def test_unknown_release_exits_2(
    tmp_path: Path, index: FixtureIndex, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    code, results = _check("demo==9.9", index, tmp_path, monkeypatch, capsys)
    assert (code, results) == (2, [])
