"""Which setuptools wrote the published ``METADATA``, found by running candidates.

A wheel whose ``Generator`` names ``wheel``'s or setuptools' ``bdist_wheel`` had its
``METADATA`` written by whatever setuptools the maintainer's environment held, which is
often older than the one an isolated build resolves as of the upload time. Releases of
setuptools changed what they write (``Platform: UNKNOWN``, ``License-File``, the
``Metadata-Version``, ``Dynamic``, blank lines, the order of requirements), so the
METADATA itself tells the writer apart.

Nothing here guesses from a table of traits: each candidate's own
``prepare_metadata_for_build_wheel`` runs in the sandbox on the sdist (cheap: no
build), and the candidate whose ``METADATA`` equals the published one byte for byte
is the writer. When none matches, the planner's own choice stands. Candidates are
the newest release of each major version of the writer uploaded before the wheel
(never a newer one), newest first; the sdist's own build-system ranges are applied
by the resolver when each candidate is pinned on top of them (a candidate they
exclude does not resolve and is skipped).

Outputs are cached by (sdist sha256, writer, version), so a candidate runs once per
sdist.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from rebuilder.index.model import IndexFile

logger = logging.getLogger(__name__)

#: The writer this module infers; other backends write METADATA themselves and their
#: Generator line pins their exact version already.
WRITER = "setuptools"
#: The most candidates run for one wheel.
MAX_CANDIDATES = 6
#: The last setuptools checked to write no ``License-File`` (its ``write_pkg_file``
#: has no such field; 57.5.0's has).
_NO_LICENSE_FILE = Version("56.2.0")


def candidate_versions(
    releases: Sequence[IndexFile],
    as_of: datetime | None,
    current: str | None,
    requirements: Sequence[str] = (),
    *,
    license_file: bool = False,
    limit: int = MAX_CANDIDATES,
) -> list[str]:
    """Candidate writer versions, newest first: at most ``limit``, spread over the range.

    The newest release of each major version uploaded by ``as_of`` that the build's own
    ``requirements`` allow. ``current`` (the version the planner resolved) is left out:
    it was tried already. Pre-releases, yanked files and files without an upload time
    (when ``as_of`` is given) are never candidates. ``license_file``: the published
    METADATA has a ``License-File`` field, which setuptools up to 56.2 never writes.
    """
    newest: dict[int, Version] = {}
    for file in releases:
        if file.yanked:
            continue
        if as_of is not None and (file.upload_time is None or file.upload_time > as_of):
            continue
        try:
            version = Version(file.version)
        except InvalidVersion:
            continue
        if version.is_prerelease or version.is_devrelease:
            continue
        major = version.major
        if major not in newest or version > newest[major]:
            newest[major] = version
    skip = None
    if current is not None:
        try:
            skip = Version(current)
        except InvalidVersion:
            skip = None
    allowed = _allowed(requirements)
    ordered = [
        v
        for v in sorted(newest.values(), reverse=True)
        if v != skip and allowed.contains(v) and not (license_file and v <= _NO_LICENSE_FILE)
    ]
    return [str(v) for v in _spread(ordered, limit)]


def _allowed(requirements: Sequence[str]) -> SpecifierSet:
    """The writer versions the build's own requirements allow (their specifiers joined)."""
    joined = SpecifierSet()
    for raw in requirements:
        try:
            req = Requirement(raw)
        except InvalidRequirement:
            continue
        if canonicalize_name(req.name) == WRITER and req.marker is None:
            joined &= req.specifier
    return joined


def _spread(ordered: Sequence[Version], limit: int) -> list[Version]:
    """At most ``limit`` of ``ordered``, evenly spaced from its first to its last."""
    if len(ordered) <= limit:
        return list(ordered)
    if limit <= 1:
        return list(ordered[:limit])
    step = (len(ordered) - 1) / (limit - 1)
    picked = sorted({round(i * step) for i in range(limit)})
    return [ordered[i] for i in picked]


