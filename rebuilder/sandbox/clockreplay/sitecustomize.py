"""Clock replay for a build backend, loaded through ``PYTHONPATH`` inside the sandbox.

A wheel built without ``SOURCE_DATE_EPOCH`` carries the sdist's mtimes on copied files
and the wall-clock time of its build on generated ones. To write those same times again,
every file the build creates must *look* to the backend as if it was written at the
original build's clock, while files copied from the sdist keep their own mtimes.

So ``os.stat``, ``os.lstat`` and ``os.fstat`` report ``REBUILDER_BUILD_CLOCK`` as the
mtime of anything modified since ``REBUILDER_BUILD_START_NS`` (and not in the future:
an sdist may carry future mtimes, which must stay as they are). ``time.time`` and
``time.time_ns`` run from the build clock, starting when this process started, so a
backend that stamps an entry with "now" (``wheel`` does so for RECORD) lands within a
second or two of it. Durations are unchanged; ``time.monotonic`` is left alone.

Not covered: ``os.DirEntry.stat`` (a C type that cannot be wrapped) and C code that
calls ``stat(2)`` directly.

This file must not import anything but the standard library.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

_CLOCK_ENV = "REBUILDER_BUILD_CLOCK"
_START_ENV = "REBUILDER_BUILD_START_NS"
_NS = 1_000_000_000


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


def _wrap(
    real: Callable[..., os.stat_result], clock: int, start_ns: int
) -> Callable[..., os.stat_result]:
    real_time_ns = time.time_ns

    def stat(*args: object, **kwargs: object) -> os.stat_result:
        return replay_stat(real(*args, **kwargs), clock, start_ns, real_time_ns())

    stat.__name__ = real.__name__
    stat.__doc__ = real.__doc__
    return stat


def install(clock: int, start_ns: int) -> None:
    """Replace the stat functions and the wall clock of this process."""
    offset_ns = clock * _NS - time.time_ns()
    real_time_ns = time.time_ns
    for name in ("stat", "lstat", "fstat"):
        setattr(os, name, _wrap(getattr(os, name), clock, start_ns))

    def time_ns() -> int:
        return real_time_ns() + offset_ns

    def time_s() -> float:
        return time_ns() / _NS

    time.time_ns = time_ns
    time.time = time_s


def _from_environment() -> None:
    clock = os.environ.get(_CLOCK_ENV)
    start = os.environ.get(_START_ENV)
    if clock and start:
        install(int(clock), int(start))


_from_environment()
