"""The scheduler's source-check step against the in-memory store and a fake broker."""

from __future__ import annotations

from datetime import timedelta

from rebuilder.index.model import FileKind
from rebuilder.source.store import SourceCheckQueue
from rebuilder.store.records import AttemptStatus
from rebuilder.worker.queue import Priority
from scheduler.source_checks import SourceCheckConfig, SourceCheckStep, source_check_hook
from tests.support.fakes import FakeDispatcher
from tests.support.source_checks import MemorySourceChecks

NOW_CONFIG = SourceCheckConfig(redispatch_after=timedelta(seconds=-1))


class SpyStore(MemorySourceChecks):
    def __init__(self) -> None:
        super().__init__()
        self.scans: list[int] = []

    def request_missing_source_checks(
        self,
        *,
        new_priority: int,
        backfill_priority: int,
        after_release: int,
        limit: int,
        newest_per_project: int | None = None,
    ) -> list[tuple[int, int]]:
        self.scans.append(after_release)
        return super().request_missing_source_checks(
            new_priority=new_priority,
            backfill_priority=backfill_priority,
            after_release=after_release,
            limit=limit,
            newest_per_project=newest_per_project,
        )


def test_every_release_with_an_sdist_gets_one_check_at_the_right_priority() -> None:
    store = MemorySourceChecks()
    queue: SourceCheckQueue = store  # the twin keeps the Protocol
    new = store.add_release("demo", "2.0", attempt_priorities=[int(Priority.NEW_RELEASE)])
    history = store.add_release("demo", "1.0")  # recorded only: no rebuild asked
    sdist_only = store.add_release("solo", "1.0", (FileKind.SDIST,))
    campaign = store.add_release("demo", "0.9", attempt_priorities=[1, int(Priority.CAMPAIGN)])
    wheel_only = store.add_release("wheels", "1.0", (FileKind.WHEEL,))
    yanked = store.add_release("gone", "1.0", yanked_sdist=True)
    broker = FakeDispatcher()
    hook = source_check_hook(queue, broker, NOW_CONFIG)
    hook()
    by_release = {
        release: [(c.priority, c.status) for c in store.checks_of(release)]
        for release in (new, history, sdist_only, campaign, wheel_only, yanked)
    }
    assert by_release == {
        new: [(Priority.NEW_RELEASE, AttemptStatus.QUEUED)],
        history: [(Priority.BACKFILL, AttemptStatus.QUEUED)],
        sdist_only: [(Priority.NEW_RELEASE, AttemptStatus.QUEUED)],
        campaign: [(Priority.CAMPAIGN, AttemptStatus.QUEUED)],
        wheel_only: [],
        yanked: [],
    }
    # most urgent first, each sent once and noted as sent
    assert [p for _, p in broker.sent] == [
        Priority.CAMPAIGN,
        Priority.NEW_RELEASE,
        Priority.NEW_RELEASE,
        Priority.BACKFILL,
    ]
    assert store.undispatched_source_checks(timedelta(seconds=-1)) == []
    hook()  # once per release: nothing more
    assert len(broker.sent) == 4


def test_what_the_broker_did_not_take_is_sent_later() -> None:
    store = MemorySourceChecks()
    for version in ("1.0", "2.0", "3.0"):
        store.add_release("demo", version, attempt_priorities=[5])
    broker = FakeDispatcher(fail_after=1)
    step = SourceCheckStep(store, broker, NOW_CONFIG)
    step()
    assert len(broker.sent) == 1
    assert len(store.undispatched_source_checks(timedelta(seconds=-1))) == 2
    broker.fail_after = None
    step()  # recovery sends the two left
    assert len(broker.sent) == 3
    assert len({check for check, _ in broker.sent}) == 3
    assert store.undispatched_source_checks(timedelta(seconds=-1)) == []


def test_a_silent_workers_check_is_requeued_and_sent_again() -> None:
    store = MemorySourceChecks()
    release = store.add_release("demo", "1.0", attempt_priorities=[5])
    broker = FakeDispatcher()
    step = SourceCheckStep(store, broker, NOW_CONFIG)
    step()
    ((check, _),) = broker.sent
    assert store.start_source_check(check, "dead-worker") is not None
    step()
    assert len(broker.sent) == 1  # still running, heard of recently
    store.backdate(check, 600)
    requeued, sent = step.recover()
    assert (requeued, sent) == (1, 1)
    assert broker.sent[-1] == (check, Priority.NEW_RELEASE)
    (row,) = store.checks_of(release)
    assert row.status is AttemptStatus.QUEUED and row.worker is None


def test_only_new_releases_are_scanned_between_full_scans() -> None:
    now = [0.0]
    store = SpyStore()
    store.add_release("demo", "1.0")
    config = SourceCheckConfig(full_scan_seconds=100.0, id_margin=1, batch=10)
    step = SourceCheckStep(store, FakeDispatcher(), config, clock=lambda: now[0])
    step.request()
    newest = store.max_release_id()
    step.request()
    now[0] = 150.0
    step.request()
    assert store.scans == [0, newest - 1, 0]


def test_a_full_batch_means_a_full_scan_next_time() -> None:
    store = SpyStore()
    for version in ("1.0", "2.0", "3.0"):
        store.add_release("demo", version)
    config = SourceCheckConfig(full_scan_seconds=1000.0, batch=2)
    broker = FakeDispatcher()
    step = SourceCheckStep(store, broker, config, clock=lambda: 0.0)
    assert len(step.request()) == 2
    assert len(step.request()) == 1  # the oldest, left over by the first batch
    assert store.scans == [0, 0]
    assert len(broker.sent) == 3


def _history(store: MemorySourceChecks) -> dict[str, list[int]]:
    """A project first polled with 10 releases (the newest 3 rebuilt) and an sdist-only one."""
    releases: dict[str, list[int]] = {"big": [], "solo": []}
    for n in range(10):
        rebuilt = [int(Priority.BACKFILL)] if n >= 7 else []
        releases["big"].append(store.add_release("big", f"1.{n}", attempt_priorities=rebuilt))
    for n in range(5):
        releases["solo"].append(store.add_release("solo", f"0.{n}", (FileKind.SDIST,)))
    return releases


def test_source_checks_follow_the_newest_plus_backfill_policy() -> None:
    store = MemorySourceChecks()
    releases = _history(store)
    SourceCheckStep(store, FakeDispatcher(), NOW_CONFIG)()
    checked = {r for rs in releases.values() for r in rs if store.checks_of(r)}
    assert checked == set(releases["big"][7:]) | set(releases["solo"][2:])
    # A release of the history a campaign rebuilds later is checked then.
    old = store.add_release("big", "0.1", attempt_priorities=[int(Priority.CAMPAIGN)])
    SourceCheckStep(store, FakeDispatcher(), NOW_CONFIG)()
    assert [c.priority for c in store.checks_of(old)] == [int(Priority.CAMPAIGN)]


def test_the_whole_history_is_checked_when_configured() -> None:
    store = MemorySourceChecks()
    releases = _history(store)
    config = SourceCheckConfig(redispatch_after=timedelta(seconds=-1), newest_per_project=None)
    SourceCheckStep(store, FakeDispatcher(), config)()
    assert all(store.checks_of(r) for rs in releases.values() for r in rs)
