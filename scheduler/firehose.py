"""Following everything new on the index: the changelog (or RSS) firehose.

A :class:`Firehose` is a scheduler hook. At most every ``poll_interval`` seconds it
reads what happened on the index since its persisted position: the XML-RPC changelog
after the serial saved as ``changelog-serial``, or, when the index has no XML-RPC, the
RSS updates feed after the time saved as ``rss-updates`` (with the releases seen at that
exact time, so same-second events are neither skipped nor doubled). Each new release in
scope is read from the simple API and recorded; its wheels are queued at new-release
priority and sent after the commit.

Nothing is missed across a crash: the position is saved in the same transaction as the
release recorded (``SchedulerStore.record_release(cursor=...)``), and it only ever covers a
contiguous run of handled events. A release the index does not show yet (eventual
consistency) holds the saved position back and is tried again on the next rounds
(bounded); events after it are handled at once, and replayed harmlessly after a restart
(recording is idempotent: a known file is neither recorded nor queued twice). The first
start begins at the index's current position: history is not replayed.

Scope (``follow``): ``watched`` acts on releases of watched projects only, everything
else just moves the position on; ``all`` records and rebuilds every new release. Either
way a watched project that was never polled is left to the watch-list poll, which
backfills it properly on first sight.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from packaging.version import InvalidVersion, Version

from rebuilder.errors import NotFoundError, RebuilderError
from rebuilder.index.model import IndexFile
from rebuilder.store.protocols import SchedulerStore
from rebuilder.worker.queue import Dispatcher, Priority
from scheduler.errors import FeedMissingError, SchedulerError, StaleFeedError
from scheduler.feeds import (
    ReleaseEvent,
    new_releases,
)
from scheduler.loop import ReleaseSource, SchedulerObserver, record_and_send

logger = logging.getLogger(__name__)

CHANGELOG_CURSOR = "changelog-serial"
RSS_CURSOR = "rss-updates"

Follow = Literal["watched", "all"]
RSS_ACTION = "rss"  # what ``RssUpdates`` names its events: each one is a new release


class Changelog(Protocol):
    """The index's changelog (``scheduler.feeds.ChangelogClient``)."""

    def last_serial(self) -> int: ...

    def since(self, serial: int) -> list[ReleaseEvent]: ...


class Updates(Protocol):
    """The index's RSS updates feed (``scheduler.feeds.RssUpdates``)."""

    def latest(self) -> list[ReleaseEvent]: ...


@dataclass(frozen=True)
class FirehoseConfig:
    """The firehose's knobs."""

    follow: Follow = "watched"
    poll_interval: float = 60.0  # seconds between two reads of the feed
    jitter: float = 0.1  # +- this fraction of the interval
    max_backoff: float = 3600.0  # longest wait after repeated feed errors
    probe_interval: float = 3600.0  # when the index offers no feed: wait before asking again
    max_releases_per_round: int = 200  # releases read from the index in one round
    max_pending: int = 1000  # releases the index does not show yet, kept for retries
    max_tries: int = 10  # rounds such a release is retried before it is given up


# --- positions in a feed -------------------------------------------------------------


class Position(Protocol):
    """Where a feed was read up to."""

    def covers(self, event: ReleaseEvent) -> bool: ...

    def after(self, event: ReleaseEvent) -> Position: ...

    def encode(self) -> str: ...


@dataclass(frozen=True)
class SerialPosition:
    """Changelog: every event up to ``serial`` is handled."""

    serial: int

    def covers(self, event: ReleaseEvent) -> bool:
        return event.serial is not None and event.serial <= self.serial

    def after(self, event: ReleaseEvent) -> SerialPosition:
        return SerialPosition(max(self.serial, event.serial or 0))

    def encode(self) -> str:
        return str(self.serial)

    @classmethod
    def decode(cls, value: str) -> SerialPosition:
        try:
            return cls(int(value))
        except ValueError:
            raise SchedulerError(f"unusable changelog cursor {value!r:.100}") from None


def _release_key(event: ReleaseEvent) -> str:
    return f"{event.project} {event.version}"


