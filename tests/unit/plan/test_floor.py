"""A backend of the upload time too old for the sandbox's interpreter: the oldest one that
runs is pinned instead, exempt from the cutoff for that distribution alone, and said so."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rebuilder.archive.zipread import read_zip
from rebuilder.errors import NotFoundError, ResolveError
from rebuilder.index.model import FileKind, IndexFile, ResolvedPin
from rebuilder.plan.floor import FLOORS, BackendFloor, floor_for
from rebuilder.plan.planner import ImageChoice, plan_wheel
from rebuilder.plan.strategy import Strategy
from tests.support.dists import wheel_entries, write_tree, write_wheel

UPLOADED = datetime(2019, 5, 1, tzinfo=UTC)
FLOOR = BackendFloor("setuptools", "41.1.0", (3, 9), "a reason")


@pytest.mark.parametrize(
    ("requires", "python", "expected"),
    [
        (["setuptools>=40.8.0", "wheel"], "3.9", FLOOR),
        (["setuptools>=40.8.0", "wheel"], "3.11", FLOOR),
        (["setuptools>=40.8.0", "wheel"], "3.8", None),
        (["setuptools", "wheel"], "2.7", None),
        (["flit_core>=3"], "3.11", None),
        (["Setuptools_SCM", "SetupTools"], "3.9", FLOOR),
    ],
)
def test_a_floor_applies_to_its_backend_from_its_interpreter_on(
    requires: list[str], python: str, expected: BackendFloor | None
) -> None:
    assert floor_for(requires, python, (FLOOR,)) == expected


def test_the_shipped_floor_is_setuptools_41_1_on_python_3_9() -> None:
    assert floor_for(["setuptools"], "3.9") in FLOORS


@dataclass
class SetuptoolsIndex:
    """Two releases of setuptools: 40.0.0 (of the upload time) and 41.1.0 (later)."""

    root: Path
    url: str = "http://127.0.0.1:9/simple/"
    files: dict[str, tuple[IndexFile, Path]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for version in ("40.0.0", "41.1.0"):
            name = f"setuptools-{version}-py2.py3-none-any.whl"
            path = self.root / name
            path.write_bytes(version.encode())
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            file = IndexFile(
                "setuptools",
                version,
                name,
                f"http://127.0.0.1:9/{name}",
                digest,
                FileKind.WHEEL,
                UPLOADED,
            )
            self.files[version] = (file, path)

    def project_files(self, project: str) -> Sequence[IndexFile]:
        return [f for f, _ in self.files.values()]

    def release_files(self, project: str, version: str) -> Sequence[IndexFile]:
        if project != "setuptools" or version not in self.files:
            raise NotFoundError(f"{project} {version}")
        return [self.files[version][0]]

    def download(self, file: IndexFile) -> Path:
        return self.files[file.version][1]


@dataclass
class AsOfResolver:
    """Pins setuptools as of the upload (40.0.0, or nothing with ``none_as_of``) unless
    asked for the floor, exempt from the cutoff."""

    index: SetuptoolsIndex
    none_as_of: bool = False
    floor_fails: bool = False
    calls: list[tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)

    def resolve(
        self,
        requirements: Sequence[str],
        *,
        as_of: datetime | None,
        python_version: str,
        beyond_as_of: Sequence[str] = (),
    ) -> Sequence[ResolvedPin]:
        self.calls.append((tuple(requirements), tuple(beyond_as_of)))
        if "setuptools==41.1.0" in requirements:
            assert tuple(beyond_as_of) == ("setuptools",)
            if self.floor_fails:
                raise ResolveError("the sdist caps setuptools below the floor")
            version = "41.1.0"
        elif self.none_as_of:
            raise ResolveError("only setuptools<=40.0.0 is available; you require >=40.8.0")
        else:
            version = "40.0.0"
        file = self.index.files[version][0]
        return [ResolvedPin("setuptools", version, (file.sha256,))]


def _plan(tmp_path: Path, resolver: AsOfResolver, python: str = "3.9") -> Strategy:
    entries = wheel_entries(generator="bdist_wheel (0.33.4)")
    published = write_wheel(tmp_path / "demo-1.0-py3-none-any.whl", entries)
    wheel = IndexFile(
        "demo", "1.0", published.name, "http://127.0.0.1:9/w", "0" * 64, FileKind.WHEEL, UPLOADED
    )
    sdist = IndexFile(
        "demo", "1.0", "demo-1.0.tar.gz", "http://127.0.0.1:9/s", "1" * 64, FileKind.SDIST, UPLOADED
    )
    return plan_wheel(
        wheel=wheel,
        sdist=sdist,
        generator="bdist_wheel (0.33.4)",
        entries=read_zip(published).entries,
        source_dir=write_tree(tmp_path / "src", []),
        image=ImageChoice("sha256:" + "0" * 64, "sha256:" + "0" * 64, python, 31),
        resolver=resolver,
        index=resolver.index,
        wheelhouse=tmp_path / "wheelhouse",
    )


def _setuptools(strategy: Strategy) -> str:
    return next(r.version for r in strategy.requirements if r.name == "setuptools")


def _notes(strategy: Strategy) -> str:
    return " | ".join(strategy.notes)


def test_a_backend_too_old_for_the_interpreter_is_replaced_by_the_floor(tmp_path: Path) -> None:
    (tmp_path / "idx").mkdir()
    resolver = AsOfResolver(SetuptoolsIndex(tmp_path / "idx"))

    strategy = _plan(tmp_path, resolver)

    assert _setuptools(strategy) == "41.1.0"
    assert [beyond for _, beyond in resolver.calls] == [(), ("setuptools",)]
    assert "setuptools 40.0.0 as of the upload time cannot run on Python 3.9" in _notes(strategy)
    assert sorted(p.name for p in (tmp_path / "wheelhouse").iterdir()) == [
        "setuptools-41.1.0-py2.py3-none-any.whl"  # the older wheel is gone
    ]


def test_requirements_unsatisfiable_as_of_the_upload_resolve_with_the_floor(
    tmp_path: Path,
) -> None:
    (tmp_path / "idx").mkdir()
    resolver = AsOfResolver(SetuptoolsIndex(tmp_path / "idx"), none_as_of=True)

    strategy = _plan(tmp_path, resolver)

    assert _setuptools(strategy) == "41.1.0"
    assert "did not resolve as of the upload time" in _notes(strategy)


def test_when_the_floor_does_not_resolve_either_the_first_error_stands(tmp_path: Path) -> None:
    (tmp_path / "idx").mkdir()
    resolver = AsOfResolver(SetuptoolsIndex(tmp_path / "idx"), none_as_of=True, floor_fails=True)

    with pytest.raises(ResolveError, match=r"you require >=40\.8\.0"):
        _plan(tmp_path, resolver)


def test_when_the_floor_does_not_resolve_the_upload_times_backend_is_kept(
    tmp_path: Path,
) -> None:
    (tmp_path / "idx").mkdir()
    resolver = AsOfResolver(SetuptoolsIndex(tmp_path / "idx"), floor_fails=True)

    strategy = _plan(tmp_path, resolver)

    assert _setuptools(strategy) == "40.0.0"
    assert "cannot run" not in _notes(strategy)


def test_no_floor_on_an_interpreter_the_backend_runs_on(tmp_path: Path) -> None:
    (tmp_path / "idx").mkdir()
    resolver = AsOfResolver(SetuptoolsIndex(tmp_path / "idx"))

    strategy = _plan(tmp_path, resolver, python="3.8")

    assert _setuptools(strategy) == "40.0.0"
    assert [beyond for _, beyond in resolver.calls] == [()]
