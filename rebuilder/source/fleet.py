"""Trace a release the fleet recorded: its sdist as recorded, not as the index lists it now.

:class:`~rebuilder.source.trace.SourceTracer` (``rebuilder check --source``) lists the
release on the index and turns every trouble into ``no-source``. A fleet worker knows the
release's files from the database (with the sha256 seen at discovery) and must tell
trouble that may pass from a verdict: here a failed download raises (the worker gives the
check back and retries), and only what :func:`~rebuilder.source.trace.trace_release`
finds about the source ends as a verdict.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from rebuilder.index.model import IndexFile
from rebuilder.settings import Settings
from rebuilder.source.clone import Cloner
from rebuilder.source.rebuild import GitRebuilder
from rebuilder.source.result import SourceResult
from rebuilder.source.trace import FromGitStep, SourceConfig, from_git_step, trace_release

logger = logging.getLogger(__name__)


class Downloader(Protocol):
    """Fetches a published file, checked against its sha256 (``Index.download``)."""

    def download(self, file: IndexFile) -> Path: ...


class RecordedReleaseTracer:
    """Judges a recorded sdist against its git tag, evidence in a given folder."""

    def __init__(
        self,
        *,
        index: Downloader,
        cloner: Cloner,
        config: SourceConfig,
        work_root: Path,
        git_rebuilder: GitRebuilder | None = None,
    ) -> None:
        self._index = index
        self._cloner = cloner
        self._config = config
        self._work_root = work_root
        self._git_rebuilder = git_rebuilder
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def trace(
        self, sdist: IndexFile, files: Sequence[IndexFile], evidence_dir: Path
    ) -> SourceResult:
        """The source check of ``sdist``'s release; ``files`` are all of its files.

        Raises the index's errors when the sdist cannot be fetched (or does not match
        its recorded sha256); everything about the source itself ends in the result.
        Releases of one project are traced one at a time in this process: they share
        a cached repository, and two fetches into one bare repository collide.
        """
        sdist_path = self._index.download(sdist)
        with self._lock(sdist.project):
            return self._trace(sdist, sdist_path, files, evidence_dir)

    def _lock(self, project: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(project, threading.Lock())

    def _trace(
        self, sdist: IndexFile, sdist_path: Path, files: Sequence[IndexFile], evidence_dir: Path
    ) -> SourceResult:
        return trace_release(
            project=sdist.project,
            version=sdist.version,
            sdist_path=sdist_path,
            cloner=self._cloner,
            config=self._config,
            work_dir=self._work_root,
            evidence_dir=evidence_dir,
            sdist_sha256=sdist.sha256,
            sdist_filename=sdist.filename,
            from_git=self._from_git(sdist, sdist_path, files, evidence_dir),
        )

    def _from_git(
        self, sdist: IndexFile, sdist_path: Path, files: Sequence[IndexFile], evidence: Path
    ) -> FromGitStep | None:
        return from_git_step(self._git_rebuilder, sdist, sdist_path, files, evidence)


def production_recorded_tracer(
    settings: Settings, *, rebuild: bool = True
) -> RecordedReleaseTracer:
    """A :class:`RecordedReleaseTracer` on the real index, git and (with ``rebuild``) Docker."""
    from rebuilder.index.resolve import UvResolver  # noqa: PLC0415 - uv and docker on demand
    from rebuilder.index.simple import SimpleIndex  # noqa: PLC0415
    from rebuilder.sandbox.docker import DockerSandbox  # noqa: PLC0415
    from rebuilder.source.wiring import git_cloner, source_config  # noqa: PLC0415
    from rebuilder.wiring import image_choice, sandbox_limits  # noqa: PLC0415

    cache = settings.cache_dir
    index = SimpleIndex(settings.index_url, cache / "index", page_ttl_seconds=settings.page_ttl)
    git_rebuilder = (
        GitRebuilder(
            index=index,
            resolver=UvResolver(settings.index_url, cache / "uv"),
            sandbox=DockerSandbox(),
            image=lambda: image_choice(settings),
            work_root=cache / "work",
            limits=sandbox_limits(settings),
        )
        if rebuild
        else None
    )
    return RecordedReleaseTracer(
        index=index,
        cloner=git_cloner(settings),
        config=source_config(settings),
        work_root=cache / "work",
        git_rebuilder=git_rebuilder,
    )
