"""Property tests: the archive readers against arbitrary, mostly hostile, archives.

For any generated zip or tar (hostile names, links anywhere, lying sizes, duplicates,
truncation, flipped bytes, random bytes) the readers return a result or raise
ArchiveError, never write outside the destination, never leave a link, and honour the
limits; valid archives round-trip. ``pytest --hypothesis-profile=fuzz`` runs 20x more.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import shutil
import stat
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rebuilder.archive.limits import KIB, ArchiveLimits
from rebuilder.archive.tarread import extract_sdist, read_sdist_text
from rebuilder.archive.wheelfile import read_wheel_info
from rebuilder.archive.zipread import ZipArchive, ZipEntry, read_zip
from rebuilder.compare.stabilizers import canonicalize_record, record_is_truthful
from rebuilder.errors import ArchiveError

#: Small limits, so "huge" and "many" are cheap to generate.
LIMITS = ArchiveLimits(
    max_entries=12,
    max_total_size=24 * KIB,
    max_member_size=8 * KIB,
    max_ratio=50.0,
    ratio_floor=16 * KIB,  # over one 10 KiB tar record, which compresses to nothing
    max_name_length=120,
    max_header_bytes=8 * KIB,
    max_text_size=4 * KIB,
    max_link_depth=4,
    chunk_size=1 * KIB,
)
TOP = "pkg-1.0"


def examples(n: int) -> settings:
    """``n`` examples under the default profile, scaled with the profile in use."""
    scale = max(1, settings().max_examples // 100)
    return settings(
        max_examples=n * scale,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,  # sandbox_factory makes one tree per call
        ],
    )


# -- names --------------------------------------------------------------------------

_COMPONENTS = st.sampled_from(
    [TOP, TOP, TOP, "a", "b.py", "sub", "..", ".", "", "C:", "x\\..\\y", "n\x00ul", "é", "\udcff"]
)


@st.composite
def hostile_names(draw: st.DrawFn) -> str:
    """Mostly names below the top folder, with traversal, absolute and odd bytes mixed in."""
    if draw(st.integers(0, 2)):  # two in three are plausible
        plain = st.sampled_from(["a", "b.py", "sub", "c.txt"])
        return "/".join([TOP, *draw(st.lists(plain, min_size=1, max_size=3))])
    parts = draw(st.lists(_COMPONENTS, min_size=1, max_size=5))
    name = "/".join(parts)
    if draw(st.booleans()):
        name = "/" + name
    if draw(st.integers(0, 9)) == 0:
        name = "x" * draw(st.integers(100, 200))
    return name


def tree_root(root: Path) -> set[Path]:
    """Every path below ``root``, links not followed."""
    found: set[Path] = set()
    for folder, dirs, files in os.walk(root, followlinks=False):
        found.update(Path(folder) / n for n in dirs + files)
    return found


@dataclass
class Sandbox:
    """A private tmp tree: the archive in ``in/``, the destination and a sentinel in ``out/``."""

    root: Path

    @property
    def archive(self) -> Path:
        return self.root / "in" / "archive"

    @property
    def dest(self) -> Path:
        return self.root / "out" / "dest"

    @property
    def sentinel(self) -> Path:
        return self.root / "out" / "sentinel.txt"


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[[bytes], Sandbox]]:
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**9))
        previous: list[Path] = []

        def make(content: bytes) -> Sandbox:
            while previous:  # the last example's tree is checked by now
                shutil.rmtree(previous.pop())
            box = Sandbox(Path(tmp) / str(next(counter)))
            previous.append(box.root)
            (box.root / "in").mkdir(parents=True)
            (box.root / "out").mkdir()
            box.sentinel.write_bytes(b"untouched")
            box.archive.write_bytes(content)
            return box

        yield make


def _reason(exc: ArchiveError) -> str:
    """The kind of refusal, for hypothesis' statistics (names and numbers dropped)."""
    return re.sub(r"'[^']*'|\"[^\"]*\"|[0-9]+", "_", str(exc).split(": ", 1)[-1])[:50]


