"""UvResolver and fetch_wheelhouse against the fixture index (no live index)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rebuilder.errors import ResolveError
from rebuilder.index.http import HttpSettings, make_session
from rebuilder.index.model import ResolvedPin
from rebuilder.index.resolve import UvResolver
from rebuilder.index.simple import SimpleIndex
from rebuilder.index.wheelhouse import fetch_wheelhouse
from tests.support import wheelhouse
from tests.support.dists import make_wheel
from tests.support.index_server import FixtureIndex

log = logging.getLogger(__name__)

OLD = datetime(2023, 1, 1, tzinfo=UTC)
NEW = datetime(2024, 6, 1, tzinfo=UTC)
BETWEEN = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def synthetic(fixture_index: FixtureIndex, tmp_path: Path) -> FixtureIndex:
    """A made-up "backend" in two versions, the newer needing a helper."""
    src = tmp_path / "src"
    src.mkdir()
    fixture_index.add_path("backend", make_wheel(src, "backend", "1.0"), OLD)
    fixture_index.add_path(
        "backend",
        make_wheel(src, "backend", "2.0", metadata_extra="Requires-Dist: helper>=1"),
        NEW,
    )
    fixture_index.add_path("helper", make_wheel(src, "helper", "1.5"), OLD)
    return fixture_index


def resolver(index: FixtureIndex, tmp_path: Path) -> UvResolver:
    return UvResolver(index.url, tmp_path / "uv-cache")


def test_exclude_newer_honours_upload_times(synthetic: FixtureIndex, tmp_path: Path) -> None:
    r = resolver(synthetic, tmp_path)
    old = r.resolve(["backend"], as_of=BETWEEN, python_version="3.11")
    assert old == (
        ResolvedPin("backend", "1.0", (synthetic.file("backend-1.0-py3-none-any.whl").sha256,)),
    )
    new = r.resolve(["backend"], as_of=None, python_version="3.11")
    assert new == (
        ResolvedPin("backend", "2.0", (synthetic.file("backend-2.0-py3-none-any.whl").sha256,)),
        ResolvedPin("helper", "1.5", (synthetic.file("helper-1.5-py3-none-any.whl").sha256,)),
    )


def test_unsatisfiable(synthetic: FixtureIndex, tmp_path: Path) -> None:
    with pytest.raises(ResolveError, match=r"(?s)cannot resolve backend>=2 as of .*backend") as e:
        resolver(synthetic, tmp_path).resolve(["backend>=2"], as_of=BETWEEN, python_version="3.11")
    assert "No solution found" in str(e.value)


def test_one_distribution_exempt_from_the_cutoff_resolves_to_its_later_release(
    synthetic: FixtureIndex, tmp_path: Path
) -> None:
    """A backend floor: ``backend==2.0`` (uploaded after ``as_of``) for that one
    distribution; its dependency ``helper`` still as of ``as_of``."""
    r = resolver(synthetic, tmp_path)
    with pytest.raises(ResolveError):
        r.resolve(["backend==2.0"], as_of=BETWEEN, python_version="3.11")

    pins = r.resolve(
        ["backend==2.0"], as_of=BETWEEN, python_version="3.11", beyond_as_of=["backend"]
    )

    assert [(p.name, p.version) for p in pins] == [("backend", "2.0"), ("helper", "1.5")]
    with pytest.raises(ResolveError, match="invalid distribution name"):
        r.resolve(["backend"], as_of=BETWEEN, python_version="3.11", beyond_as_of=["a b"])


def test_resolve_then_fetch(synthetic: FixtureIndex, tmp_path: Path) -> None:
    pins = resolver(synthetic, tmp_path).resolve(["backend"], as_of=None, python_version="3.11")
    index = SimpleIndex(synthetic.url, tmp_path / "cache", session=make_session(HttpSettings()))
    got = fetch_wheelhouse(index, pins, tmp_path / "wh")
    assert [r.file.filename for r in got] == [
        "backend-2.0-py3-none-any.whl",
        "helper-1.5-py3-none-any.whl",
    ]
    for req in got:
        served = synthetic.file(req.file.filename)
        assert (tmp_path / "wh" / req.file.filename).read_bytes() == served.data
        assert req.file.url == synthetic.base + served.path


def test_wheelhouse_picks_the_hash_matching_compatible_wheel(
    fixture_index: FixtureIndex, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    pure = make_wheel(src, "fast", "1.0")
    names = {
        "fast-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": b"cp311 linux",
        "fast-1.0-cp312-cp312-manylinux_2_17_x86_64.whl": b"cp312 linux",
        "fast-1.0-cp311-cp311-win_amd64.whl": b"windows",
    }
    files = [fixture_index.add_file("fast", n, d, OLD) for n, d in names.items()]
    files.append(fixture_index.add_path("fast", pure, OLD))
    index = SimpleIndex(fixture_index.url, tmp_path / "cache")
    every = ResolvedPin("fast", "1.0", tuple(f.sha256 for f in files))
    [req] = fetch_wheelhouse(index, [every], tmp_path / "a")
    assert req.file.filename == next(iter(names))
    only_pure = ResolvedPin("fast", "1.0", (files[1].sha256, files[2].sha256, files[3].sha256))
    [req] = fetch_wheelhouse(index, [only_pure], tmp_path / "b")
    assert req.file.filename == pure.name
    with pytest.raises(ResolveError, match="no wheel matches"):
        fetch_wheelhouse(index, [ResolvedPin("fast", "1.0", (files[1].sha256,))], tmp_path / "c")


def test_real_build_wheels_as_of(fixture_index: FixtureIndex, tmp_path: Path) -> None:
    """setuptools uploaded after as_of is not chosen; old setuptools comes with wheel."""
    wheelhouse.load_into(fixture_index)
    r = resolver(fixture_index, tmp_path)
    as_of = datetime(2024, 1, 1, tzinfo=UTC)
    timings = []
    for _ in range(2):
        started = time.monotonic()
        pins = r.resolve(["setuptools", "wheel"], as_of=as_of, python_version="3.11")
        timings.append(time.monotonic() - started)
    log.info("resolve setuptools+wheel: cold %.2fs, warm %.2fs", *timings)
    by_name = {p.name: p for p in pins}
    assert set(by_name) == {"setuptools", "wheel"}
    assert by_name["setuptools"].version == "69.0.3"
    assert by_name["wheel"].version == "0.42.0"
    assert by_name["setuptools"].sha256s == (
        fixture_index.file("setuptools-69.0.3-py3-none-any.whl").sha256,
    )
    latest = r.resolve(["setuptools"], as_of=None, python_version="3.11")
    assert [p.version for p in latest] == ["84.2.1"]
    index = SimpleIndex(fixture_index.url, tmp_path / "cache")
    got = fetch_wheelhouse(index, pins, tmp_path / "wh")
    assert sorted(p.name for p in (tmp_path / "wh").iterdir()) == [
        "setuptools-69.0.3-py3-none-any.whl",
        "wheel-0.42.0-py3-none-any.whl",
    ]
    assert {g.file.sha256 for g in got} == {p.sha256s[0] for p in pins}


def test_hatchling_closure_resolves_offline(fixture_index: FixtureIndex, tmp_path: Path) -> None:
    wheelhouse.load_into(fixture_index)
    pins = resolver(fixture_index, tmp_path).resolve(
        ["hatchling", "flit_core"], as_of=None, python_version="3.11"
    )
    names = {p.name for p in pins}
    assert {"hatchling", "flit-core", "packaging", "pathspec", "pluggy"} <= names
