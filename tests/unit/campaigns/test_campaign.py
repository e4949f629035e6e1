"""Starting, dispatching, following and cancelling campaigns against the in-memory twin."""

from __future__ import annotations

import pytest

from rebuilder.campaigns import CampaignError
from rebuilder.campaigns import campaign as campaigns
from rebuilder.campaigns.memory import MemoryCampaignStore
from rebuilder.campaigns.model import CampaignStatus
from rebuilder.campaigns.selection import Selection
from rebuilder.store.records import AttemptStatus
from rebuilder.verdict import Verdict
from rebuilder.worker.queue import Priority
from tests.support.fakes import FakeDispatcher, FakeIndex
from tests.unit.campaigns.fakes import sdist, wheel


@pytest.fixture
def index() -> FakeIndex:
    return FakeIndex([sdist("demo", "1.0"), wheel("demo", "1.0"), wheel("other", "2.0")])


SELECT_ALL = Selection(specs=("demo==1.0", "other==2.0"))


def test_start_queues_every_file_at_campaign_priority_then_dispatches(index: FakeIndex) -> None:
    store = MemoryCampaignStore()
    dispatcher = FakeDispatcher()
    started = campaigns.start(
        "incident", SELECT_ALL, store=store, index=index, dispatcher=dispatcher
    )
    assert len(started.created.queued) == 3 and started.dispatched == 3
    assert {p for _, p in dispatcher.sent} == {Priority.CAMPAIGN}
    attempts = [store.attempts[i] for i in started.created.queued]
    assert all(a.priority == Priority.CAMPAIGN and a.dispatched for a in attempts)
    assert all(a.campaign_id == started.campaign_id for a in attempts)
    row, progress = campaigns.status(store, started.campaign_id)
    assert row.status is CampaignStatus.RUNNING
    assert (progress.total, progress.queued, progress.done) == (3, 3, 0)


def test_existing_verdicts_answer_unless_forced_or_another_image(index: FakeIndex) -> None:
    store = MemoryCampaignStore()
    known = store.add_file(wheel("demo", "1.0"))
    store.add_verdict(known.id, Verdict.REPRODUCIBLE)
    failed = store.add_file(wheel("other", "2.0"))
    store.add_verdict(failed.id, Verdict.FAILED)
    plain = campaigns.start("a", SELECT_ALL, store=store, index=index, dispatcher=None)
    # the reproducible wheel is answered by its verdict; the failed one is tried again
    assert plain.created.reused == 1 and len(plain.created.queued) == 2
    assert plain.dispatched == 0  # no broker: the scheduler sends undispatched attempts
    for attempt_id in plain.created.queued:
        store.finish(attempt_id, Verdict.UNSUPPORTED)
    forced = campaigns.start("b", SELECT_ALL, store=store, index=index, dispatcher=None, force=True)
    assert forced.created.reused == 0 and len(forced.created.queued) == 3
    for attempt_id in forced.created.queued:
        store.finish(attempt_id, Verdict.REPRODUCIBLE)
    elsewhere = campaigns.start(
        "c", SELECT_ALL, store=store, index=index, dispatcher=None, image="img@sha256:" + "1" * 64
    )
    assert elsewhere.created.reused == 0
    assert {store.attempts[i].image for i in elsewhere.created.queued} == {"img@sha256:" + "1" * 64}


def test_a_file_already_queued_is_adopted_and_lifted(index: FakeIndex) -> None:
    store = MemoryCampaignStore()
    first = campaigns.start(
        "first", Selection(specs=("other==2.0",)), store=store, index=index, dispatcher=None
    )
    routine = first.created.queued[0]
    second = campaigns.start(
        "second", SELECT_ALL, store=store, index=index, dispatcher=FakeDispatcher()
    )
    assert second.created.adopted == [routine]
    assert routine in second.created.to_dispatch
    files = {f.filename: f.attempt_id for f in store.files(second.campaign_id)}
    assert files["other-2.0-py3-none-any.whl"] == routine


