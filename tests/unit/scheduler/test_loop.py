"""The scheduler's polling, dispatch and recovery, on the in-memory store."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest

from rebuilder.index.model import FileKind, IndexFile
from rebuilder.store.memory import MemoryStore
from rebuilder.store.records import AttemptStatus
from rebuilder.worker.queue import Priority
from scheduler.errors import SchedulerError
from scheduler.loop import Scheduler, SchedulerConfig
from tests.support.fakes import FakeDispatcher, FakeIndex


def file(project: str, version: str, filename: str, **kw: object) -> IndexFile:
    values: dict[str, object] = {
        "project": project,
        "version": version,
        "filename": filename,
        "url": f"http://127.0.0.1:9/{filename}",
        "sha256": (filename.encode().hex() * 64)[:64],
        "kind": FileKind.WHEEL if filename.endswith(".whl") else FileKind.SDIST,
        "upload_time": datetime(2025, 1, 1, tzinfo=UTC),
    }
    values.update(kw)
    return IndexFile(**values)  # type: ignore[arg-type]


def release(project: str, version: str, *, platform: bool = False) -> list[IndexFile]:
    files = [
        file(project, version, f"{project}-{version}.tar.gz"),
        file(project, version, f"{project}-{version}-py3-none-any.whl"),
    ]
    if platform:
        files.append(file(project, version, f"{project}-{version}-cp311-cp311-linux_x86_64.whl"))
    return files


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    store: MemoryStore, index: FakeIndex, dispatcher: FakeDispatcher, clock: Clock
) -> Scheduler:
    return Scheduler(
        store=store,
        index=index,
        dispatcher=dispatcher,
        config=SchedulerConfig(poll_interval=60, backfill_releases=2),
        clock=clock,
        rng=random.Random(1),
    )


def test_first_poll_backfills_the_newest_releases_only() -> None:
    store, index, dispatcher, clock = MemoryStore(), FakeIndex(), FakeDispatcher(), Clock()
    index.add(*release("demo", "1.0") + release("demo", "2.0") + release("demo", "1.10"))
    store.watch_add(["demo"])
    report = make(store, index, dispatcher, clock).tick()
    assert sorted(report.new_releases) == [("demo", "1.0"), ("demo", "1.10"), ("demo", "2.0")]
    assert store.release_versions("demo") == {"1.0", "1.10", "2.0"}
    # newest (2.0) at new-release priority, 1.10 as backfill, 1.0 only recorded
    priorities = {
        store.file(store.attempt(a).file_id).version: p  # type: ignore[union-attr]
        for a, p in dispatcher.sent
    }
    assert priorities == {"2.0": Priority.NEW_RELEASE, "1.10": Priority.BACKFILL}
    # only wheels get attempts; the sdist is the rebuild's input
    assert all(
        store.file(store.attempt(a).file_id).kind is FileKind.WHEEL  # type: ignore[union-attr]
        for a, _ in dispatcher.sent
    )


def test_a_new_release_is_found_on_the_next_due_poll_and_sent_once() -> None:
    store, index, dispatcher, clock = MemoryStore(), FakeIndex(), FakeDispatcher(), Clock()
    index.add(*release("demo", "1.0"))
    store.watch_add(["demo"])
    scheduler = make(store, index, dispatcher, clock)
    scheduler.tick()
    index.add(*release("demo", "1.1", platform=True))
    assert scheduler.tick().new_releases == []  # not due yet
    clock.now += 61 * 1.2
    report = scheduler.tick()
    assert report.new_releases == [("demo", "1.1")]
    assert len(dispatcher.sent) == 3  # 1.0's wheel, then 1.1's two wheels
    assert all(p is Priority.NEW_RELEASE for _, p in dispatcher.sent)
    clock.now += 100
    scheduler.tick()
    assert len(dispatcher.sent) == 3  # nothing twice


def test_a_failing_project_backs_off_and_others_go_on() -> None:
    store, index, dispatcher, clock = MemoryStore(), FakeIndex(), FakeDispatcher(), Clock()
    index.add(*release("good", "1.0"))
    index.failing.add("bad")
    store.watch_add(["good", "bad"])
    scheduler = make(store, index, dispatcher, clock)
    report = scheduler.tick()
    assert report.failed == ["bad"] and report.polled == ["good"]
    index.requests.clear()
    clock.now += 3  # shorter than the first backoff (6 s and more)
    scheduler.tick()
    assert index.requests == []
    clock.now += 60
    scheduler.tick()
    assert "bad" in index.requests


def test_attempts_not_sent_because_the_broker_was_down_are_sent_later() -> None:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    now = {"t": base}
    store = MemoryStore(clock=lambda: now["t"])
    index, dispatcher, clock = FakeIndex(), FakeDispatcher(down=True), Clock()
    index.add(*release("demo", "1.0"))
    store.watch_add(["demo"])
    scheduler = make(store, index, dispatcher, clock)
    scheduler.tick()  # recorded and queued, but not sent
    assert dispatcher.sent == []
    assert store.queue_depth() == 1
    dispatcher.down = False
    now["t"] = base + timedelta(minutes=5)
    report = scheduler.tick()
    assert report.dispatched == 1 and len(dispatcher.sent) == 1
    now["t"] = base + timedelta(minutes=10)
    scheduler.tick()
    assert len(dispatcher.sent) == 1  # marked as sent: not again


def test_a_silent_workers_attempt_is_requeued_and_sent_again() -> None:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    now = {"t": base}
    store = MemoryStore(clock=lambda: now["t"])
    index, dispatcher, clock = FakeIndex(), FakeDispatcher(), Clock()
    index.add(*release("demo", "1.0"))
    store.watch_add(["demo"])
    scheduler = make(store, index, dispatcher, clock)
    scheduler.tick()
    ((attempt, _),) = dispatcher.sent
    assert store.start_attempt(attempt, "worker-killed") is not None
    now["t"] = base + timedelta(minutes=10)  # no heartbeat since
    report = scheduler.tick()
    assert report.requeued == 1
    assert [a for a, _ in dispatcher.sent] == [attempt, attempt]
    row = store.attempt(attempt)
    assert row is not None and row.status is AttemptStatus.QUEUED


def test_an_attempt_taken_back_is_sent_again_in_the_same_tick() -> None:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    now = {"t": base}
    store = MemoryStore(clock=lambda: now["t"])
    index, dispatcher, clock = FakeIndex(), FakeDispatcher(), Clock()
    index.add(*release("demo", "1.0"))
    store.watch_add(["demo"])
    scheduler = Scheduler(
        store=store,
        index=index,
        dispatcher=dispatcher,
        config=SchedulerConfig(
            stale_after=timedelta(seconds=6), redispatch_after=timedelta(seconds=30)
        ),
        clock=clock,
        rng=random.Random(1),
    )
    scheduler.tick()
    ((attempt, priority),) = dispatcher.sent
    assert store.start_attempt(attempt, "worker-cut-off") is not None
    now["t"] = base + timedelta(seconds=10)  # silent past the claim, requested 10 s ago
    report = scheduler.tick()
    assert report.requeued == 1
    assert dispatcher.sent == [(attempt, priority), (attempt, priority)]
    now["t"] = base + timedelta(seconds=50)
    scheduler.tick()
    assert len(dispatcher.sent) == 2  # marked as sent: not a third time


def test_unwatched_projects_are_not_polled() -> None:
    store, index, dispatcher, clock = MemoryStore(), FakeIndex(), FakeDispatcher(), Clock()
    index.add(*release("demo", "1.0"))
    store.watch_add(["demo"])
    scheduler = make(store, index, dispatcher, clock)
    scheduler.tick()
    store.watch_remove(["demo"])
    clock.now += 1000
    index.requests.clear()
    scheduler.tick()
    assert index.requests == []


def test_metrics_count_discoveries_lag_and_queue_depth() -> None:
    from scheduler.metrics import SchedulerMetrics  # noqa: PLC0415

    store, index, dispatcher, clock = MemoryStore(), FakeIndex(), FakeDispatcher(), Clock()
    index.add(*release("demo", "1.0"))
    store.watch_add(["demo"])
    metrics = SchedulerMetrics()
    now = datetime(2025, 1, 1, 0, 10, tzinfo=UTC)  # uploads are at 00:00
    scheduler = Scheduler(
        store=store,
        index=index,
        dispatcher=dispatcher,
        config=SchedulerConfig(poll_interval=60),
        observer=metrics,
        clock=clock,
        wall_clock=lambda: now,
        rng=random.Random(1),
    )
    scheduler.tick()  # first sight: backfill, no lag measured
    index.add(*release("demo", "1.1"))
    clock.now += 100
    scheduler.tick()
    sample = metrics.registry.get_sample_value
    assert sample("rebuilder_releases_discovered_total") == 2
    assert sample("rebuilder_poll_lag_seconds_count") == 1
    assert sample("rebuilder_poll_lag_seconds_sum") == 600
    assert sample("rebuilder_queue_depth") == 2
    assert sample("rebuilder_polls_total", {"result": "ok"}) == 2


def test_a_big_backlog_is_sent_a_window_at_a_time_most_urgent_first() -> None:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    now = {"t": base}
    store = MemoryStore(clock=lambda: now["t"])
    rows = []
    for n in range(6):
        rows += store.record_release("demo", f"1.{n}", [file("demo", f"1.{n}", f"d-1.{n}.whl")])
    routine = store.request_attempts_bulk([r.id for r in rows[:5]], int(Priority.BACKFILL))
    urgent = store.request_attempt(rows[5].id, int(Priority.CAMPAIGN))
    dispatcher = FakeDispatcher()
    scheduler = Scheduler(
        store=store,
        index=FakeIndex(),
        dispatcher=dispatcher,
        config=SchedulerConfig(dispatch_window=2),
        clock=Clock(),
    )
    now["t"] = base + timedelta(minutes=1)
    scheduler.recover()
    assert dispatcher.sent == [(urgent, Priority.CAMPAIGN), (routine[0], Priority.BACKFILL)]
    scheduler.recover()
    assert len(dispatcher.sent) == 2  # the window is full until workers take messages
    assert store.start_attempt(routine[0], "w") is not None
    scheduler.recover()
    assert dispatcher.sent[-1] == (routine[1], Priority.BACKFILL)


def test_releases_recorded_by_the_firehose_do_not_make_a_later_watch_rebuild_history() -> None:
    store, index, dispatcher, clock = MemoryStore(), FakeIndex(), FakeDispatcher(), Clock()
    index.add(*[f for v in ("1.0", "1.1", "1.2", "1.3") for f in release("demo", v)])
    store.record_release("demo", "1.3", release("demo", "1.3"))  # seen on the firehose
    store.watch_add(["demo"])
    make(store, index, dispatcher, clock).tick()
    versions = sorted(
        store.file(store.attempt(a).file_id).version  # type: ignore[union-attr]
        for a, _ in dispatcher.sent
    )
    # a first poll: backfill (2 newest unrecorded), not every old version at new priority
    assert versions == ["1.1", "1.2"]
    assert {p for _, p in dispatcher.sent} == {Priority.NEW_RELEASE, Priority.BACKFILL}


class UnreachableLeader:
    """A scheduler cut off from PostgreSQL: it cannot lead, nor even ask."""

    def __init__(self, stop: threading.Event, tries: int) -> None:
        self.stop = stop
        self.tries = tries
        self.asked = 0
        self.released = False

    def is_leader(self) -> bool:
        return False

    def try_acquire(self) -> bool:
        self.asked += 1
        if self.asked >= self.tries:
            self.stop.set()
        raise SchedulerError("cannot reach PostgreSQL for the scheduler lock: timeout")

    def release(self) -> None:
        self.released = True


def test_a_scheduler_cut_off_from_the_database_waits_instead_of_dying(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, index, dispatcher, clock = MemoryStore(), FakeIndex(), FakeDispatcher(), Clock()
    index.add(*release("demo", "1.0"))
    store.watch_add(["demo"])
    stop = threading.Event()
    monkeypatch.setattr(stop, "wait", lambda timeout=None: stop.is_set())
    leader = UnreachableLeader(stop, tries=3)
    make(store, index, dispatcher, clock).run(leader, stop)  # returns: no exception
    assert leader.asked == 3 and leader.released
    assert index.requests == [] and dispatcher.sent == []  # it never acted without the lock
