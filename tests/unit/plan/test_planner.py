"""plan_wheel end to end on small built archives, with a fake resolver and index."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rebuilder.archive.zipread import read_zip
from rebuilder.errors import NotFoundError, ResolveError
from rebuilder.index.model import FileKind, IndexFile, ResolvedPin
from rebuilder.plan.planner import ImageChoice, plan_wheel
from rebuilder.plan.strategy import Strategy
from tests.support.dists import (
    SdistMember,
    WheelEntry,
    setuptools_sdist_members,
    wheel_entries,
    write_tree,
    write_wheel,
)

UPLOADED = datetime(2024, 3, 1, tzinfo=UTC)
LEGACY_REQUIRES = "Requires-Dist: dep (<2,>=1.0)"


@dataclass
class RecordingResolver:
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def resolve(
        self,
        requirements: Sequence[str],
        *,
        as_of: datetime | None,
        python_version: str,
        beyond_as_of: Sequence[str] = (),
    ) -> Sequence[ResolvedPin]:
        assert as_of == UPLOADED
        self.calls.append(tuple(requirements))
        return ()


class EmptyIndex:
    url = "http://127.0.0.1:9/simple/"

    def project_files(self, project: str) -> Sequence[IndexFile]:
        raise NotFoundError(project)

    def release_files(self, project: str, version: str) -> Sequence[IndexFile]:
        raise NotFoundError(project)

    def download(self, file: IndexFile) -> Path:
        raise NotFoundError(file.filename)


def _plan(
    tmp_path: Path,
    entries: list[WheelEntry],
    members: list[SdistMember],
    extra_requires: Sequence[str] = (),
) -> tuple[Strategy, RecordingResolver]:
    published = write_wheel(tmp_path / "demo-1.0-py3-none-any.whl", entries)
    source = write_tree(tmp_path / "src", members)
    resolver = RecordingResolver()
    wheel = IndexFile(
        "demo", "1.0", published.name, "http://127.0.0.1:9/w", "0" * 64, FileKind.WHEEL, UPLOADED
    )
    sdist = IndexFile(
        "demo", "1.0", "demo-1.0.tar.gz", "http://127.0.0.1:9/s", "1" * 64, FileKind.SDIST, UPLOADED
    )
    strategy = plan_wheel(
        wheel=wheel,
        sdist=sdist,
        generator=next(
            line.split(":", 1)[1].strip()
            for e in entries
            if e.name.endswith("/WHEEL")
            for line in e.data.decode().splitlines()
            if line.startswith("Generator:")
        ),
        entries=read_zip(published).entries,
        source_dir=source,
        image=ImageChoice("sha256:" + "0" * 64, "sha256:" + "0" * 64, "3.11"),
        resolver=resolver,
        index=EmptyIndex(),
        wheelhouse=tmp_path / "wheelhouse",
        tags=("py3-none-any",),
        extra_requires=extra_requires,
    )
    return strategy, resolver


def test_legacy_requires_dist_under_setuptools_75_installs_an_older_wheel(tmp_path: Path) -> None:
    entries = wheel_entries(generator="setuptools (75.1.0)", metadata_extra=LEGACY_REQUIRES)

    strategy, resolver = _plan(tmp_path, entries, setuptools_sdist_members())

    assert resolver.calls == [("setuptools==75.1.0", "wheel<0.41.1")]
    assert strategy.build_requires == ("setuptools==75.1.0", "wheel<0.41.1")
    assert any("legacy Requires-Dist" in note for note in strategy.notes)


def test_pep508_requires_dist_adds_nothing(tmp_path: Path) -> None:
    entries = wheel_entries(generator="setuptools (75.1.0)", metadata_extra="Requires-Dist: dep>=1")

    strategy, resolver = _plan(tmp_path, entries, setuptools_sdist_members())

    assert resolver.calls == [("setuptools==75.1.0",)]
    assert not strategy.notes


def test_package_data_modes_record_the_data_filter(tmp_path: Path) -> None:
    files = {"demo/__init__.py": b"x = 1\n", "demo/py.typed": b""}
    entries = [
        WheelEntry(
            e.name, e.data, mode=0o664 if e.name.endswith((".py", "RECORD", "WHEEL")) else 0o644
        )
        for e in wheel_entries(generator="setuptools (80.9.0)", files=files)
    ]
    members = [
        *setuptools_sdist_members(),
        SdistMember("src/demo/py.typed", b"", mode=0o664),
    ]

    strategy, _ = _plan(tmp_path, entries, members)

    assert strategy.archive.umask == 0o002
    assert strategy.archive.source_mode_mask == 0o022
    assert Strategy.from_json(strategy.to_json()) == strategy


class FailingResolver(RecordingResolver):
    def resolve(
        self,
        requirements: Sequence[str],
        *,
        as_of: datetime | None,
        python_version: str,
        beyond_as_of: Sequence[str] = (),
    ) -> Sequence[ResolvedPin]:
        raise ResolveError("only dep[x]<0.1.2 is available and you require dep[x]>=0.1.2")


class IndexKnowingSetuptools(EmptyIndex):
    def project_files(self, project: str) -> Sequence[IndexFile]:
        if project == "setuptools":
            return ()
        raise NotFoundError(project)


def test_a_resolve_failure_names_the_projects_the_index_does_not_have(tmp_path: Path) -> None:
    members = [
        SdistMember(
            "pyproject.toml",
            b'[build-system]\nrequires = ["setuptools>=61", "dep[x]>=0.1.2"]\n'
            b'build-backend = "setuptools.build_meta"\n',
        ),
        SdistMember("src/demo/__init__.py", b""),
    ]
    published = write_wheel(tmp_path / "demo-1.0-py3-none-any.whl", wheel_entries())
    wheel = IndexFile(
        "demo", "1.0", published.name, "http://127.0.0.1:9/w", "0" * 64, FileKind.WHEEL, UPLOADED
    )

    with pytest.raises(ResolveError, match=r"the index has no project named dep$") as caught:
        plan_wheel(
            wheel=wheel,
            sdist=wheel,
            generator="setuptools (80.9.0)",
            entries=read_zip(published).entries,
            source_dir=write_tree(tmp_path / "src", members),
            image=ImageChoice("sha256:" + "0" * 64, "sha256:" + "0" * 64, "3.11"),
            resolver=FailingResolver(),
            index=IndexKnowingSetuptools(),
            wheelhouse=tmp_path / "wheelhouse",
        )
    assert "only dep[x]<0.1.2 is available" in str(caught.value)


def test_a_pure_wheel_of_an_sdist_with_extensions_builds_with_its_pure_switch(
    tmp_path: Path,
) -> None:
    members = [
        *setuptools_sdist_members(),
        SdistMember("setup.py", b'import os\nif os.environ.get("DEMO_NO_EXTENSIONS"): pass\n'),
        SdistMember("src/demo/_speed.c", b"int x;\n"),
    ]
    strategy, _ = _plan(tmp_path, wheel_entries(generator="setuptools (75.1.0)"), members)
    assert strategy.build_env == (("DEMO_NO_EXTENSIONS", "1"),)
    assert strategy.env["DEMO_NO_EXTENSIONS"] == "1"
    assert any("DEMO_NO_EXTENSIONS=1" in note for note in strategy.notes)
    assert Strategy.from_json(strategy.to_json()) == strategy


def test_the_generator_pin_wins_over_a_range_asked_for_later(tmp_path: Path) -> None:
    entries = wheel_entries(generator="setuptools (75.1.0)")
    strategy, resolver = _plan(
        tmp_path, entries, setuptools_sdist_members(), extra_requires=("setuptools>=40", "dep")
    )
    assert strategy.build_requires == ("setuptools==75.1.0", "dep")
    assert resolver.calls == [("setuptools==75.1.0", "dep")]


@dataclass
class TwoWheelIndex:
    """An index with one release of ``tool`` built for CPython 3.9 and for 3.11."""

    root: Path
    url: str = "http://127.0.0.1:9/simple/"
    files: dict[str, tuple[IndexFile, Path]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for tag in ("cp39-cp39", "cp311-cp311"):
            name = f"tool-1.0-{tag}-manylinux_2_17_x86_64.whl"
            path = self.root / name
            path.write_bytes(tag.encode())
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            file = IndexFile(
                "tool", "1.0", name, f"http://127.0.0.1:9/{name}", digest, FileKind.WHEEL, UPLOADED
            )
            self.files[name] = (file, path)

    def project_files(self, project: str) -> Sequence[IndexFile]:
        return [f for f, _ in self.files.values()]

    def release_files(self, project: str, version: str) -> Sequence[IndexFile]:
        return [f for f, _ in self.files.values()]

    def download(self, file: IndexFile) -> Path:
        return self.files[file.filename][1]


@dataclass
class PinningResolver:
    index: TwoWheelIndex
    versions: list[str] = field(default_factory=list)

    def resolve(
        self,
        requirements: Sequence[str],
        *,
        as_of: datetime | None,
        python_version: str,
        beyond_as_of: Sequence[str] = (),
    ) -> Sequence[ResolvedPin]:
        self.versions.append(python_version)
        digests = tuple(sorted(f.sha256 for f, _ in self.index.files.values()))
        return [ResolvedPin("tool", "1.0", digests)]


@pytest.mark.parametrize(("python", "expected"), [("3.9", "cp39"), ("3.11", "cp311")])
def test_build_requirements_are_wheels_for_the_images_interpreter(
    tmp_path: Path, python: str, expected: str
) -> None:
    (tmp_path / "idx").mkdir()
    index = TwoWheelIndex(tmp_path / "idx")
    resolver = PinningResolver(index)
    entries = wheel_entries(generator="setuptools (75.1.0)")
    published = write_wheel(tmp_path / "demo-1.0-py3-none-any.whl", entries)
    wheel = IndexFile(
        "demo", "1.0", published.name, "http://127.0.0.1:9/w", "0" * 64, FileKind.WHEEL, UPLOADED
    )
    sdist = replace(wheel, filename="demo-1.0.tar.gz", kind=FileKind.SDIST)
    strategy = plan_wheel(
        wheel=wheel,
        sdist=sdist,
        generator="setuptools (75.1.0)",
        entries=read_zip(published).entries,
        source_dir=write_tree(tmp_path / "src", setuptools_sdist_members()),
        image=ImageChoice("sha256:" + "0" * 64, "sha256:" + "0" * 64, python, 31),
        resolver=resolver,
        index=index,
        wheelhouse=tmp_path / "wheelhouse",
        interpreter_reason="a test",
    )
    assert resolver.versions == [python]
    [requirement] = strategy.requirements
    assert requirement.file.filename.startswith(f"tool-1.0-{expected}-")
    assert strategy.python_version == python
    assert strategy.interpreter_reason == "a test"


def test_a_pure_wheel_builds_with_the_pure_option_its_setup_py_takes_from_argv(
    tmp_path: Path,
) -> None:
    setup = b'import sys\nif "--no-demo-ext" in sys.argv:\n    sys.argv.remove("--no-demo-ext")\n'
    members = [
        *setuptools_sdist_members(),
        SdistMember("setup.py", setup),
        SdistMember("src/demo/_speed.pyx", b"\n"),
    ]
    strategy, _ = _plan(tmp_path, wheel_entries(generator="setuptools (75.1.0)"), members)
    assert strategy.config_settings == (("--build-option", ("--no-demo-ext",)),)
    assert any("--build-option=--no-demo-ext" in note for note in strategy.notes)
    assert Strategy.from_json(strategy.to_json()) == strategy
