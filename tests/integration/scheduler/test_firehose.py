"""The firehose against a local changelog/RSS server, a fixture index and real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import requests
from psycopg import sql
from psycopg.conninfo import make_conninfo

from rebuilder.index.model import IndexFile
from rebuilder.index.simple import SimpleIndex
from rebuilder.store.db import Pool, open_pool
from rebuilder.store.migrate import migrate
from rebuilder.store.records import FileRow
from rebuilder.store.repository import PostgresStore
from rebuilder.worker.queue import Priority
from scheduler.feeds import ChangelogClient, RssUpdates, rss_updates_url, xmlrpc_url
from scheduler.firehose import CHANGELOG_CURSOR, RSS_CURSOR, Firehose, FirehoseConfig
from tests.support.fakes import FakeDispatcher
from tests.support.feed_server import FeedServer, feed_server
from tests.support.index_server import FixtureIndex, fixture_index

__all__ = ["feed_server", "fixture_index"]

UPLOADED = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@pytest.fixture
def pool(database_url: str) -> Iterator[Pool]:
    """A migrated schema of its own, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    url = make_conninfo(database_url, options=f"-csearch_path={schema}")
    try:
        migrate(url)
        pool = open_pool(url, min_size=1, max_size=4)
        try:
            yield pool
        finally:
            pool.close()
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


class Crash(BaseException):
    """The scheduler process dies."""


class DyingStore(PostgresStore):
    """Dies on its ``die_at``-th release recording, before that transaction commits."""

    die_at = 0
    recorded = 0

    def record_and_queue(
        self,
        project: str,
        version: str,
        files: Sequence[IndexFile],
        *,
        priority: int,
        cursor: tuple[str, str] | None = None,
    ) -> tuple[list[FileRow], list[int]]:
        type(self).recorded += 1
        if type(self).recorded == self.die_at:
            raise Crash
        return super().record_and_queue(project, version, files, priority=priority, cursor=cursor)


def publish(index: FixtureIndex, name: str, version: str) -> None:
    stem = f"{name.replace('-', '_')}-{version}"
    index.add_file(name, f"{stem}-py3-none-any.whl", f"wheel {stem}".encode(), UPLOADED)
    index.add_file(name, f"{name}-{version}.tar.gz", f"sdist {stem}".encode(), UPLOADED)


def make_firehose(
    store: PostgresStore,
    feeds: FeedServer,
    index: FixtureIndex,
    dispatcher: FakeDispatcher,
    cache: Path,
) -> Firehose:
    session = requests.Session()
    return Firehose(
        store=store,
        index=SimpleIndex(index.url, cache),
        dispatcher=dispatcher,
        changelog=ChangelogClient(xmlrpc_url(feeds.simple_url), session, timeout=5),
        updates=RssUpdates(rss_updates_url(feeds.simple_url), session, timeout=5),
        config=FirehoseConfig(follow="all"),
    )


def queued_files(pool: Pool) -> list[str]:
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT f.filename FROM attempts a JOIN files f ON f.id = a.file_id ORDER BY a.id"
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_new_releases_are_recorded_and_queued_once_across_restarts(
    pool: Pool, feed_server: FeedServer, fixture_index: FixtureIndex, tmp_path: Path
) -> None:
    store, dispatcher, feeds = PostgresStore(pool), FakeDispatcher(), feed_server.state
    feeds.publish("history", "0.1")  # before the first start: not replayed
    publish(fixture_index, "history", "0.1")
    first = make_firehose(store, feed_server, fixture_index, dispatcher, tmp_path / "a")
    assert first.round().recorded == []
    assert store.get_cursor(CHANGELOG_CURSOR) == "1001"

    feeds.publish("Alpha", "1.0")
    publish(fixture_index, "alpha", "1.0")
    feeds.publish("beta", "2.0")  # the index does not show it yet
    feeds.publish("gamma", "0.3")
    publish(fixture_index, "gamma", "0.3")
    report = first.round()
    assert report.recorded == [("alpha", "1.0"), ("gamma", "0.3")]
    assert report.pending == [("beta", "2.0")]
    assert store.get_cursor(CHANGELOG_CURSOR) == "1002"  # held back before beta

    # The scheduler restarts; meanwhile beta shows up on the index.
    publish(fixture_index, "beta", "2.0")
    second = make_firehose(store, feed_server, fixture_index, dispatcher, tmp_path / "b")
    report = second.round()
    assert report.recorded == [("beta", "2.0"), ("gamma", "0.3")]
    assert feeds.calls[-1] == 1002  # resumed from the saved serial
    assert store.get_cursor(CHANGELOG_CURSOR) == "1004"
    assert second.round().recorded == []
    assert store.release_versions("history") == set()
    assert sorted(queued_files(pool)) == [
        "alpha-1.0-py3-none-any.whl",
        "beta-2.0-py3-none-any.whl",
        "gamma-0.3-py3-none-any.whl",
    ]
    assert len(dispatcher.sent) == 3
    assert {p for _, p in dispatcher.sent} == {Priority.NEW_RELEASE}


