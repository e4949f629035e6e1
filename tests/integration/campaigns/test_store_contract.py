"""One suite, two campaign stores: PostgreSQL and the in-memory stand-in keep the same
promises, through the Protocols only (``rebuilder.campaigns.store``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from rebuilder.campaigns.memory import MemoryCampaignStore
from rebuilder.campaigns.model import CampaignStatus, NewCampaign
from rebuilder.campaigns.store import PostgresCampaignStore
from rebuilder.store.db import Pool
from rebuilder.store.repository import PostgresStore
from rebuilder.verdict import FileResult, Verdict
from tests.integration.campaigns.conftest import day
from tests.unit.campaigns.fakes import sdist, wheel

Store = MemoryCampaignStore | PostgresCampaignStore


@dataclass
class Backend:
    """A campaign store and how a test stages what workers and pollers do beside it."""

    store: Store
    finish: Callable[[int, Verdict], None]  # a worker judged this attempt
    set_generator: Callable[[int, str], None]  # the published wheel's Generator was read


def _pg_finish(fleet: PostgresStore) -> Callable[[int, Verdict], None]:
    def finish(attempt_id: int, verdict: Verdict) -> None:
        row = fleet.attempt(attempt_id)
        assert row is not None
        file = fleet.file(row.file_id)
        assert file is not None
        result = FileResult(file.project, file.version, file.filename, verdict, file.sha256)
        assert fleet.finish_attempt(attempt_id, result, None, None)

    return finish


@pytest.fixture(params=["memory", "postgres"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        memory = MemoryCampaignStore()
        return Backend(memory, memory.finish, memory.generators.__setitem__)
    pool: Pool = request.getfixturevalue("pool")
    fleet = PostgresStore(pool)
    return Backend(PostgresCampaignStore(pool), _pg_finish(fleet), fleet.set_generator)


def _files(store: Store) -> dict[str, int]:
    """Record demo 1.0 (sdist, wheel) and other 2.0 (wheel); {filename: file id}."""
    store.record_release("demo", "1.0", [sdist("demo", "1.0", day=1), wheel("demo", "1.0", day=1)])
    store.record_release("other", "2.0", [wheel("other", "2.0", day=3)])
    names = ["demo-1.0.tar.gz", "demo-1.0-py3-none-any.whl", "other-2.0-py3-none-any.whl"]
    return {name: row.id for name, row in store.files_by_filename(names).items()}


def _new(name: str, file_ids: list[int], *, force: bool = False) -> NewCampaign:
    return NewCampaign(
        name=name, selection={"specs": []}, files=dict.fromkeys(file_ids), force=force
    )


def test_recording_is_idempotent_and_files_are_found_by_name_and_upload_time(
    backend: Backend,
) -> None:
    store = backend.store
    ids = _files(store)
    assert _files(store) == ids  # recorded again: the same rows
    assert len(ids) == 3
    assert store.files_by_filename(["nothing-1.0.tar.gz"]) == {}
    window = store.uploaded_between(day(2), None)
    assert [f.filename for f in window] == ["other-2.0-py3-none-any.whl"]
    everything = store.uploaded_between(None, None)
    assert {f.id for f in everything} == set(ids.values())
    assert store.uploaded_between(day(1), day(1)) == []  # [since, until)


def test_a_campaign_queues_its_files_at_campaign_priority_and_counts_progress(
    backend: Backend,
) -> None:
    store = backend.store
    ids = _files(store)
    created = store.create(_new("incident", sorted(ids.values())))
    assert len(created.queued) == 3 and created.adopted == [] and created.reused == 0
    assert [c.id for c in store.campaigns()] == [created.campaign_id]
    row = store.campaign(created.campaign_id)
    assert row is not None and row.status is CampaignStatus.RUNNING and row.name == "incident"
    assert store.progress(created.campaign_id).queued == 3
    files = store.files(created.campaign_id)
    assert sorted(f.attempt_id or 0 for f in files) == sorted(created.queued)
    store.mark_dispatched(created.queued)
    for attempt_id in created.queued:
        backend.finish(attempt_id, Verdict.REPRODUCIBLE)
    progress = store.progress(created.campaign_id)
    assert (progress.done, progress.queued, progress.finished) == (3, 0, True)
    assert progress.verdicts.get(Verdict.REPRODUCIBLE) == 3
    assert store.close_finished() == [created.campaign_id]
    closed = store.campaign(created.campaign_id)
    assert closed is not None and closed.status is CampaignStatus.DONE
    assert store.close_finished() == []


def test_busy_files_are_adopted_and_conclusive_verdicts_answer_unless_forced(
    backend: Backend,
) -> None:
    store = backend.store
    ids = _files(store)
    wheel_id, other_id = ids["demo-1.0-py3-none-any.whl"], ids["other-2.0-py3-none-any.whl"]
    first = store.create(_new("first", [wheel_id, other_id]))
    by_file = {f.file_id: f.attempt_id for f in store.files(first.campaign_id)}
    backend.finish(by_file[wheel_id] or 0, Verdict.REPRODUCIBLE)  # other 2.0 still queued
    second = store.create(_new("second", [wheel_id, other_id]))
    assert second.reused == 1 and second.queued == []
    assert second.adopted == [by_file[other_id]]
    forced = store.create(_new("forced", [wheel_id], force=True))
    assert len(forced.queued) == 1 and forced.reused == 0


def test_cancel_withdraws_what_is_queued_once(backend: Backend) -> None:
    store = backend.store
    ids = _files(store)
    created = store.create(_new("to cancel", sorted(ids.values())))
    backend.finish(created.queued[0], Verdict.MISMATCH)
    withdrawn = store.cancel(created.campaign_id)
    assert withdrawn is not None and sorted(withdrawn) == sorted(created.queued[1:])
    row = store.campaign(created.campaign_id)
    assert row is not None and row.status is CampaignStatus.CANCELLED
    assert store.cancel(created.campaign_id) is None  # not running any more
    assert store.cancel(12345) is None


def test_latest_verdicts_and_generators_select_files(backend: Backend) -> None:
    store = backend.store
    ids = _files(store)
    wheel_id, other_id = ids["demo-1.0-py3-none-any.whl"], ids["other-2.0-py3-none-any.whl"]
    created = store.create(_new("verdicts", [wheel_id, other_id]))
    by_file = {f.file_id: f.attempt_id for f in store.files(created.campaign_id)}
    backend.finish(by_file[wheel_id] or 0, Verdict.MISMATCH)
    backend.finish(by_file[other_id] or 0, Verdict.REPRODUCIBLE)
    assert [f.id for f in store.latest_verdict_in([Verdict.MISMATCH])] == [wheel_id]
    latest = store.latest_for([wheel_id, other_id, ids["demo-1.0.tar.gz"]])
    assert {i: r.verdict for i, r in latest.items()} == {
        wheel_id: Verdict.MISMATCH,
        other_id: Verdict.REPRODUCIBLE,
    }
    assert store.wheels_without_generator() == 2
    backend.set_generator(wheel_id, "hatchling 1.26.3")
    assert store.wheels_without_generator() == 1
    assert [(f.id, g) for f, g in store.wheels_with_generator_like("hatchling")] == [
        (wheel_id, "hatchling 1.26.3")
    ]
    assert [f.id for f, _ in store.wheels_with_generator_like("Hatchling")] == [wheel_id]
    assert store.wheels_with_generator_like("setuptools") == []