def has_license_file(metadata: bytes) -> bool:
    """True when the METADATA header holds a ``License-File`` field."""
    for line in metadata.decode("utf-8", "replace").splitlines():
        if not line.strip():
            return False
        if line.partition(":")[0].strip().lower() == "license-file":
            return True
    return False


@dataclass(frozen=True)
class WriterChoice:
    """The candidates tried and the one whose METADATA matched, if any."""

    distribution: str
    tried: tuple[tuple[str, str], ...]  # (version, what it gave: "match", "differs", ...)
    chosen: str | None
    #: The name of the normalization under which ``chosen`` matched, None for bytes.
    normalized_by: str | None = None

    @property
    def requirement(self) -> str | None:
        return f"{self.distribution}=={self.chosen}" if self.chosen else None

    @property
    def note(self) -> str:
        tried = ", ".join(f"{v} ({what})" for v, what in self.tried) or "none"
        if self.chosen is None:
            return (
                f"metadata writer: no {self.distribution} candidate wrote the published "
                f"METADATA byte for byte (tried {tried}): the planner's choice kept"
            )
        if self.normalized_by is not None:
            return (
                f"metadata writer: {self.distribution}=={self.chosen} writes the published "
                f"METADATA up to {self.normalized_by} (no candidate wrote it byte for byte; "
                f"tried {tried})"
            )
        return (
            f"metadata writer: {self.distribution}=={self.chosen} writes the published "
            f"METADATA byte for byte (tried {tried})"
        )


class MetadataCache:
    """Candidates' METADATA outputs on disk, keyed by (sdist sha256, writer, version)."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, sdist_sha256: str, distribution: str, version: str) -> Path:
        key = hashlib.sha256(f"{sdist_sha256}\0{distribution}\0{version}".encode()).hexdigest()
        return self._root / key[:2] / key

    def get(self, sdist_sha256: str, distribution: str, version: str) -> bytes | None:
        path = self._path(sdist_sha256, distribution, version)
        try:
            return path.read_bytes() if path.is_file() else None
        except OSError:
            return None

    def put(self, sdist_sha256: str, distribution: str, version: str, data: bytes) -> None:
        path = self._path(sdist_sha256, distribution, version)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            partial.write_bytes(data)
            partial.replace(path)
        except OSError as exc:
            logger.info("metadata cache not written: %s", exc)


# What running one candidate gave: its METADATA, or None with why it gave none.
Produce = Callable[[str], tuple[bytes | None, str]]


def choose_writer(
    *,
    distribution: str,
    candidates: Sequence[str],
    published: bytes,
    sdist_sha256: str,
    produce: Produce,
    cache: MetadataCache | None,
    normalization: tuple[str, Callable[[bytes], bytes]] | None = None,
) -> WriterChoice:
    """Run candidates in order and stop at the first whose METADATA equals ``published``.

    ``normalization`` (its name and function, a named stabilizer of the comparison):
    when no candidate writes the published bytes, the first one whose output equals
    them after it is chosen, and the choice says so. Its rebuild can then at best be
    ``equivalent`` under that stabilizer, never ``reproducible`` by it.
    """
    tried: list[tuple[str, str]] = []
    near: str | None = None
    normalized = normalization[1](published) if normalization is not None else None
    for version in candidates:
        output = cache.get(sdist_sha256, distribution, version) if cache else None
        why = "cached"
        if output is None:
            output, why = produce(version)
            if output is not None and cache is not None:
                cache.put(sdist_sha256, distribution, version, output)
        if output is None:
            tried.append((version, why or "no output"))
            continue
        if output == published:
            tried.append((version, "match"))
            return WriterChoice(distribution, tuple(tried), version)
        if normalization is not None and normalization[1](output) == normalized:
            tried.append((version, f"matches up to {normalization[0]}"))
            near = near or version
            continue
        tried.append((version, "differs"))
    if near is not None and normalization is not None:
        return WriterChoice(distribution, tuple(tried), near, normalized_by=normalization[0])
    return WriterChoice(distribution, tuple(tried), None)
