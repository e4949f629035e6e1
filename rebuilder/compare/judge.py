"""Judge a rebuilt wheel against the published one: bytes first, then stabilized archives."""

from __future__ import annotations

import hashlib
import io
import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rebuilder.archive.limits import DEFAULT_LIMITS, ArchiveLimits
from rebuilder.archive.zipread import ZipArchive, read_zip
from rebuilder.compare.diagnose import SourceFiles, diagnose, written_on_windows
from rebuilder.compare.stabilizers import STABILIZERS, ZIP_LAYOUT, Stabilizer, apply_stabilizers
from rebuilder.compare.textdiff import unified_diffs
from rebuilder.verdict import Diagnosis, Difference, DifferenceKind, StabilizerUse, Verdict

logger = logging.getLogger(__name__)

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Comparison:
    """What comparing two files found.

    ``stabilizers`` is the minimal set that makes the archives equal (only for
    ``equivalent``); ``differences`` are the paths that still differ after every
    stabilizer (only for ``mismatch``).
    """

    verdict: Verdict
    published_sha256: str
    rebuilt_sha256: str
    stabilizers: tuple[StabilizerUse, ...] = ()
    differences: tuple[Difference, ...] = ()
    diagnosis: tuple[Diagnosis, ...] = ()
    text_diff: str = ""


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def compare_files(
    published: Path,
    rebuilt: Path,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    source: SourceFiles | None = None,
) -> Comparison:
    """Compare two wheels; raises ArchiveError when either cannot be read safely.

    A mismatch comes with a diagnosis of each difference; ``source`` (the sdist's
    files) answers whether a file only one side has is in the sdist.
    """
    published_sha256, rebuilt_sha256 = file_sha256(published), file_sha256(rebuilt)
    if published_sha256 == rebuilt_sha256:
        return Comparison(Verdict.REPRODUCIBLE, published_sha256, rebuilt_sha256)
    ours, theirs = read_zip(published, limits), read_zip(rebuilt, limits)
    verdict, stabilizers, differences = compare_archives(ours, theirs)
    diagnosis: tuple[Diagnosis, ...] = ()
    text_diff = ""
    if verdict is Verdict.MISMATCH:
        stable_ours = apply_stabilizers(ours, STABILIZERS)
        stable_theirs = apply_stabilizers(theirs, STABILIZERS)
        diagnosis = diagnose(
            stable_ours,
            stable_theirs,
            differences,
            source,
            written_on_windows=written_on_windows(ours, theirs),
        )
        text_diff = unified_diffs(stable_ours, stable_theirs, differences)
    return Comparison(
        verdict, published_sha256, rebuilt_sha256, stabilizers, differences, diagnosis, text_diff
    )


def compare_archives(
    published: ZipArchive, rebuilt: ZipArchive
) -> tuple[Verdict, tuple[StabilizerUse, ...], tuple[Difference, ...]]:
    """The verdict on two archives whose bytes are known to differ."""
    stable_published = apply_stabilizers(published, STABILIZERS)
    stable_rebuilt = apply_stabilizers(rebuilt, STABILIZERS)
    if stable_published != stable_rebuilt:
        differences = archive_differences(stable_published, stable_rebuilt)
        if not differences:  # every non-content field is constant after stabilizing
            logger.error("stabilized archives differ outside every path")
            differences = (Difference("", DifferenceKind.METADATA),)
        return Verdict.MISMATCH, (), differences
    if published == rebuilt:
        return Verdict.EQUIVALENT, (ZIP_LAYOUT,), ()
    needed = needed_stabilizers(published, rebuilt)
    return Verdict.EQUIVALENT, tuple(s.use for s in needed), ()


def needed_stabilizers(
    published: ZipArchive,
    rebuilt: ZipArchive,
    stabilizers: Sequence[Stabilizer] = STABILIZERS,
) -> tuple[Stabilizer, ...]:
    """The minimal set: a stabilizer is needed iff all the others leave a difference.

    Stabilizers normalize disjoint aspects, so the needed ones alone equate the two; if
    they ever did not, every stabilizer is reported rather than too few.
    """
    needed = tuple(
        s
        for s in stabilizers
        if _differ(published, rebuilt, [other for other in stabilizers if other is not s])
    )
    if _differ(published, rebuilt, needed) and not _differ(published, rebuilt, stabilizers):
        logger.warning("the needed stabilizers do not suffice alone: reporting all")
        return tuple(stabilizers)
    return needed


def _differ(a: ZipArchive, b: ZipArchive, stabilizers: Sequence[Stabilizer]) -> bool:
    return apply_stabilizers(a, stabilizers) != apply_stabilizers(b, stabilizers)


def archive_differences(published: ZipArchive, rebuilt: ZipArchive) -> tuple[Difference, ...]:
    """Paths whose decompressed content differs, seen from the published archive."""
    ours = {e.name: e.data for e in published.entries}
    theirs = {e.name: e.data for e in rebuilt.entries}
    found = []
    for path in ours.keys() | theirs.keys():
        if path not in theirs:
            found.append(Difference(path, DifferenceKind.ADDED))
        elif path not in ours:
            found.append(Difference(path, DifferenceKind.REMOVED))
        elif ours[path] != theirs[path]:
            found.append(Difference(path, difference_kind(path)))
    return tuple(sorted(found))


def difference_kind(path: str) -> DifferenceKind:
    """``metadata`` for files of a top-level ``*.dist-info`` folder, else ``content``."""
    top, slash, _ = path.partition("/")
    return (
        DifferenceKind.METADATA if slash and top.endswith(".dist-info") else DifferenceKind.CONTENT
    )


def stabilized_bytes(archive: ZipArchive) -> bytes:
    """``archive`` after every stabilizer, written as a zip the same way every time."""
    stable = apply_stabilizers(archive, STABILIZERS)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for entry in stable.entries:
            info = zipfile.ZipInfo(entry.name, date_time=entry.date_time)
            info.external_attr = entry.external_attr
            info.create_system = entry.create_system
            info.compress_type = entry.compress_type
            zf.writestr(info, entry.data, compresslevel=6)
        zf.comment = stable.comment
    return out.getvalue()
