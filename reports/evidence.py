"""Reading an attempt's evidence (build log, strategy, diffoscope report) from the blobs.

The manifest (``attempts.evidence_manifest``) maps relative paths to sha256; only paths
listed there are served, so a request can never name a file of its own choosing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath

from fastapi import HTTPException, Request

from rebuilder.attest.bundle import BUNDLE_NAME
from rebuilder.compare.diffoscope import HTML_REPORT
from rebuilder.errors import RebuilderError
from rebuilder.store.blobs import BlobIntegrityError, BlobStore
from rebuilder.store.log import TransparencyLog
from rebuilder.store.web_queries import Attestation
from reports.deps import get_stores

logger = logging.getLogger(__name__)

BUILD_LOG = "build.log"
DIFFOSCOPE_HTML = HTML_REPORT
MAX_SERVED_BYTES = 64 * 1024 * 1024
_TEXT_SUFFIXES = {".log", ".txt", ".json", ".md", ".toml", ".cfg"}


def blob_store(request: Request) -> BlobStore:
    """The app's evidence blob store."""
    return get_stores(request).blobs


def find(manifest: Mapping[str, str], name: str) -> str | None:
    """The manifest path whose file name is ``name`` (the shallowest one), if any."""
    hits = [p for p in manifest if PurePosixPath(p).name == name]
    return min(hits, key=lambda p: (p.count("/"), p)) if hits else None


def read(blobs: BlobStore, sha256: str) -> bytes:
    """A blob's bytes; 404 when it is missing, 500 (logged) when it is corrupted."""
    try:
        path = blobs.path_for(sha256)
        if path.stat().st_size > MAX_SERVED_BYTES:
            raise HTTPException(413, "This evidence file is too large to serve here.")
        return blobs.read_bytes(sha256)
    except (FileNotFoundError, ValueError):
        raise HTTPException(404, "This evidence file is not in the blob store.") from None
    except BlobIntegrityError:
        logger.error("evidence blob %s is corrupted", sha256)  # noqa: TRY400 - no traceback needed
        raise


def read_tail(blobs: BlobStore, sha256: str, limit: int) -> str | None:
    """The last ``limit`` bytes of a text blob (decoded leniently), None when missing."""
    try:
        path = blobs.path_for(sha256)
        size = path.stat().st_size
        with path.open("rb") as handle:
            handle.seek(max(0, size - limit))
            data = handle.read(limit)
    except (OSError, ValueError):
        return None
    text = data.decode("utf-8", errors="replace")
    if size > limit:
        text = "…" + text.split("\n", 1)[-1]
    return text


def media_type(path: str) -> tuple[str, str | None]:
    """How to serve an evidence file: text shown inline, anything else downloaded."""
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in _TEXT_SUFFIXES:
        return "text/plain; charset=utf-8", None
    name = PurePosixPath(path).name
    safe = "".join(c if c.isalnum() or c in "._-+" else "_" for c in name) or "evidence"
    return "application/octet-stream", f'attachment; filename="{safe}"'


def bundle_relpath(project: str, version: str, filename: str) -> str:
    """Where ``rebuilder verify --attestations DIR`` looks for this file's bundle."""
    return f"pypi/{project}/{version}/{filename}/{BUNDLE_NAME}"


def latest_checkpoint_size(
    logs: Callable[[str], TransparencyLog], attestations: Sequence[Attestation]
) -> int | None:
    """The size of the latest checkpoint of the log these attestations are in."""
    if not attestations:
        return None
    try:
        stored = logs(attestations[0].log_origin).latest_checkpoint()
    except RebuilderError:
        logger.warning("cannot read the checkpoint of log %s", attestations[0].log_origin)
        return None
    return None if stored is None else stored.tree_size
