from __future__ import annotations

import hashlib
import stat
import zipfile
import zlib
from pathlib import Path

import pytest

from rebuilder.archive.limits import ArchiveLimits
from rebuilder.archive.zipread import read_zip
from rebuilder.errors import ArchiveError
from tests.support.dists import DEFAULT_TIME, WheelEntry, make_wheel, write_wheel
from tests.unit.archive.zipcraft import Unseekable, patch_central, replace_bytes, write_zip

TIGHT = ArchiveLimits(
    max_entries=5,
    max_total_size=10_000,
    max_member_size=4_000,
    max_ratio=10,
    ratio_floor=1_000,
)


def test_reads_every_field_in_archive_order(tmp_path: Path) -> None:
    entries = [
        WheelEntry("b.py", b"print('b')\n", mode=0o755),
        WheelEntry("a.txt", b"stored", compress_type=zipfile.ZIP_STORED),
    ]
    path = write_wheel(tmp_path / "x.zip", entries)
    with zipfile.ZipFile(path, "a") as zf:
        zf.comment = b"hello"
    archive = read_zip(path)
    assert archive.names() == ("b.py", "a.txt")
    assert archive.comment == b"hello"
    b, a = archive.entries
    assert b.data == b"print('b')\n"
    assert b.date_time == DEFAULT_TIME
    assert stat.S_IMODE(b.unix_mode) == 0o755
    assert b.compress_type == zipfile.ZIP_DEFLATED
    assert a.compress_type == zipfile.ZIP_STORED
    # stored: the raw bytes are the data itself
    assert a.raw_sha256 == hashlib.sha256(b"stored").hexdigest()
    assert b.raw_sha256 != hashlib.sha256(b.data).hexdigest()
    assert a.crc == zlib.crc32(b"stored")
    assert archive.get("a.txt") == a
    assert archive.get("missing") is None


def test_reads_a_wheel(tmp_path: Path) -> None:
    archive = read_zip(make_wheel(tmp_path))
    assert archive.names()[-1] == "demo-1.0.dist-info/RECORD"


def test_data_descriptors_are_accepted(tmp_path: Path) -> None:
    sink = Unseekable()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("a.py", "b.py"):
            with zf.open(name, "w") as f:
                f.write(name.encode() * 100)
    path = tmp_path / "streamed.zip"
    path.write_bytes(bytes(sink.buffer))
    archive = read_zip(path)
    assert all(e.flag_bits & 0x8 for e in archive.entries)
    assert archive.entries[1].data == b"b.py" * 100


@pytest.mark.parametrize(
    "name",
    [
        "../evil.py",
        "pkg/../../evil.py",
        "/abs/secret",
        "C:/windows/evil.py",
        "pkg\\..\\..\\evil.py",
        "pkg//x.py",
        "./pkg/x.py",
        "pkg/./x.py",
    ],
)
def test_unsafe_names_are_refused(tmp_path: Path, name: str) -> None:
    path = write_zip(tmp_path / "x.zip", [("ok.py", b""), (name, b"x")])
    with pytest.raises(ArchiveError):
        read_zip(path)


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "x.zip", [("a.py", b"1"), ("a.py", b"2")])
    with pytest.raises(ArchiveError, match="duplicate"):
        read_zip(path)


def test_symlinks_are_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "x.zip", [("link", b"/abs/secret")], mode=stat.S_IFLNK | 0o777)
    with pytest.raises(ArchiveError, match="symbolic link"):
        read_zip(path)


def test_encrypted_entries_are_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "x.zip", [("a.py", b"secret")])
    patch_central(path, 0, 8, "<H", 0x1)
    with pytest.raises(ArchiveError, match="encrypted"):
        read_zip(path)


def test_invalid_utf8_name_with_the_utf8_flag_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "x.zip", [("caf\u00e9.py", b"x")])
    replace_bytes(path, "\u00e9".encode(), b"\xff\xfe")
    with pytest.raises(ArchiveError):
        read_zip(path)


def test_nul_in_a_name_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "x.zip", [("aX.py", b"x")])
    replace_bytes(path, b"aX.py", b"a\x00.py")
    with pytest.raises(ArchiveError, match="NUL"):
        read_zip(path)


@pytest.mark.parametrize("cut", [1, 10, 40, 200])
def test_truncated_zips_are_refused(tmp_path: Path, cut: int) -> None:
    path = make_wheel(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - cut])
    with pytest.raises(ArchiveError):
        read_zip(path)


def test_bytes_cut_from_the_middle_are_refused(tmp_path: Path) -> None:
    path = make_wheel(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3] + raw[len(raw) // 3 + 7 :])
    with pytest.raises(ArchiveError):
        read_zip(path)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04garbage", b"not a zip at all" * 10])
def test_garbage_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.whl"
    path.write_bytes(content)
    with pytest.raises(ArchiveError):
        read_zip(path)


def test_crc_errors_are_refused(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "x.zip", [("a.txt", b"hello world")], compress_type=zipfile.ZIP_STORED
    )
    replace_bytes(path, b"hello world", b"hello World")
    with pytest.raises(ArchiveError, match=r"CRC|Bad"):
        read_zip(path)


def test_data_before_the_first_entry_is_refused(tmp_path: Path) -> None:
    path = make_wheel(tmp_path)
    path.write_bytes(b"#!/bin/sh\nexit 0\n" + path.read_bytes())
    with pytest.raises(ArchiveError, match="before the first entry"):
        read_zip(path)


def test_overlapping_entries_are_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "x.zip", [("a.txt", b"a" * 50), ("b.txt", b"b" * 50)])
    patch_central(path, 1, 42, "<L", 0)  # b.txt's local header offset -> a.txt's
    with pytest.raises(ArchiveError):
        read_zip(path)


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "x.zip", [(f"f{i}.py", b"") for i in range(6)])
    with pytest.raises(ArchiveError, match="entries"):
        read_zip(path, TIGHT)
    assert len(read_zip(path).entries) == 6


def test_high_compression_ratio_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "x.zip", [("zeros", bytes(3_000))])
    with pytest.raises(ArchiveError, match="ratio"):
        read_zip(path, TIGHT)


def test_member_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "x.zip", [("big", bytes(5_000))], compress_type=zipfile.ZIP_STORED)
    with pytest.raises(ArchiveError, match="member limit"):
        read_zip(path, TIGHT)


def test_total_over_the_limit_is_refused(tmp_path: Path) -> None:
    members = [(f"f{i}", bytes(3_000)) for i in range(4)]
    path = write_zip(tmp_path / "x.zip", members, compress_type=zipfile.ZIP_STORED)
    with pytest.raises(ArchiveError, match=r"uncompressed"):
        read_zip(path, TIGHT)


def test_a_lying_declared_size_is_caught_while_decompressing(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "x.zip", [("zeros", bytes(3_000))])
    patch_central(path, 0, 24, "<L", 100)  # declare 100 bytes uncompressed
    with pytest.raises(ArchiveError):
        read_zip(path, TIGHT)
