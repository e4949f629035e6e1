"""``rebuilder audit requirements.txt --local``: no database, no broker, the real sandbox.

A genuine release and a tampered one are served by a local index; a requirements file
pins them with hashes, as ``pip-compile --generate-hashes`` writes it. The audit rebuilds
every pinned wheel here, reports the fleet audit's states and exit codes, and a second
run answers from the sha256 cache without starting a build.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from rebuilder.sandbox.docker import DockerSandbox
from rebuilder.sandbox.image import ImageRef
from tests.support.index_server import FixtureIndex
from tests.support.releases import SETUPTOOLS, Release, maintainer_build, publish, tamper
from tests.support.wheelhouse import load_into

pytestmark = pytest.mark.docker

EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


@pytest.fixture
def index() -> Iterator[FixtureIndex]:
    with FixtureIndex() as served:
        load_into(served, only=[SETUPTOOLS])
        yield served


def _hashes(*blobs: bytes) -> str:
    return " ".join(f"--hash=sha256:{hashlib.sha256(b).hexdigest()}" for b in blobs)


def _requirement(name: str, version: str, release: Release, wheel: bytes | None = None) -> str:
    wheel = wheel or release.wheel.read_bytes()
    return f"{name}=={version} \\\n    {_hashes(wheel, release.sdist.read_bytes())}\n"


def _audit(path: Path, capsys: Any, *extra: str) -> tuple[int, dict[str, Any], str]:
    code = main(["audit", str(path), "--local", "--json", "--jobs", "2", *extra])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_audit_local_rebuilds_every_pinned_file_without_a_fleet(
    tmp_path: Path,
    index: FixtureIndex,
    sandbox_image: ImageRef,
    sandbox: DockerSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    # No fleet: a database or broker it tried to reach would refuse the connection.
    monkeypatch.setenv("REBUILDER_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    monkeypatch.setenv("REBUILDER_BROKER_URL", "amqp://nobody:none@127.0.0.1:9/")
    monkeypatch.setenv("REBUILDER_INDEX_URL", index.url)
    monkeypatch.setenv("REBUILDER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("REBUILDER_OUT_DIR", str(tmp_path / "out"))
    genuine = maintainer_build(tmp_path, sandbox_image, sandbox, "1.0", EPOCH, name="demo")
    publish(index, genuine, project="demo")
    forged = maintainer_build(tmp_path, sandbox_image, sandbox, "1.0", EPOCH, name="other")
    tampered = tamper(forged.wheel, "other/__init__.py")
    publish(index, forged, tampered, project="other")

    clean = tmp_path / "requirements.txt"
    clean.write_text("# pinned with hashes\n" + _requirement("demo", "1.0", genuine))
    code, result, err = _audit(clean, capsys)
    states = {f["filename"]: f["state"] for f in result["files"]}
    assert states == {genuine.wheel.name: "verified", genuine.sdist.name: "unsupported"}
    assert (code, result["exit_code"]) == (0, 0)
    assert "2 pinned files" in err
    assert f"verified {genuine.wheel.name}" in err  # progress, one line per file

    both = tmp_path / "both.txt"
    both.write_text(
        _requirement("demo", "1.0", genuine) + _requirement("other", "1.0", forged, tampered)
    )
    code, result, err = _audit(both, capsys)
    states = {f["filename"]: f["state"] for f in result["files"]}
    assert states[forged.wheel.name] == "mismatch"
    assert states[genuine.wheel.name] == "verified"
    assert code == 1
    assert f"verified {genuine.wheel.name} (cached)" in err  # judged by the first run
    assert f"mismatch {forged.wheel.name} (cached)" not in err

    # A second run answers from the cache: nothing is downloaded or built again.
    index.clear_log()
    code, result, err = _audit(both, capsys)
    assert code == 1
    assert f"mismatch {forged.wheel.name} (cached)" in err
    assert not [p for p in index.paths_requested() if p.endswith((".whl", ".tar.gz"))]

    # A pin the index does not have is unchecked (2), never a pass.
    missing = tmp_path / "missing.txt"
    missing.write_text(f"demo==9.9 {_hashes(b'x')}\n")
    code, result, _ = _audit(missing, capsys)
    assert (code, result["files"]) == (2, [])
    assert result["findings"][0]["kind"] == "not-found"
