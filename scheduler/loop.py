"""The scheduler: discover new releases of watched projects and dispatch their rebuilds.

One tick does three things, each safe to repeat:

1. **Poll** the watched projects that are due (each on its own timer with jitter, and
   exponential backoff after a failure) through the simple API. Versions not yet
   recorded are recorded with their files (one transaction per release); their pure
   and platform wheels get attempts (a platform wheel is recorded ``unsupported`` by
   the worker, so the page shows it). A project seen for the first time is backfilled:
   its newest release at new-release priority, the ``backfill_releases - 1`` before it
   at backfill priority, older ones recorded only.
2. **Recover**: running attempts whose worker went silent are queued again, and queued
   attempts never handed to the broker (a crash between commit and send, a claim given
   back) are sent now. A message sent twice is harmless: workers claim before running.
3. **Hooks** (e.g. closing finished campaigns).

Messages are sent only after the rows they name committed (``request_attempts_bulk``
commits before returning).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from packaging.version import InvalidVersion, Version

from rebuilder.errors import RebuilderError
from rebuilder.index.model import IndexFile
from rebuilder.store.protocols import SchedulerStore
from rebuilder.store.records import AttemptStatus, FileRow
from rebuilder.worker.queue import Dispatcher, Priority

logger = logging.getLogger(__name__)


class ReleaseSource(Protocol):
    """The index, read fresh (``rebuilder.index.simple.SimpleIndex.refresh``)."""

    def refresh(self, project: str) -> Sequence[IndexFile]: ...


class SchedulerObserver(Protocol):
    """Told what the scheduler did (metrics)."""

    def release_recorded(self, lag_seconds: float | None) -> None: ...

    def ticked(self, *, polled: int, failed: int, queue_depth: int) -> None: ...


class _NoObserver:
    def release_recorded(self, lag_seconds: float | None) -> None:
        del lag_seconds

    def ticked(self, *, polled: int, failed: int, queue_depth: int) -> None:
        del polled, failed, queue_depth


class Leader(Protocol):
    """Who may schedule (``rebuilder.store.leader.Leadership``): one scheduler at a time."""

    def try_acquire(self) -> bool: ...

    def is_leader(self) -> bool: ...

    def release(self) -> None: ...


@dataclass(frozen=True)
class SchedulerConfig:
    """The scheduler's knobs."""

    poll_interval: float = 300.0  # seconds between two polls of one project
    jitter: float = 0.1  # +- this fraction of the interval, so polls spread out
    max_backoff: float = 3600.0  # longest wait after repeated failures of one project
    backfill_releases: int = 3  # releases rebuilt when a project is first seen
    stale_after: timedelta = timedelta(minutes=2)  # a running attempt's silence limit
    redispatch_after: timedelta = timedelta(seconds=30)  # unsent queued attempts' age
    # At most this many messages wait in RabbitMQ; the rest of a big backfill or campaign
    # waits in PostgreSQL (queued, unsent) and is sent as workers make room, most urgent
    # first. Sending 100,000 confirmed messages at once would take minutes.
    dispatch_window: int = 1000
    tick_seconds: float = 2.0


@dataclass
class TickReport:
    """What one tick did."""

    polled: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    new_releases: list[tuple[str, str]] = field(default_factory=list)
    dispatched: int = 0
    requeued: int = 0


@dataclass
class _ProjectTimer:
    due: float = 0.0
    failures: int = 0


def _priority(value: int) -> Priority:
    try:
        return Priority(value)
    except ValueError:
        return max((p for p in Priority if p <= value), default=Priority.BACKFILL)


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def _upload_key(files: Sequence[IndexFile]) -> datetime | None:
    times = [f.upload_time for f in files if f.upload_time is not None]
    return min(times) if times else None


