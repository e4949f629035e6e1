from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from rebuilder.archive.wheelfile import parse_headers, read_wheel_info
from rebuilder.archive.zipread import ZipArchive, ZipEntry, read_zip
from rebuilder.errors import ArchiveError
from tests.support.dists import make_wheel

DIST = "demo-1.0.dist-info"


@pytest.fixture
def wheel(tmp_path: Path) -> ZipArchive:
    return read_zip(make_wheel(tmp_path, generator="hatchling 1.27.0"))


def with_member(archive: ZipArchive, name: str, data: bytes) -> ZipArchive:
    entries = [e for e in archive.entries if e.name != name]
    return replace(archive, entries=(*entries, ZipEntry(name, data)))


def test_reads_the_wheel_fields(wheel: ZipArchive) -> None:
    info = read_wheel_info(wheel)
    assert info.dist_info == DIST
    assert (info.name, info.version) == ("demo", "1.0")
    assert info.wheel_version == "1.0"
    assert info.generator == "hatchling 1.27.0"
    assert info.root_is_purelib is True
    assert info.tags == ("py3-none-any",)


def test_generator_is_kept_verbatim_and_may_be_missing(wheel: ZipArchive) -> None:
    text = "Wheel-Version: 1.0\nGenerator:   bdist_wheel (0.42.0)  \nRoot-Is-Purelib: false\n"
    text += "Tag: py2-none-any\nTag: py3-none-any\n"
    info = read_wheel_info(with_member(wheel, f"{DIST}/WHEEL", text.encode()))
    assert info.generator == "bdist_wheel (0.42.0)"
    assert info.root_is_purelib is False
    assert info.tags == ("py2-none-any", "py3-none-any")
    text = "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    assert read_wheel_info(with_member(wheel, f"{DIST}/WHEEL", text.encode())).generator is None


def test_metadata_continuations_and_body_are_tolerated(wheel: ZipArchive) -> None:
    text = "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nDescription: a\n  b\n\nbody: x\n"
    assert read_wheel_info(with_member(wheel, f"{DIST}/METADATA", text.encode())).name == "demo"


@pytest.mark.parametrize(
    ("member", "data", "message"),
    [
        ("WHEEL", b"\xff\xfe\x00garbage", "not UTF-8"),
        ("WHEEL", b"this is not a header file\n", "not a header"),
        ("WHEEL", b"Wheel-Version: 1.0\nRoot-Is-Purelib: maybe\nTag: x\n", "Root-Is-Purelib"),
        ("WHEEL", b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n", "Tag"),
        ("WHEEL", b"Root-Is-Purelib: true\nTag: py3-none-any\n", "Wheel-Version"),
        ("METADATA", b"Metadata-Version: 2.1\nVersion: 1.0\n", "Name is missing"),
        ("METADATA", b"Name: a\nName: b\nVersion: 1.0\n", "Name"),
        ("METADATA", b"  continued: nothing\n", "continues no header"),
        ("METADATA", b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8|not a header"),
    ],
)
def test_garbage_wheel_and_metadata_are_refused(
    wheel: ZipArchive, member: str, data: bytes, message: str
) -> None:
    with pytest.raises(ArchiveError, match=message):
        read_wheel_info(with_member(wheel, f"{DIST}/{member}", data))


def test_a_wheel_needs_exactly_one_dist_info(wheel: ZipArchive) -> None:
    no_dist_info = ZipArchive(tuple(e for e in wheel.entries if DIST not in e.name))
    with pytest.raises(ArchiveError, match="found: none"):
        read_wheel_info(no_dist_info)
    twice = wheel
    for entry in wheel.entries:
        if entry.name.startswith(DIST):
            twice = with_member(twice, entry.name.replace(DIST, "other-2.0.dist-info"), entry.data)
    with pytest.raises(ArchiveError, match=r"other-2\.0\.dist-info"):
        read_wheel_info(twice)


def test_missing_metadata_is_refused(wheel: ZipArchive) -> None:
    archive = ZipArchive(tuple(e for e in wheel.entries if not e.name.endswith("METADATA")))
    with pytest.raises(ArchiveError):
        read_wheel_info(archive)


def test_parse_headers_keeps_order_and_lowercases_keys() -> None:
    assert parse_headers("A: 1\nb-C: two words\n\nignored: x", "X") == [
        ("a", "1"),
        ("b-c", "two words"),
    ]
