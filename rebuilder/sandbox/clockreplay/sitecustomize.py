"""Clock replay for a build backend, loaded through ``PYTHONPATH`` inside the sandbox.

A wheel built without ``SOURCE_DATE_EPOCH`` carries the sdist's mtimes on copied files
and the wall-clock time of its build on generated ones. To write those same times again,
every file the build creates must *look* to the backend as if it was written at the
original build's clock, while files copied from the sdist keep their own mtimes.

So ``os.stat``, ``os.lstat`` and ``os.fstat`` report ``REBUILDER_BUILD_CLOCK`` as the
mtime of anything modified since ``REBUILDER_BUILD_START_NS`` (and not in the future:
an sdist may carry future mtimes, which must stay as they are). ``time.time`` and
``time.time_ns`` run from the build clock, starting when this process started, and
``SLOWDOWN`` times slower than real time, so a backend that stamps an entry with "now"
at the end of its build (``wheel`` does so for RECORD) lands on the build clock within
the zip's two-second resolution for builds of up to a minute. ``time.monotonic`` and
``time.sleep`` are left alone (so are timeouts measured with them).

``os.fstat`` finds the path of its descriptor through ``/proc/self/fd``. Not covered:
``os.DirEntry.stat`` (a C type that cannot be wrapped) and C code that calls
``stat(2)`` directly.

This file must not import anything but the standard library.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

_CLOCK_ENV = "REBUILDER_BUILD_CLOCK"
_START_ENV = "REBUILDER_BUILD_START_NS"
_MAP_ENV = "REBUILDER_BUILD_CLOCK_MAP"  # JSON {archive path: time the original wrote it}
_NS = 1_000_000_000
#: How much slower than real time the replayed wall clock runs.
SLOWDOWN = 32


def replay_stat(st: os.stat_result, clock: int, start_ns: int, now_ns: int) -> os.stat_result:
    """``st`` with ``clock`` as its mtime when it was modified in [start_ns, now_ns]."""
    if not start_ns <= st.st_mtime_ns <= now_ns:
        return st
    # A stat_result pickles as (visible fields, the named rest): the portable way to
    # rebuild one with every platform field kept.
    reduced: Any = st.__reduce__()
    cls, (visible, named) = reduced
    fields = list(visible)
    fields[8] = clock  # the integer st_mtime
    rest = dict(named)
    rest["st_mtime"] = float(clock)
    rest["st_mtime_ns"] = clock * _NS
    result: os.stat_result = cls(fields, rest)
    return result


def fd_path(fd: int) -> str | None:
    """The path an open file descriptor was opened with (Linux ``/proc``), if known."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")  # noqa: PTH115 - kept free of pathlib
    except OSError:
        return None


def clock_for(path: object, clock: int, clock_map: dict[str, int]) -> int:
    """The original build's clock for ``path``: its entry in the map by path suffix.

    ``path`` may be an open file descriptor (``os.fstat``, as ``wheel`` uses on the file
    it adds): its path is looked up.
    """
    if clock_map and isinstance(path, int) and not isinstance(path, bool):
        path = fd_path(path)
    if not clock_map or not isinstance(path, (str, bytes, os.PathLike)):
        return clock
    text = os.fsdecode(os.fspath(path))
    parts = text.replace(os.sep, "/").split("/")
    # Archive paths hold at most a few components; try the longest suffixes first.
    for size in range(min(len(parts), 8), 0, -1):
        found = clock_map.get("/".join(parts[-size:]))
        if found is not None:
            return found
    # Metadata is written to an ``.egg-info`` (or differently named) folder and copied
    # into the wheel's ``.dist-info``: match by the path inside the metadata folder.
    for index in range(len(parts) - 2, -1, -1):
        if parts[index].endswith((".egg-info", ".dist-info")):
            inner = "/".join(parts[index + 1 :])
            for name, when in clock_map.items():
                top, _, rest = name.partition("/")
                if top.endswith(".dist-info") and rest == inner:
                    return when
            break
    return clock


class _ReplayedStat:
    """A stat function with the build clock replayed.

    An instance, not a function: pathlib before Python 3.11 stores ``os.stat`` as a
    class attribute of its accessor, where a plain function would be bound as a method
    and get the accessor as its first argument.
    """

    def __init__(
        self,
        real: Callable[..., os.stat_result],
        clock: int,
        start_ns: int,
        clock_map: dict[str, int],
    ) -> None:
        self.real = real
        self.clock = clock
        self.start_ns = start_ns
        self.clock_map = clock_map
        self.real_time_ns = time.time_ns
        self.__name__ = real.__name__
        self.__doc__ = real.__doc__

    def __call__(self, *args: object, **kwargs: object) -> os.stat_result:
        target = args[0] if args else kwargs.get("path", kwargs.get("fd"))
        when = clock_for(target, self.clock, self.clock_map)
        return replay_stat(self.real(*args, **kwargs), when, self.start_ns, self.real_time_ns())


def _wrap(
    real: Callable[..., os.stat_result], clock: int, start_ns: int, clock_map: dict[str, int]
) -> Callable[..., os.stat_result]:
    return _ReplayedStat(real, clock, start_ns, clock_map)


def install(clock: int, start_ns: int, clock_map: dict[str, int] | None = None) -> None:
    """Replace the stat functions and the wall clock of this process."""
    real_time_ns = time.time_ns
    started_ns = real_time_ns()
    for name in ("stat", "lstat", "fstat"):
        setattr(os, name, _wrap(getattr(os, name), clock, start_ns, clock_map or {}))

    def time_ns() -> int:
        return clock * _NS + (real_time_ns() - started_ns) // SLOWDOWN

    def time_s() -> float:
        return time_ns() / _NS

    time.time_ns = time_ns
    time.time = time_s


def _from_environment() -> None:
    clock = os.environ.get(_CLOCK_ENV)
    start = os.environ.get(_START_ENV)
    if clock and start:
        raw = json.loads(os.environ.get(_MAP_ENV) or "{}")
        install(int(clock), int(start), {str(k): int(v) for k, v in raw.items()})


_from_environment()
