"""Give a tree from git the file modes and times of the maintainer's checkout.

``git archive`` stamps every file with the commit's time and a mode of ``0o664`` (or
``0o775``); a checkout on the maintainer's machine had the times of the clone or of the
last edit, and the modes git gives a checked-out file: ``0o666`` or ``0o777`` (the
executable bit is all git keeps) less the umask. A wheel built from a checkout (or from
an sdist made from it) stores those times and modes, so a rebuild from git reproduces it
only with them. They are inferred from the published files, never from a name:

* a file the published sdist also holds (same path below the project folder) takes the
  sdist member's mode and time: the sdist was made from that checkout, and the core's
  rebuild from the sdist uses the very same inputs;
* any other file takes the mode of a checkout made with the original build's umask (read
  from the published wheel, ``strategy.archive.umask``), and the time the planner
  inferred for the wheel entry it ends up as (``generated_times``, an entry the sdist
  did not hold, matched by path suffix as the sandbox's clock replay matches it), when
  exactly one entry matches.

Only modes and times change: the content is git's.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from rebuilder.source.compare import sdist_files


def _suffix_time(path: str, times: Sequence[tuple[str, int]]) -> int | None:
    """The one inferred entry time whose path ``path`` ends with (on a ``/`` boundary)."""
    found = {when for name, when in times if path == name or path.endswith("/" + name)}
    return found.pop() if len(found) == 1 else None


def dress_like_checkout(
    tree: Path, published_sdist: Path, *, umask: int, entry_times: Sequence[tuple[str, int]]
) -> int:
    """Set the modes and times of the regular files below ``tree`` (see the module doc).

    ``published_sdist`` is the published sdist's extracted project folder. Returns how
    many files took the published sdist's mode and time.
    """
    published = sdist_files(published_sdist)
    taken = 0
    for relative, path in sdist_files(tree).items():
        twin = published.get(relative)
        if twin is not None:
            info = twin.lstat()
            path.chmod(stat.S_IMODE(info.st_mode) | stat.S_IRUSR | stat.S_IWUSR)
            os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)
            taken += 1
            continue
        executable = path.lstat().st_mode & stat.S_IXUSR
        path.chmod(((0o777 if executable else 0o666) & ~umask) | stat.S_IRUSR | stat.S_IWUSR)
        when = _suffix_time(relative, entry_times)
        if when is not None:
            os.utime(path, (when, when), follow_symlinks=False)
    return taken
