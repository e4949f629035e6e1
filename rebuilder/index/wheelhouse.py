"""Fetching the resolved build requirements as wheels for the sandbox.

Each pin names the hashes the resolver accepts; we take the release's wheel whose sha256
is one of them and that the sandbox interpreter can install (CPython 3.11 on manylinux
x86_64, or pure), download it hash-checked and put it in the wheelhouse folder that is
mounted read-only into the build.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from rebuilder.errors import NotFoundError, ResolveError
from rebuilder.index.cache import sha256_file
from rebuilder.index.model import (
    BuildRequirement,
    FileKind,
    Index,
    IndexFile,
    PinnedFile,
    ResolvedPin,
)

log = logging.getLogger(__name__)

SANDBOX_PYTHON = "3.11"
SANDBOX_GLIBC_MINOR = 36  # Debian bookworm
_LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


def manylinux_platforms(glibc_minor: int = SANDBOX_GLIBC_MINOR, arch: str = "x86_64") -> list[str]:
    """Platform tags a glibc 2.``glibc_minor`` system accepts, best first."""
    platforms = []
    for minor in range(glibc_minor, 4, -1):
        platforms.append(f"manylinux_2_{minor}_{arch}")
        if minor in _LEGACY_MANYLINUX:
            platforms.append(f"{_LEGACY_MANYLINUX[minor]}_{arch}")
    return platforms


def sandbox_tags(
    python_version: str = SANDBOX_PYTHON, platforms: Sequence[str] | None = None
) -> list[Tag]:
    """The wheel tags the sandbox interpreter installs, most preferred first."""
    try:
        major, minor = (int(part) for part in python_version.split(".")[:2])
    except ValueError as exc:
        raise ValueError(f"python_version must look like '3.11', got {python_version!r}") from exc
    plats = list(platforms) if platforms is not None else manylinux_platforms()
    abi = f"cp{major}{minor}"
    tags = list(cpython_tags((major, minor), abis=[abi], platforms=plats))
    tags += compatible_tags((major, minor), interpreter=abi, platforms=plats)
    return list(dict.fromkeys(tags))


def _rank(file: IndexFile, priority: dict[Tag, int]) -> int | None:
    try:
        _name, _version, _build, tags = parse_wheel_filename(file.filename)
    except InvalidWheelFilename:
        return None
    ranks = [priority[t] for t in tags if t in priority]
    return min(ranks) if ranks else None


def choose_wheel(
    files: Sequence[IndexFile], pin: ResolvedPin, tags: Sequence[Tag]
) -> IndexFile | None:
    """The most preferred installable wheel of ``files`` whose hash the pin accepts."""
    priority = {tag: i for i, tag in enumerate(tags)}
    accepted = set(pin.sha256s)
    best: tuple[int, IndexFile] | None = None
    for f in files:
        if f.kind is not FileKind.WHEEL or f.sha256 not in accepted:
            continue
        rank = _rank(f, priority)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, f)
    return None if best is None else best[1]


def _place(source: Path, target: Path, sha256: str) -> None:
    if target.exists():
        if target.is_file() and not target.is_symlink() and sha256_file(target) == sha256:
            return
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        # Different file systems, or links not allowed: a copy does as well.
        shutil.copyfile(source, target)


def fetch_wheelhouse(
    index: Index,
    pins: Sequence[ResolvedPin],
    dest: Path,
    *,
    python_version: str = SANDBOX_PYTHON,
    platforms: Sequence[str] | None = None,
) -> tuple[BuildRequirement, ...]:
    """Download each pin's acceptable wheel into ``dest`` and return the pinned records.

    Raises ResolveError when a pinned release has no wheel matching both one of the
    pin's hashes and the sandbox's tags; index errors (integrity, transport) pass
    through unchanged.
    """
    tags = sandbox_tags(python_version, platforms)
    dest.mkdir(parents=True, exist_ok=True)
    resolved = []
    for pin in pins:
        try:
            files = index.release_files(pin.name, pin.version)
        except NotFoundError as exc:
            raise ResolveError(f"{pin.name}=={pin.version} is pinned but {exc}") from exc
        chosen = choose_wheel(files, pin, tags)
        if chosen is None:
            wheels = [f.filename for f in files if f.kind is FileKind.WHEEL]
            raise ResolveError(
                f"{pin.name}=={pin.version}: no wheel matches the pinned hashes and installs "
                f"on CPython {python_version} manylinux x86_64 (wheels listed: "
                f"{', '.join(wheels) or 'none'})"
            )
        if Path(chosen.filename).name != chosen.filename or chosen.filename.startswith("."):
            raise ResolveError(f"refusing a wheel with an unsafe filename {chosen.filename!r}")
        local = index.download(chosen)
        _place(local, dest / chosen.filename, chosen.sha256)
        log.debug("wheelhouse: %s", chosen.filename)
        resolved.append(
            BuildRequirement(
                name=pin.name,
                version=pin.version,
                file=PinnedFile(filename=chosen.filename, url=chosen.url, sha256=chosen.sha256),
            )
        )
    return tuple(resolved)
