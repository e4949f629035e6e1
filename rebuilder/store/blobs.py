"""Evidence blobs: files in a folder addressed by their sha256.

A blob lives at ``<root>/blobs/sha256/<first two hex digits>/<hex>``. It is written to a
temporary file beside its final place, flushed to disk, then renamed into place, so a
reader never sees a partial blob and a crash leaves at most a stray temporary file.
The same content stored twice is one file. Blobs are read-only once written.

The database keeps only a manifest ({relative path: sha256}) of each evidence folder.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from rebuilder.store import StoreError

logger = logging.getLogger(__name__)

_HEX = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1024 * 1024


class BlobIntegrityError(StoreError):
    """Bytes did not match the sha256 they were stored or expected under."""


class BlobStore:
    """A content-addressed folder of evidence files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._base = root / "blobs" / "sha256"

    def path_for(self, sha256: str) -> Path:
        """Where the blob with this sha256 is (or would be) stored."""
        digest = sha256.lower()
        if not _HEX.fullmatch(digest):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self._base / digest[:2] / digest

    def has(self, sha256: str) -> bool:
        """True when the blob is stored."""
        return self.path_for(sha256).is_file()

    def put_bytes(self, data: bytes, *, expected_sha256: str | None = None) -> str:
        """Store ``data``; its sha256. BlobIntegrityError if it is not ``expected_sha256``."""
        digest = hashlib.sha256(data).hexdigest()
        _check(digest, expected_sha256, "bytes")
        if self.has(digest):
            return digest
        return self.put_stream(io.BytesIO(data), expected_sha256=expected_sha256)

    def put_file(self, path: Path, *, expected_sha256: str | None = None) -> str:
        """Store a copy of the file at ``path``; its sha256.

        The hash is taken of the bytes copied, in one read, so a file changing while
        it is stored cannot end up under a hash that does not match its stored bytes.
        BlobIntegrityError (nothing stored) if it is not ``expected_sha256``.
        """
        with path.open("rb") as source:
            return self.put_stream(source, expected_sha256=expected_sha256, what=str(path))

    def read_bytes(self, sha256: str) -> bytes:
        """The blob's bytes, checked against its name. BlobIntegrityError if corrupted."""
        data = self.path_for(sha256).read_bytes()
        _check(hashlib.sha256(data).hexdigest(), sha256.lower(), f"blob {sha256}")
        return data

    def verify(self, sha256: str) -> bool:
        """True when the blob exists and its bytes still hash to its name."""
        path = self.path_for(sha256)
        if not path.is_file():
            return False
        hasher = hashlib.sha256()
        with path.open("rb") as blob:
            for chunk in iter(lambda: blob.read(_CHUNK), b""):
                hasher.update(chunk)
        return hasher.hexdigest() == sha256.lower()

    def put_stream(
        self, source: BinaryIO, *, expected_sha256: str | None = None, what: str = "stream"
    ) -> str:
        """Store everything read from ``source``; its sha256 (see :meth:`put_file`)."""
        self._base.mkdir(parents=True, exist_ok=True)
        hasher = hashlib.sha256()
        handle, temp_name = tempfile.mkstemp(prefix=".incoming-", dir=self._base)
        temp = Path(temp_name)
        try:
            with os.fdopen(handle, "wb") as out:
                for chunk in iter(lambda: source.read(_CHUNK), b""):
                    hasher.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = hasher.hexdigest()
            _check(digest, expected_sha256, what)
            target = self.path_for(digest)
            if target.is_file():
                temp.unlink()
            else:
                self._place(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return digest

    def _place(self, temp: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp.chmod(0o444)
        # Same content, same name: when two writers race, either rename leaves a
        # complete, correct blob in place.
        temp.replace(target)


def store_evidence(blobs: BlobStore, folder: Path) -> dict[str, str]:
    """Store every regular file under ``folder``; the manifest {relative path: sha256}.

    Paths are POSIX style, relative to ``folder``, sorted. Symbolic links are not
    followed (evidence holds output of untrusted builds) and are left out, with a warning.
    """
    if not folder.is_dir():
        raise StoreError(f"no evidence folder at {folder}")
    manifest: dict[str, str] = {}
    for path in sorted(_regular_files(folder)):
        manifest[path.relative_to(folder).as_posix()] = blobs.put_file(path)
    return manifest


def _regular_files(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        base = Path(dirpath)
        for name in dirnames:
            if (base / name).is_symlink():
                logger.warning("evidence: symbolic link %s left out", base / name)
        for name in filenames:
            path = base / name
            if path.is_symlink() or not path.is_file():
                logger.warning("evidence: %s is not a regular file; left out", path)
                continue
            yield path


def _check(digest: str, expected: str | None, what: str) -> None:
    if expected is not None and digest != expected.lower():
        raise BlobIntegrityError(f"{what}: sha256 {digest}, expected {expected}")
