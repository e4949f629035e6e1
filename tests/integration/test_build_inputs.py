"""Two inputs of old builds, end to end (local index, real uv, the real Docker sandbox).

- A build requirement that never published a wheel: the maintainer's installer built it
  from its sdist; the check builds it the same way, network-less, and records it.
- A pure wheel of a project whose ``setup.py`` compiles an extension unless given a
  command-line option: the check finds the option and passes it through setuptools.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from rebuilder.archive.tarread import extract_sdist
from rebuilder.sandbox.docker import DockerSandbox
from rebuilder.sandbox.image import ImageRef
from rebuilder.sandbox.model import BuildRequest, BuildStatus
from tests.support.dists import SdistMember, SdistSpec, setuptools_sdist_members, write_sdist
from tests.support.index_server import FixtureIndex
from tests.support.releases import SETUPTOOLS
from tests.support.wheelhouse import load_into, require

pytestmark = pytest.mark.docker

EPOCH = "1700000000"
UPLOADED = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def index() -> Iterator[FixtureIndex]:
    with FixtureIndex() as served:
        load_into(served, only=[SETUPTOOLS])
        yield served


def _build(
    tmp: Path,
    sandbox: DockerSandbox,
    image: ImageRef,
    spec: SdistSpec,
    extra_wheels: tuple[Path, ...] = (),
    config_settings: dict[str, tuple[str, ...]] | None = None,
    requirements: tuple[str, ...] = (),
) -> tuple[Path, Path]:
    """The maintainer's sdist and the wheel built from it (SOURCE_DATE_EPOCH set)."""
    folder = tmp / f"maintainer-{spec.name}"
    folder.mkdir()
    sdist = write_sdist(folder / f"{spec.name}-{spec.version}.tar.gz", spec)
    source = extract_sdist(sdist, folder / "src")
    wheelhouse = folder / "wheelhouse"
    wheelhouse.mkdir()
    backend = next(p for n, p in require().items() if n.startswith("setuptools-84.2.1"))
    for wheel in (backend, *extra_wheels):
        (wheelhouse / wheel.name).write_bytes(wheel.read_bytes())
    out = folder / "out"
    out.mkdir()
    outcome = sandbox.run(
        BuildRequest(
            image=image.reference,
            source_dir=source,
            wheelhouse=wheelhouse,
            requirements=(SETUPTOOLS, *requirements),
            distribution="wheel",
            env={"TZ": "UTC", "SOURCE_DATE_EPOCH": EPOCH},
            output_dir=out,
            config_settings=config_settings or {},
        )
    )
    assert outcome.status is BuildStatus.OK, outcome.log
    assert outcome.artifact is not None
    return sdist, outcome.artifact