@dataclass(frozen=True)
class TimePosition:
    """RSS: every event before ``time`` is handled, and those at ``time`` named in ``names``."""

    time: datetime
    names: frozenset[str] = frozenset()

    def covers(self, event: ReleaseEvent) -> bool:
        when = event.timestamp
        if when is None:
            return True  # an undated item cannot be placed: never acted on
        return when < self.time or (when == self.time and _release_key(event) in self.names)

    def after(self, event: ReleaseEvent) -> TimePosition:
        when = event.timestamp
        if when is None or when < self.time:
            return self
        if when > self.time:
            return TimePosition(when, frozenset({_release_key(event)}))
        return TimePosition(self.time, self.names | {_release_key(event)})

    def encode(self) -> str:
        return json.dumps({"time": self.time.isoformat(), "names": sorted(self.names)})

    @classmethod
    def decode(cls, value: str) -> TimePosition:
        try:
            data = json.loads(value)
            when = datetime.fromisoformat(data["time"])
            names = frozenset(str(n) for n in data["names"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SchedulerError(f"unusable RSS cursor {value!r:.100}: {exc}") from None
        return cls(_aware(when), names)


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


# --- the two feeds behind one face ---------------------------------------------------


class _Feed(Protocol):
    cursor_name: str
    label: str

    def start(self) -> Position | None: ...

    def decode(self, value: str) -> Position: ...

    def read(self, position: Position) -> list[ReleaseEvent]: ...


class _ChangelogFeed:
    cursor_name = CHANGELOG_CURSOR
    label = "changelog"

    def __init__(self, changelog: Changelog) -> None:
        self._changelog = changelog

    def start(self) -> Position:
        return SerialPosition(self._changelog.last_serial())

    def decode(self, value: str) -> Position:
        return SerialPosition.decode(value)

    def read(self, position: Position) -> list[ReleaseEvent]:
        if not isinstance(position, SerialPosition):
            raise SchedulerError("the changelog needs a serial position")
        return self._changelog.since(position.serial)


def _dated(events: Sequence[ReleaseEvent]) -> list[ReleaseEvent]:
    """Dated events, oldest first; same-time events keep the feed's order, reversed
    (the feed lists newest first)."""
    dated = [
        ReleaseEvent(e.project, e.version, e.action, e.serial, _aware(e.timestamp))
        for e in reversed(events)
        if e.timestamp is not None
    ]
    if len(dated) < len(events):
        logger.warning("the RSS feed has %d undated items; ignored", len(events) - len(dated))
    return sorted(dated, key=lambda e: e.timestamp or datetime.min.replace(tzinfo=UTC))


class _RssFeed:
    cursor_name = RSS_CURSOR
    label = "RSS feed"

    def __init__(self, updates: Updates) -> None:
        self._updates = updates

    def start(self) -> Position | None:
        events = _dated(self._updates.latest())
        if not events:
            return None
        newest = events[-1].timestamp or datetime.min.replace(tzinfo=UTC)
        return TimePosition(
            newest, frozenset(_release_key(e) for e in events if e.timestamp == newest)
        )

    def decode(self, value: str) -> Position:
        return TimePosition.decode(value)

    def read(self, position: Position) -> list[ReleaseEvent]:
        if not isinstance(position, TimePosition):
            raise SchedulerError("the RSS feed needs a time position")
        events = _dated(self._updates.latest())
        if not events:
            return []
        newest = events[-1].timestamp
        if newest is not None and newest < position.time:
            raise StaleFeedError(
                f"the RSS feed's newest item ({newest.isoformat()}) is older than what was "
                f"already seen ({position.time.isoformat()})"
            )
        fresh = [e for e in events if not position.covers(e)]
        if fresh and len(fresh) == len(events) and (events[0].timestamp or newest) != position.time:
            logger.warning(
                "every item of the RSS feed is new: releases between %s and %s may have "
                "scrolled out of it (the watch-list poll still catches watched projects)",
                position.time.isoformat(),
                (events[0].timestamp or position.time).isoformat(),
            )
        return fresh


# --- the firehose --------------------------------------------------------------------


@dataclass
class _Item:
    """One event read, in feed order, until the saved position moves past it."""

    event: ReleaseEvent
    done: bool = False
    tries: int = 0


@dataclass
class FirehoseReport:
    """What one round did (for tests and logs)."""

    recorded: list[tuple[str, str]] = field(default_factory=list)  # replays of known ones too
    pending: list[tuple[str, str]] = field(default_factory=list)
    given_up: list[tuple[str, str]] = field(default_factory=list)
    dispatched: int = 0
    more: bool = False  # the round stopped at its budget: the next one comes at once
    no_feed: bool = False  # the index offers neither feed: ask again much later


def _same_version(listed: str, wanted: str) -> bool:
    try:
        return Version(listed) == Version(wanted)
    except InvalidVersion:
        return listed == wanted


def _upload_time(files: Sequence[IndexFile]) -> datetime | None:
    times = [f.upload_time for f in files if f.upload_time is not None]
    return min(times) if times else None


class Firehose:
    """Follows the index's changelog (or RSS feed); call it as a scheduler hook."""

    def __init__(
        self,
        *,
        store: SchedulerStore,
        index: ReleaseSource,
        dispatcher: Dispatcher,
        changelog: Changelog | None = None,
        updates: Updates | None = None,
        config: FirehoseConfig | None = None,
        observer: SchedulerObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._index = index
        self._dispatcher = dispatcher
        self._feeds: list[_Feed] = []
        if changelog is not None:
            self._feeds.append(_ChangelogFeed(changelog))
        if updates is not None:
            self._feeds.append(_RssFeed(updates))
        self._config = config or FirehoseConfig()
        self._observer = observer
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._feed_index = 0
        self._no_feed = False  # the last probe found neither feed
        self._read: Position | None = None  # in memory: what was read
        self._saved: Position | None = None  # in the store: what is handled, contiguously
        self._saved_value: str | None = None
        self._window: deque[_Item] = deque()
        self._due = 0.0
        self._failures = 0

    @property
    def feed(self) -> str | None:
        """The feed followed now (``changelog`` or ``RSS feed``), None when none answers."""
        if self._no_feed or self._feed_index >= len(self._feeds):
            return None
        return self._feeds[self._feed_index].label

    @property
    def pending(self) -> list[tuple[str, str]]:
        """Releases waiting for the index to show them."""
        return list(
            dict.fromkeys((i.event.project, i.event.version) for i in self._window if not i.done)
        )

    def __call__(self) -> None:
        """The hook: a round when one is due; feed trouble means a later, jittered retry."""
        now = self._clock()
        if now < self._due:
            return
        try:
            report = self.round()
        except RebuilderError as exc:
            self._failures += 1
            wait = min(
                self._config.max_backoff, self._config.poll_interval * 2 ** (self._failures - 1)
            )
            self._due = self._clock() + wait * (1 + self._rng.uniform(0, 0.5))
            stale = isinstance(exc, StaleFeedError)
            logger.warning(
                "following the index %s (%d in a row, next try in %.0f s): %s",
                "got a stale answer" if stale else "failed",
                self._failures,
                self._due - self._clock(),
                exc.diagnostics(),
            )
            return
        self._failures = 0
        if report.no_feed:
            self._due = self._clock() + self._config.probe_interval
        elif report.more:
            self._due = self._clock()
        else:
            spread = 1 + self._rng.uniform(-self._config.jitter, self._config.jitter)
            self._due = self._clock() + self._config.poll_interval * spread
        if report.recorded or report.given_up:
            logger.info(
                "firehose: %d releases recorded, %d dispatched, %d waiting for the index, "
                "%d given up",
                len(report.recorded),
                report.dispatched,
                len(report.pending),
                len(report.given_up),
            )

    def round(self) -> FirehoseReport:
        """Read the feed once and act on what is new. Raises on feed errors."""
        report = FirehoseReport()
        while self._feed_index < len(self._feeds):
            feed = self._feeds[self._feed_index]
            try:
                if self._read is None and not self._start(feed):
                    return report
                self._retry(report)
                self._follow(feed, report)
            except FeedMissingError as exc:
                self._next_feed(exc)
                continue
            self._no_feed = False
            report.pending = self.pending
            self._save()
            return report
        # No feed answers: ask again later, from the start of the list.
        self._feed_index = 0
        self._no_feed = report.no_feed = True
        return report

    def _next_feed(self, exc: FeedMissingError) -> None:
        feed = self._feeds[self._feed_index]
        self._feed_index += 1
        self._read = self._saved = None
        self._saved_value = None
        self._window.clear()
        following = self.feed
        if following is None:
            logger.info(
                "the index offers no changelog or RSS feed (%s); only the watch list is polled",
                exc.diagnostics(),
            )
        else:
            logger.info(
                "the index has no %s (%s); following its %s",
                feed.label,
                exc.diagnostics(),
                following,
            )

    def _start(self, feed: _Feed) -> bool:
        value = self._store.get_cursor(feed.cursor_name)
        if value is not None:
            position = feed.decode(value)
            logger.info("following the index's %s from %s", feed.label, value)
        else:
            start = feed.start()
            if start is None:
                return False  # an empty feed: nothing to stand on yet
            position = start
            self._store.set_cursor(feed.cursor_name, position.encode())
            logger.info("following the index's %s from now (%s)", feed.label, position.encode())
        self._read = self._saved = position
        self._saved_value = position.encode()
        return True

    def _in_scope(self, project: str, watched: set[str]) -> bool:
        if project in watched:
            # Never polled yet: the watch-list poll backfills it properly on first sight.
            return bool(self._store.release_versions(project))
        return self._config.follow == "all"

    def _retry(self, report: FirehoseReport) -> None:
        waiting = [i for i in self._window if not i.done]
        if not waiting:
            return
        watched = {p.name for p in self._store.watched()}
        outcome: dict[tuple[str, str], bool] = {}
        for item in waiting:
            key = (item.event.project, item.event.version)
            if key not in outcome:
                outcome[key] = not self._in_scope(key[0], watched) or self._act(item, report)
            if outcome[key]:
                item.done = True
                continue
            item.tries += 1
            if item.tries >= self._config.max_tries:
                self._give_up(item, report, "the index still does not show it")
        self._advance()

    def _give_up(self, item: _Item, report: FirehoseReport, why: str) -> None:
        item.done = True
        key = (item.event.project, item.event.version)
        if key not in report.given_up:
            report.given_up.append(key)
            logger.warning(
                "%s %s: given up after %d tries: %s",
                *key,
                item.tries,
                why,
                extra={"project": key[0], "version": key[1]},
            )

    def _follow(self, feed: _Feed, report: FirehoseReport) -> None:
        assert self._read is not None  # noqa: S101 - _start ran
        events = feed.read(self._read)
        watched = {p.name for p in self._store.watched()}
        outcome: dict[tuple[str, str], bool] = {}
        for event in events:
            if self._read.covers(event):
                continue
            release = event.action == RSS_ACTION or bool(new_releases([event]))
            key = (event.project, event.version)
            act = release and self._in_scope(event.project, watched)
            if act and key not in outcome and len(outcome) >= self._config.max_releases_per_round:
                report.more = True
                break
            item = _Item(event)
            self._window.append(item)
            self._read = self._read.after(event)
            if not act:
                item.done = True
            else:
                if key not in outcome:
                    outcome[key] = self._act(item, report)
                item.done = outcome[key]
            self._advance()
        self._bound_pending(report)

    def _bound_pending(self, report: FirehoseReport) -> None:
        waiting = [i for i in self._window if not i.done]
        for item in waiting[: max(0, len(waiting) - self._config.max_pending)]:
            self._give_up(item, report, "too many releases wait for the index")
        self._advance()

    def _prospective(self, done: _Item) -> Position:
        """The saved position once ``done`` is handled."""
        assert self._saved is not None  # noqa: S101 - _start ran
        position = self._saved
        for item in self._window:
            if not (item.done or item is done):
                break
            position = position.after(item.event)
        return position

    def _advance(self) -> None:
        assert self._saved is not None  # noqa: S101 - _start ran
        while self._window and self._window[0].done:
            self._saved = self._saved.after(self._window.popleft().event)

    def _save(self) -> None:
        feed = self._feeds[self._feed_index]
        if self._saved is None:
            return
        value = self._saved.encode()
        if value != self._saved_value:
            self._store.set_cursor(feed.cursor_name, value)
            self._saved_value = value

    def _act(self, item: _Item, report: FirehoseReport) -> bool:
        """Record the event's release with its files and queue it; False when the index
        does not show it yet. Other index trouble raises (the round stops there)."""
        project, version = item.event.project, item.event.version
        try:
            files = [f for f in self._index.refresh(project) if _same_version(f.version, version)]
        except NotFoundError:
            files = []
        if not files:
            logger.info(
                "%s %s: not on the index yet; tried again next round",
                project,
                version,
                extra={"project": project, "version": version},
            )
            return False
        position = self._prospective(item)
        feed = self._feeds[self._feed_index]
        by_version: dict[str, list[IndexFile]] = {}
        for file in files:
            by_version.setdefault(file.version, []).append(file)
        for listed, group in by_version.items():
            value = position.encode()
            rows, sent = record_and_send(
                self._store,
                self._dispatcher,
                project,
                listed,
                group,
                priority=Priority.NEW_RELEASE,
                cursor=(feed.cursor_name, value),
            )
            self._saved_value = value
            if self._observer is not None and rows:
                uploaded = _upload_time(group)
                lag = (self._wall_clock() - uploaded).total_seconds() if uploaded else None
                self._observer.release_recorded(lag)
            report.dispatched += sent
            report.recorded.append((project, listed))
        return True