def test_progress_closes_the_campaign_once_everything_is_judged(index: FakeIndex) -> None:
    store = MemoryCampaignStore()
    started = campaigns.start("x", SELECT_ALL, store=store, index=index, dispatcher=None)
    ids = started.created.queued
    store.set_status(ids[0], AttemptStatus.RUNNING)
    store.finish(ids[1], Verdict.MISMATCH)
    row, progress = campaigns.status(store, started.campaign_id)
    assert (progress.queued, progress.running, progress.done) == (1, 1, 1)
    assert row.status is CampaignStatus.RUNNING
    store.finish(ids[0], Verdict.REPRODUCIBLE)
    store.finish(ids[2], Verdict.FAILED)
    seen = []
    row, progress = campaigns.wait(
        store, started.campaign_id, on_progress=seen.append, sleep=lambda _: None
    )
    assert row.status is CampaignStatus.DONE and row.finished_at is not None
    assert progress.verdicts[Verdict.MISMATCH] == 1 and progress.finished
    assert len(seen) == 1


def test_cancel_withdraws_queued_keeps_running_and_cannot_repeat(index: FakeIndex) -> None:
    store = MemoryCampaignStore()
    started = campaigns.start("x", SELECT_ALL, store=store, index=index, dispatcher=None)
    running = started.created.queued[0]
    store.set_status(running, AttemptStatus.RUNNING)
    withdrawn = campaigns.cancel(store, started.campaign_id)
    assert sorted(withdrawn) == sorted(started.created.queued[1:])
    assert all(i not in store.attempts for i in withdrawn)
    row, progress = campaigns.status(store, started.campaign_id)
    assert row.status is CampaignStatus.CANCELLED
    assert (progress.running, progress.cancelled, progress.queued) == (1, 2, 0)
    with pytest.raises(CampaignError, match="cancelled, not running"):
        campaigns.cancel(store, started.campaign_id)
    with pytest.raises(CampaignError, match="no campaign"):
        campaigns.cancel(store, 999)


def test_cancel_keeps_attempts_another_running_campaign_waits_for(index: FakeIndex) -> None:
    store = MemoryCampaignStore()
    a = campaigns.start("a", SELECT_ALL, store=store, index=index, dispatcher=None)
    b = campaigns.start("b", SELECT_ALL, store=store, index=index, dispatcher=None)
    assert sorted(b.created.adopted) == sorted(a.created.queued)
    assert campaigns.cancel(store, a.campaign_id) == []
    assert campaigns.status(store, b.campaign_id)[1].queued == 3


def test_a_broker_failure_leaves_the_rest_for_the_scheduler(index: FakeIndex) -> None:
    store = MemoryCampaignStore()
    dispatcher = FakeDispatcher(fail_after=1)
    started = campaigns.start("x", SELECT_ALL, store=store, index=index, dispatcher=dispatcher)
    assert started.dispatched == 1
    unsent = [i for i in started.created.queued if not store.attempts[i].dispatched]
    assert len(unsent) == 2


def test_names_and_empty_picks_are_checked(index: FakeIndex) -> None:
    store = MemoryCampaignStore()
    with pytest.raises(CampaignError, match="name"):
        campaigns.start("  ", SELECT_ALL, store=store, index=index, dispatcher=None)
    with pytest.raises(CampaignError, match="no file"):
        campaigns.start(
            "x", Selection(specs=("demo==9",)), store=store, index=index, dispatcher=None
        )
    assert store.campaigns() == []


def test_the_scheduler_hook_closes_finished_campaigns(index: FakeIndex) -> None:
    store = MemoryCampaignStore()
    started = campaigns.start("x", SELECT_ALL, store=store, index=index, dispatcher=None)
    hook = campaigns.closing_hook(store)
    hook()
    assert store.campaign(started.campaign_id).status is CampaignStatus.RUNNING  # type: ignore[union-attr]
    for attempt_id in started.created.queued:
        store.finish(attempt_id, Verdict.REPRODUCIBLE)
    hook()
    assert store.campaign(started.campaign_id).status is CampaignStatus.DONE  # type: ignore[union-attr]
