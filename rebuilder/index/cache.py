"""On-disk caches of the index client: a content-addressed blob store and project pages.

Blobs live at ``<root>/blobs/sha256/<first two hex>/<hex>``. A blob only becomes
visible (atomic rename) after its bytes were hashed and matched, so a path in the store
is always a verified file. Pages are our own normalized record of a project page, stored
as JSON with the time they were fetched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from rebuilder.errors import IntegrityError
from rebuilder.index.model import FileKind, IndexFile

log = logging.getLogger(__name__)

SHA256_RE = re.compile(r"[0-9a-f]{64}")
PAGE_SCHEMA = 1
_CHUNK = 1 << 20


def is_sha256(value: str) -> bool:
    """Whether ``value`` is a lowercase hex sha256 digest."""
    return SHA256_RE.fullmatch(value) is not None


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class BlobWriter:
    """Bytes on their way into the store; see :meth:`BlobStore.writer`."""

    def __init__(self, fh: BinaryIO, expected: str) -> None:
        self._fh = fh
        self._digest = hashlib.sha256()
        self.expected = expected
        self.size = 0

    def write(self, chunk: bytes) -> None:
        """Append ``chunk`` and feed it to the hash."""
        self._fh.write(chunk)
        self._digest.update(chunk)
        self.size += len(chunk)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


class BlobStore:
    """A content-addressed store of verified files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / "blobs" / "sha256"

    def path_for(self, sha256: str) -> Path:
        """Where the blob with this digest lives (whether present or not)."""
        if not is_sha256(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self._blobs / sha256[:2] / sha256

    def get(self, sha256: str) -> Path | None:
        """The blob's path when it is present and still matches its digest, else None.

        A blob that no longer matches (disk trouble, tampering) is removed so the
        caller downloads it afresh.
        """
        path = self.path_for(sha256)
        if not path.is_file():
            return None
        actual = sha256_file(path)
        if actual != sha256:
            log.warning("cached blob %s is corrupt (sha256 %s); discarding it", path, actual)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return None
        return path

    @contextlib.contextmanager
    def writer(self, sha256: str, *, label: str = "") -> Iterator[BlobWriter]:
        """Write a blob expected to hash to ``sha256``.

        On a clean exit the hash is checked and the file renamed into place,
        read-only. On a mismatch IntegrityError is raised; on any error nothing is
        left behind.
        """
        final = self.path_for(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".partial-", dir=final.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                writer = BlobWriter(fh, sha256)
                yield writer
                fh.flush()
                os.fsync(fh.fileno())
            if writer.sha256 != sha256:
                raise IntegrityError(
                    f"sha256 mismatch for {label or sha256}: the index published {sha256}, "
                    f"the {writer.size} bytes received hash to {writer.sha256}; discarded"
                )
            tmp.chmod(0o444)
            tmp.replace(final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


@dataclass(frozen=True)
class CachedPage:
    """A project page as we recorded it."""

    project: str
    url: str
    fetched_at: float  # time.time() of the fetch
    files: tuple[IndexFile, ...]

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.fetched_at


def _file_to_json(f: IndexFile) -> dict[str, Any]:
    return {
        "project": f.project,
        "version": f.version,
        "filename": f.filename,
        "url": f.url,
        "sha256": f.sha256,
        "kind": f.kind.value,
        "upload_time": None if f.upload_time is None else f.upload_time.isoformat(),
        "size": f.size,
        "yanked": f.yanked,
        "requires_python": f.requires_python,
    }


def _file_from_json(d: dict[str, Any]) -> IndexFile:
    upload = d["upload_time"]
    return IndexFile(
        project=str(d["project"]),
        version=str(d["version"]),
        filename=str(d["filename"]),
        url=str(d["url"]),
        sha256=str(d["sha256"]),
        kind=FileKind(d["kind"]),
        upload_time=None if upload is None else datetime.fromisoformat(upload),
        size=None if d["size"] is None else int(d["size"]),
        yanked=bool(d["yanked"]),
        requires_python=None if d["requires_python"] is None else str(d["requires_python"]),
    )


class PageCache:
    """Project pages on disk, one JSON file per (index, project)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, project: str) -> Path:
        # ``project`` is already PEP 503-normalized: only [a-z0-9-], safe as a name.
        return self.root / f"{project}.json"

    def load(self, project: str) -> CachedPage | None:
        """The recorded page, or None when absent or unreadable."""
        path = self._path(project)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("schema") != PAGE_SCHEMA:
                return None
            return CachedPage(
                project=str(data["project"]),
                url=str(data["url"]),
                fetched_at=float(data["fetched_at"]),
                files=tuple(_file_from_json(f) for f in data["files"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable cached page %s: %s", path, exc)
            return None

    def store(self, project: str, url: str, files: Sequence[IndexFile]) -> CachedPage:
        """Record a freshly fetched page (atomically) and return the record."""
        page = CachedPage(project=project, url=url, fetched_at=time.time(), files=tuple(files))
        self.root.mkdir(parents=True, exist_ok=True)
        payload = {
            "schema": PAGE_SCHEMA,
            "project": page.project,
            "url": page.url,
            "fetched_at": page.fetched_at,
            "files": [_file_to_json(f) for f in page.files],
        }
        fd, tmp_name = tempfile.mkstemp(prefix=".partial-", dir=self.root)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(payload, fh)
            tmp.replace(self._path(project))
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return page
