"""Infer the archive inputs (clock, umask) of the original build from its wheel.

Zip entries store a local time at 2-second resolution. Backends write either one
fixed time (``SOURCE_DATE_EPOCH``, or their own constant) or each file's mtime: source
files then carry the sdist's tar mtimes and files generated during the build carry
the wall clock of the build. Both can be replayed.
"""

from __future__ import annotations

import calendar
import stat
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from rebuilder.plan.strategy import ArchiveInputs

ZIP_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip entry can hold
_UNIX = 3  # zip "version made by" host system of Unix


class TimedEntry(Protocol):
    """What inference needs of a zip entry."""

    @property
    def name(self) -> str: ...
    @property
    def date_time(self) -> tuple[int, int, int, int, int, int]: ...
    @property
    def external_attr(self) -> int: ...
    @property
    def create_system(self) -> int: ...


def zip_epoch(date_time: tuple[int, int, int, int, int, int]) -> int:
    """A zip entry's time read as UTC, in seconds since the epoch."""
    return calendar.timegm((*date_time, 0, 0, 0))


def _is_generated(name: str) -> bool:
    """Entries a backend writes during the build rather than copies from the source."""
    return ".dist-info/" in name


def infer_archive_inputs(entries: Sequence[TimedEntry]) -> ArchiveInputs:
    """How to set the clock and umask so the rebuild writes the same archive metadata.

    One time on every entry: that time is ``SOURCE_DATE_EPOCH`` (backends that use a
    constant of their own write that same constant either way). Several times: the
    build had no ``SOURCE_DATE_EPOCH``; sources keep the sdist's mtimes and the build
    clock is replayed from the entries the build generated (the most common time among
    ``*.dist-info/`` entries, the later one on a tie).
    """
    files = [e for e in entries if not e.name.endswith("/")]
    times = [zip_epoch(e.date_time) for e in files]
    umask = infer_umask(files)
    if not times:
        return ArchiveInputs(source_date_epoch=None, build_clock=None, umask=umask)
    if len(set(times)) == 1:
        return ArchiveInputs(
            source_date_epoch=max(times[0], ZIP_EPOCH), build_clock=None, umask=umask
        )
    generated = [zip_epoch(e.date_time) for e in files if _is_generated(e.name)]
    pool = generated or times
    counts = Counter(pool)
    best = max(counts.items(), key=lambda item: (item[1], item[0]))[0]
    return ArchiveInputs(source_date_epoch=None, build_clock=best, umask=umask)


def infer_umask(entries: Sequence[TimedEntry]) -> int:
    """The umask under which the generated files were written (default 022).

    Read from the permission bits of the generated ``METADATA`` file, which the backend
    creates with the process umask; only Unix-made entries carry such bits.
    """
    for entry in entries:
        if not entry.name.endswith(".dist-info/METADATA") or entry.create_system != _UNIX:
            continue
        mode = stat.S_IMODE(entry.external_attr >> 16)
        if not mode & stat.S_IRUSR:  # no Unix bits recorded, or nonsense: keep the default
            break
        # Files are created 0o666 & ~umask; execute bits say nothing about the umask.
        return (~mode) & 0o666
    return 0o022