def test_a_crash_mid_round_resumes_at_the_last_committed_release(
    pool: Pool, feed_server: FeedServer, fixture_index: FixtureIndex, tmp_path: Path
) -> None:
    DyingStore.recorded, DyingStore.die_at = 0, 2
    store, dispatcher, feeds = DyingStore(pool), FakeDispatcher(), feed_server.state
    make_firehose(store, feed_server, fixture_index, dispatcher, tmp_path).round()
    for name in ("one", "two", "three"):
        feeds.publish(name, "1.0")
        publish(fixture_index, name, "1.0")
    with pytest.raises(Crash):
        make_firehose(store, feed_server, fixture_index, dispatcher, tmp_path).round()
    assert store.get_cursor(CHANGELOG_CURSOR) == "1001"  # committed with "one"
    report = make_firehose(store, feed_server, fixture_index, dispatcher, tmp_path).round()
    assert report.recorded == [("two", "1.0"), ("three", "1.0")]
    assert store.get_cursor(CHANGELOG_CURSOR) == "1003"
    assert sorted(queued_files(pool)) == [
        f"{n}-1.0-py3-none-any.whl" for n in ("one", "three", "two")
    ]


def test_an_index_without_xmlrpc_is_followed_through_its_rss_feed(
    pool: Pool, feed_server: FeedServer, fixture_index: FixtureIndex, tmp_path: Path
) -> None:
    feeds = feed_server.state
    feeds.xmlrpc_missing = True

    def rss(*items: tuple[str, str]) -> bytes:
        body = "".join(
            f"<item><title>{title}</title><pubDate>{when}</pubDate></item>" for title, when in items
        )
        return f'<?xml version="1.0"?><rss version="2.0"><channel>{body}</channel></rss>'.encode()

    old = ("old 1.0", "Tue, 24 Nov 2026 09:00:00 GMT")
    feeds.rss = rss(old)
    store, dispatcher = PostgresStore(pool), FakeDispatcher()
    firehose = make_firehose(store, feed_server, fixture_index, dispatcher, tmp_path)
    firehose.round()
    assert firehose.feed == "RSS feed"
    assert store.get_cursor(RSS_CURSOR) is not None
    tick = "Tue, 24 Nov 2026 10:00:00 GMT"
    publish(fixture_index, "first", "1.0")
    feeds.rss = rss(("First 1.0", tick), old)
    assert firehose.round().recorded == [("first", "1.0")]
    # Another release of the very same second, seen by a restarted scheduler.
    publish(fixture_index, "second", "1.0")
    feeds.rss = rss(("second 1.0", tick), ("First 1.0", tick), old)
    again = make_firehose(store, feed_server, fixture_index, dispatcher, tmp_path)
    assert again.round().recorded == [("second", "1.0")]
    assert again.round().recorded == []
    assert sorted(queued_files(pool)) == [
        "first-1.0-py3-none-any.whl",
        "second-1.0-py3-none-any.whl",
    ]
