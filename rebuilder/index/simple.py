"""A client of a PEP 503/691 "simple" package index, with hash-checked, cached downloads.

Pages are requested with JSON preferred (PEP 691) and HTML accepted (PEP 503); both are
parsed by ``pypi-simple``, imported when the first page is parsed (a tenth of a second
that a command answered by a 404 or by the page cache never pays). Everything the index
says is untrusted: bodies are size-capped, the JSON is schema-checked, filenames must be
plain names, and file URLs are resolved against the page URL (the index may answer with
relative URLs).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from packaging.utils import (
    InvalidName,
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from rebuilder.errors import IndexError_, IntegrityError, NotFoundError
from rebuilder.index.cache import BlobStore, CachedPage, PageCache, is_sha256, sha256_file
from rebuilder.index.http import make_session
from rebuilder.index.model import FileKind, IndexFile, refused_name

if TYPE_CHECKING:
    from pypi_simple import DistributionPackage

log = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_CONTENT_TYPES = frozenset({"application/vnd.pypi.simple.v1+html", "text/html"})
#: JSON preferred, HTML accepted (PEP 691's content negotiation; a unit test keeps it
#: equal to ``pypi-simple``'s ``ACCEPT_JSON_PREFERRED``).
ACCEPT_JSON_PREFERRED = (
    f"{JSON_CONTENT_TYPE}, application/vnd.pypi.simple.v1+html;q=0.5, text/html;q=0.01"
)

DEFAULT_PAGE_TTL = 600.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_DOWNLOAD_BYTES = 1 << 30
DEFAULT_MAX_PAGE_BYTES = 64 << 20
DEFAULT_DOWNLOAD_DEADLINE = 1800.0
MAX_REDIRECTS = 5
_CHUNK = 1 << 16


def default_index_url() -> str:
    """The public index, as the ``pypi-simple`` library names it."""
    from pypi_simple import PYPI_SIMPLE_ENDPOINT  # noqa: PLC0415 - imported when needed

    return str(PYPI_SIMPLE_ENDPOINT)


def normalize_project(name: str) -> str:
    """The PEP 503 normalized form of a project name; NotFoundError if it is not a name."""
    try:
        return canonicalize_name(name, validate=True)
    except InvalidName as exc:
        raise NotFoundError(f"{name!r} is not a valid project name") from exc


def classify(filename: str) -> tuple[FileKind, str | None, str | None]:
    """(kind, normalized project, version) from a distribution filename.

    Wheels and sdists (``.tar.gz`` and ``.zip``) are recognized by ``packaging``;
    anything else (eggs, wininst, legacy archives, unparsable names) is OTHER with no
    name or version.
    """
    if filename.endswith(".whl"):
        try:
            name, version, _build, _tags = parse_wheel_filename(filename)
        except (InvalidWheelFilename, InvalidVersion):
            return FileKind.OTHER, None, None
        return FileKind.WHEEL, str(name), str(version)
    if filename.endswith((".tar.gz", ".zip")):
        try:
            name, version = parse_sdist_filename(filename)
        except (InvalidSdistFilename, InvalidVersion):
            return FileKind.OTHER, None, None
        return FileKind.SDIST, str(name), str(version)
    return FileKind.OTHER, None, None


def _same_version(listed: str, wanted: Version) -> bool:
    try:
        return Version(listed) == wanted
    except InvalidVersion:
        return listed == str(wanted)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


class SimpleIndex:
    """An :class:`~rebuilder.index.model.Index` over a PEP 503/691 simple index.

    ``cache_dir`` holds the content-addressed blobs (shared by every index using the
    same folder) and this index's project pages. A page younger than
    ``page_ttl_seconds`` is used without network. Downloads stream into the blob
    store, capped at ``max_download_bytes`` and ``download_deadline`` seconds in all;
    ``timeout`` bounds each connect and each wait for bytes. Redirects to another host
    are refused unless ``allow_cross_host_redirects`` is set; downgrades to plain HTTP
    are always refused.
    """

    def __init__(
        self,
        url: str,
        cache_dir: Path,
        *,
        session: requests.Session | None = None,
        page_ttl_seconds: float = DEFAULT_PAGE_TTL,
        timeout: float = DEFAULT_TIMEOUT,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
        download_deadline: float = DEFAULT_DOWNLOAD_DEADLINE,
        allow_cross_host_redirects: bool = False,
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"index URL must be http(s): {url!r}")
        self.url = url if url.endswith("/") else url + "/"
        self.cache_dir = cache_dir
        self.page_ttl_seconds = page_ttl_seconds
        self.timeout = timeout
        self.max_download_bytes = max_download_bytes
        self.max_page_bytes = max_page_bytes
        self.download_deadline = download_deadline
        self.allow_cross_host_redirects = allow_cross_host_redirects
        self._session = session if session is not None else make_session()
        self._blobs = BlobStore(cache_dir)
        # Pages of different indexes must not mix; blobs may (they are content-addressed).
        index_key = _digest(self.url)[:16]
        self._pages = PageCache(cache_dir / "pages" / index_key)

    @classmethod
    def default(cls, cache_dir: Path, *, session: requests.Session | None = None) -> SimpleIndex:
        """The public index named by ``pypi-simple``'s ``PYPI_SIMPLE_ENDPOINT``."""
        return cls(default_index_url(), cache_dir, session=session)

    def __repr__(self) -> str:
        return f"SimpleIndex({self.url!r})"

    # -- pages ---------------------------------------------------------------------

    def project_url(self, project: str) -> str:
        """The URL of a project's page (the name is normalized)."""
        return f"{self.url}{normalize_project(project)}/"

    def project_files(self, project: str) -> Sequence[IndexFile]:
        """Every file of a project (from the page cache while it is fresh)."""
        page, _cached = self._page(normalize_project(project))
        return page.files

    def release_files(self, project: str, version: str) -> Sequence[IndexFile]:
        """The files of one release, versions compared after ``packaging`` normalization.

        A cached page that lacks the version is refreshed once before giving up.
        """
        name = normalize_project(project)
        try:
            wanted = Version(version)
        except InvalidVersion as exc:
            raise NotFoundError(f"{project}: {version!r} is not a valid version") from exc
        page, cached = self._page(name)
        files = [f for f in page.files if _same_version(f.version, wanted)]
        if not files and cached:
            log.info("%s %s not in the cached page; refreshing it", name, version)
            page, _ = self._page(name, refresh=True)
            files = [f for f in page.files if _same_version(f.version, wanted)]
        if not files:
            raise NotFoundError(f"{name} {version}: no such release on {self.url}")
        return tuple(files)

    def refresh(self, project: str) -> Sequence[IndexFile]:
        """Fetch a project's page now, whatever the cache holds."""
        page, _ = self._page(normalize_project(project), refresh=True)
        return page.files

    def _page(self, project: str, *, refresh: bool = False) -> tuple[CachedPage, bool]:
        url = f"{self.url}{project}/"
        if not refresh:
            cached = self._pages.load(project)
            if cached is not None and cached.url == url and cached.age() < self.page_ttl_seconds:
                return cached, True
        files = self._fetch_page(project, url)
        return self._pages.store(project, url, files), False

    def _fetch_page(self, project: str, url: str) -> list[IndexFile]:
        started = time.monotonic()
        with self._open(url, {"Accept": ACCEPT_JSON_PREFERRED}, what=f"page of {project}") as r:
            if r.status_code == 404:
                raise NotFoundError(f"project {project!r} not found on {self.url}")
            _check_status(r, f"page of {project}")
            body = self._read_capped(
                r, self.max_page_bytes, started + self.download_deadline, f"page of {project}"
            )
            final_url = r.url
            content_type = r.headers.get("Content-Type", "text/html")
        files = self._parse_page(project, body, content_type, final_url)
        log.debug(
            "fetched %s: %d files in %.2fs", final_url, len(files), time.monotonic() - started
        )
        return files

    def _parse_page(
        self, project: str, body: bytes, content_type: str, page_url: str
    ) -> list[IndexFile]:
        from pypi_simple import ProjectPage  # noqa: PLC0415 - 0.1 s, paid at the first page
        from pypi_simple.errors import UnsupportedRepoVersionError  # noqa: PLC0415

        mime, params = _parse_content_type(content_type)
        try:
            if mime == JSON_CONTENT_TYPE:
                try:
                    data = json.loads(body)
                except (ValueError, RecursionError) as exc:
                    raise IndexError_(
                        f"page of {project} at {page_url}: invalid JSON ({exc})"
                    ) from exc
                page = ProjectPage.from_json_data(data, page_url)
                if canonicalize_name(page.project) != project:
                    raise IndexError_(
                        f"page at {page_url} is for {page.project!r}, not {project!r}"
                    )
            elif mime in HTML_CONTENT_TYPES:
                page = ProjectPage.from_html(project, body, page_url, params.get("charset"))
            else:
                raise IndexError_(f"page of {project} at {page_url}: unsupported type {mime!r}")
        except UnsupportedRepoVersionError as exc:
            raise IndexError_(f"page of {project} at {page_url}: {exc}") from exc
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            first = str(exc).splitlines()[:3]
            raise IndexError_(
                f"page of {project} at {page_url} is not a valid simple-API page: "
                + " / ".join(first)
            ) from exc
        files = []
        for pkg in page.packages:
            f = _index_file(project, pkg)
            if f is not None:
                files.append(f)
        return files

    # -- downloads -----------------------------------------------------------------

    def cached_path(self, file: IndexFile) -> Path | None:
        """The verified local copy of ``file`` when the store holds one."""
        if not is_sha256(file.sha256):
            return None
        return self._blobs.get(file.sha256)

    def download(self, file: IndexFile) -> Path:
        """A read-only local path to the file's verified bytes (see the Protocol)."""
        if not is_sha256(file.sha256):
            raise IntegrityError(
                f"{file.filename}: the index published no sha256 for it; it cannot be verified"
            )
        hit = self._blobs.get(file.sha256)
        if hit is not None:
            log.debug("cache hit for %s", file.filename)
            return hit
        if file.size is not None and file.size > self.max_download_bytes:
            raise IndexError_(
                f"{file.filename}: {file.size} bytes listed, over the {self.max_download_bytes}"
                " byte limit"
            )
        started = time.monotonic()
        deadline = started + self.download_deadline
        headers = {"Accept": "*/*", "Accept-Encoding": "identity"}
        with self._open(file.url, headers, what=file.filename) as r:
            if r.status_code == 404:
                raise NotFoundError(f"{file.filename}: not found at {file.url}")
            _check_status(r, file.filename)
            expected = _content_length(r)
            if expected is not None and expected > self.max_download_bytes:
                raise IndexError_(
                    f"{file.filename}: {expected} bytes announced, over the "
                    f"{self.max_download_bytes} byte limit"
                )
            with self._blobs.writer(file.sha256, label=file.filename) as out:
                for chunk in self._chunks(r, self.max_download_bytes, deadline, file.filename):
                    out.write(chunk)
                announced = expected if expected is not None else file.size
                if announced is not None and out.size < announced:
                    raise IndexError_(
                        f"{file.filename}: truncated download, {out.size} of {announced} bytes"
                    )
        log.info(
            "downloaded %s (%s bytes) in %.2fs",
            file.filename,
            out.size,
            time.monotonic() - started,
        )
        return self._blobs.path_for(file.sha256)

    # -- transport -----------------------------------------------------------------

    @contextmanager
    def _open(
        self, url: str, headers: Mapping[str, str], *, what: str
    ) -> Iterator[requests.Response]:
        """GET ``url`` streamed, following at most MAX_REDIRECTS checked redirects."""
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            try:
                r = self._session.get(
                    current,
                    headers=dict(headers),
                    stream=True,
                    timeout=(self.timeout, self.timeout),
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                if _is_timeout(exc):
                    raise IndexError_(
                        f"{what}: timed out after {self.timeout}s ({current})"
                    ) from exc
                raise IndexError_(f"{what}: cannot reach {current}: {exc}") from exc
            if not r.is_redirect:
                try:
                    yield r
                finally:
                    r.close()
                return
            location = r.headers.get("Location", "")
            r.close()
            target = urljoin(current, location)
            self._check_redirect(url, current, target, what)
            log.debug("%s: redirected to %s", what, target)
            current = target
        raise IndexError_(f"{what}: more than {MAX_REDIRECTS} redirects from {url}")

    def _check_redirect(self, first: str, current: str, target: str, what: str) -> None:
        scheme, host, port = _origin(target)
        if scheme not in ("http", "https"):
            raise IndexError_(f"{what}: refused redirect to non-HTTP URL {target}")
        if urlsplit(current).scheme == "https" and scheme != "https":
            raise IndexError_(f"{what}: refused redirect from HTTPS to plain HTTP ({target})")
        if not self.allow_cross_host_redirects and (host, port) != _origin(first)[1:]:
            raise IndexError_(
                f"{what}: refused redirect to another host ({target}); "
                "allow_cross_host_redirects is off"
            )

    def _chunks(
        self, r: requests.Response, limit: int, deadline: float, what: str
    ) -> Iterator[bytes]:
        received = 0
        try:
            for chunk in r.iter_content(_CHUNK):
                received += len(chunk)
                if received > limit:
                    raise IndexError_(f"{what}: more than the {limit} byte limit; aborted")
                if time.monotonic() > deadline:
                    raise IndexError_(
                        f"{what}: not complete after {self.download_deadline}s; aborted"
                    )
                yield chunk
        except requests.RequestException as exc:
            if _is_timeout(exc):
                raise IndexError_(
                    f"{what}: stalled for over {self.timeout}s after {received} bytes"
                ) from exc
            raise IndexError_(
                f"{what}: connection broke after {received} bytes (truncated): {exc}"
            ) from exc

    def _read_capped(self, r: requests.Response, limit: int, deadline: float, what: str) -> bytes:
        announced = _content_length(r)
        if announced is not None and announced > limit:
            raise IndexError_(f"{what}: {announced} bytes announced, over the {limit} byte limit")
        return b"".join(self._chunks(r, limit, deadline, what))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _is_timeout(exc: requests.RequestException) -> bool:
    # With urllib3 retries a timeout arrives wrapped: ConnectionError(MaxRetryError(reason)).
    if isinstance(exc, requests.Timeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    # NewConnectionError (refused, unreachable) derives from ConnectTimeoutError.
    return isinstance(reason, urllib3.exceptions.TimeoutError) and not isinstance(
        reason, urllib3.exceptions.NewConnectionError
    )


def _check_status(r: requests.Response, what: str) -> None:
    if r.status_code != 200:
        raise IndexError_(f"{what}: HTTP {r.status_code} {r.reason} from {r.url}")


def _content_length(r: requests.Response) -> int | None:
    value = r.headers.get("Content-Length")
    if value is None or r.headers.get("Content-Encoding", "identity") != "identity":
        return None
    try:
        length = int(value)
    except ValueError:
        return None
    return length if length >= 0 else None


def _parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    mime, _, rest = value.partition(";")
    params = {}
    for part in rest.split(";"):
        key, sep, val = part.partition("=")
        if sep:
            params[key.strip().lower()] = val.strip().strip('"')
    return mime.strip().lower(), params


def _index_file(project: str, pkg: DistributionPackage) -> IndexFile | None:
    """Our record of one listed file, or None (logged) when it must be ignored."""
    filename: str = pkg.filename
    url: str = pkg.url
    if urlsplit(url).scheme not in ("http", "https"):
        log.warning("%s: ignoring %s with a non-HTTP URL %r", project, filename, url)
        return None
    refusal = refused_name(filename)
    if refusal is None:
        kind, name, version = classify(filename)
    else:
        # Kept, never downloaded: the pipeline gives it a `failed` verdict of its own.
        # Its release is read from the last component of the name; it is no distribution
        # any other step may pick.
        log.warning("%s: %s", project, refusal)
        _, name, version = classify(filename.replace("\\", "/").rsplit("/", 1)[-1])
        kind = FileKind.OTHER
    if name is not None and name != project:
        log.warning("%s: ignoring %s, which names another project", project, filename)
        return None
    if version is None:
        version = str(pkg.version or "")
    digests: dict[str, str] = pkg.digests or {}
    sha256 = str(digests.get("sha256", "")).lower()
    if not is_sha256(sha256):
        log.info(
            "%s: %s has no usable sha256 in the index; it cannot be downloaded", project, filename
        )
        sha256 = ""
    upload_time: datetime | None = pkg.upload_time
    if upload_time is not None:
        upload_time = (
            upload_time.replace(tzinfo=UTC)
            if upload_time.tzinfo is None
            else upload_time.astimezone(UTC)
        )
    size = pkg.size if isinstance(pkg.size, int) and pkg.size >= 0 else None
    return IndexFile(
        project=project,
        version=version,
        filename=filename,
        url=url,
        sha256=sha256,
        kind=kind,
        upload_time=upload_time,
        size=size,
        yanked=bool(pkg.is_yanked),
        requires_python=pkg.requires_python,
    )


__all__ = [
    "SimpleIndex",
    "classify",
    "default_index_url",
    "normalize_project",
    "sha256_file",
]