def send_attempts(
    store: SchedulerStore, dispatcher: Dispatcher, attempts: Sequence[tuple[int, int]]
) -> int:
    """Hand committed attempts (id, priority) to the broker; how many were sent."""
    sent: list[int] = []
    for attempt_id, priority in attempts:
        try:
            dispatcher.enqueue(attempt_id, _priority(priority))
        except Exception as exc:  # noqa: BLE001 - any broker failure: recovery resends
            logger.warning(
                "broker unavailable (%s); %d attempts left to send later",
                exc,
                len(attempts) - len(sent),
            )
            break
        sent.append(attempt_id)
    # What was sent is noted even when the broker failed half-way; the rest stays
    # unsent and is tried again by a later tick's recovery.
    if sent:
        store.mark_dispatched(sent)
    return len(sent)


def record_and_send(
    store: SchedulerStore,
    dispatcher: Dispatcher,
    name: str,
    version: str,
    files: Sequence[IndexFile],
    *,
    priority: Priority,
    cursor: tuple[str, str] | None = None,
) -> tuple[list[FileRow], int]:
    """Record a release and queue its wheels in one transaction, then send them.

    The new files and how many attempts were handed to the broker.
    """
    rows, ids = store.record_and_queue(name, version, files, priority=int(priority), cursor=cursor)
    sent = send_attempts(store, dispatcher, [(i, int(priority)) for i in ids])
    logger.info(
        "%s %s: recorded %d files, queued %d rebuilds",
        name,
        version,
        len(rows),
        len(ids),
        extra={"project": name, "version": version, "queued": len(ids)},
    )
    return rows, sent


