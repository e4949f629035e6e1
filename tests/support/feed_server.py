"""A local index-like server for the changelog (XML-RPC at /pypi) and RSS feeds."""

from __future__ import annotations

import threading
import xmlrpc.client
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class FeedState:
    # rows as the real changelog gives them: [name, version, timestamp, action, serial]
    changelog: list[list[object]] = field(default_factory=list)
    rss: bytes = b""
    raw_xmlrpc_answer: bytes | None = None  # when set, served verbatim (hostile tests)
    calls: list[int] = field(default_factory=list)
    xmlrpc_missing: bool = False  # when set, /pypi answers 404 (an index without XML-RPC)
    rss_missing: bool = False  # when set, the RSS feed answers 404

    def publish(self, name: str, version: str, action: str = "new release") -> int:
        serial = (max((int(r[4]) for r in self.changelog), default=1000)) + 1  # type: ignore[call-overload]
        self.changelog.append([name, version, 1_760_000_000 + serial, action, serial])
        return serial


class FeedServer:
    def __init__(self) -> None:
        self.state = FeedState()
        state = self.state

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                del format, args

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if state.xmlrpc_missing:
                    self._send(b"not found", "text/plain", 404)
                    return
                params, method = xmlrpc.client.loads(body)
                if method == "changelog_last_serial":
                    last = max((int(r[4]) for r in state.changelog), default=1000)  # type: ignore[call-overload]
                    self._send(
                        xmlrpc.client.dumps((last,), methodresponse=True).encode(), "text/xml"
                    )
                    return
                assert method == "changelog_since_serial"
                since = int(params[0])  # type: ignore[arg-type]
                state.calls.append(since)
                answer = (
                    state.raw_xmlrpc_answer
                    or xmlrpc.client.dumps(
                        ([r for r in state.changelog if int(r[4]) > since],),  # type: ignore[call-overload]
                        methodresponse=True,
                    ).encode()
                )
                self._send(answer, "text/xml")

            def do_GET(self) -> None:
                if self.path == "/rss/updates.xml" and not state.rss_missing:
                    self._send(state.rss, "application/rss+xml")
                else:
                    self._send(b"not found", "text/plain", 404)

            def _send(self, body: bytes, kind: str, status: int = 200) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def simple_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/simple/"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    yield server
    server.stop()
