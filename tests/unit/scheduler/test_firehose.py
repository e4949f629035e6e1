"""The firehose: following the changelog / RSS feed with a persisted cursor (MemoryStore)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from rebuilder.errors import IndexError_
from rebuilder.index.model import FileKind, IndexFile
from rebuilder.store.memory import MemoryStore
from rebuilder.store.records import FileRow
from rebuilder.worker.queue import Priority
from scheduler.errors import FeedMissingError, SchedulerError, StaleFeedError
from scheduler.feeds import ReleaseEvent
from scheduler.firehose import (
    CHANGELOG_CURSOR,
    RSS_CURSOR,
    Firehose,
    FirehoseConfig,
    TimePosition,
)
from tests.support.fakes import FakeDispatcher, FakeIndex

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def wheel(project: str, version: str, tag: str = "py3-none-any") -> IndexFile:
    filename = f"{project.replace('-', '_')}-{version}-{tag}.whl"
    return IndexFile(
        project=project,
        version=version,
        filename=filename,
        url=f"http://127.0.0.1:9/{filename}",
        sha256=(filename.encode().hex() * 64)[:64],
        kind=FileKind.WHEEL,
        upload_time=T0,
    )


def sdist(project: str, version: str) -> IndexFile:
    filename = f"{project}-{version}.tar.gz"
    return IndexFile(
        project=project,
        version=version,
        filename=filename,
        url=f"http://127.0.0.1:9/{filename}",
        sha256=(filename.encode().hex() * 64)[:64],
        kind=FileKind.SDIST,
        upload_time=T0,
    )


@dataclass
class FakeChangelog:
    rows: list[ReleaseEvent] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    attempts: int = 0
    stale: bool = False
    missing: bool = False
    down: bool = False

    def publish(self, project: str, version: str, action: str = "new release") -> int:
        serial = max((e.serial or 0 for e in self.rows), default=1000) + 1
        self.rows.append(ReleaseEvent(project, version, action, serial, T0))
        return serial

    def _check(self) -> None:
        if self.missing:
            raise FeedMissingError("/pypi answered HTTP 404")
        if self.down:
            raise SchedulerError("/pypi answered HTTP 503")

    def last_serial(self) -> int:
        self._check()
        return max((e.serial or 0 for e in self.rows), default=1000)

    def since(self, serial: int) -> list[ReleaseEvent]:
        self.attempts += 1
        self._check()
        self.calls.append(serial)
        if self.stale:
            raise StaleFeedError(f"answered serial 5, not after {serial}")
        return [e for e in self.rows if (e.serial or 0) > serial]


@dataclass
class FakeUpdates:
    items: list[ReleaseEvent] = field(default_factory=list)  # newest first, like the feed

    def publish(self, project: str, version: str, when: datetime) -> None:
        self.items.insert(0, ReleaseEvent(project, version, "rss", None, when))

    def latest(self) -> list[ReleaseEvent]:
        return list(self.items[:40])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Crash(BaseException):
    """The process dies (not an error anyone catches)."""


class CrashingStore(MemoryStore):
    """Dies while recording the ``crash_at``-th release: that transaction never commits."""

    def __init__(self, crash_at: int) -> None:
        super().__init__()
        self.crash_at = crash_at
        self.recorded = 0

    def record_and_queue(
        self,
        project: str,
        version: str,
        files: Sequence[IndexFile],
        *,
        priority: int,
        cursor: tuple[str, str] | None = None,
    ) -> tuple[list[FileRow], list[int]]:
        self.recorded += 1
        if self.recorded == self.crash_at:
            raise Crash
        return super().record_and_queue(project, version, files, priority=priority, cursor=cursor)


@dataclass
class Rig:
    store: MemoryStore
    index: FakeIndex
    changelog: FakeChangelog
    dispatcher: FakeDispatcher
    clock: Clock
    updates: FakeUpdates | None = None

    def firehose(self, **config: object) -> Firehose:
        return Firehose(
            store=self.store,
            index=self.index,
            dispatcher=self.dispatcher,
            changelog=self.changelog,
            updates=self.updates,
            config=FirehoseConfig(**config),  # type: ignore[arg-type]
            clock=self.clock,
            rng=random.Random(7),
        )

    def queued(self) -> list[str]:
        """Filenames of the attempts sent, in order."""
        names = []
        for attempt_id, _ in self.dispatcher.sent:
            attempt = self.store.attempt(attempt_id)
            assert attempt is not None
            row = self.store.file(attempt.file_id)
            assert row is not None
            names.append(row.filename)
        return names


@pytest.fixture
def rig() -> Rig:
    return Rig(MemoryStore(), FakeIndex(), FakeChangelog(), FakeDispatcher(), Clock())


def test_first_start_begins_at_the_current_serial(rig: Rig) -> None:
    rig.changelog.publish("old", "1.0")
    rig.index.add(sdist("old", "1.0"), wheel("old", "1.0"))
    firehose = rig.firehose(follow="all")
    report = firehose.round()
    assert report.recorded == []
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == "1001"
    serial = rig.changelog.publish("fresh", "2.0")
    rig.index.add(sdist("fresh", "2.0"), wheel("fresh", "2.0"))
    report = firehose.round()
    assert report.recorded == [("fresh", "2.0")]
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == str(serial)
    assert rig.store.release_versions("old") == set()
    assert rig.queued() == ["fresh-2.0-py3-none-any.whl"]
    assert {p for _, p in rig.dispatcher.sent} == {Priority.NEW_RELEASE}


def test_all_records_every_release_once_and_queues_its_wheels(rig: Rig) -> None:
    firehose = rig.firehose(follow="all")
    firehose.round()
    for name in ("a", "b"):
        rig.changelog.publish(name, "1.0")
        rig.changelog.publish(name, "1.0", f"add py3 file {name}-1.0-py3-none-any.whl")
        rig.index.add(sdist(name, "1.0"), wheel(name, "1.0"))
    rig.changelog.publish("c", "1.0", "remove release")
    report = firehose.round()
    assert report.recorded == [("a", "1.0"), ("b", "1.0")]
    assert rig.index.requests == ["a", "b"]  # one page read per release, not per event
    assert rig.queued() == ["a-1.0-py3-none-any.whl", "b-1.0-py3-none-any.whl"]
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == "1005"
    assert firehose.round().recorded == []
    # A file added later to a known release: only that file is queued.
    rig.index.add(wheel("a", "1.0", "cp311-cp311-linux_x86_64"))
    rig.changelog.publish("a", "1.0", "add cp311 file a-1.0-cp311-cp311-linux_x86_64.whl")
    assert firehose.round().recorded == [("a", "1.0")]
    assert rig.queued()[-1] == "a-1.0-cp311-cp311-linux_x86_64.whl"
    assert len(rig.queued()) == 3


def test_watched_acts_on_watched_projects_only(rig: Rig) -> None:
    rig.store.watch_add(["mine", "newly-watched"])
    rig.store.record_release("mine", "1.0", [sdist("mine", "1.0")])  # polled before
    firehose = rig.firehose()  # follow="watched" by default
    firehose.round()
    rig.changelog.publish("other", "3.0")
    rig.changelog.publish("mine", "1.1")
    rig.changelog.publish("newly-watched", "0.1")  # never polled: left to the watch list
    for name, version in (("other", "3.0"), ("mine", "1.1"), ("newly-watched", "0.1")):
        rig.index.add(sdist(name, version), wheel(name, version))
    report = firehose.round()
    assert report.recorded == [("mine", "1.1")]
    assert rig.index.requests == ["mine"]
    assert rig.store.release_versions("other") == set()
    assert rig.store.release_versions("newly-watched") == set()
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == "1003"  # the cursor moved past all
    assert rig.queued() == ["mine-1.1-py3-none-any.whl"]


def test_a_restarted_firehose_resumes_from_the_cursor(rig: Rig) -> None:
    rig.firehose(follow="all").round()
    rig.changelog.publish("a", "1.0")
    rig.index.add(sdist("a", "1.0"), wheel("a", "1.0"))
    rig.firehose(follow="all").round()
    rig.changelog.publish("b", "1.0")
    rig.index.add(sdist("b", "1.0"), wheel("b", "1.0"))
    again = rig.firehose(follow="all")  # a new process: memory lost, store kept
    assert again.round().recorded == [("b", "1.0")]
    assert rig.changelog.calls[-1] == 1001  # asked from the saved serial, not from scratch
    assert rig.queued() == ["a-1.0-py3-none-any.whl", "b-1.0-py3-none-any.whl"]


def test_a_crash_between_two_releases_misses_and_doubles_nothing() -> None:
    store = CrashingStore(crash_at=2)
    rig = Rig(store, FakeIndex(), FakeChangelog(), FakeDispatcher(), Clock())
    rig.firehose(follow="all").round()
    for name in ("a", "b", "c"):
        rig.changelog.publish(name, "1.0")
        rig.index.add(sdist(name, "1.0"), wheel(name, "1.0"))
    with pytest.raises(Crash):
        rig.firehose(follow="all").round()
    assert store.get_cursor(CHANGELOG_CURSOR) == "1001"  # a's transaction committed
    assert rig.store.release_versions("b") == set()
    report = rig.firehose(follow="all").round()
    assert report.recorded == [("b", "1.0"), ("c", "1.0")]
    assert store.get_cursor(CHANGELOG_CURSOR) == "1003"
    assert sorted(rig.queued()) == [f"{n}-1.0-py3-none-any.whl" for n in "abc"]


def test_a_stale_feed_never_moves_the_cursor_and_backs_off(rig: Rig) -> None:
    rig.changelog.publish("a", "1.0")
    firehose = rig.firehose(follow="all", poll_interval=60.0)
    firehose()
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == "1001"
    rig.changelog.stale = True
    rig.clock.now += 61
    firehose()
    firehose()  # not due yet: no request
    assert rig.changelog.calls == [1001, 1001]
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == "1001"
    rig.clock.now += 59
    firehose()
    assert rig.changelog.calls == [1001, 1001]  # the backoff is at least the interval
    rig.clock.now += 91
    firehose()
    assert rig.changelog.calls == [1001, 1001, 1001]  # retried after the jittered backoff
    rig.clock.now += 200
    rig.changelog.stale = False
    rig.changelog.publish("b", "1.0")
    rig.index.add(sdist("b", "1.0"), wheel("b", "1.0"))
    firehose()
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == "1002"


def test_feed_errors_back_off_exponentially_with_jitter(rig: Rig) -> None:
    firehose = rig.firehose(poll_interval=10.0, max_backoff=100.0)
    firehose()
    rig.changelog.down = True
    rig.clock.now += 11
    firehose()  # the first failure
    attempts, last = rig.changelog.attempts, rig.clock.now
    waits: list[float] = []
    while len(waits) < 7:
        rig.clock.now += 1
        firehose()
        if rig.changelog.attempts > attempts:
            attempts = rig.changelog.attempts
            waits.append(rig.clock.now - last)
            last = rig.clock.now
    # 10 s after the first failure, then doubling up to 100 s, each + up to 50 % jitter.
    for wait, base in zip(waits, (10, 20, 40, 80, 100, 100, 100), strict=True):
        assert base <= wait <= base * 1.5 + 1
    assert len(set(waits[4:])) > 1  # jittered
    rig.changelog.down = False
    rig.clock.now += 200
    firehose()
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == "1000"


def test_an_unknown_release_is_retried_and_holds_the_cursor_back(rig: Rig) -> None:
    firehose = rig.firehose(follow="all")
    firehose.round()
    rig.changelog.publish("late", "1.0")  # the index does not show it yet
    rig.changelog.publish("b", "1.0")
    rig.index.add(sdist("b", "1.0"), wheel("b", "1.0"))
    report = firehose.round()
    assert report.recorded == [("b", "1.0")]
    assert report.pending == [("late", "1.0")]
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == "1000"  # held before "late"
    rig.changelog.publish("c", "1.0")
    rig.index.add(sdist("c", "1.0"), wheel("c", "1.0"))
    report = firehose.round()
    assert report.recorded == [("c", "1.0")]
    assert rig.changelog.calls[-1] == 1002  # memory reads on after what it read
    # A restart now replays from the held-back cursor: b is not doubled.
    again = rig.firehose(follow="all")
    rig.index.add(sdist("late", "1.0"), wheel("late", "1.0"))
    report = again.round()
    assert report.recorded == [("late", "1.0"), ("b", "1.0"), ("c", "1.0")]
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == "1003"
    assert sorted(rig.queued()) == [f"{n}-1.0-py3-none-any.whl" for n in ("b", "c", "late")]


def test_an_unknown_release_is_recorded_when_it_appears_then_given_up(rig: Rig) -> None:
    firehose = rig.firehose(follow="all", max_tries=3)
    firehose.round()
    rig.changelog.publish("late", "1.0")
    rig.changelog.publish("never", "1.0")
    firehose.round()
    rig.index.add(sdist("late", "1.0"), wheel("late", "1.0"))
    report = firehose.round()
    assert report.recorded == [("late", "1.0")]
    assert report.pending == [("never", "1.0")]
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == "1001"
    firehose.round()
    report = firehose.round()
    assert report.given_up == [("never", "1.0")]
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == "1002"
    assert firehose.pending == []


def test_pending_releases_are_bounded(rig: Rig) -> None:
    firehose = rig.firehose(follow="all", max_pending=2)
    firehose.round()
    for name in ("p1", "p2", "p3"):
        rig.changelog.publish(name, "1.0")
    report = firehose.round()
    assert report.given_up == [("p1", "1.0")]
    assert firehose.pending == [("p2", "1.0"), ("p3", "1.0")]
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == "1001"


def test_an_index_outage_stops_the_round_without_losing_events(rig: Rig) -> None:
    firehose = rig.firehose(follow="all")
    firehose.round()
    rig.changelog.publish("a", "1.0")
    rig.changelog.publish("b", "1.0")
    rig.index.add(sdist("a", "1.0"), wheel("a", "1.0"))
    rig.index.add(sdist("b", "1.0"), wheel("b", "1.0"))
    rig.index.down = True
    with pytest.raises(IndexError_):
        firehose.round()
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == "1000"
    rig.index.down = False
    report = firehose.round()
    assert report.recorded == [("a", "1.0"), ("b", "1.0")]
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == "1002"


def test_a_round_is_bounded_and_the_next_comes_at_once(rig: Rig) -> None:
    firehose = rig.firehose(follow="all", max_releases_per_round=2, poll_interval=60.0)
    firehose()
    for name in ("a", "b", "c", "d", "e"):
        rig.changelog.publish(name, "1.0")
        rig.index.add(sdist(name, "1.0"), wheel(name, "1.0"))
    rig.clock.now += 61
    firehose()
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == "1002"
    firehose()  # due at once: catching up
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == "1004"
    firehose()
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == "1005"
    firehose()
    assert len(rig.queued()) == 5


def rss_rig() -> Rig:
    changelog = FakeChangelog(missing=True)
    return Rig(MemoryStore(), FakeIndex(), changelog, FakeDispatcher(), Clock(), FakeUpdates())


def test_without_xmlrpc_the_rss_feed_is_followed_with_same_second_ties() -> None:
    rig = rss_rig()
    assert rig.updates is not None
    rig.updates.publish("old", "1.0", T0)
    firehose = rig.firehose(follow="all")
    firehose.round()
    assert firehose.feed == "RSS feed"
    saved = TimePosition.decode(rig.store.get_cursor(RSS_CURSOR) or "")
    assert saved == TimePosition(T0, frozenset({"old 1.0"}))
    t1 = T0 + timedelta(seconds=5)
    rig.updates.publish("a", "1.0", t1)
    rig.index.add(sdist("a", "1.0"), wheel("a", "1.0"))
    assert firehose.round().recorded == [("a", "1.0")]
    # b shows up in the feed later, with the very same second as a.
    rig.updates.publish("b", "1.0", t1)
    rig.index.add(sdist("b", "1.0"), wheel("b", "1.0"))
    again = rig.firehose(follow="all")  # and from a restarted process
    assert again.round().recorded == [("b", "1.0")]
    assert json.loads(rig.store.get_cursor(RSS_CURSOR) or "") == {
        "time": t1.isoformat(),
        "names": ["a 1.0", "b 1.0"],
    }
    assert again.round().recorded == []
    assert rig.queued() == ["a-1.0-py3-none-any.whl", "b-1.0-py3-none-any.whl"]


def test_a_stale_rss_feed_never_moves_the_cursor_back() -> None:
    rig = rss_rig()
    assert rig.updates is not None
    rig.updates.publish("a", "1.0", T0)
    firehose = rig.firehose(follow="all")
    firehose.round()
    before = rig.store.get_cursor(RSS_CURSOR)
    rig.updates.items = [ReleaseEvent("z", "0.1", "rss", None, T0 - timedelta(hours=1))]
    rig.index.add(sdist("z", "0.1"), wheel("z", "0.1"))
    with pytest.raises(StaleFeedError):
        firehose.round()
    assert rig.store.get_cursor(RSS_CURSOR) == before
    assert rig.store.release_versions("z") == set()


def test_an_index_with_no_feed_is_asked_again_much_later() -> None:
    rig = rss_rig()
    rig.updates = None
    firehose = rig.firehose(poll_interval=60.0, probe_interval=3600.0)
    firehose()
    assert firehose.round().no_feed
    assert firehose.feed is None
    rig.changelog.missing = False
    rig.clock.now += 120
    firehose()
    assert rig.store.get_cursor(CHANGELOG_CURSOR) is None  # not asked before the probe
    rig.clock.now += 3600
    firehose()
    assert rig.store.get_cursor(CHANGELOG_CURSOR) == "1000"
    assert firehose.feed == "changelog"
