"""Following everything new on an index: the XML-RPC changelog and the RSS feeds.

The changelog (``changelog_since_serial``) is the reliable source: every event has a
serial, and a persisted cursor means a restart resumes exactly where it stopped. The
RSS feeds only show the latest few dozen events; they are a fallback for indexes
without XML-RPC. Both are derived from the simple API's URL (``.../simple/`` becomes
``.../pypi`` and ``.../rss/updates.xml``), never written down as hosts.
"""

from __future__ import annotations

import logging
import xmlrpc.client
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from xml.etree.ElementTree import ParseError
from xml.parsers.expat import ExpatError

import requests
from defusedxml import DefusedXmlException, ElementTree
from packaging.utils import canonicalize_name

from scheduler.errors import FeedMissingError, SchedulerError, StaleFeedError

logger = logging.getLogger(__name__)

MAX_FEED_BYTES = 64 * 1024**2
# Changelog actions that mean "a release or one of its files appeared".
_NEW_FILE_ACTIONS = ("new release", "add ", "create")


@dataclass(frozen=True)
class ReleaseEvent:
    """Something new about one release, with the feed's serial when it has one."""

    project: str  # normalized
    version: str
    action: str
    serial: int | None
    timestamp: datetime | None


def index_base(simple_url: str) -> str:
    """The index's root from its simple API URL (``https://x/simple/`` -> ``https://x``)."""
    base = simple_url.rstrip("/")
    if base.endswith("/simple"):
        base = base[: -len("/simple")]
    return base


def xmlrpc_url(simple_url: str) -> str:
    return f"{index_base(simple_url)}/pypi"


def rss_updates_url(simple_url: str) -> str:
    return f"{index_base(simple_url)}/rss/updates.xml"


def _fetch(
    session: requests.Session, method: str, url: str, timeout: float, body: bytes | None = None
) -> bytes:
    try:
        response = session.request(
            method,
            url,
            data=body,
            timeout=timeout,
            stream=True,
            allow_redirects=False,
            headers={"Content-Type": "text/xml"} if body is not None else None,
        )
    except requests.RequestException as exc:
        raise SchedulerError(f"{url}: {exc}") from None
    with response:
        if response.status_code in (404, 405, 501):
            raise FeedMissingError(f"{url} answered HTTP {response.status_code}")
        if response.status_code != 200:
            raise SchedulerError(f"{url} answered HTTP {response.status_code}")
        chunks, size = [], 0
        for chunk in response.iter_content(65536):
            size += len(chunk)
            if size > MAX_FEED_BYTES:
                raise SchedulerError(f"{url}: answer larger than {MAX_FEED_BYTES} bytes")
            chunks.append(chunk)
    return b"".join(chunks)


class ChangelogClient:
    """``changelog_since_serial`` over XML-RPC, through a normal HTTP session."""

    def __init__(self, url: str, session: requests.Session, *, timeout: float = 60.0) -> None:
        self._url = url
        self._session = session
        self._timeout = timeout

    def last_serial(self) -> int:
        """The index's newest serial (``changelog_last_serial``): where following starts."""
        body = xmlrpc.client.dumps((), "changelog_last_serial").encode()
        answer = _fetch(self._session, "POST", self._url, self._timeout, body)
        if b"<!DOCTYPE" in answer or b"<!ENTITY" in answer:
            raise SchedulerError(f"{self._url}: refusing an XML-RPC answer with a DOCTYPE")
        try:
            (serial,), _ = xmlrpc.client.loads(answer)
        except (xmlrpc.client.Fault, xmlrpc.client.ResponseError, ValueError, ExpatError) as exc:
            raise SchedulerError(f"{self._url}: unusable XML-RPC answer: {exc}") from None
        if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
            raise SchedulerError(f"{self._url}: last serial is not a serial: {serial!r:.100}")
        return serial

    def since(self, serial: int) -> list[ReleaseEvent]:
        """Events after ``serial``, oldest first. Raises StaleFeedError on a stale answer."""
        body = xmlrpc.client.dumps((serial,), "changelog_since_serial").encode()
        answer = _fetch(self._session, "POST", self._url, self._timeout, body)
        if b"<!DOCTYPE" in answer or b"<!ENTITY" in answer:
            raise SchedulerError(f"{self._url}: refusing an XML-RPC answer with a DOCTYPE")
        try:
            (rows,), _ = xmlrpc.client.loads(answer)
        except (xmlrpc.client.Fault, xmlrpc.client.ResponseError, ValueError, ExpatError) as exc:
            raise SchedulerError(f"{self._url}: unusable XML-RPC answer: {exc}") from None
        events = sorted(_changelog_events(rows), key=lambda e: e.serial or 0)
        if events and (events[0].serial or 0) <= serial:
            raise StaleFeedError(
                f"{self._url}: answered serial {events[0].serial}, not after {serial}"
            )
        return events


def _changelog_events(rows: object) -> Iterable[ReleaseEvent]:
    if not isinstance(rows, list):
        raise SchedulerError("changelog answer is not a list")
    for row in rows:
        if not isinstance(row, list | tuple) or len(row) < 5:
            raise SchedulerError(f"malformed changelog row: {row!r:.200}")
        name, version, when, action, serial = row[:5]
        if not isinstance(name, str) or not isinstance(serial, int):
            raise SchedulerError(f"malformed changelog row: {row!r:.200}")
        if not version or not isinstance(version, str):
            continue  # project-level events (roles, descriptions) name no release
        yield ReleaseEvent(
            project=canonicalize_name(name),
            version=version,
            action=str(action),
            serial=serial,
            timestamp=datetime.fromtimestamp(int(when), UTC) if isinstance(when, int) else None,
        )


def new_releases(events: Sequence[ReleaseEvent]) -> list[tuple[str, str]]:
    """The distinct (project, version) pairs whose files appeared, in feed order."""
    seen: dict[tuple[str, str], None] = {}
    for event in events:
        if event.action.startswith(_NEW_FILE_ACTIONS):
            seen.setdefault((event.project, event.version), None)
    return list(seen)


class RssUpdates:
    """The ``updates.xml`` feed: the latest releases, newest first, no serials."""

    def __init__(self, url: str, session: requests.Session, *, timeout: float = 60.0) -> None:
        self._url = url
        self._session = session
        self._timeout = timeout

    def latest(self) -> list[ReleaseEvent]:
        answer = _fetch(self._session, "GET", self._url, self._timeout)
        try:
            root = ElementTree.fromstring(answer, forbid_dtd=True)
        except (DefusedXmlException, ParseError) as exc:
            raise SchedulerError(f"{self._url}: unusable RSS: {exc}") from None
        events = []
        for item in root.iter("item"):
            title = (item.findtext("title") or "").strip()
            name, _, version = title.rpartition(" ")
            if not name or not version:
                continue
            published = item.findtext("pubDate")
            try:
                when = parsedate_to_datetime(published) if published else None
            except (TypeError, ValueError):
                when = None
            events.append(ReleaseEvent(canonicalize_name(name), version, "rss", None, when))
        return events
