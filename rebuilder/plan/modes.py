"""How the tree the original wheel was built from got its file modes.

``python -m build`` builds the wheel from the sdist it just made: it extracts the sdist
with :mod:`tarfile`, and on Pythons that have extraction filters it asks for the
``data`` filter, which clears the group and other write bits of every file
(``mode & 0o755``). Files the backend copies with their mode (package data, license
files, ``*.egg-info`` files rewritten in place) then carry those cleared bits into the
wheel, while files the backend creates afresh (setuptools' ``build_py`` recreates
modules) get ``0o666 & ~umask``.

So when a source file whose sdist mode has a group or other write bit shows up in the
published wheel without it, although the original umask would have kept it on a fresh
file, the sdist was extracted through that filter; the rebuild applies the same
filter to its copy of the sdist (``ArchiveInputs.source_mode_mask``). A single file
that kept a write bit the filter would have cleared, beyond what the umask explains,
rules the filter out. Nothing here touches content: only the modes of the inputs.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from rebuilder.plan.clock import TimedEntry

logger = logging.getLogger(__name__)

#: What tarfile's ``data`` filter clears from the mode of every extracted file.
DATA_FILTER_MASK = 0o022
_UNIX = 3
_LICENSES = "licenses/"


def source_modes(root: Path) -> dict[str, int]:
    """The permission bits of every regular file under ``root``, by relative path."""
    found: dict[str, int] = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                found[path.relative_to(root).as_posix()] = stat.S_IMODE(info.st_mode)
    return found


def _source_path(entry_name: str) -> str | None:
    """The path an entry was copied from, relative to some folder of the sdist.

    Sources are matched as they are; of the wheel's own ``*.dist-info`` folder only
    license files are copies of sdist files (``*.dist-info/licenses/LICENSE``).
    """
    top, _, rest = entry_name.partition("/")
    if not top.endswith(".dist-info"):
        return entry_name
    if rest.startswith(_LICENSES) and len(rest) > len(_LICENSES):
        return rest[len(_LICENSES) :]
    return None


def _sdist_match(
    modes: Mapping[str, int], by_name: Mapping[str, list[str]], path: str
) -> int | None:
    candidates = [
        p for p in by_name.get(path.rsplit("/", 1)[-1], ()) if p == path or p.endswith("/" + path)
    ]
    return modes[candidates[0]] if len(candidates) == 1 else None


def infer_source_mode_mask(
    entries: Sequence[TimedEntry], sdist_modes: Mapping[str, int], umask: int
) -> int:
    """``DATA_FILTER_MASK`` when the published modes show the sdist went through it, else 0."""
    by_name: dict[str, list[str]] = {}
    for sdist_path in sdist_modes:
        by_name.setdefault(sdist_path.rsplit("/", 1)[-1], []).append(sdist_path)
    # write bits a file created during the build would keep under the original umask
    fresh_write = DATA_FILTER_MASK & ~umask
    cleared = kept = 0
    for entry in entries:
        if entry.create_system != _UNIX or entry.name.endswith("/"):
            continue
        published = stat.S_IMODE(entry.external_attr >> 16)
        path = _source_path(entry.name)
        if not published & stat.S_IRUSR or path is None:
            continue
        sdist = _sdist_match(sdist_modes, by_name, path)
        if sdist is None or not sdist & DATA_FILTER_MASK:
            continue
        published_write = published & DATA_FILTER_MASK
        if published_write & ~fresh_write:
            kept += 1  # a write bit neither the filter nor the umask would leave
        elif sdist & DATA_FILTER_MASK & fresh_write & ~published_write:
            cleared += 1  # a fresh file would have kept it: the filter cleared it
    if cleared and not kept:
        logger.info(
            "%d source files show the data filter's modes: masking 0o%o", cleared, DATA_FILTER_MASK
        )
        return DATA_FILTER_MASK
    return 0
