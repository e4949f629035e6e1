"""Extract an untrusted sdist (``.tar.gz``, ``.tar.bz2``, ``.tar.xz``, ``.tar``, ``.zip``).

Extraction is written here rather than left to tarfile: every member is checked, its
content streamed under the limits, and every file created relative to an open
directory descriptor with ``O_NOFOLLOW``, so no symlink (in the archive or already in
``dest``) is ever followed.

Choices:
- Symbolic and hard links whose target is a regular file inside the project are
  materialized as copies of that file (sdists use them for README or LICENSE); links
  that escape, dangle, loop or point at a directory are refused.
- Regular files keep their mtime exactly and their permission bits without
  setuid/setgid/sticky, owner read/write always granted. Directories get their own
  bits with owner rwx (0o755 when the archive does not describe them) and, when the
  archive describes them, their mtime.
- On error, ``dest`` may hold part of the tree: the caller discards it.
"""

from __future__ import annotations

import bz2
import calendar
import gzip
import io
import logging
import lzma
import os
import stat
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import IO, BinaryIO, Protocol, cast

from rebuilder.archive.limits import (
    DEFAULT_LIMITS,
    ArchiveLimits,
    SizeBudget,
    check_ratio,
    member_parts,
)
from rebuilder.archive.zipread import read_zip
from rebuilder.errors import ArchiveError

logger = logging.getLogger(__name__)

Parts = tuple[str, ...]

