from __future__ import annotations

import calendar
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from rebuilder.archive.limits import ArchiveLimits
from rebuilder.archive.tarread import extract_sdist, read_sdist_text
from rebuilder.errors import ArchiveError
from tests.support.dists import (
    DEFAULT_EPOCH,
    SdistMember,
    SdistSpec,
    make_sdist,
    setuptools_sdist_members,
    write_sdist,
)

TOP = "demo-1.0"
TIGHT = ArchiveLimits(
    max_entries=6,
    max_total_size=200_000,
    max_member_size=120_000,
    max_ratio=10,
    ratio_floor=50_000,
    max_header_bytes=4_096,
    max_text_size=1_000,
)


def sdist(tmp_path: Path, *extra: SdistMember, top: str | None = None) -> Path:
    spec = SdistSpec("demo", "1.0", [*setuptools_sdist_members(), *extra])
    return write_sdist(tmp_path / "demo-1.0.tar.gz", spec, top=top)


def write_tar(
    path: Path,
    members: list[tuple[tarfile.TarInfo, bytes]],
    mode: str = "w:gz",
    **options: object,
) -> Path:
    with tarfile.open(path, mode, **options) as tf:  # type: ignore[call-overload]
        for info, data in members:
            if info.isreg():
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def member(name: str, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = DEFAULT_EPOCH
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def test_extracts_content_mtimes_and_modes(tmp_path: Path) -> None:
    path = sdist(
        tmp_path,
        SdistMember("bin/run", b"#!/bin/sh\n", mode=0o4755, mtime=1_600_000_000),
        SdistMember("secret", b"x", mode=0o400),
        SdistMember("docs", type=tarfile.DIRTYPE, mode=0o2775, mtime=1_500_000_000),
    )
    root = extract_sdist(path, tmp_path / "out")
    assert root == tmp_path / "out" / TOP
    init = root / "src" / "demo" / "__init__.py"
    assert init.read_bytes() == b'__version__ = "1.0"\n'
    assert init.stat().st_mtime_ns == DEFAULT_EPOCH * 10**9
    run = root / "bin" / "run"
    assert run.stat().st_mtime_ns == 1_600_000_000 * 10**9
    assert stat.S_IMODE(run.stat().st_mode) == 0o755  # setuid stripped
    assert stat.S_IMODE((root / "secret").stat().st_mode) == 0o600  # owner rw forced
    docs = (root / "docs").stat()
    assert stat.S_IMODE(docs.st_mode) == 0o775  # setgid stripped
    assert docs.st_mtime_ns == 1_500_000_000 * 10**9
    assert stat.S_IMODE((root / "src").stat().st_mode) == 0o755


@pytest.mark.parametrize(
    ("mode", "suffix"), [("w:bz2", ".tar.bz2"), ("w", ".tar"), ("w:xz", ".tar.xz")]
)
def test_other_tar_compressions(tmp_path: Path, mode: str, suffix: str) -> None:
    path = write_tar(tmp_path / f"demo-1.0{suffix}", [(member(f"{TOP}/a.py"), b"a")], mode)
    assert (extract_sdist(path, tmp_path / "out") / "a.py").read_bytes() == b"a"
    assert read_sdist_text(path, "a.py") == "a"


def test_zip_sdists_keep_utc_times_and_modes(tmp_path: Path) -> None:
    path = tmp_path / "demo-1.0.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo(f"{TOP}/run.py", date_time=(2024, 1, 2, 3, 4, 6))
        info.external_attr = (stat.S_IFREG | 0o6755) << 16
        zf.writestr(info, b"run")
        plain = zipfile.ZipInfo(f"{TOP}/plain.txt", (2020, 5, 6, 7, 8, 10))
        plain.create_system = 0  # MS-DOS: no Unix mode recorded
        zf.writestr(plain, b"plain")
    root = extract_sdist(path, tmp_path / "out")
    run = (root / "run.py").stat()
    assert run.st_mtime == calendar.timegm((2024, 1, 2, 3, 4, 6))
    assert stat.S_IMODE(run.st_mode) == 0o755
    assert stat.S_IMODE((root / "plain.txt").stat().st_mode) == 0o644
    assert read_sdist_text(path, "plain.txt") == "plain"


def test_links_inside_the_tree_are_materialized_as_copies(tmp_path: Path) -> None:
    path = sdist(
        tmp_path,
        SdistMember("README", type=tarfile.SYMTYPE, linkname="docs/README.md"),
        SdistMember("docs/README.md", b"readme", mode=0o640),
        SdistMember("again", type=tarfile.SYMTYPE, linkname="README"),
        SdistMember("hard", type=tarfile.LNKTYPE, linkname=f"{TOP}/PKG-INFO"),
        SdistMember("src/up", type=tarfile.SYMTYPE, linkname="../docs/./README.md"),
    )
    root = extract_sdist(path, tmp_path / "out")
    for name in ("README", "again", "src/up"):
        assert not (root / name).is_symlink()
        assert (root / name).read_bytes() == b"readme"
        assert stat.S_IMODE((root / name).stat().st_mode) == 0o640
    assert (root / "hard").read_bytes() == (root / "PKG-INFO").read_bytes()


@pytest.mark.parametrize(
    ("kind", "target", "message"),
    [
        (tarfile.SYMTYPE, "../../../abs/secret", "outside"),
        (tarfile.SYMTYPE, "..", "outside"),
        (tarfile.SYMTYPE, "/abs/secret", "absolute"),
        (tarfile.SYMTYPE, "missing.txt", "nothing"),
        (tarfile.SYMTYPE, "src", "directory"),
        (tarfile.SYMTYPE, "loop", "loop"),
        (tarfile.LNKTYPE, "etc/passwd", "outside"),
        (tarfile.LNKTYPE, "../abs/secret", "escapes"),
        (tarfile.LNKTYPE, "/abs/secret", "absolute"),
    ],
)
def test_bad_links_are_refused(tmp_path: Path, kind: bytes, target: str, message: str) -> None:
    path = sdist(tmp_path, SdistMember("loop", type=kind, linkname=target))
    with pytest.raises(ArchiveError, match=message):
        extract_sdist(path, tmp_path / "out")
    assert not (tmp_path / "out" / TOP / "loop").exists()


@pytest.mark.parametrize(
    "name",
    [f"{TOP}/../evil", "../evil", f"{TOP}/a/../../../evil", "/abs/evil", f"{TOP}\\..\\evil"],
)
def test_traversal_and_absolute_names_are_refused(tmp_path: Path, name: str) -> None:
    path = write_tar(tmp_path / "x.tar.gz", [(member(f"{TOP}/ok"), b""), (member(name), b"x")])
    with pytest.raises(ArchiveError):
        extract_sdist(path, tmp_path / "out")
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_devices_and_fifos_are_refused(tmp_path: Path, kind: bytes) -> None:
    path = sdist(tmp_path, SdistMember("dev", type=kind))
    with pytest.raises(ArchiveError, match="refused"):
        extract_sdist(path, tmp_path / "out")


def test_duplicate_members_are_refused(tmp_path: Path) -> None:
    path = sdist(tmp_path, SdistMember("PKG-INFO", b"second"))
    with pytest.raises(ArchiveError, match="duplicate"):
        extract_sdist(path, tmp_path / "out")


def test_non_utf8_names_are_refused(tmp_path: Path) -> None:
    path = write_tar(
        tmp_path / "x.tar.gz",
        [(member(f"{TOP}/caf\u00e9.py"), b"x")],
        encoding="latin-1",
        format=tarfile.GNU_FORMAT,
    )
    with pytest.raises(ArchiveError, match="UTF-8"):
        extract_sdist(path, tmp_path / "out")


def test_more_than_one_top_folder_is_refused(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "x.tar.gz", [(member(f"{TOP}/a"), b"a"), (member("other/b"), b"b")])
    with pytest.raises(ArchiveError, match="top folder"):
        extract_sdist(path, tmp_path / "out")
    path = sdist(tmp_path, SdistMember("setup.py", b""), top="")
    with pytest.raises(ArchiveError, match="top folder"):
        extract_sdist(path, tmp_path / "out2")


def test_empty_archive_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="empty"):
        extract_sdist(write_tar(tmp_path / "x.tar.gz", []), tmp_path / "out")


