from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from packaging.tags import Tag

from rebuilder.errors import ResolveError
from rebuilder.index.model import BuildRequirement, FileKind, IndexFile, PinnedFile, ResolvedPin
from rebuilder.index.simple import classify
from rebuilder.index.wheelhouse import (
    choose_wheel,
    fetch_wheelhouse,
    manylinux_platforms,
    sandbox_tags,
)
from tests.support.fakes import FakeIndex


def test_sandbox_tags() -> None:
    tags = sandbox_tags()
    assert tags[0] == Tag("cp311", "cp311", "manylinux_2_36_x86_64")
    for accepted in [
        Tag("py3", "none", "any"),
        Tag("cp311", "abi3", "manylinux2014_x86_64"),
        Tag("cp39", "abi3", "manylinux_2_17_x86_64"),
        Tag("cp311", "cp311", "manylinux1_x86_64"),
    ]:
        assert accepted in tags
    for refused in [
        Tag("cp312", "cp312", "manylinux_2_17_x86_64"),
        Tag("cp311", "cp311", "manylinux_2_38_x86_64"),
        Tag("cp311", "cp311", "musllinux_1_2_x86_64"),
        Tag("cp311", "cp311", "manylinux_2_17_aarch64"),
        Tag("cp311", "cp311", "win_amd64"),
    ]:
        assert refused not in tags
    assert tags.index(Tag("cp311", "cp311", "manylinux_2_17_x86_64")) < tags.index(
        Tag("py3", "none", "any")
    )


def test_manylinux_platforms_order() -> None:
    plats = manylinux_platforms(17)
    assert plats[:2] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert plats[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]


def data_for(filename: str) -> bytes:
    return f"bytes of {filename}".encode()


def index_file(filename: str) -> IndexFile:
    kind, project, version = classify(filename)
    assert project is not None
    assert version is not None
    return IndexFile(
        project=project,
        version=version,
        filename=filename,
        url=f"http://127.0.0.1:9/files/{filename}",
        sha256=hashlib.sha256(data_for(filename)).hexdigest(),
        kind=kind,
        upload_time=None,
    )


def fake_index(root: Path, files: list[IndexFile]) -> FakeIndex:
    """The shared fake index, its files' bytes made by :func:`data_for`."""
    return FakeIndex(files, content=lambda f: data_for(f.filename), root=root)


NAMES = [
    "fast-1.0.tar.gz",
    "fast-1.0-py3-none-any.whl",
    "fast-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "fast-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
    "fast-1.0-cp311-cp311-win_amd64.whl",
]


def test_choose_prefers_the_specific_compatible_wheel() -> None:
    files = [index_file(n) for n in NAMES]
    pin = ResolvedPin("fast", "1.0", tuple(f.sha256 for f in files))
    chosen = choose_wheel(files, pin, sandbox_tags())
    assert chosen is not None
    assert chosen.filename == NAMES[2]


def test_choose_only_among_accepted_hashes() -> None:
    files = [index_file(n) for n in NAMES]
    pin = ResolvedPin("fast", "1.0", (files[1].sha256, files[3].sha256, files[0].sha256))
    chosen = choose_wheel(files, pin, sandbox_tags())
    assert chosen is not None
    assert chosen.filename == NAMES[1]
    assert (
        choose_wheel(files, ResolvedPin("fast", "1.0", (files[3].sha256,)), sandbox_tags()) is None
    )


def test_fetch_wheelhouse(tmp_path: Path) -> None:
    files = [index_file(n) for n in NAMES] + [index_file("slow-2.0-py2.py3-none-any.whl")]
    index = fake_index(tmp_path / "store", files)
    (tmp_path / "store").mkdir()
    pins = [
        ResolvedPin("fast", "1.0", tuple(f.sha256 for f in files[:5])),
        ResolvedPin("slow", "2.0", (files[5].sha256,)),
    ]
    dest = tmp_path / "wheelhouse"
    got = fetch_wheelhouse(index, pins, dest)
    assert got == (
        BuildRequirement("fast", "1.0", PinnedFile(NAMES[2], files[2].url, files[2].sha256)),
        BuildRequirement(
            "slow", "2.0", PinnedFile(files[5].filename, files[5].url, files[5].sha256)
        ),
    )
    assert sorted(p.name for p in dest.iterdir()) == sorted([NAMES[2], files[5].filename])
    assert (dest / NAMES[2]).read_bytes() == data_for(NAMES[2])
    assert index.downloads == [NAMES[2], files[5].filename]
    # again: the existing, identical files stay
    fetch_wheelhouse(index, pins, dest)
    assert (dest / NAMES[2]).read_bytes() == data_for(NAMES[2])


def test_fetch_wheelhouse_replaces_a_stale_file(tmp_path: Path) -> None:
    files = [index_file(NAMES[1])]
    index = fake_index(tmp_path, files)
    dest = tmp_path / "wh"
    dest.mkdir()
    (dest / NAMES[1]).write_bytes(b"stale")
    fetch_wheelhouse(index, [ResolvedPin("fast", "1.0", (files[0].sha256,))], dest)
    assert (dest / NAMES[1]).read_bytes() == data_for(NAMES[1])


def test_no_acceptable_wheel(tmp_path: Path) -> None:
    files = [index_file(n) for n in (NAMES[0], NAMES[3], NAMES[4])]
    index = fake_index(tmp_path, files)
    pin = ResolvedPin("fast", "1.0", tuple(f.sha256 for f in files))
    with pytest.raises(ResolveError, match=r"no wheel matches.*fast-1.0-cp312"):
        fetch_wheelhouse(index, [pin], tmp_path / "wh")
    assert index.downloads == []


def test_unknown_release(tmp_path: Path) -> None:
    index = fake_index(tmp_path, [])
    with pytest.raises(ResolveError, match=r"fast==9.0 is pinned but"):
        fetch_wheelhouse(index, [ResolvedPin("fast", "9.0", ("a" * 64,))], tmp_path / "wh")


def test_unsafe_filename_refused(tmp_path: Path) -> None:
    good = index_file(NAMES[1])
    evil = IndexFile(
        project="fast",
        version="1.0",
        filename="../fast-1.0-py3-none-any.whl",
        url=good.url,
        sha256=good.sha256,
        kind=FileKind.WHEEL,
        upload_time=None,
    )
    index = fake_index(tmp_path, [evil])
    with pytest.raises(ResolveError, match=r"unsafe filename|no wheel matches"):
        fetch_wheelhouse(index, [ResolvedPin("fast", "1.0", (good.sha256,))], tmp_path / "wh")
    assert index.downloads == []
    assert not (tmp_path / "fast-1.0-py3-none-any.whl").exists()
