"""Infer the archive inputs (clock, time zone, umask) of the original build from its wheel.

Zip entries store a local time at 2-second resolution. Backends write either one
fixed time (``SOURCE_DATE_EPOCH``, or their own constant) or each file's mtime: source
files then carry the mtimes of the tree the wheel was built from (usually the sdist's
tar mtimes) and files generated during the build carry the wall clock of the build.
All of this can be replayed; see ``docs/reproducibility.md``.
"""

from __future__ import annotations

import calendar
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from rebuilder.plan.strategy import ArchiveInputs
from rebuilder.plan.zone import ZoneRule, infer_zone

ZIP_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip entry can hold
_UNIX = 3  # zip "version made by" host system of Unix
_QUARTER_HOUR = 900
MAX_GENERATED_TIMES = 512  # beyond this, one build clock stands for all generated files
_MAX_TZ_OFFSET = 14 * 3600


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


def zip_floor(mtime: float) -> int:
    """What a zip entry stores for an mtime: whole seconds, rounded down to even."""
    seconds = int(mtime)
    return seconds - seconds % 2


def is_generated(name: str) -> bool:
    """Entries a backend writes during the build: the wheel's own ``*.dist-info/`` folder.

    Only the top-level one: vendored packages carry ``.dist-info`` folders of their own,
    which are sources like any other file.
    """
    top, _, rest = name.partition("/")
    return bool(rest) and top.endswith(".dist-info")


def posix_tz(offset_seconds: int) -> str:
    """A POSIX ``TZ`` value for a fixed offset east of UTC (``<+0200>-2``)."""
    if offset_seconds == 0:
        return "UTC"
    sign = "+" if offset_seconds > 0 else "-"
    hours, rest = divmod(abs(offset_seconds), 3600)
    minutes = rest // 60
    name = f"<{sign}{hours:02d}{minutes:02d}>"
    posix_sign = "-" if offset_seconds > 0 else ""  # POSIX counts west of UTC as positive
    return f"{name}{posix_sign}{hours}:{minutes:02d}" if minutes else f"{name}{posix_sign}{hours}"


def infer_archive_inputs(
    entries: Sequence[TimedEntry],
    source_mtimes: Mapping[str, float] | None = None,
    zones: Iterable[ZoneRule] | None = None,
) -> ArchiveInputs:
    """How to set clock, time zone and umask so the rebuild writes the same metadata.

    ``source_mtimes`` maps paths of the extracted sdist (relative to its root) to their
    mtimes. One time on every entry: that time is ``SOURCE_DATE_EPOCH`` (backends with a
    constant of their own write that same constant either way). Several times: the
    build had no ``SOURCE_DATE_EPOCH``; sources keep their mtimes, shifted by the time
    zone the original build wrote local times in, or all set to one time when the
    published sources show one time the sdist does not; the build clock is replayed
    from the generated entries (their most common time, the later one on a tie).
    When the sources show two offsets (files from both seasons of a zone with summer
    time), the zone is inferred from ``zones`` (the host's database by default; see
    :mod:`rebuilder.plan.zone`).
    """
    files = [e for e in entries if not e.name.endswith("/")]
    umask = infer_umask(files)
    times = [zip_epoch(e.date_time) for e in files]
    if not times:
        return ArchiveInputs(source_date_epoch=None, build_clock=None, umask=umask)
    if len(set(times)) == 1:
        return ArchiveInputs(
            source_date_epoch=max(times[0], ZIP_EPOCH), build_clock=None, umask=umask
        )
    generated = [zip_epoch(e.date_time) for e in files if is_generated(e.name)]
    counts = Counter(generated or times)
    build_clock = max(counts.items(), key=lambda item: (item[1], item[0]))[0]
    # ``wheel`` stamps RECORD with "now" when it closes the archive: the clock the build
    # reads must then show the time RECORD carries.
    record = [
        zip_epoch(e.date_time)
        for e in files
        if is_generated(e.name) and e.name.partition("/")[2] == "RECORD"
    ]
    if record:
        build_clock = record[0]
    sources = [e for e in files if not is_generated(e.name)]
    pairs = _pair_with_sdist(sources, source_mtimes or {})
    zone = infer_zone(pairs, zones)
    offset_at: Callable[[float], int]
    if zone is not None:
        tz, offset_at = zone.posix, zone.offset_at
    else:
        offset = _tz_offset(pairs)
        tz, offset_at = posix_tz(offset), _fixed(offset)
    source_mtime = None
    source_times = {zip_epoch(e.date_time) for e in sources}
    if len(source_times) == 1 and not _agree(pairs, offset_at):
        source_mtime = source_times.pop()
        tz, offset_at = posix_tz(0), _fixed(0)
    return ArchiveInputs(
        source_date_epoch=None,
        build_clock=build_clock,
        umask=umask,
        tz=tz,
        source_mtime=source_mtime,
        generated_times=_generated_times(files, source_mtimes or {}, offset_at, source_mtime),
    )


