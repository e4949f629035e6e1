"""Published files for campaign tests (the fake index itself: ``tests.support.fakes``)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from packaging.utils import canonicalize_name

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
