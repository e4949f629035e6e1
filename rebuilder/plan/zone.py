"""A real time zone (with summer time) for a build that wrote local times.

Backends that write each file's mtime into the zip write it in local time. When the
source files of a wheel were modified in different seasons, a zone with summer time
shows two offsets against the sdist's mtimes (``+0100`` for winter files, ``+0200``
for summer ones). One fixed offset then leaves part of the files an hour off. Here the
zone is inferred from the set of (published time, sdist mtime) pairs: the zones of the
host's time zone database whose offset at each mtime explains every pair, and of those
the POSIX rule string (the ``TZ`` value glibc understands without a database, e.g.
``CET-1CEST,M3.5.0,M10.5.0/3``) that they share. See ``docs/reproducibility.md``.
"""

from __future__ import annotations

import logging
import re
import zoneinfo
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)

_QUARTER_HOUR = 900
_MAX_FOOTER = 256
_SIX_HOURS = 6 * 3600
_ABBREVIATION_RE = re.compile(r"<[^>]*>|[A-Za-z]{3,}")


def rule_key(posix: str) -> str:
    """A POSIX rule without its zone abbreviations: the offsets and transitions only."""
    return _ABBREVIATION_RE.sub("", posix)


@dataclass(frozen=True)
class ZoneRule:
    """One zone: its name, its POSIX ``TZ`` rule and its UTC offset at an instant."""

    name: str
    posix: str
    offset_at: Callable[[float], int]


def _posix_footer(name: str) -> str | None:
    """The POSIX rule at the end of a TZif (v2+) file of the host's database."""
    for root in zoneinfo.TZPATH:
        path = Path(root, name)
        if path.is_file():
            try:
                data = path.read_bytes()
            except OSError:
                return None
            footer = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
            if len(footer) > _MAX_FOOTER or not footer.isascii():
                return None
            return footer.decode() or None
    return None


def _offset_function(zone: zoneinfo.ZoneInfo) -> Callable[[float], int]:
    def offset_at(when: float) -> int:
        delta = datetime.fromtimestamp(when, UTC).astimezone(zone).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    return offset_at


def host_zones() -> list[ZoneRule]:
    """Every zone of the host's database that has summer time in its current rule."""
    rules = []
    for name in sorted(zoneinfo.available_timezones()):
        posix = _posix_footer(name)
        if posix is None or "," not in posix:
            continue
        try:
            zone = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
        rules.append(ZoneRule(name, posix, _offset_function(zone)))
    return rules


def observed_offsets(pairs: Sequence[tuple[int, float]]) -> list[tuple[float, int]]:
    """(sdist mtime, offset rounded to a quarter hour) for pairs a zone can explain."""
    out = []
    for published, mtime in pairs:
        floor = int(mtime) - int(mtime) % 2
        delta = published - floor
        rounded = round(delta / _QUARTER_HOUR) * _QUARTER_HOUR
        if abs(delta - rounded) <= 2:
            out.append((mtime, rounded))
    return out


def _grid(first: float, last: float) -> list[float]:
    """Instants every six hours over the calendar years from ``first`` to ``last``.

    Zones that agree at all of them agree on the offsets and the days of their
    transitions in those years, whatever their rules are called.
    """
    start = datetime(datetime.fromtimestamp(first, UTC).year, 1, 1, tzinfo=UTC).timestamp()
    end_year = min(
        datetime.fromtimestamp(last, UTC).year, datetime.fromtimestamp(first, UTC).year + 2
    )
    end = datetime(end_year + 1, 1, 1, tzinfo=UTC).timestamp()
    return [start + step * _SIX_HOURS for step in range(int((end - start) // _SIX_HOURS))]


def infer_zone(
    pairs: Sequence[tuple[int, float]], zones: Iterable[ZoneRule] | None = None
) -> ZoneRule | None:
    """The zone with summer time that explains every pair, when the pairs need one.

    Only when the observed offsets take two values: one offset is a fixed zone (the
    caller's business). Every pair must be explained; zones that do so but disagree on
    their offsets or the days of their transitions in those years make the answer
    ambiguous (None). Among zones that agree, whatever their rules are called, the first
    by name stands for them.
    """
    observed = observed_offsets(pairs)
    if len(observed) < 2 or len(observed) * 2 <= len(pairs):
        return None
    if len({offset for _, offset in observed}) != 2:
        return None
    matching = [
        rule
        for rule in (host_zones() if zones is None else zones)
        if all(rule.offset_at(mtime) == offset for mtime, offset in observed)
    ]
    grid = _grid(min(m for m, _ in observed), max(m for m, _ in observed))
    found: dict[tuple[int, ...], ZoneRule] = {}
    for rule in sorted(matching, key=lambda r: r.name):
        found.setdefault(tuple(rule.offset_at(t) for t in grid), rule)
    if len(found) != 1:
        if found:
            names = ", ".join(sorted(rule.posix for rule in found.values()))
            logger.info("several zone rules explain the times: %s", names)
        return None
    return next(iter(found.values()))