def _fixed(offset: int) -> Callable[[float], int]:
    """The offset function of a zone without summer time."""

    def offset_at(when: float) -> int:
        del when
        return offset

    return offset_at


def _generated_times(
    files: Sequence[TimedEntry],
    source_mtimes: Mapping[str, float],
    offset_at: Callable[[float], int],
    source_mtime: int | None,
) -> tuple[tuple[str, int], ...]:
    """Each generated entry's published time: the original build clock when it wrote it.

    Generated means written by the build: ``*.dist-info/*``, and source entries whose
    published time is not their sdist mtime (version files and the like). The sandbox
    applies these only to files that its own build writes.
    """
    by_name = _index_by_name(source_mtimes)
    matched = {
        e.name
        for e in files
        if not is_generated(e.name)
        and (
            zip_epoch(e.date_time) == source_mtime
            or any(
                zip_epoch(e.date_time) == zip_floor(source_mtimes[p] + offset_at(source_mtimes[p]))
                for p in _sdist_candidates(by_name, e.name)
            )
        )
    }
    times = tuple(sorted((e.name, zip_epoch(e.date_time)) for e in files if e.name not in matched))
    return times if len(times) <= MAX_GENERATED_TIMES else ()


def _pair_with_sdist(
    sources: Sequence[TimedEntry], source_mtimes: Mapping[str, float]
) -> list[tuple[int, float]]:
    """(published zip time, sdist mtime) for wheel entries found in the sdist by path suffix."""
    by_name = _index_by_name(source_mtimes)
    pairs = []
    for entry in sources:
        candidates = _sdist_candidates(by_name, entry.name)
        if len(candidates) == 1:
            pairs.append((zip_epoch(entry.date_time), source_mtimes[candidates[0]]))
    return pairs


def _index_by_name(source_mtimes: Mapping[str, float]) -> dict[str, list[str]]:
    """Sdist paths by their last component, so a wheel path is matched without a scan."""
    by_name: dict[str, list[str]] = {}
    for path in source_mtimes:
        by_name.setdefault(path.rsplit("/", 1)[-1], []).append(path)
    return by_name


def _sdist_candidates(by_name: Mapping[str, list[str]], wheel_path: str) -> list[str]:
    """Sdist paths that end with ``wheel_path`` (``src/pkg/x.py`` for ``pkg/x.py``)."""
    return [
        p
        for p in by_name.get(wheel_path.rsplit("/", 1)[-1], ())
        if p == wheel_path or p.endswith("/" + wheel_path)
    ]


def _tz_offset(pairs: Sequence[tuple[int, float]]) -> int:
    """The offset (a whole quarter hour) that most published source times show, or 0."""
    offsets: Counter[int] = Counter()
    for published, mtime in pairs:
        delta = published - zip_floor(mtime)
        rounded = round(delta / _QUARTER_HOUR) * _QUARTER_HOUR
        if rounded and abs(rounded) <= _MAX_TZ_OFFSET and abs(delta - rounded) <= 2:
            offsets[rounded] += 1
    if not offsets:
        return 0
    offset, count = offsets.most_common(1)[0]
    return offset if count * 2 > len(pairs) else 0


def _agree(pairs: Sequence[tuple[int, float]], offset_at: Callable[[float], int]) -> bool:
    """True when most published source times are the sdist's mtimes (after the offset)."""
    if not pairs:
        return False
    same = sum(1 for published, mtime in pairs if published == zip_floor(mtime + offset_at(mtime)))
    return same * 2 > len(pairs)


def infer_umask(entries: Sequence[TimedEntry]) -> int:
    """The umask under which the generated files were written (default 022).

    Read from the permission bits of a file the backend creates with the process
    umask: ``WHEEL`` first (always written fresh), else ``METADATA`` (setuptools copies
    that one from ``PKG-INFO``, so it can carry an older mode). Only Unix-made entries
    carry such bits.
    """
    for witness in ("WHEEL", "METADATA"):
        for entry in entries:
            top_level = is_generated(entry.name) and entry.name.partition("/")[2] == witness
            if not top_level or entry.create_system != _UNIX:
                continue
            mode = stat.S_IMODE(entry.external_attr >> 16)
            if mode & stat.S_IRUSR:  # else no Unix bits recorded, or nonsense
                # Files are created 0o666 & ~umask; execute bits say nothing of the umask.
                return (~mode) & 0o666
    return 0o022
