"""A small typed fake of the index for campaign tests."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

from rebuilder.errors import NotFoundError
from rebuilder.index.model import FileKind, IndexFile


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def when(day: int, hour: int = 12) -> datetime:
    return datetime(2024, 5, day, hour, tzinfo=UTC)


def wheel(project: str, version: str, *, day: int = 1, tag: str = "py3-none-any") -> IndexFile:
    filename = f"{project.replace('-', '_')}-{version}-{tag}.whl"
    return IndexFile(
        project=canonicalize_name(project),
        version=version,
        filename=filename,
        url=f"http://127.0.0.1:9/files/{filename}",
        sha256=sha(filename),
        kind=FileKind.WHEEL,
        upload_time=when(day),
    )


def sdist(project: str, version: str, *, day: int = 1) -> IndexFile:
    filename = f"{project.replace('-', '_')}-{version}.tar.gz"
    return IndexFile(
        project=canonicalize_name(project),
        version=version,
        filename=filename,
        url=f"http://127.0.0.1:9/files/{filename}",
        sha256=sha(filename),
        kind=FileKind.SDIST,
        upload_time=when(day),
    )


class FakeIndex:
    """An :class:`~rebuilder.index.model.Index` over files given up front."""

    url = "http://127.0.0.1:9/simple/"

    def __init__(self, files: Sequence[IndexFile] = ()) -> None:
        self.files: list[IndexFile] = list(files)
        self.requests: list[str] = []

    def add(self, *files: IndexFile) -> None:
        self.files.extend(files)

    def project_files(self, project: str) -> Sequence[IndexFile]:
        name = canonicalize_name(project)
        self.requests.append(name)
        found = [f for f in self.files if f.project == name]
        if not found:
            raise NotFoundError(f"no project {name}")
        return found

    def release_files(self, project: str, version: str) -> Sequence[IndexFile]:
        found = [f for f in self.project_files(project) if Version(f.version) == Version(version)]
        if not found:
            raise NotFoundError(f"no release {project} {version}")
        return found

    def download(self, file: IndexFile) -> Path:
        raise NotImplementedError("campaign selection never downloads")