def check_extraction(box: Sandbox) -> Path | None:
    """Extract ``box.archive``, then check the whole tmp tree; the top folder or None."""
    try:
        top: Path | None = extract_sdist(box.archive, box.dest, LIMITS)
        event("extracted")
    except ArchiveError as exc:
        top = None
        event(f"refused: {_reason(exc)}")
    allowed = {box.root / "in", box.archive, box.root / "out", box.sentinel, box.dest}
    outside = {p for p in tree_root(box.root) if p not in allowed and box.dest not in p.parents}
    assert not outside, f"written outside the destination: {sorted(outside)}"
    assert box.sentinel.read_bytes() == b"untouched"
    files = 0
    total = 0
    for path in tree_root(box.dest) if box.dest.exists() else set():
        info = path.lstat()
        assert not stat.S_ISLNK(info.st_mode), f"a link was created: {path}"
        assert stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode), path
        assert not info.st_mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX), path
        if stat.S_ISREG(info.st_mode):
            assert info.st_nlink == 1, f"a hard link was created: {path}"
            assert info.st_size <= LIMITS.max_member_size
            files += 1
            total += info.st_size
    assert files <= LIMITS.max_entries
    assert total <= LIMITS.max_total_size
    if top is not None:
        assert top.parent == box.dest and top.is_dir() and not top.is_symlink()
    return top


# -- tar ------------------------------------------------------------------------------

_TAR_TYPES = st.sampled_from(
    [tarfile.REGTYPE] * 4
    + [tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE]
)
_LINK_TARGETS = st.one_of(
    hostile_names(),
    st.sampled_from(
        ["b.py", "../b.py", f"../{TOP}/a", "sub", ".", "/etc/passwd", "../../../etc", "a/../.."]
    ),
)


@st.composite
def tar_members(draw: st.DrawFn) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(draw(hostile_names()))
    info.type = draw(_TAR_TYPES)
    info.mode = draw(st.integers(0, 0o7777))
    info.mtime = draw(st.integers(0, 2**33))
    data = b""
    if info.type == tarfile.REGTYPE:
        size = draw(st.sampled_from([0, 10, 100, 3 * KIB, 9 * KIB]))
        data = draw(st.binary(max_size=16)) * (size // 16 + 1)
        data = data[:size] if data else bytes(size)
        info.size = len(data)
    elif info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = draw(_LINK_TARGETS)
    return info, data


def write_tar(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(
        fileobj=out, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape"
    ) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def lie_about_size(raw: bytes, index: int, size: int) -> bytes:
    """Rewrite the size field of the ``index``-th 512-byte header block (checksum fixed)."""
    block = bytearray(raw)
    at = index * tarfile.BLOCKSIZE
    if at + tarfile.BLOCKSIZE > len(block):
        return raw
    block[at + 124 : at + 136] = b"%011o\x00" % (size % 8**11)
    block[at + 148 : at + 156] = b"        "
    checksum = sum(block[at : at + tarfile.BLOCKSIZE])
    block[at + 148 : at + 156] = b"%06o\x00 " % checksum
    return bytes(block)


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "none": lambda b: b,
    "gz": lambda b: gzip.compress(b, mtime=0),
    "bz2": bz2.compress,
    "xz": lzma.compress,
}


@st.composite
def mutations(draw: st.DrawFn, raw: bytes) -> bytes:
    """Truncate ``raw``, flip some of its bytes, or leave it alone."""
    how = draw(st.sampled_from(["keep"] * 4 + ["truncate", "flip"]))
    if how == "truncate" and raw:
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if how == "flip" and raw:
        out = bytearray(raw)
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(out) - 1))
            out[at] = draw(st.integers(0, 255))
        return bytes(out)
    return raw


@st.composite
def hostile_tars(draw: st.DrawFn) -> bytes:
    members = draw(st.lists(tar_members(), min_size=0, max_size=16))
    raw = write_tar(members, draw(st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])))
    if draw(st.integers(0, 4)) == 0:
        raw = lie_about_size(raw, draw(st.integers(0, 3)), draw(st.integers(0, 2**40)))
    compressed = COMPRESSORS[draw(st.sampled_from(sorted(COMPRESSORS)))](raw)
    return draw(mutations(compressed))


