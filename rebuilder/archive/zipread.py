"""Read an untrusted zip (a wheel, a zip sdist) into a complete in-memory model.

The model holds every field that determines the archive's bytes, so two archives with
equal models differ at most in layout details (see ``rebuilder.compare.stabilizers``).
Nothing is extracted to disk here.
"""

from __future__ import annotations

import hashlib
import logging
import lzma
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from rebuilder.archive.limits import (
    DEFAULT_LIMITS,
    ArchiveLimits,
    SizeBudget,
    check_ratio,
    member_parts,
)
from rebuilder.errors import ArchiveError

logger = logging.getLogger(__name__)

DateTime = tuple[int, int, int, int, int, int]

UTF8_FLAG = 0x800
_ENCRYPTED_FLAGS = 0x1 | 0x40  # traditional and strong encryption
_DESCRIPTOR_FLAG = 0x8
_DESCRIPTOR_SIZES = frozenset({12, 16, 20, 24})  # with/without signature, zip64 or not
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIGNATURE = b"PK\x05\x06"
_EOCD_SEARCH = 0xFFFF + _EOCD.size

# What the zip and decompression libraries raise on malformed input.
_MALFORMED = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    struct.error,
    NotImplementedError,
    RuntimeError,
    UnicodeDecodeError,
    OverflowError,
)


@dataclass(frozen=True)
class ZipEntry:
    """One member, with every field that is written to the archive for it."""

    name: str
    data: bytes = field(repr=False)
    date_time: DateTime = (1980, 1, 1, 0, 0, 0)
    external_attr: int = 0
    create_system: int = 3
    create_version: int = 20
    extract_version: int = 20
    flag_bits: int = 0
    compress_type: int = zipfile.ZIP_DEFLATED
    compress_size: int = 0
    raw_sha256: str = ""
    crc: int = 0
    internal_attr: int = 0
    extra: bytes = b""
    local_extra: bytes = b""
    comment: bytes = b""

    @property
    def is_dir(self) -> bool:
        """A directory entry (its name ends with ``/``)."""
        return self.name.endswith("/")

    @property
    def unix_mode(self) -> int:
        """The Unix mode in the high 16 bits of the external attributes (0 if none)."""
        return (self.external_attr >> 16) & 0xFFFF


@dataclass(frozen=True)
class ZipArchive:
    """A whole zip: its entries in archive order and its comment."""

    entries: tuple[ZipEntry, ...]
    comment: bytes = b""

    def names(self) -> tuple[str, ...]:
        """Entry names in archive order."""
        return tuple(e.name for e in self.entries)

    def get(self, name: str) -> ZipEntry | None:
        """The entry called ``name``, if any."""
        return next((e for e in self.entries if e.name == name), None)


