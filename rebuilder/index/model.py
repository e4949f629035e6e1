"""What the rest of the rebuilder knows of a package index (the Protocols it talks to)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]{0,254}")


def refused_name(filename: str) -> str | None:
    """Why a published file's name cannot be handled safely, or ``None`` when it can.

    Names end up as paths on our disk (evidence, wheelhouse, attestation bundles):
    only one plain component, without ``..`` anywhere. A refused file is never
    downloaded; it still gets a verdict (``failed``) so that no caller loses sight of it.
    """
    if not _PLAIN_NAME.fullmatch(filename):
        return f"unsafe file name {filename[:300]!r}: not one plain path component"
    if ".." in filename:
        return f"unsafe file name {filename!r}: it contains '..'"
    return None


class FileKind(StrEnum):
    WHEEL = "wheel"
    SDIST = "sdist"
    OTHER = "other"  # eggs, wininst, anything else


@dataclass(frozen=True)
class IndexFile:
    """One file of a release as the index lists it."""

    project: str  # normalized name (PEP 503)
    version: str
    filename: str
    url: str  # absolute (relative URLs already resolved against the page)
    sha256: str
    kind: FileKind
    upload_time: datetime | None  # PEP 700, timezone-aware UTC
    size: int | None = None
    yanked: bool = False
    requires_python: str | None = None


class Index(Protocol):
    """A PEP 503/691 package index."""

    url: str

    def project_files(self, project: str) -> Sequence[IndexFile]:
        """Every file of a project. Raises NotFoundError when the project does not exist."""
        ...

    def release_files(self, project: str, version: str) -> Sequence[IndexFile]:
        """The files of one release. Raises NotFoundError when there are none."""
        ...

    def download(self, file: IndexFile) -> Path:
        """A local, read-only path to the file's bytes, verified against ``file.sha256``.

        Served from a content-addressed cache when present. Raises IntegrityError on a
        hash mismatch (the bytes are discarded) and IndexError_ on transport trouble.
        """
        ...


@dataclass(frozen=True)
class ResolvedPin:
    """One exact requirement chosen by the resolver, with the hashes it accepts."""

    name: str
    version: str
    sha256s: tuple[str, ...]


class Resolver(Protocol):
    """Resolves build requirements to exact versions as of a point in time."""

    def resolve(
        self,
        requirements: Sequence[str],
        *,
        as_of: datetime | None,
        python_version: str,
        beyond_as_of: Sequence[str] = (),
    ) -> Sequence[ResolvedPin]:
        """Pin ``requirements`` (PEP 508 strings) to wheels uploaded no later than ``as_of``.

        ``beyond_as_of``: distributions exempt from ``as_of`` (the caller pins each one
        exactly, to a release it chose on purpose).

        Raises ResolveError when no solution exists.
        """
        ...


@dataclass(frozen=True)
class PinnedFile:
    """One input file, pinned by its sha256 (the sdist, or a build-dependency wheel)."""

    filename: str
    url: str
    sha256: str


@dataclass(frozen=True)
class BuildRequirement:
    """A build dependency resolved to one exact wheel."""

    name: str
    version: str
    file: PinnedFile

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"