class Scheduler:
    """Polls, records, dispatches and recovers. Run :meth:`tick` repeatedly."""

    def __init__(
        self,
        *,
        store: SchedulerStore,
        index: ReleaseSource,
        dispatcher: Dispatcher,
        config: SchedulerConfig | None = None,
        hooks: Sequence[Callable[[], None]] = (),
        observer: SchedulerObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._index = index
        self._dispatcher = dispatcher
        self._config = config or SchedulerConfig()
        self._hooks = list(hooks)
        self._observer = observer or _NoObserver()
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._timers: dict[str, _ProjectTimer] = {}

    def tick(self) -> TickReport:
        """One round: poll what is due, recover what was lost, run the hooks."""
        report = TickReport()
        self.poll_due(report)
        self.recover(report)
        for hook in self._hooks:
            try:
                hook()
            except RebuilderError as exc:
                logger.warning("scheduler hook failed: %s", exc.diagnostics())
        self._observer.ticked(
            polled=len(report.polled),
            failed=len(report.failed),
            queue_depth=self._store.queue_depth(),
        )
        return report

    def poll_due(self, report: TickReport) -> None:
        """Poll every watched project whose timer ran out."""
        now = self._clock()
        watched = [p.name for p in self._store.watched()]
        for name in set(self._timers) - set(watched):
            del self._timers[name]
        for name in watched:
            timer = self._timers.setdefault(name, _ProjectTimer())
            if timer.due > now:
                continue
            try:
                report.new_releases.extend(self.poll_project(name, report))
            except RebuilderError as exc:
                timer.failures += 1
                wait = min(
                    self._config.max_backoff,
                    self._config.poll_interval * 0.1 * 2 ** (timer.failures - 1),
                )
                timer.due = self._clock() + wait * (1 + self._rng.uniform(0, 0.5))
                report.failed.append(name)
                logger.warning(
                    "polling %s failed (%d in a row, next try in %.0f s): %s",
                    name,
                    timer.failures,
                    timer.due - self._clock(),
                    exc.diagnostics(),
                )
                continue
            timer.failures = 0
            spread = 1 + self._rng.uniform(-self._config.jitter, self._config.jitter)
            timer.due = self._clock() + self._config.poll_interval * spread
            report.polled.append(name)

    def poll_project(self, name: str, report: TickReport | None = None) -> list[tuple[str, str]]:
        """Record the project's new releases and dispatch their wheels; the new releases."""
        files = self._index.refresh(name)
        by_version: dict[str, list[IndexFile]] = {}
        for file in files:
            by_version.setdefault(file.version, []).append(file)
        known = self._store.release_versions(name)
        # First poll of this project (releases the firehose recorded meanwhile do not
        # count): its history is backfilled, not rebuilt as if it were all new.
        marker = f"polled:{name}"
        first_time = self._store.get_cursor(marker) is None
        new_versions = [v for v in by_version if v not in known]
        if not new_versions:
            if first_time:
                self._store.set_cursor(marker, "1")
            return []
        newest_first = sorted(new_versions, key=_version_key, reverse=True)
        rebuilt = set(newest_first[: self._config.backfill_releases]) if first_time else None
        made: list[tuple[str, str]] = []
        # Oldest first, so a crash leaves the newest releases to the next poll.
        for version in sorted(new_versions, key=_version_key):
            made.append((name, version))
            uploaded = _upload_key(by_version[version])
            lag = (self._wall_clock() - uploaded).total_seconds() if uploaded else None
            self._observer.release_recorded(lag if not first_time else None)
            if rebuilt is not None and version not in rebuilt:
                self._store.record_release(name, version, by_version[version])
                continue
            priority = (
                Priority.NEW_RELEASE
                if rebuilt is None or version == newest_first[0]
                else Priority.BACKFILL
            )
            _, sent = record_and_send(
                self._store, self._dispatcher, name, version, by_version[version], priority=priority
            )
            if report is not None:
                report.dispatched += sent
        if first_time:
            self._store.set_cursor(marker, "1")
        return made

    def recover(self, report: TickReport | None = None) -> None:
        """Take back silent workers' attempts and send what was never sent."""
        requeued = self._store.requeue_stale(self._config.stale_after)
        room = self._config.dispatch_window - self._store.in_flight()
        # Taken back just now: sent at once, not after ``redispatch_after`` (that wait
        # only keeps recovery from racing a sender that is about to send a new attempt).
        taken_back: list[tuple[int, int]] = []
        for attempt_id in requeued[: max(room, 0)]:
            row = self._store.attempt(attempt_id)
            if row is not None and row.status is AttemptStatus.QUEUED:
                taken_back.append((attempt_id, row.priority))
        room -= len(taken_back)
        older = (
            self._store.undispatched(self._config.redispatch_after, limit=room) if room > 0 else []
        )
        again = {attempt_id for attempt_id, _ in taken_back}
        pending = taken_back + [p for p in older if p[0] not in again]
        sent = self._send(pending)
        if report is not None:
            report.requeued += len(requeued)
            report.dispatched += sent
        if pending:
            logger.info("re-sent %d queued attempts to the workers", sent)

    def _send(self, attempts: Sequence[tuple[int, int]]) -> int:
        return send_attempts(self._store, self._dispatcher, attempts)

    def run(self, leader: Leader, stop: threading.Event) -> None:
        """Tick until ``stop`` is set, while this process holds the leadership."""
        while not stop.is_set():
            try:
                leading = leader.is_leader() or leader.try_acquire()
            except RebuilderError as exc:
                # Cut off from PostgreSQL (a partition, a restart): not leading, and not
                # dying either; a standby that can reach the server leads meanwhile.
                logger.warning("cannot take the scheduler lock: %s; waiting", exc)
                leading = False
            if not leading:
                logger.debug("another scheduler leads; waiting")
                stop.wait(5.0)
                continue
            try:
                report = self.tick()
            except Exception as exc:  # noqa: BLE001 - a service away: the loop goes on
                logger.warning("scheduler tick failed: %s", exc)
                stop.wait(min(30.0, self._config.tick_seconds * 5))
                continue
            if report.new_releases or report.dispatched or report.requeued:
                logger.info(
                    "tick: %d new releases, %d dispatched, %d requeued",
                    len(report.new_releases),
                    report.dispatched,
                    report.requeued,
                )
            stop.wait(self._config.tick_seconds)
        leader.release()