def read_zip(path: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> ZipArchive:
    """Read and check the whole zip at ``path``; raise ArchiveError if it is unusable.

    Refused: malformed or truncated zips, CRC errors, encrypted entries, symlinks,
    unsafe or duplicate names, overlapping entries or bytes the central directory does
    not account for, and anything over ``limits`` (checked on the declared sizes and
    again on the bytes really decompressed).
    """
    try:
        _check_end_record(path, limits)
        with zipfile.ZipFile(path) as zf, path.open("rb") as raw:
            infos = zf.infolist()
            budget = SizeBudget(limits)
            for info in infos:
                budget.add_entry(info.filename)
                _check_info(info, limits, budget)
            _check_names(infos, limits)
            local_extras = _check_layout(infos, zf.start_dir, raw)
            entries = tuple(
                _read_entry(
                    zf,
                    raw,
                    info,
                    local_extra=local_extras[info.header_offset],
                    budget=budget,
                    limits=limits,
                )
                for info in infos
            )
            comment = zf.comment
    except ArchiveError:
        raise
    except _MALFORMED as exc:
        raise ArchiveError(f"{path.name}: not a readable zip: {exc}") from None
    logger.debug("read %s: %d entries", path.name, len(entries))
    return ZipArchive(entries, comment)


def _check_end_record(path: Path, limits: ArchiveLimits) -> None:
    """The end record must be unambiguous and end the file; its entry count within limits.

    zipfile takes the last end-record signature it finds. A comment holding a forged
    end record, or bytes after the comment, would make readers that search differently
    see another archive: refused. The entry count is checked before zipfile parses the
    central directory into memory.
    """
    with path.open("rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - _EOCD_SEARCH))
        tail = f.read()
    at = tail.rfind(_EOCD_SIGNATURE)
    if at < 0 or len(tail) - at < _EOCD.size:
        return  # zipfile reports the malformed archive with its own message
    ends = [i for i in _signature_offsets(tail) if _ends_file(tail, i)]
    if ends != [at]:
        raise ArchiveError(
            f"{path.name}: the end of central directory record is ambiguous or followed "
            "by bytes it does not account for"
        )
    total = _EOCD.unpack_from(tail, at)[4]
    if total != 0xFFFF and total > limits.max_entries:
        raise ArchiveError(f"{path.name}: {total} entries is over the limit {limits.max_entries}")


def _signature_offsets(tail: bytes) -> Iterator[int]:
    at = tail.find(_EOCD_SIGNATURE)
    while at >= 0:
        yield at
        at = tail.find(_EOCD_SIGNATURE, at + 1)


def _ends_file(tail: bytes, at: int) -> bool:
    """An end record at ``at`` whose comment length reaches exactly the end of the file."""
    if len(tail) - at < _EOCD.size:
        return False
    comment_length: int = _EOCD.unpack_from(tail, at)[-1]
    return at + _EOCD.size + comment_length == len(tail)


def _check_info(info: zipfile.ZipInfo, limits: ArchiveLimits, budget: SizeBudget) -> None:
    name = info.filename
    if info.orig_filename != name:  # zipfile cut the name at a NUL byte
        raise ArchiveError(f"member name contains NUL: {info.orig_filename!r}")
    if info.flag_bits & _ENCRYPTED_FLAGS:
        raise ArchiveError(f"{name!r}: encrypted entries are refused")
    if stat.S_ISLNK((info.external_attr >> 16) & 0xFFFF):
        raise ArchiveError(f"{name!r}: symbolic link entries are refused")
    budget.declare(name, info.file_size)
    check_ratio(repr(name), info.file_size, info.compress_size, limits)


def _check_names(infos: list[zipfile.ZipInfo], limits: ArchiveLimits) -> None:
    seen: set[str] = set()
    declared = 0
    for info in infos:
        member_parts(info.filename, limits)
        if info.filename in seen:
            raise ArchiveError(f"duplicate entry {info.filename!r}")
        seen.add(info.filename)
        declared += info.file_size
    if declared > limits.max_total_size:
        raise ArchiveError(
            f"{declared} bytes declared uncompressed is over the limit {limits.max_total_size}"
        )


def _check_layout(infos: list[zipfile.ZipInfo], start_dir: int, raw: BinaryIO) -> dict[int, bytes]:
    """Entries must tile the file: no prefix, no overlap, no hidden bytes between them.

    Overlapping entries are the trick of non-recursive zip bombs; unaccounted bytes could
    hold members that streaming unzippers see and central-directory readers do not.
    Returns each entry's local extra field, keyed by header offset.
    """
    local_extras: dict[int, bytes] = {}
    position = 0
    descriptor = False  # the previous entry is followed by a data descriptor
    for info in sorted(infos, key=lambda i: i.header_offset):
        if not _accounted(info.header_offset - position, descriptor):
            raise ArchiveError(_layout_message(info.filename, info.header_offset, position))
        raw.seek(info.header_offset)
        header = raw.read(_LOCAL_HEADER.size)
        if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
            raise ArchiveError(f"{info.filename!r}: bad local header")
        name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
        raw.seek(name_length, 1)
        local_extras[info.header_offset] = raw.read(extra_length)
        position = (
            info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        ) + info.compress_size
        descriptor = bool(info.flag_bits & _DESCRIPTOR_FLAG)
    # Also for no entries: a forged empty end record must not hide the archive before it.
    if not _accounted(start_dir - position, descriptor):
        raise ArchiveError(_layout_message("central directory", start_dir, position))
    return local_extras


def _accounted(gap: int, descriptor: bool) -> bool:
    return gap == 0 or (descriptor and gap in _DESCRIPTOR_SIZES)


def _layout_message(what: str, offset: int, expected: int) -> str:
    if offset < expected:
        return f"{what!r} overlaps the entry before it (possible zip bomb)"
    if expected == 0:
        return f"{offset} bytes of data before the first entry"
    return f"{offset - expected} bytes before {what!r} that no entry accounts for"


def _read_entry(
    zf: zipfile.ZipFile,
    raw: BinaryIO,
    info: zipfile.ZipInfo,
    *,
    local_extra: bytes,
    budget: SizeBudget,
    limits: ArchiveLimits,
) -> ZipEntry:
    raw_digest = hashlib.sha256()
    for chunk in _raw_chunks(raw, info, limits.chunk_size):
        raw_digest.update(chunk)
    chunks: list[bytes] = []
    produced = 0
    with zf.open(info) as member:
        while chunk := member.read(limits.chunk_size):
            produced += len(chunk)
            budget.consume(info.filename, produced, len(chunk))
            if produced > info.file_size:
                raise ArchiveError(f"{info.filename!r}: more data than its declared size")
            chunks.append(chunk)
    if produced != info.file_size:
        raise ArchiveError(f"{info.filename!r}: {produced} bytes, {info.file_size} declared")
    return ZipEntry(
        name=info.filename,
        data=b"".join(chunks),
        date_time=info.date_time,
        external_attr=info.external_attr,
        create_system=info.create_system,
        create_version=info.create_version,
        extract_version=info.extract_version,
        flag_bits=info.flag_bits,
        compress_type=info.compress_type,
        compress_size=info.compress_size,
        raw_sha256=raw_digest.hexdigest(),
        crc=info.CRC,
        internal_attr=info.internal_attr,
        extra=info.extra,
        local_extra=local_extra,
        comment=info.comment,
    )


def _raw_chunks(raw: BinaryIO, info: zipfile.ZipInfo, chunk_size: int) -> Iterator[bytes]:
    """The entry's compressed bytes exactly as stored."""
    raw.seek(info.header_offset)
    header = _LOCAL_HEADER.unpack(raw.read(_LOCAL_HEADER.size))
    raw.seek(header[-2] + header[-1], 1)
    left = info.compress_size
    while left > 0:
        chunk = raw.read(min(chunk_size, left))
        if not chunk:
            raise ArchiveError(f"{info.filename!r}: truncated compressed data")
        left -= len(chunk)
        yield chunk
