from __future__ import annotations

import pytest
import requests

from scheduler.errors import SchedulerError, StaleFeedError
from scheduler.feeds import (
    ChangelogClient,
    RssUpdates,
    index_base,
    new_releases,
    rss_updates_url,
    xmlrpc_url,
)
from tests.support.feed_server import FeedServer, feed_server

__all__ = ["feed_server"]


def _client(server: FeedServer) -> ChangelogClient:
    return ChangelogClient(xmlrpc_url(server.simple_url), requests.Session(), timeout=5)


def test_urls_are_derived_from_the_simple_api() -> None:
    assert index_base("https://example.invalid/simple/") == "https://example.invalid"
    assert xmlrpc_url("https://example.invalid/simple") == "https://example.invalid/pypi"
    assert rss_updates_url("http://127.0.0.1:8/simple/") == "http://127.0.0.1:8/rss/updates.xml"


def test_changelog_resumes_exactly_after_the_cursor(feed_server: FeedServer) -> None:
    state = feed_server.state
    state.publish("Demo_Pkg", "1.0")
    state.publish("demo-pkg", "1.0", "add py3 file demo_pkg-1.0-py3-none-any.whl")
    state.publish("other", "", "create")  # a project event: no release
    state.publish("other", "2.0", "remove release")
    client = _client(feed_server)
    events = client.since(0)
    assert [e.serial for e in events] == [1001, 1002, 1004]
    assert new_releases(events) == [("demo-pkg", "1.0")]
    cursor = max(e.serial or 0 for e in events)
    assert client.since(cursor) == []
    later = state.publish("third", "0.1")
    assert [(e.project, e.serial) for e in client.since(cursor)] == [("third", later)]


def test_a_stale_answer_is_refused(feed_server: FeedServer) -> None:
    feed_server.state.publish("demo", "1.0")
    feed_server.state.raw_xmlrpc_answer = (
        b"<?xml version='1.0'?><methodResponse><params><param><value><array><data>"
        b"<value><array><data><value><string>demo</string></value>"
        b"<value><string>1.0</string></value><value><int>1</int></value>"
        b"<value><string>new release</string></value><value><int>5</int></value>"
        b"</data></array></value></data></array></value></param></params></methodResponse>"
    )
    with pytest.raises(StaleFeedError):
        _client(feed_server).since(1000)


def test_entity_bombs_and_garbage_are_refused(feed_server: FeedServer) -> None:
    feed_server.state.raw_xmlrpc_answer = (
        b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaaaaaa">]><methodResponse/>'
    )
    with pytest.raises(SchedulerError, match="DOCTYPE"):
        _client(feed_server).since(0)
    feed_server.state.raw_xmlrpc_answer = b"this is not xml"
    with pytest.raises(SchedulerError, match="unusable"):
        _client(feed_server).since(0)


def test_rss_lists_latest_releases_and_refuses_dtds(feed_server: FeedServer) -> None:
    feed_server.state.rss = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>updates</title>'
        b"<item><title>Some.Project 2.1.0</title><pubDate>Tue, 24 Nov 2026 10:00:00 GMT"
        b"</pubDate></item><item><title>garbage</title></item></channel></rss>"
    )
    rss = RssUpdates(rss_updates_url(feed_server.simple_url), requests.Session(), timeout=5)
    [event] = rss.latest()
    assert (event.project, event.version, event.timestamp and event.timestamp.year) == (
        "some-project",
        "2.1.0",
        2026,
    )
    feed_server.state.rss = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "y">]><rss/>'
    with pytest.raises(SchedulerError, match="unusable RSS"):
        rss.latest()


def test_unreachable_feed_is_a_clear_error() -> None:
    client = ChangelogClient("http://127.0.0.1:9/pypi", requests.Session(), timeout=2)
    with pytest.raises(SchedulerError, match=r"127\.0\.0\.1:9"):
        client.since(0)