def test_pre_existing_symlinks_in_dest_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    (dest / TOP).mkdir(parents=True)
    (dest / TOP / "src").symlink_to(outside)
    with pytest.raises(ArchiveError):
        extract_sdist(make_sdist(tmp_path), dest)
    assert list(outside.iterdir()) == []
    dest2 = tmp_path / "out2"
    dest2.mkdir()
    (dest2 / TOP).symlink_to(outside)
    with pytest.raises(ArchiveError):
        extract_sdist(make_sdist(tmp_path), dest2)
    assert list(outside.iterdir()) == []


def test_dest_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ArchiveError):
        extract_sdist(make_sdist(tmp_path), tmp_path / "link")


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    members = [(member(f"{TOP}/f{i}"), b"") for i in range(7)]
    path = write_tar(tmp_path / "x.tar.gz", members)
    with pytest.raises(ArchiveError, match="entries"):
        extract_sdist(path, tmp_path / "out", TIGHT)


def test_high_ratio_is_refused(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "x.tar.gz", [(member(f"{TOP}/zeros"), bytes(100_000))])
    with pytest.raises(ArchiveError, match="ratio"):
        extract_sdist(path, tmp_path / "out", TIGHT)


def test_oversized_member_is_refused(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "x.tar", [(member(f"{TOP}/big"), os.urandom(130_000))], "w")
    with pytest.raises(ArchiveError, match="member limit"):
        extract_sdist(path, tmp_path / "out", TIGHT)


