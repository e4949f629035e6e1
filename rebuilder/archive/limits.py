"""Limits and name rules applied to every member of an untrusted archive.

Wheels and sdists come from the internet. Every reader checks the sizes an archive
declares before reading it and counts the bytes it really produces while reading, so a
lying header cannot make it allocate more than the limits allow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rebuilder.errors import ArchiveError

logger = logging.getLogger(__name__)

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


@dataclass(frozen=True)
class ArchiveLimits:
    """How much an archive may hold before it is refused as hostile.

    ``max_ratio`` applies to members (zip) or whole streams (tar) that decompress to
    more than ``ratio_floor`` bytes: small files compress arbitrarily well legitimately.
    ``max_header_bytes`` bounds what a tar stream may hold between two members (pax and
    GNU long-name headers), which tarfile buffers in memory.
    """

    max_entries: int = 50_000
    max_total_size: int = 2 * GIB
    max_member_size: int = 512 * MIB
    max_ratio: float = 200.0
    ratio_floor: int = 1 * MIB
    max_name_length: int = 4096
    max_header_bytes: int = 1 * MIB
    max_text_size: int = 4 * MIB
    max_link_depth: int = 8
    chunk_size: int = 1 * MIB


DEFAULT_LIMITS = ArchiveLimits()


def check_ratio(what: str, size: int, compressed: int, limits: ArchiveLimits) -> None:
    """Refuse ``size`` bytes made from ``compressed`` bytes when the ratio is a bomb's."""
    if size > limits.ratio_floor and size > limits.max_ratio * max(compressed, 1):
        raise ArchiveError(
            f"{what}: compression ratio {size / max(compressed, 1):.0f} is over the limit "
            f"{limits.max_ratio:.0f} (possible decompression bomb)"
        )


@dataclass
class SizeBudget:
    """Running totals of one archive, checked at every chunk read."""

    limits: ArchiveLimits
    entries: int = 0
    total: int = 0

    def add_entry(self, name: str) -> None:
        """Count one more member."""
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise ArchiveError(
                f"more than {self.limits.max_entries} entries (at {name!r}): refused"
            )

    def declare(self, name: str, size: int) -> None:
        """Check a member's declared size before reading it."""
        if size < 0:
            raise ArchiveError(f"{name!r}: negative size {size}")
        if size > self.limits.max_member_size:
            raise ArchiveError(
                f"{name!r}: {size} bytes is over the member limit {self.limits.max_member_size}"
            )

    def consume(self, name: str, member_bytes: int, chunk: int) -> None:
        """Account for ``chunk`` bytes just produced; ``member_bytes`` is the member's total."""
        self.total += chunk
        if member_bytes > self.limits.max_member_size:
            raise ArchiveError(
                f"{name!r}: more than {self.limits.max_member_size} bytes (member limit)"
            )
        if self.total > self.limits.max_total_size:
            raise ArchiveError(
                f"more than {self.limits.max_total_size} bytes uncompressed in total "
                f"(at {name!r}): refused"
            )


def member_parts(name: str, limits: ArchiveLimits, *, lenient: bool = False) -> tuple[str, ...]:
    """The path components of a member name, refusing anything that could escape.

    Refused: empty or over-long names, NUL and backslashes, absolute names and drive
    letters, ``..`` components, and names that are not valid UTF-8. ``lenient`` accepts
    ``.`` and empty components (``./pkg//x``, common in tar files) and drops them;
    otherwise (wheels) they are refused too. A trailing ``/`` (directory) is allowed.
    """
    if not name:
        raise ArchiveError("a member has an empty name")
    if len(name) > limits.max_name_length:
        raise ArchiveError(f"member name over {limits.max_name_length} characters: {name[:80]!r}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ArchiveError(f"member name is not valid UTF-8: {name!r}") from None
    if "\x00" in name:
        raise ArchiveError(f"member name contains NUL: {name!r}")
    if "\\" in name:
        raise ArchiveError(f"member name contains a backslash: {name!r}")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"absolute member name: {name!r}")
    raw = name[:-1].split("/") if name.endswith("/") else name.split("/")
    parts: list[str] = []
    for part in raw:
        if part == "..":
            raise ArchiveError(f"member name escapes the archive: {name!r}")
        if part in {"", "."}:
            if lenient:
                continue
            raise ArchiveError(f"member name has an empty or '.' component: {name!r}")
        parts.append(part)
    if not parts:
        raise ArchiveError(f"member name names no file: {name!r}")
    return tuple(parts)