_ZIP_MAGIC = b"PK\x03\x04"
_UNIX = 3
_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_MALFORMED = (
    tarfile.TarError,
    EOFError,
    OSError,
    zlib.error,
    lzma.LZMAError,
    ValueError,
    UnicodeError,
    OverflowError,
)


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _Kind(Enum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"


@dataclass
class _Member:
    """One checked member, its content still to be streamed by ``chunks``."""

    parts: Parts
    kind: _Kind
    mode: int
    mtime_ns: int | None
    size: int = 0
    link: Parts = ()
    chunks: Iterator[bytes] = field(default_factory=lambda: iter(()))


def extract_sdist(
    path: Path,
    dest: Path,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    *,
    directory_links: bool = False,
) -> Path:
    """Extract the sdist at ``path`` into ``dest`` and return its single top folder.

    ``dest`` is created if needed; nothing in it is overwritten or followed. Raises
    ArchiveError for hostile or malformed archives (see the module documentation).
    With ``directory_links`` (a git tree, where folders may be symlinks), a link to a
    folder inside the tree is kept as a relative symlink to it, as a checkout has it
    (only after every file is written; nothing here follows it).
    """
    dest.mkdir(parents=True, exist_ok=True)
    budget = SizeBudget(limits)
    try:
        with ExitStack() as stack:
            tree = _Tree(os.open(dest, _NOFOLLOW_DIR))
            stack.callback(os.close, tree.root)
            members = _members(path, limits, stack, budget)
            top = _extract(members, tree, budget, directory_links=directory_links)
    except ArchiveError:
        raise
    except _MALFORMED as exc:
        raise ArchiveError(f"{path.name}: cannot extract: {exc}") from None
    logger.debug("extracted %s into %s", path.name, top)
    return dest / top


def read_sdist_text(path: Path, relpath: str, limits: ArchiveLimits = DEFAULT_LIMITS) -> str | None:
    """The text of one regular file, ``relpath`` below the top folder, without extracting.

    None when there is no such regular file (links are not followed). Members are
    checked as they are read, up to the one wanted. Undecodable bytes are replaced.
    """
    wanted = member_parts(relpath, limits, lenient=True)
    try:
        with ExitStack() as stack:
            top: str | None = None
            for member in _members(path, limits, stack, SizeBudget(limits)):
                top = _check_top(member, top)
                if member.parts[1:] == wanted and member.kind is _Kind.FILE:
                    return _text(member, limits)
    except ArchiveError:
        raise
    except _MALFORMED as exc:
        raise ArchiveError(f"{path.name}: cannot read: {exc}") from None
    return None


def _text(member: _Member, limits: ArchiveLimits) -> str:
    if member.size > limits.max_text_size:
        name = "/".join(member.parts)
        raise ArchiveError(f"{name!r}: {member.size} bytes is too large to read as text")
    return b"".join(member.chunks).decode("utf-8", errors="replace")


def _extract(
    members: Iterator[_Member], tree: _Tree, budget: SizeBudget, *, directory_links: bool = False
) -> str:
    top: str | None = None
    seen: set[Parts] = set()
    files: dict[Parts, _Member] = {}
    dirs: dict[Parts, _Member] = {}
    links: dict[Parts, _Member] = {}
    folders: set[Parts] = set()
    for member in members:
        top = _check_top(member, top)
        if member.parts in seen:
            raise ArchiveError(f"duplicate member {'/'.join(member.parts)!r}")
        seen.add(member.parts)
        folders.update(member.parts[:depth] for depth in range(1, len(member.parts)))
        if member.kind is _Kind.FILE:
            tree.write(member.parts, member.chunks, member.mode, member.mtime_ns)
            files[member.parts] = member
        elif member.kind is _Kind.DIR:
            tree.directory(member.parts)
            dirs[member.parts] = member
        else:
            links[member.parts] = member
    if top is None:
        raise ArchiveError("the archive is empty")
    folder_links: dict[Parts, Parts] = {}
    for parts, link in links.items():
        target = _resolve(link, links, budget.limits)
        source = files.get(target)
        if source is None and directory_links and (target in dirs or target in folders):
            if parts[: len(target)] == target:
                raise ArchiveError(f"link {'/'.join(parts)!r} points at a folder holding it")
            folder_links[parts] = target
            continue
        if source is None:
            kind = "a directory" if target in dirs or target in folders else "nothing"
            raise ArchiveError(f"link {'/'.join(parts)!r} points at {kind}")
        copy = _counted(tree.read(target), "/".join(parts), budget)
        tree.write(parts, copy, source.mode, source.mtime_ns)
        files[parts] = source
    tree.finish_directories({p: (m.mode, m.mtime_ns) for p, m in dirs.items()})
    for parts, target in sorted(folder_links.items()):
        relative = os.path.relpath("/".join(target), "/".join(parts[:-1]) or ".")
        tree.symlink(parts, relative)
    return top


def _counted(chunks: Iterator[bytes], name: str, budget: SizeBudget) -> Iterator[bytes]:
    size = 0
    for chunk in chunks:
        size += len(chunk)
        budget.consume(name, size, len(chunk))
        yield chunk


def _check_top(member: _Member, top: str | None) -> str:
    """Every member must sit in one top folder; return that folder's name."""
    name = "/".join(member.parts)
    if len(member.parts) == 1 and member.kind is not _Kind.DIR:
        raise ArchiveError(f"{name!r} is outside the project's top folder")
    if top is not None and member.parts[0] != top:
        raise ArchiveError(f"more than one top folder: {top!r} and {member.parts[0]!r}")
    return member.parts[0]


def _resolve(link: _Member, links: dict[Parts, _Member], limits: ArchiveLimits) -> Parts:
    """Follow a chain of links inside the archive to what it finally names."""
    current = link
    for _ in range(limits.max_link_depth):
        target = current.link
        if target not in links:
            return target
        current = links[target]
    raise ArchiveError(f"link {'/'.join(link.parts)!r}: chain too long or a loop")


def _symlink_target(parts: Parts, linkname: str) -> Parts:
    """Where a symlink at ``parts`` points, refusing targets outside the top folder."""
    name = "/".join(parts)
    if not linkname or linkname.startswith("/") or "\x00" in linkname:
        raise ArchiveError(f"symlink {name!r} has an absolute or empty target {linkname!r}")
    resolved = list(parts[:-1])
    for part in linkname.split("/"):
        if part in {"", "."}:
            continue
        if part == "..":
            if len(resolved) <= 1:
                raise ArchiveError(f"symlink {name!r} points outside the tree: {linkname!r}")
            resolved.pop()
        else:
            resolved.append(part)
    return tuple(resolved)


def _members(
    path: Path, limits: ArchiveLimits, stack: ExitStack, budget: SizeBudget
) -> Iterator[_Member]:
    with path.open("rb") as f:
        magic = f.read(6)
    if magic.startswith(_ZIP_MAGIC):
        return _zip_members(path, limits, budget)
    return _tar_members(path, magic, stack, budget)


def _zip_members(path: Path, limits: ArchiveLimits, budget: SizeBudget) -> Iterator[_Member]:
    archive = read_zip(path, limits)
    for entry in archive.entries:
        budget.total += len(entry.data)  # read_zip checked the totals already
        parts = member_parts(entry.name, limits)
        unix = entry.unix_mode if entry.create_system == _UNIX else 0
        mtime_ns = calendar.timegm((*entry.date_time, 0, 0, 0)) * 1_000_000_000
        if entry.is_dir:
            yield _Member(parts, _Kind.DIR, _dir_mode(unix), mtime_ns)
        else:
            mode = _file_mode(unix) if stat.S_IMODE(unix) else 0o644
            yield _Member(
                parts, _Kind.FILE, mode, mtime_ns, len(entry.data), (), iter([entry.data])
            )


def _decompressed(raw: BinaryIO, magic: bytes, stack: ExitStack) -> _Readable:
    if magic.startswith(b"\x1f\x8b"):
        return stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
    if magic.startswith(b"BZh"):
        return stack.enter_context(bz2.BZ2File(raw))
    if magic.startswith(b"\xfd7zXZ\x00"):
        return stack.enter_context(lzma.LZMAFile(raw))
    return raw


def _tar_members(
    path: Path, magic: bytes, stack: ExitStack, budget: SizeBudget
) -> Iterator[_Member]:
    limits = budget.limits
    raw = stack.enter_context(path.open("rb"))
    stream = _decompressed(raw, magic, stack)
    capped = _CappedStream(stream, limits, compressed=path.stat().st_size)
    tf = stack.enter_context(
        tarfile.open(  # noqa: SIM115 - closed by the caller's ExitStack
            fileobj=cast(IO[bytes], capped),
            mode="r|",
            encoding="utf-8",
            errors="surrogateescape",
        )
    )
    for info in tf:
        budget.add_entry(info.name)
        member = _tar_member(info, limits)
        budget.declare(info.name, member.size)
        capped.allow(member.size)
        if member.kind is _Kind.FILE:
            member.chunks = _tar_chunks(tf, info, budget, limits)
        yield member


def _tar_member(info: tarfile.TarInfo, limits: ArchiveLimits) -> _Member:
    parts = member_parts(info.name + ("/" if info.isdir() else ""), limits, lenient=True)
    name = "/".join(parts)
    mtime_ns = round(info.mtime * 1_000_000_000)
    if info.issparse():
        raise ArchiveError(f"{name!r}: sparse members are refused")
    if info.isreg():
        return _Member(parts, _Kind.FILE, _file_mode(info.mode), mtime_ns, info.size)
    if info.isdir():
        return _Member(parts, _Kind.DIR, _dir_mode(info.mode), mtime_ns)
    if info.issym():
        target = _symlink_target(parts, info.linkname)
        return _Member(parts, _Kind.SYMLINK, 0, mtime_ns, link=target)
    if info.islnk():
        target = member_parts(info.linkname, limits, lenient=True)
        if len(target) < 2 or target[0] != parts[0]:
            raise ArchiveError(f"hard link {name!r} points outside the tree: {info.linkname!r}")
        return _Member(parts, _Kind.HARDLINK, 0, mtime_ns, link=target)
    raise ArchiveError(f"{name!r}: member type {info.type!r} (device, fifo ...) is refused")


def _tar_chunks(
    tf: tarfile.TarFile, info: tarfile.TarInfo, budget: SizeBudget, limits: ArchiveLimits
) -> Iterator[bytes]:
    source = tf.extractfile(info)
    if source is None:
        raise ArchiveError(f"{info.name!r}: no content")
    produced = 0
    with source:
        while chunk := source.read(limits.chunk_size):
            produced += len(chunk)
            budget.consume(info.name, produced, len(chunk))
            yield chunk
    if produced != info.size:
        raise ArchiveError(f"{info.name!r}: truncated ({produced} of {info.size} bytes)")


def _file_mode(mode: int) -> int:
    return (mode & 0o777) | 0o600


def _dir_mode(mode: int) -> int:
    return (mode & 0o777) | 0o700 if mode & 0o777 else 0o755


class _CappedStream(io.RawIOBase):
    """The decompressed tar stream, refused as soon as it is larger than announced.

    tarfile buffers pax and long-name headers whole, so the bytes it may read between
    two members are bounded by ``max_header_bytes``; after a member is announced, its
    declared size is added. The whole stream must also keep a sane compression ratio.
    """

    _SLACK = 2 * tarfile.RECORDSIZE  # tarfile reads ahead one record at a time

    def __init__(self, inner: _Readable, limits: ArchiveLimits, compressed: int) -> None:
        super().__init__()
        self._inner = inner
        self._limits = limits
        self._compressed = compressed
        self.position = 0
        self._limit = limits.max_header_bytes + self._SLACK

    def readable(self) -> bool:
        return True

    def allow(self, size: int) -> None:
        """Permit reading a member of ``size`` bytes and the headers after it."""
        padded = -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        self._limit = self.position + padded + self._limits.max_header_bytes + self._SLACK

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            size = self._limits.chunk_size
        data = self._inner.read(min(size, self._limit - self.position + 1))
        self.position += len(data)
        if self.position > self._limit:
            raise ArchiveError(
                "the tar stream holds more than its headers declare (oversized headers?)"
            )
        if self.position > self._limits.max_total_size + self._limits.max_header_bytes:
            raise ArchiveError(f"more than {self._limits.max_total_size} bytes uncompressed")
        check_ratio("the archive", self.position, self._compressed, self._limits)
        return data


class _Tree:
    """Creates files and folders below an open directory, never following a symlink."""

    def __init__(self, root: int) -> None:
        self.root = root
        self._created: set[Parts] = set()

    def _open_dir(self, parts: Parts, *, create: bool) -> int:
        fd = os.dup(self.root)
        try:
            for depth, part in enumerate(parts, start=1):
                if create and parts[:depth] not in self._created:
                    try:
                        os.mkdir(part, 0o700, dir_fd=fd)
                        self._created.add(parts[:depth])
                    except FileExistsError:
                        pass  # opened below with O_NOFOLLOW: a symlink there is refused
                child = os.open(part, _NOFOLLOW_DIR, dir_fd=fd)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def directory(self, parts: Parts) -> None:
        """Make sure the folder exists."""
        os.close(self._open_dir(parts, create=True))

    def write(self, parts: Parts, chunks: Iterator[bytes], mode: int, mtime_ns: int | None) -> None:
        """Create a new regular file (never an existing one) from ``chunks``."""
        parent = self._open_dir(parts[:-1], create=True)
        try:
            fd = os.open(parts[-1], _NEW_FILE, 0o600, dir_fd=parent)
        except FileExistsError:
            raise ArchiveError(f"{'/'.join(parts)!r} already exists") from None
        finally:
            os.close(parent)
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fchmod(fd, mode)
            if mtime_ns is not None:
                os.utime(fd, ns=(mtime_ns, mtime_ns))

    def symlink(self, parts: Parts, target: str) -> None:
        """Create the symlink ``parts`` -> ``target`` (checked to stay in the tree)."""
        parent = self._open_dir(parts[:-1], create=True)
        try:
            os.symlink(target, parts[-1], dir_fd=parent)
        except FileExistsError:
            raise ArchiveError(f"{'/'.join(parts)!r} already exists") from None
        finally:
            os.close(parent)

    def read(self, parts: Parts) -> Iterator[bytes]:
        """Stream a file this tree wrote."""
        parent = self._open_dir(parts[:-1], create=False)
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        finally:
            os.close(parent)
        with os.fdopen(fd, "rb") as source:
            while chunk := source.read(io.DEFAULT_BUFFER_SIZE * 64):
                yield chunk

    def finish_directories(self, described: dict[Parts, tuple[int, int | None]]) -> None:
        """Give created folders their final modes and mtimes, deepest first."""
        for parts in sorted(self._created, key=len, reverse=True):
            mode, mtime_ns = described.get(parts, (0o755, None))
            fd = self._open_dir(parts, create=False)
            try:
                os.fchmod(fd, mode)
                if mtime_ns is not None:
                    os.utime(fd, ns=(mtime_ns, mtime_ns))
            finally:
                os.close(fd)
