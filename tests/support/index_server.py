"""A small package index served from memory on 127.0.0.1, for tests.

It answers like the public index does: PEP 691 JSON (``application/vnd.pypi.simple.v1+json``
with PEP 700 ``upload-time``, sizes and versions) or PEP 503 HTML, picked by the
``Accept`` header, file URLs RELATIVE to the page (``../../files/...``), PEP 658
metadata for wheels, and a ``/simple/`` root listing. Hostile behaviours can be switched
on through :attr:`FixtureIndex.hostile` to test how clients cope.

    with FixtureIndex() as index:
        index.add_file("demo", "demo-1.0-py3-none-any.whl", data, upload_time)
        client = SimpleIndex(index.url, tmp_path)
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
API_VERSION = "1.1"


@dataclass
class FixtureFile:
    """One file the index serves."""

    project: str  # normalized
    filename: str
    data: bytes
    upload_time: datetime | None
    requires_python: str | None = None
    yanked: bool | str = False
    metadata: bytes | None = None  # PEP 658, wheels only

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def version(self) -> str | None:
        try:
            if self.filename.endswith(".whl"):
                return str(parse_wheel_filename(self.filename)[1])
            return str(parse_sdist_filename(self.filename)[1])
        except ValueError:
            return None

    @property
    def path(self) -> str:
        """The server path of the file (what the relative URL points to)."""
        return f"/files/{self.sha256[:12]}/{quote(self.filename)}"


@dataclass
class Hostility:
    """Misbehaviours to switch on; all off by default."""

    corrupt: set[str] = field(default_factory=set)  # filenames served with a byte flipped
    truncate: set[str] = field(default_factory=set)  # filenames cut at half their length
    unhashed: set[str] = field(default_factory=set)  # filenames listed with no sha256
    delay: float = 0.0  # seconds to wait before answering any request
    trickle: float = 0.0  # seconds between 4 KiB chunks of file bodies
    # "http://host:port/mirror": /files/X answers 302 to <that>/files/X (served as-is)
    redirect_files_to: str | None = None
    page_padding: int = 0  # extra bytes in JSON project pages ("gigantic" pages)
    no_content_length: bool = False  # pages sent without Content-Length (close-delimited)
    invalid_json: bool = False  # JSON pages that do not parse
    bad_schema: bool = False  # JSON pages that parse but break the schema
    fail_status: int = 500
    fail_count: int = 0  # the next N requests answer fail_status (-1: all of them)
    force_html: bool = False  # answer HTML whatever the client accepts


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]


def _wheel_metadata(filename: str, data: bytes) -> bytes | None:
    if not filename.endswith(".whl"):
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for name in zf.namelist():
                parts = name.split("/")
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                    return zf.read(name)
    except zipfile.BadZipFile:
        return None
    return None


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FixtureIndex:
    """A threaded HTTP index on an ephemeral port of 127.0.0.1 (or of ``host``)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.files: dict[str, list[FixtureFile]] = {}
        self.hostile = Hostility()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> FixtureIndex:
        handler = type("Handler", (_Handler,), {"index": self})
        self._server = ThreadingHTTPServer((self.host, 0), handler)
        self._server.daemon_threads = True
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering; the port is closed (connections are refused)."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FixtureIndex:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the fixture index is not started"
        return int(self._server.server_address[1])

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The index URL (``.../simple/``)."""
        return f"{self.base}/simple/"

    # -- content -------------------------------------------------------------------

    def add_file(
        self,
        project: str,
        filename: str,
        data: bytes,
        upload_time: datetime | None = None,
        *,
        requires_python: str | None = None,
        yanked: bool | str = False,
    ) -> FixtureFile:
        """Publish ``data`` as ``filename`` of ``project`` (replacing a same-named file)."""
        name = canonicalize_name(project)
        f = FixtureFile(
            project=name,
            filename=filename,
            data=data,
            upload_time=upload_time,
            requires_python=requires_python,
            yanked=yanked,
            metadata=_wheel_metadata(filename, data),
        )
        with self._lock:
            files = [x for x in self.files.get(name, []) if x.filename != filename]
            files.append(f)
            self.files[name] = files
        return f

    def add_path(
        self, project: str, path: Path, upload_time: datetime | None = None, **kwargs: object
    ) -> FixtureFile:
        """Publish a file from disk under its own name."""
        return self.add_file(project, path.name, path.read_bytes(), upload_time, **kwargs)  # type: ignore[arg-type]

    def file(self, filename: str) -> FixtureFile:
        for files in self.files.values():
            for f in files:
                if f.filename == filename:
                    return f
        raise KeyError(filename)

    def file_url(self, filename: str) -> str:
        return self.base + self.file(filename).path

    def paths_requested(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- rendering -----------------------------------------------------------------

    def _project_json(self, project: str) -> bytes:
        files = sorted(self.files[project], key=lambda f: f.filename)
        entries = []
        for f in files:
            entry: dict[str, object] = {
                "filename": f.filename,
                "url": "../.." + f.path,
                "hashes": {} if f.filename in self.hostile.unhashed else {"sha256": f.sha256},
                "requires-python": f.requires_python,
                "yanked": f.yanked,
                "size": len(f.data),
            }
            if f.upload_time is not None:
                entry["upload-time"] = _iso(f.upload_time)
            if f.metadata is not None:
                digest = hashlib.sha256(f.metadata).hexdigest()
                entry["core-metadata"] = {"sha256": digest}
                entry["data-dist-info-metadata"] = {"sha256": digest}
            entries.append(entry)
        versions = sorted({v for f in files if (v := f.version) is not None})
        page: dict[str, object] = {
            "meta": {"api-version": API_VERSION},
            "name": project,
            "versions": versions,
            "files": entries,
        }
        if self.hostile.bad_schema:
            page["files"] = {"not": "a list"}
        if self.hostile.page_padding:
            page["padding"] = "x" * self.hostile.page_padding
        body = json.dumps(page).encode()
        if self.hostile.invalid_json:
            body = body[: len(body) // 2]
        return body

    def _project_html(self, project: str) -> bytes:
        files = sorted(self.files[project], key=lambda f: f.filename)
        lines = [
            "<!DOCTYPE html>",
            "<html><head>",
            f'<meta name="pypi:repository-version" content="{API_VERSION}">',
            f"<title>Links for {html.escape(project)}</title></head><body>",
            f"<h1>Links for {html.escape(project)}</h1>",
        ]
        for f in files:
            href = "../.." + f.path
            if f.filename not in self.hostile.unhashed:
                href += f"#sha256={f.sha256}"
            attrs = [f'href="{html.escape(href)}"']
            if f.requires_python:
                attrs.append(f'data-requires-python="{html.escape(f.requires_python)}"')
            if f.yanked is not False:
                reason = f.yanked if isinstance(f.yanked, str) else ""
                attrs.append(f'data-yanked="{html.escape(reason)}"')
            if f.metadata is not None:
                digest = hashlib.sha256(f.metadata).hexdigest()
                attrs.append(f'data-dist-info-metadata="sha256={digest}"')
                attrs.append(f'data-core-metadata="sha256={digest}"')
            lines.append(f"<a {' '.join(attrs)}>{html.escape(f.filename)}</a><br/>")
        lines.append("</body></html>")
        return "\n".join(lines).encode()

    def _root(self, as_json: bool) -> bytes:
        names = sorted(self.files)
        if as_json:
            return json.dumps(
                {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in names]}
            ).encode()
        links = "".join(f'<a href="{n}/">{n}</a>\n' for n in names)
        return f"<!DOCTYPE html><html><body>\n{links}</body></html>".encode()

    def _find(self, path: str) -> tuple[FixtureFile, bool] | None:
        """The file at a /files/ path, and whether its PEP 658 metadata is wanted."""
        for files in self.files.values():
            for f in files:
                if path == f.path:
                    return f, False
                if path == f.path + ".metadata" and f.metadata is not None:
                    return f, True
        return None


class _Handler(BaseHTTPRequestHandler):
    index: FixtureIndex
    protocol_version = "HTTP/1.1"
    server_version = "FixtureIndex/1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the request log is kept in FixtureIndex.requests

    def do_GET(self) -> None:
        idx = self.index
        hostile = idx.hostile
        with idx._lock:
            idx.requests.append(RecordedRequest("GET", self.path, dict(self.headers.items())))
            failing = hostile.fail_count != 0
            if hostile.fail_count > 0:
                hostile.fail_count -= 1
        if hostile.delay and idx._stopping.wait(hostile.delay):
            return
        if failing:
            self._send(hostile.fail_status, b"failing on purpose\n", "text/plain")
            return
        path = unquote(urlsplit(self.path).path)
        if path == "/simple/":
            as_json = self._wants_json()
            self._send(200, idx._root(as_json), JSON_TYPE if as_json else HTML_TYPE)
        elif path.startswith("/simple/"):
            self._project(path.removeprefix("/simple/"))
        elif path.startswith("/files/"):
            self._file(path)
        elif path.startswith("/mirror/files/"):
            self._file(path.removeprefix("/mirror"), mirrored=True)
        else:
            self._send(404, b"not found\n", "text/plain")

    def _wants_json(self) -> bool:
        """JSON when the client rates it at least as high as any HTML type."""
        if self.index.hostile.force_html:
            return False
        json_q, html_q = 0.0, 0.0
        for part in self.headers.get("Accept", "").split(","):
            mime, *params = (p.strip() for p in part.split(";"))
            q = 1.0
            for param in params:
                key, _, value = param.partition("=")
                if key.strip() == "q":
                    try:
                        q = float(value)
                    except ValueError:
                        q = 0.0
            if mime == JSON_TYPE:
                json_q = max(json_q, q)
            elif mime in (HTML_TYPE, "text/html", "*/*"):
                html_q = max(html_q, q)
        return json_q > 0 and json_q >= html_q

    def _project(self, rest: str) -> None:
        idx = self.index
        if not rest.endswith("/"):
            self._redirect(f"/simple/{rest}/")
            return
        name = rest.rstrip("/")
        normalized = canonicalize_name(name)
        if name != normalized:
            self._redirect(f"/simple/{normalized}/")
            return
        if normalized not in idx.files:
            self._send(404, b"no such project\n", "text/plain")
            return
        if self._wants_json():
            body = idx._project_json(normalized)
            self._send(200, body, JSON_TYPE, length=not idx.hostile.no_content_length)
        else:
            self._send(200, idx._project_html(normalized), HTML_TYPE)

    def _file(self, path: str, *, mirrored: bool = False) -> None:
        idx = self.index
        hostile = idx.hostile
        found = idx._find(path)
        if found is None:
            self._send(404, b"no such file\n", "text/plain")
            return
        f, metadata = found
        if metadata:
            assert f.metadata is not None
            self._send(200, f.metadata, "application/octet-stream")
            return
        target = hostile.redirect_files_to
        if target is not None and not mirrored:
            self._redirect(target.rstrip("/") + self.path)
            return
        data = f.data
        if f.filename in hostile.corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if f.filename in hostile.truncate:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if hostile.trickle:
            for start in range(0, len(data), 4096):
                self.wfile.write(data[start : start + 4096])
                self.wfile.flush()
                if idx._stopping.wait(hostile.trickle):
                    return
            return
        self.wfile.write(data)

    def _redirect(self, location: str) -> None:
        self.send_response(301 if location.startswith("/") else 302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: int, body: bytes, content_type: str, *, length: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def fixture_index() -> Iterator[FixtureIndex]:
    """A started :class:`FixtureIndex`, stopped after the test."""
    with FixtureIndex() as index:
        yield index