def test_links_count_towards_the_total(tmp_path: Path) -> None:
    links = [
        (member(f"{TOP}/copy{i}", type=tarfile.SYMTYPE, linkname="data"), b"") for i in range(4)
    ]
    path = write_tar(tmp_path / "x.tar", [(member(f"{TOP}/data"), os.urandom(70_000)), *links], "w")
    with pytest.raises(ArchiveError, match="total"):
        extract_sdist(path, tmp_path / "out", TIGHT)


def test_oversized_pax_headers_are_refused(tmp_path: Path) -> None:
    info = member(f"{TOP}/a")
    info.pax_headers = {"comment": os.urandom(20_000).hex()}
    path = write_tar(tmp_path / "x.tar", [(info, b"a")], "w", format=tarfile.PAX_FORMAT)
    with pytest.raises(ArchiveError, match="headers"):
        extract_sdist(path, tmp_path / "out", TIGHT)


def test_sparse_members_are_refused(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "x.tar", [(member(f"{TOP}/a"), b"abc")], "w")
    raw = bytearray(path.read_bytes())
    raw[156:157] = tarfile.GNUTYPE_SPARSE
    chksum = sum(raw[:148]) + 8 * 32 + sum(raw[156:512])
    raw[148:156] = b"%06o\0 " % chksum
    path.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError):
        extract_sdist(path, tmp_path / "out")


@pytest.mark.parametrize("keep", [100, 600, 1100])
def test_truncated_archives_are_refused(tmp_path: Path, keep: int) -> None:
    path = write_tar(tmp_path / "x.tar", [(member(f"{TOP}/a"), os.urandom(1_000))], "w")
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(ArchiveError):
        extract_sdist(path, tmp_path / "out")


def test_truncated_gzip_is_refused(tmp_path: Path) -> None:
    path = make_sdist(tmp_path)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(ArchiveError):
        extract_sdist(path, tmp_path / "out")


@pytest.mark.parametrize("content", [b"", b"\x1f\x8bnot gzip", b"garbage" * 100, b"BZhxx"])
def test_garbage_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.tar.gz"
    path.write_bytes(content)
    with pytest.raises(ArchiveError):
        extract_sdist(path, tmp_path / "out")
    with pytest.raises(ArchiveError):
        read_sdist_text(path, "PKG-INFO")


def test_read_sdist_text_reads_one_member_without_extracting(tmp_path: Path) -> None:
    path = make_sdist(tmp_path)
    before = sorted(tmp_path.iterdir())
    assert read_sdist_text(path, "PKG-INFO") == (
        "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
    )
    assert read_sdist_text(path, "missing.toml") is None
    assert read_sdist_text(path, "src") is None
    assert sorted(tmp_path.iterdir()) == before


def test_read_sdist_text_refuses_large_members(tmp_path: Path) -> None:
    path = sdist(tmp_path, SdistMember("big.txt", b"x" * 1_500))
    with pytest.raises(ArchiveError, match="too large"):
        read_sdist_text(path, "big.txt", TIGHT)


def test_read_sdist_text_still_checks_names(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "x.tar.gz", [(member("../evil"), b"x")])
    with pytest.raises(ArchiveError):
        read_sdist_text(path, "evil")


def test_a_git_tree_keeps_folder_links_inside_it_as_relative_links(tmp_path: Path) -> None:
    path = sdist(
        tmp_path,
        SdistMember("certs/expired/ca/ca.pem", b"pem"),
        SdistMember("certs/valid/ca", type=tarfile.SYMTYPE, linkname="../expired/ca"),
        SdistMember("certs/again", type=tarfile.SYMTYPE, linkname="valid/ca"),
    )
    with pytest.raises(ArchiveError, match="directory"):  # an sdist: refused as before
        extract_sdist(path, tmp_path / "sdist")
    root = extract_sdist(path, tmp_path / "git", directory_links=True)
    assert (root / "certs/valid/ca").readlink() == Path("../expired/ca")
    assert (root / "certs/again").readlink() == Path("expired/ca")  # the chain, to its end
    assert (root / "certs/valid/ca/ca.pem").read_bytes() == b"pem"


@pytest.mark.parametrize(
    ("name", "target", "message"),
    [
        ("certs/up", "..", "outside|holding it"),
        ("certs/self", "../certs", "holding it"),
        ("certs/out", "../../../etc", "outside"),
        ("certs/abs", "/etc", "absolute"),
    ],
)
def test_a_git_tree_refuses_folder_links_out_of_it_or_to_their_parents(
    tmp_path: Path, name: str, target: str, message: str
) -> None:
    path = sdist(
        tmp_path,
        SdistMember("certs/ca.pem", b"pem"),
        SdistMember(name, type=tarfile.SYMTYPE, linkname=target),
    )
    with pytest.raises(ArchiveError, match=message):
        extract_sdist(path, tmp_path / "git", directory_links=True)