@examples(150)
@given(content=hostile_tars())
def test_hostile_tars_never_escape_nor_crash(
    sandbox_factory: Callable[[bytes], Sandbox], content: bytes
) -> None:
    check_extraction(sandbox_factory(content))


@examples(60)
@given(content=hostile_tars(), relpath=st.sampled_from(["a", "b.py", "sub/b.py", "PKG-INFO"]))
def test_read_sdist_text_never_crashes(
    sandbox_factory: Callable[[bytes], Sandbox], content: bytes, relpath: str
) -> None:
    box = sandbox_factory(content)
    try:
        text = read_sdist_text(box.archive, relpath, LIMITS)
    except ArchiveError:
        return
    assert text is None or len(text) <= LIMITS.max_text_size


@examples(40)
@given(content=st.binary(max_size=2048))
def test_random_bytes_are_refused_cleanly(
    sandbox_factory: Callable[[bytes], Sandbox], content: bytes
) -> None:
    assert check_extraction(sandbox_factory(content)) is None


@examples(10)
@given(count=st.integers(LIMITS.max_entries + 1, 3 * LIMITS.max_entries))
def test_entry_count_limit(sandbox_factory: Callable[[bytes], Sandbox], count: int) -> None:
    members = [(tarfile.TarInfo(f"{TOP}/f{i}"), b"") for i in range(count)]
    box = sandbox_factory(write_tar(members, tarfile.PAX_FORMAT))
    with pytest.raises(ArchiveError, match="entries"):
        extract_sdist(box.archive, box.dest, LIMITS)


_SAFE_FILES = st.dictionaries(
    st.tuples(
        st.sampled_from(["", "sub/", "sub/deep/"]),
        st.from_regex(r"[a-z][a-z0-9_]{0,7}\.(py|txt)", fullmatch=True),
    ).map("".join),
    st.tuples(st.binary(max_size=300), st.integers(0, 0o777), st.integers(0, 2**32)),
    min_size=1,
    max_size=LIMITS.max_entries - 1,
)


@examples(60)
@given(
    files=_SAFE_FILES,
    compression=st.sampled_from(sorted(COMPRESSORS)),
    fmt=st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT]),
    link=st.booleans(),
)
def test_valid_tars_round_trip(
    sandbox_factory: Callable[[bytes], Sandbox],
    files: dict[str, tuple[bytes, int, int]],
    compression: str,
    fmt: int,
    link: bool,
) -> None:
    members = []
    for name, (data, mode, mtime) in files.items():
        info = tarfile.TarInfo(f"{TOP}/{name}")
        info.size, info.mode, info.mtime = len(data), mode, mtime
        members.append((info, data))
    first = next(iter(files))
    if link:  # a symlink to a file inside the tree becomes a copy of it
        info = tarfile.TarInfo(f"{TOP}/zz_link.txt")
        info.type, info.linkname = tarfile.SYMTYPE, first
        members.append((info, b""))
    box = sandbox_factory(COMPRESSORS[compression](write_tar(members, fmt)))
    top = check_extraction(box)
    assert top == box.dest / TOP
    written = {p.relative_to(top).as_posix() for p in tree_root(top) if p.is_file()}
    assert written == set(files) | ({"zz_link.txt"} if link else set())
    for name, (data, mode, mtime) in files.items():
        path = top / name
        assert path.read_bytes() == data
        assert stat.S_IMODE(path.stat().st_mode) == (mode & 0o777) | 0o600
        assert path.stat().st_mtime_ns == mtime * 1_000_000_000
    if link:
        assert (top / "zz_link.txt").read_bytes() == files[first][0]


# -- zip --------------------------------------------------------------------------------

_LOCAL = struct.Struct("<4s5H3L2H")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_EOCD = struct.Struct("<4s4H2LH")


@dataclass(frozen=True)
class RawEntry:
    """One zip member written byte for byte as told, lies included."""

    name: bytes
    data: bytes
    deflate: bool = False
    flags: int = 0
    external_attr: int = 0o644 << 16
    declared_size: int | None = None
    bad_crc: bool = False


