"""The test doubles shared by many suites: one of each, so they cannot drift apart.

In-memory stand-ins of the stores live beside their Protocols
(``rebuilder.store.memory``, ``rebuilder.campaigns.memory``) and in
``tests/support/source_checks.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

from rebuilder.errors import IndexError_, IntegrityError, NotFoundError
from rebuilder.index.model import IndexFile
from rebuilder.worker.queue import Priority


@dataclass
class FakeDispatcher:
    """A :class:`~rebuilder.worker.queue.Dispatcher` that remembers what it sent.

    ``down`` makes every send fail as a broker that is away does; ``fail_after`` makes
    the sends fail once that many went through.
    """

    sent: list[tuple[int, Priority]] = field(default_factory=list)
    down: bool = False
    fail_after: int | None = None

    def enqueue(self, attempt_id: int, priority: Priority) -> None:
        if self.down or (self.fail_after is not None and len(self.sent) >= self.fail_after):
            raise ConnectionError("broker away")
        self.sent.append((attempt_id, priority))


class FakeIndex:
    """An :class:`~rebuilder.index.model.Index` over files given up front.

    It keeps the real client's promises: project names are normalized, an unknown
    project or release is :class:`NotFoundError`, ``refresh`` reads the page afresh,
    and a download is checked against the listed sha256 (:class:`IntegrityError`).
    A file downloads from the local copy given to :meth:`add_local`, or from the bytes
    ``content`` makes of it (written under ``root``). ``down`` makes every page read
    fail as an unreachable index does; ``failing`` only those projects' reads.
    """

    url = "http://127.0.0.1:9/simple/"

    def __init__(
        self,
        files: Sequence[IndexFile] = (),
        *,
        content: Callable[[IndexFile], bytes] | None = None,
        root: Path | None = None,
    ) -> None:
        self.files: list[IndexFile] = list(files)
        self.local: dict[str, Path] = {}
        self.requests: list[str] = []  # the project pages read, in order
        self.downloads: list[str] = []  # the filenames downloaded, in order
        self.down = False
        self.failing: set[str] = set()
        self._content = content
        self._root = root

    def add(self, *files: IndexFile) -> None:
        self.files.extend(files)

    def add_local(self, file: IndexFile, path: Path) -> IndexFile:
        """List ``file``, downloaded from ``path``."""
        self.files.append(file)
        self.local[file.filename] = path
        return file

    def project_files(self, project: str) -> Sequence[IndexFile]:
        name = canonicalize_name(project)
        self.requests.append(name)
        if self.down or name in self.failing:
            raise IndexError_(f"{name}: index unreachable")
        found = [f for f in self.files if canonicalize_name(f.project) == name]
        if not found:
            raise NotFoundError(f"no project {name}")
        return found

    def refresh(self, project: str) -> Sequence[IndexFile]:
        return self.project_files(project)

    def release_files(self, project: str, version: str) -> Sequence[IndexFile]:
        found = [f for f in self.project_files(project) if Version(f.version) == Version(version)]
        if not found:
            raise NotFoundError(f"no release {project} {version}")
        return found

    def download(self, file: IndexFile) -> Path:
        self.downloads.append(file.filename)
        path = self.local.get(file.filename)
        if path is None:
            if self._content is None or self._root is None:
                raise NotFoundError(f"{file.filename}: this fake index holds no bytes of it")
            path = self._root / file.sha256
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self._content(file))
        if hashlib.sha256(path.read_bytes()).hexdigest() != file.sha256:
            raise IntegrityError(f"sha256 mismatch for {file.filename}")
        return path