def _check(
    spec: str, index: FixtureIndex, tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> dict[str, Any]:
    monkeypatch.setenv("REBUILDER_CACHE_DIR", str(tmp / "cache"))
    main(["check", spec, "--index-url", index.url, "--out", str(tmp / "out"), "--json"])
    lines = capsys.readouterr().out.splitlines()
    results = [json.loads(line) for line in lines if line.startswith("{")]
    return next(r for r in results if r["filename"].endswith(".whl"))


def _needing_helper() -> SdistSpec:
    """A project whose ``[build-system]`` requires ``helper`` besides setuptools."""
    old, new = b'requires = ["setuptools>=61"]', b'requires = ["setuptools>=61", "helper"]'
    members = [
        SdistMember(m.name, m.data.replace(old, new)) if m.name == "pyproject.toml" else m
        for m in setuptools_sdist_members("demo", "1.0")
    ]
    return SdistSpec("demo", "1.0", members)


def test_a_build_requirement_with_only_an_sdist_is_built_from_it(
    tmp_path: Path,
    index: FixtureIndex,
    sandbox_image: ImageRef,
    sandbox: DockerSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    helper_spec = SdistSpec("helper", "1.0", setuptools_sdist_members("helper", "1.0"))
    helper_sdist, helper_wheel = _build(tmp_path, sandbox, sandbox_image, helper_spec)
    sdist, wheel = _build(
        tmp_path, sandbox, sandbox_image, _needing_helper(), extra_wheels=(helper_wheel,),
        requirements=("helper==1.0",),
    )  # fmt: skip
    # the helper never published a wheel: only its sdist is on the index
    index.add_file("helper", helper_sdist.name, helper_sdist.read_bytes(), UPLOADED)
    index.add_file("demo", sdist.name, sdist.read_bytes(), UPLOADED + timedelta(hours=1))
    index.add_file("demo", wheel.name, wheel.read_bytes(), UPLOADED + timedelta(hours=1))

    result = _check("demo==1.0", index, tmp_path, monkeypatch, capsys)

    assert result["verdict"] == "reproducible", result
    strategy = json.loads((Path(result["evidence"]) / "strategy.json").read_text())
    (built,) = strategy["built_from_source"]
    assert (built["name"], built["version"]) == ("helper", "1.0")
    assert built["sdist"]["sha256"] == hashlib.sha256(helper_sdist.read_bytes()).hexdigest()
    assert built["wheel"]["filename"] == "helper-1.0-py3-none-any.whl"
    assert len(built["wheel"]["sha256"]) == 64
    assert any("built from source" in note for note in strategy["notes"])


def test_a_build_requirement_whose_sdist_does_not_build_fails_the_check_saying_why(
    tmp_path: Path,
    index: FixtureIndex,
    sandbox_image: ImageRef,
    sandbox: DockerSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    helper_spec = SdistSpec("helper", "1.0", setuptools_sdist_members("helper", "1.0"))
    _, helper_wheel = _build(tmp_path, sandbox, sandbox_image, helper_spec)
    sdist, wheel = _build(
        tmp_path, sandbox, sandbox_image, _needing_helper(), extra_wheels=(helper_wheel,),
        requirements=("helper==1.0",),
    )  # fmt: skip
    broken = SdistSpec(
        "helper",
        "1.0",
        [
            *setuptools_sdist_members("helper", "1.0"),
            SdistMember("setup.py", b"raise SystemExit('this sdist does not build')\n"),
        ],
    )
    broken_sdist = write_sdist(tmp_path / "helper-1.0.tar.gz", broken)
    index.add_file("helper", broken_sdist.name, broken_sdist.read_bytes(), UPLOADED)
    index.add_file("demo", sdist.name, sdist.read_bytes(), UPLOADED + timedelta(hours=1))
    index.add_file("demo", wheel.name, wheel.read_bytes(), UPLOADED + timedelta(hours=1))

    result = _check("demo==1.0", index, tmp_path, monkeypatch, capsys)

    assert (result["verdict"], result["reason_class"]) == ("failed", "resolve"), result
    assert "helper==1.0 has no wheel and its sdist helper-1.0.tar.gz" in result["reason"]
    assert "did not build (failed)" in result["reason"]


SETUP_WITH_OPTION = b"""\
import sys
from setuptools import Extension, setup

extensions = [Extension("demo._speed", ["src/demo/_speed.c"])]
if "--no-demo-ext" in sys.argv:
    sys.argv.remove("--no-demo-ext")
    extensions = []
setup(ext_modules=extensions)
"""


def test_a_pure_wheel_is_rebuilt_with_the_option_its_setup_py_reads_from_argv(
    tmp_path: Path,
    index: FixtureIndex,
    sandbox_image: ImageRef,
    sandbox: DockerSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    spec = SdistSpec(
        "demo",
        "1.0",
        [
            *setuptools_sdist_members("demo", "1.0"),
            SdistMember("setup.py", SETUP_WITH_OPTION),
            # the sandbox has no C compiler: compiled, the build fails
            SdistMember("src/demo/_speed.c", b"#include <Python.h>\n"),
        ],
    )
    sdist, wheel = _build(
        tmp_path, sandbox, sandbox_image, spec,
        config_settings={"--build-option": ("--no-demo-ext",)},
    )  # fmt: skip
    assert wheel.name == "demo-1.0-py3-none-any.whl"
    index.add_file("demo", sdist.name, sdist.read_bytes(), UPLOADED)
    index.add_file("demo", wheel.name, wheel.read_bytes(), UPLOADED)

    result = _check("demo==1.0", index, tmp_path, monkeypatch, capsys)

    assert result["verdict"] == "reproducible", result
    strategy = json.loads((Path(result["evidence"]) / "strategy.json").read_text())
    assert strategy["config_settings"] == [["--build-option", ["--no-demo-ext"]]]