def raw_zip(
    entries: list[RawEntry],
    *,
    prefix: bytes = b"",
    gap: bytes = b"",
    comment: bytes = b"",
    trailer: bytes = b"",
) -> bytes:
    """A zip made by hand, so names, flags, sizes and CRCs are exactly what we say."""
    body = bytearray(prefix)
    central = bytearray()
    for e in entries:
        stored = e.data
        if e.deflate:
            packer = zlib.compressobj(9, zlib.DEFLATED, -15)
            stored = packer.compress(e.data) + packer.flush()
        crc = zlib.crc32(e.data) ^ (0xFFFF if e.bad_crc else 0)
        size = len(e.data) if e.declared_size is None else e.declared_size
        method = 8 if e.deflate else 0
        fields = (20, e.flags, method, 0, 0x21, crc, len(stored), size, len(e.name), 0)
        offset = len(body)
        body += _LOCAL.pack(b"PK\x03\x04", *fields) + e.name + stored + gap
        central += _CENTRAL.pack(b"PK\x01\x02", 0x314, *fields, 0, 0, 0, e.external_attr, offset)
        central += e.name
    n = len(entries)
    eocd = _EOCD.pack(b"PK\x05\x06", 0, 0, n, n, len(central), len(body), len(comment))
    return bytes(body + central + eocd + comment + trailer)


FORGED_END = _EOCD.pack(b"PK\x05\x06", 0, 0, 0, 0, 0, 0, 0)  # "an empty archive"


_ZIP_NAMES = st.one_of(
    hostile_names().map(lambda n: n.encode("utf-8", "surrogateescape")),
    st.binary(min_size=1, max_size=12),
)


@st.composite
def raw_entries(draw: st.DrawFn) -> RawEntry:
    size = draw(st.sampled_from([0, 5, 100, 100, 5 * KIB, 9 * KIB]))
    return RawEntry(
        name=draw(_ZIP_NAMES),
        data=(draw(st.binary(min_size=1, max_size=8)) * size)[:size],
        deflate=draw(st.booleans()),
        flags=draw(st.sampled_from([0] * 8 + [0x800, 0x1, 0x8, 0x40])),
        external_attr=draw(st.sampled_from([0o644] * 6 + [0, 0o755, 0o120777, 0o40755, 0o104755]))
        << 16,
        declared_size=draw(st.sampled_from([None] * 8 + [0, 1, 2**20, 2**32 - 1])),
        bad_crc=draw(st.integers(0, 19)) == 0,
    )


@st.composite
def hostile_zips(draw: st.DrawFn) -> bytes:
    entries = draw(st.lists(raw_entries(), max_size=LIMITS.max_entries))
    duplicate: bool = draw(st.booleans())
    if entries and duplicate:
        entries.append(draw(st.sampled_from(entries)))  # a duplicate
    raw = raw_zip(
        entries,
        prefix=draw(st.sampled_from([b"", b"", b"#!/bin/sh\n"])),
        gap=draw(st.sampled_from([b"", b"", b"hidden"])),
        comment=draw(st.sampled_from([b"", b"", b"note", FORGED_END])),
        trailer=draw(st.sampled_from([b"", b"", b"", b"junk", FORGED_END])),
    )
    return draw(mutations(raw))


def streamed_names(raw: bytes) -> list[str]:
    """What a streaming unzipper sees: local headers one after another from the start."""
    names = []
    at = 0
    while raw[at : at + 4] == b"PK\x03\x04" and at + _LOCAL.size <= len(raw):
        fields = _LOCAL.unpack_from(raw, at)
        flags, size, name_length, extra_length = fields[2], fields[7], fields[9], fields[10]
        name = raw[at + _LOCAL.size : at + _LOCAL.size + name_length]
        names.append(name.decode("utf-8" if flags & 0x800 else "cp437"))
        if flags & 0x8:
            break  # sizes are in a data descriptor after the data: stop here
        at += _LOCAL.size + name_length + extra_length + size
    return names


def check_zip_model(archive: ZipArchive) -> None:
    names = archive.names()
    assert len(names) == len(set(names)) <= LIMITS.max_entries
    assert sum(len(e.data) for e in archive.entries) <= LIMITS.max_total_size
    for entry in archive.entries:
        assert "\x00" not in entry.name and "\\" not in entry.name
        assert not entry.name.startswith("/") and ".." not in entry.name.split("/")
        assert not stat.S_ISLNK(entry.unix_mode)
        assert len(entry.data) <= LIMITS.max_member_size
        assert zlib.crc32(entry.data) == entry.crc


