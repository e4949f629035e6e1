"""Trace a release the fleet recorded: its sdist as recorded, not as the index lists it now.

:class:`~rebuilder.source.trace.SourceTracer` (``rebuilder check --source``) lists the
release on the index and turns every trouble into ``no-source``. A fleet worker knows the
release's files from the database (with the sha256 seen at discovery) and must tell
trouble that may pass from a verdict: here a failed download raises (the worker gives the
check back and retries), and only what :func:`~rebuilder.source.trace.trace_release`
finds about the source ends as a verdict.

A repository host that does not answer is an outage, and it is backed off **per host**
(:class:`HostBackoff`): after a failure, this worker leaves the host alone for a minute,
doubling up to an hour while it keeps failing, and every check of a project on that
host is deferred without downloading its sdist or running git. Both raise
:class:`HostOutageError`, which says whether the network was tried (a try of the check)
or not (a deferral), how long to wait, and the repository URL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from rebuilder.index.model import IndexFile
from rebuilder.source.clone import Cloner, SourceRepository, TreeEntry
from rebuilder.source.errors import RepositoryUnreachableError
from rebuilder.source.rebuild import GitRebuilder
from rebuilder.source.result import SourceResult
from rebuilder.source.trace import FromGitStep, SourceConfig, from_git_step, trace_release

logger = logging.getLogger(__name__)


class Downloader(Protocol):
    """Fetches a published file, checked against its sha256 (``Index.download``)."""

    def download(self, file: IndexFile) -> Path: ...


class HostOutageError(RepositoryUnreachableError):
    """A repository host did not answer, or is backed off after it did not.

    ``tried``: False when nothing was sent to the host (it is backed off), so the check
    should not count this as one of its tries. ``retry_after``: seconds until the host
    is tried again.
    """

    def __init__(
        self, message: str, *, url: str, host: str, retry_after: float, tried: bool
    ) -> None:
        super().__init__(message)
        self.url = url
        self.host = host
        self.retry_after = retry_after
        self.tried = tried


@dataclass(frozen=True)
class BackoffPolicy:
    """How long a host that did not answer is left alone: ``first``, doubling to ``longest``."""

    first: float = 60.0
    longest: float = 3600.0


def host_of(url: str) -> str:
    """The host a repository URL names (the whole URL when it names none, e.g. file:)."""
    parts = urlsplit(url)
    return (parts.hostname or url).lower()


class HostBackoff:
    """Per-host backoff of repository hosts in this process. Thread-safe."""

    def __init__(
        self,
        policy: BackoffPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy or BackoffPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}
        self._hosts: dict[str, tuple[str, str]] = {}  # project -> (host, url) last used

    def remaining(self, host: str) -> float:
        """Seconds the host is still left alone (0: it may be tried)."""
        with self._lock:
            return max(0.0, self._until.get(host, 0.0) - self._clock())

    def failures(self, host: str) -> int:
        """Failures of the host in a row."""
        with self._lock:
            return self._failures.get(host, 0)

    def failed(self, host: str) -> float:
        """Note a failure of the host; the seconds it is now left alone."""
        with self._lock:
            failures = self._failures.get(host, 0) + 1
            self._failures[host] = failures
            wait = min(self._policy.longest, self._policy.first * 2.0 ** (failures - 1))
            self._until[host] = self._clock() + wait
            return wait

    def answered(self, host: str) -> None:
        """The host answered: no more backoff."""
        with self._lock:
            self._failures.pop(host, None)
            self._until.pop(host, None)

    def remember(self, project: str, url: str) -> None:
        """The repository URL a project's check used."""
        with self._lock:
            self._hosts[project] = (host_of(url), url)

    def of_project(self, project: str) -> tuple[str, str] | None:
        """(host, URL) of the project's repository, when a check of it used one."""
        with self._lock:
            return self._hosts.get(project)

    def refuse(self, host: str, url: str) -> None:
        """Raise :class:`HostOutageError` (not tried) while ``host`` is backed off."""
        wait = self.remaining(host)
        if wait > 0:
            raise HostOutageError(
                f"repository host {host} did not answer ({self.failures(host)} times in a "
                f"row); left alone for {wait:.0f} s more, nothing was tried",
                url=url,
                host=host,
                retry_after=wait,
                tried=False,
            )


class _WatchedRepository:
    """A :class:`SourceRepository` whose network calls report to a :class:`HostBackoff`."""

    def __init__(self, inner: SourceRepository, backoff: HostBackoff) -> None:
        self._inner = inner
        self._backoff = backoff
        self._host = host_of(inner.url)

    @property
    def url(self) -> str:
        return self._inner.url

    def _outage(self, exc: RepositoryUnreachableError) -> HostOutageError:
        wait = self._backoff.failed(self._host)
        return HostOutageError(
            f"{exc.diagnostics()} (host {self._host} left alone for {wait:.0f} s)",
            url=self.url,
            host=self._host,
            retry_after=wait,
            tried=True,
        )

    def tags(self) -> dict[str, str]:
        self._backoff.refuse(self._host, self.url)
        try:
            tags = self._inner.tags()
        except RepositoryUnreachableError as exc:
            raise self._outage(exc) from None
        self._backoff.answered(self._host)
        return tags

    def fetch_tag(self, tag: str) -> str:
        self._backoff.refuse(self._host, self.url)
        try:
            return self._inner.fetch_tag(tag)
        except RepositoryUnreachableError as exc:
            raise self._outage(exc) from None

    def tree(self, commit: str) -> list[TreeEntry]:
        return self._inner.tree(commit)

    def archive(self, commit: str, target: Path, prefix: str) -> Path:
        return self._inner.archive(commit, target, prefix)

    def blob(self, commit: str, path: str) -> bytes | None:
        return self._inner.blob(commit, path)


class _WatchedCloner:
    """A :class:`Cloner` refusing backed-off hosts and noting which host a project uses."""

    def __init__(self, inner: Cloner, backoff: HostBackoff, project: str) -> None:
        self._inner = inner
        self._backoff = backoff
        self._project = project

    def open(self, url: str) -> SourceRepository:
        host = host_of(url)
        self._backoff.remember(self._project, url)
        self._backoff.refuse(host, url)
        try:
            repository = self._inner.open(url)
        except RepositoryUnreachableError as exc:
            wait = self._backoff.failed(host)
            raise HostOutageError(
                f"{exc.diagnostics()} (host {host} left alone for {wait:.0f} s)",
                url=url,
                host=host,
                retry_after=wait,
                tried=True,
            ) from None
        return _WatchedRepository(repository, self._backoff)


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
        backoff: HostBackoff | None = None,
    ) -> None:
        self._index = index
        self._cloner = cloner
        self._backoff = backoff or HostBackoff()
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

        Raises :class:`HostOutageError` when the repository host does not answer, or
        (before anything is downloaded) while the host of the project's repository is
        backed off.
        """
        known = self._backoff.of_project(sdist.project)
        if known is not None:
            self._backoff.refuse(*known)
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
            cloner=_WatchedCloner(self._cloner, self._backoff, sdist.project),
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