@examples(150)
@given(content=hostile_zips())
def test_hostile_zips_are_read_or_refused(
    sandbox_factory: Callable[[bytes], Sandbox], content: bytes
) -> None:
    box = sandbox_factory(content)
    try:
        archive = read_zip(box.archive, LIMITS)
    except ArchiveError as exc:
        event(f"refused: {_reason(exc)}")
        return
    event("read")
    check_zip_model(archive)
    streamed = streamed_names(content)
    assert list(archive.names()[: len(streamed)]) == streamed, "readers would disagree"


_SDIST_ZIP_ENTRIES = st.lists(
    st.one_of(
        raw_entries(),
        raw_entries().map(
            lambda e: RawEntry(
                f"{TOP}/{e.name.hex()[:8]}".encode(), e.data, e.deflate, external_attr=0o644 << 16
            )
        ),
    ),
    max_size=10,
)


@examples(100)
@given(entries=_SDIST_ZIP_ENTRIES, name=_ZIP_NAMES)
def test_hostile_zip_sdists_never_escape(
    sandbox_factory: Callable[[bytes], Sandbox], entries: list[RawEntry], name: bytes
) -> None:
    base = RawEntry(f"{TOP}/PKG-INFO".encode(), b"Name: pkg\n")
    box = sandbox_factory(raw_zip([base, *entries, RawEntry(name, b"x")]))
    check_extraction(box)


_ZIP_FILES = st.dictionaries(
    st.from_regex(r"[a-z]{1,6}(/[a-z]{1,6}){0,2}\.(py|txt)", fullmatch=True),
    st.tuples(
        st.binary(max_size=300),
        st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2]),
        st.integers(0, 0o777),
        st.tuples(
            st.integers(1980, 2107),
            st.integers(1, 12),
            st.integers(1, 28),
            st.integers(0, 23),
            st.integers(0, 59),
            st.integers(0, 29).map(lambda s: 2 * s),
        ),
    ),
    min_size=1,
    max_size=LIMITS.max_entries,
)


@examples(60)
@given(files=_ZIP_FILES, comment=st.one_of(st.binary(max_size=20), st.just(FORGED_END)))
def test_valid_zips_round_trip(
    sandbox_factory: Callable[[bytes], Sandbox],
    files: dict[str, tuple[bytes, int, int, tuple[int, int, int, int, int, int]]],
    comment: bytes,
) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, (data, method, mode, when) in files.items():
            info = zipfile.ZipInfo(name, date_time=when)
            info.compress_type = method
            info.external_attr = (stat.S_IFREG | mode) << 16
            zf.writestr(info, data)
        zf.comment = comment
    box = sandbox_factory(out.getvalue())
    if b"PK\x05\x06" in comment:  # an end-record signature in the comment is ambiguous
        with pytest.raises(ArchiveError):
            read_zip(box.archive, LIMITS)
        return
    archive = read_zip(box.archive, LIMITS)
    check_zip_model(archive)
    assert archive.comment == comment
    assert archive.names() == tuple(files)
    for entry in archive.entries:
        data, method, mode, when = files[entry.name]
        assert (entry.data, entry.compress_type, entry.date_time) == (data, method, when)
        assert entry.unix_mode == stat.S_IFREG | mode


# -- wheel metadata ---------------------------------------------------------------------

_HEADER_LINES = st.one_of(
    st.sampled_from(
        [
            "Wheel-Version: 1.0",
            "Generator: bdist_wheel (0.42.0)",
            "Root-Is-Purelib: true",
            "Root-Is-Purelib: maybe",
            "Tag: py3-none-any",
            "Name: demo",
            "Version: 1.0",
            "Version:",
            "  continued",
            "",
            "no colon here",
            " Key: leading space",
            "Bad Key: x",
        ]
    ),
    st.text(max_size=30),
)
_GARBAGE = st.one_of(
    st.lists(_HEADER_LINES, max_size=8).map(lambda lines: "\n".join(lines).encode()),
    st.binary(max_size=64),
)
_DIST_INFOS = st.sampled_from(["demo-1.0.dist-info", "other-2.0.dist-info", "x.dist-info"])


@st.composite
def wheel_archives(draw: st.DrawFn) -> ZipArchive:
    entries: dict[str, bytes] = {"demo/__init__.py": draw(st.binary(max_size=20))}
    for _ in range(draw(st.integers(0, 2))):
        folder = draw(_DIST_INFOS)
        for member in draw(st.sets(st.sampled_from(["WHEEL", "METADATA", "RECORD"]))):
            entries[f"{folder}/{member}"] = draw(_GARBAGE)
    return ZipArchive(tuple(ZipEntry(name, data) for name, data in entries.items()))


@examples(200)
@given(archive=wheel_archives())
def test_garbage_wheel_metadata_is_parsed_or_refused(archive: ZipArchive) -> None:
    try:
        info = read_wheel_info(archive)
    except ArchiveError:
        pass
    else:
        assert info.name and info.version and info.wheel_version and info.tags
        assert archive.get(f"{info.dist_info}/WHEEL") is not None
    for entry in archive.entries:
        if entry.name.endswith("/RECORD"):  # a garbage RECORD is simply not truthful
            assert record_is_truthful(archive, entry.name) in (True, False)
    assert canonicalize_record(archive).names() == archive.names()


@examples(60)
@given(
    name=st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,20}", fullmatch=True),
    version=st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}", fullmatch=True),
    tags=st.lists(st.sampled_from(["py3-none-any", "cp311-cp311-linux_x86_64"]), min_size=1),
    purelib=st.booleans(),
    generator=st.one_of(st.none(), st.from_regex(r"[a-z]{1,10} \([0-9.]{1,8}\)", fullmatch=True)),
)
def test_valid_wheel_metadata_round_trips(
    name: str, version: str, tags: list[str], purelib: bool, generator: str | None
) -> None:
    wheel = ["Wheel-Version: 1.0", f"Root-Is-Purelib: {str(purelib).lower()}"]
    wheel += [f"Generator: {generator}"] if generator else []
    wheel += [f"Tag: {tag}" for tag in tags]
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nlong text: x\n"
    archive = ZipArchive(
        (
            ZipEntry("demo-1.0.dist-info/WHEEL", "\n".join(wheel).encode() + b"\n"),
            ZipEntry("demo-1.0.dist-info/METADATA", metadata.encode()),
        )
    )
    info = read_wheel_info(archive)
    assert (info.name, info.version, info.wheel_version) == (name, version, "1.0")
    assert (info.tags, info.root_is_purelib, info.generator) == (tuple(tags), purelib, generator)


# -- regressions found by the properties above -------------------------------------------


def test_forged_end_record_in_the_comment_is_refused(tmp_path: Path) -> None:
    """zipfile used the forged record in the comment and saw an empty archive."""
    path = tmp_path / "forged.whl"
    path.write_bytes(raw_zip([RawEntry(b"demo/a.py", b"real")], comment=FORGED_END))
    assert streamed_names(path.read_bytes()) == ["demo/a.py"]
    with pytest.raises(ArchiveError, match="ambiguous"):
        read_zip(path, LIMITS)


@pytest.mark.parametrize(
    ("trailer", "message"),
    [(b"junk", "bytes it does not account for"), (FORGED_END, "bytes of data before")],
)
def test_bytes_after_the_end_record_are_refused(
    tmp_path: Path, trailer: bytes, message: str
) -> None:
    """A forged empty end record appended to a wheel made zipfile see no entries."""
    path = tmp_path / "trailer.whl"
    path.write_bytes(raw_zip([RawEntry(b"demo/a.py", b"real")], trailer=trailer))
    with pytest.raises(ArchiveError, match=message):
        read_zip(path, LIMITS)


def test_a_plain_comment_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "comment.whl"
    path.write_bytes(raw_zip([RawEntry(b"demo/a.py", b"real")], comment=b"built by hand"))
    archive = read_zip(path, LIMITS)
    assert (archive.names(), archive.comment) == (("demo/a.py",), b"built by hand")


def test_an_empty_zip_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "empty.zip"
    with zipfile.ZipFile(path, "w"):
        pass
    assert read_zip(path, LIMITS).entries == ()
