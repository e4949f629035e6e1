"""Campaigns on PostgreSQL: start in one transaction, adopt, reuse, cancel, resume, close."""

from __future__ import annotations

import hashlib

import pytest

from rebuilder.campaigns import CampaignError
from rebuilder.campaigns import campaign as campaigns
from rebuilder.campaigns.audit import EXIT_MISMATCH, audit
from rebuilder.campaigns.model import CampaignStatus
from rebuilder.campaigns.selection import LockInput, Selection, resolve
from rebuilder.campaigns.store import PostgresCampaignStore
from rebuilder.index.simple import SimpleIndex
from rebuilder.store.db import Pool
from rebuilder.store.records import AttemptStatus
from rebuilder.store.repository import PostgresStore
from rebuilder.verdict import Difference, DifferenceKind, FileResult, Verdict
from rebuilder.worker.queue import Priority
from reports.campaign_report import build_report, render
from tests.integration.campaigns.conftest import day
from tests.support.index_server import FixtureIndex


class Sent:
    def __init__(self) -> None:
        self.sent: list[tuple[int, Priority]] = []

    def enqueue(self, attempt_id: int, priority: Priority) -> None:
        self.sent.append((attempt_id, priority))


def result(filename: str, verdict: Verdict, **extra: object) -> FileResult:
    return FileResult(
        project="x",
        version="1",
        filename=filename,
        verdict=verdict,
        upstream_sha256="0" * 64,
        **extra,  # type: ignore[arg-type]
    )


def finish(fleet: PostgresStore, attempt_id: int, verdict: Verdict, **extra: object) -> None:
    row = fleet.attempt(attempt_id)
    assert row is not None
    file = fleet.file(row.file_id)
    assert file is not None
    assert fleet.finish_attempt(attempt_id, result(file.filename, verdict, **extra), None, None)


def attempts_of(pool: Pool, campaign_id: int) -> list[tuple[int, str, int, object]]:
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT id, status, priority, dispatched_at FROM attempts WHERE campaign_id = %s "
            "ORDER BY id",
            (campaign_id,),
        ).fetchall()
    return [(int(r[0]), str(r[1]), int(r[2]), r[3]) for r in rows]


def test_start_records_unknown_files_and_queues_at_campaign_priority(
    cstore: PostgresCampaignStore, pool: Pool, index: SimpleIndex
) -> None:
    sent = Sent()
    selection = Selection(specs=("demo==1.0", "pkg:pypi/other@1.0"))
    dry = resolve(selection, cstore, index)
    assert (len(dry.picks), dry.unknown) == (5, 5)
    assert cstore.files_by_filename(dry.picks) == {}  # the dry run wrote nothing
    started = campaigns.start(
        "demo incident", selection, store=cstore, index=index, dispatcher=sent
    )
    assert len(started.resolved.picks) == 5 and started.resolved.unknown == 0
    rows = attempts_of(pool, started.campaign_id)
    assert len(rows) == 5
    assert {(status, priority) for _, status, priority, _ in rows} == {("queued", 9)}
    assert all(dispatched is not None for *_, dispatched in rows)
    assert sorted(i for i, _ in sent.sent) == [r[0] for r in rows]
    files = cstore.files(started.campaign_id)
    assert [f.attempt_id for f in files] == sorted(f.attempt_id for f in files)  # all set
    assert {f.filename for f in files} == set(started.resolved.picks)


def test_without_force_verdicts_answer_failed_ones_rebuild_and_busy_files_are_adopted(
    cstore: PostgresCampaignStore, fleet: PostgresStore, pool: Pool, index: SimpleIndex
) -> None:
    first = campaigns.start(
        "first", Selection(specs=("demo==1.0",)), store=cstore, index=index, dispatcher=None
    )
    ids = {f.filename: f.attempt_id for f in cstore.files(first.campaign_id)}
    finish(fleet, ids["demo-1.0-py3-none-any.whl"] or 0, Verdict.REPRODUCIBLE)
    # the sdist: a routine attempt is still queued at new-release priority
    with pool.connection() as conn:
        conn.execute("DELETE FROM campaign_files")
        conn.execute(
            "UPDATE attempts SET priority = 5, campaign_id = NULL, dispatched_at = now() "
            "WHERE id = %s",
            (ids["demo-1.0.tar.gz"],),
        )
    sent = Sent()
    second = campaigns.start(
        "second", Selection(specs=("demo==1.0",)), store=cstore, index=index, dispatcher=sent
    )
    assert second.created.reused == 1
    assert second.created.queued == []
    assert second.created.adopted == [ids["demo-1.0.tar.gz"]]
    lifted = fleet.attempt(ids["demo-1.0.tar.gz"] or 0)
    assert lifted is not None and lifted.priority == Priority.CAMPAIGN
    assert sent.sent == [(ids["demo-1.0.tar.gz"], Priority.CAMPAIGN)]
    forced = campaigns.start(
        "forced",
        Selection(specs=("demo==1.0",)),
        store=cstore,
        index=index,
        dispatcher=None,
        force=True,
    )
    assert forced.created.reused == 0 and len(forced.created.queued) == 1  # the wheel again


def test_cancel_withdraws_queued_attempts_and_a_late_claim_finds_nothing(
    cstore: PostgresCampaignStore, fleet: PostgresStore, index: SimpleIndex
) -> None:
    started = campaigns.start(
        "c", Selection(specs=("demo==1.0", "demo==2.0")), store=cstore, index=index, dispatcher=None
    )
    queued = started.created.queued
    running = fleet.start_attempt(queued[0], "worker-1")
    assert running is not None
    withdrawn = campaigns.cancel(cstore, started.campaign_id)
    assert sorted(withdrawn) == sorted(queued[1:])
    assert all(fleet.attempt(i) is None for i in withdrawn)
    assert fleet.start_attempt(queued[1], "worker-2") is None  # the message already sent
    row, progress = campaigns.status(cstore, started.campaign_id)
    assert row.status is CampaignStatus.CANCELLED
    assert (progress.running, progress.cancelled, progress.queued) == (1, 3, 0)
    finish_running = fleet.attempt(queued[0])
    assert finish_running is not None and finish_running.status is AttemptStatus.RUNNING
    text = render(build_report(cstore, started.campaign_id), "md")
    assert text.count("| cancelled |  |  |") == 3  # three file rows (not the header)
    with pytest.raises(CampaignError):
        campaigns.cancel(cstore, started.campaign_id)


def test_everything_is_read_back_by_a_fresh_store_and_closed_when_judged(
    cstore: PostgresCampaignStore, fleet: PostgresStore, pool: Pool, index: SimpleIndex
) -> None:
    started = campaigns.start(
        "resume", Selection(specs=("other==1.0",)), store=cstore, index=index, dispatcher=None
    )
    again = PostgresCampaignStore(pool)  # as after a restart: nothing kept in memory
    assert again.progress(started.campaign_id).queued == 3
    verdicts = [Verdict.MISMATCH, Verdict.UNSUPPORTED, Verdict.REPRODUCIBLE]
    for attempt_id, verdict in zip(started.created.queued, verdicts, strict=True):
        extra = (
            {"differences": (Difference("other/x.py", DifferenceKind.CONTENT),)}
            if verdict is Verdict.MISMATCH
            else {}
        )
        finish(fleet, attempt_id, verdict, **extra)
    assert again.close_finished() == [started.campaign_id]
    assert again.close_finished() == []
    row, progress = campaigns.status(again, started.campaign_id)
    assert row.status is CampaignStatus.DONE and progress.finished
    report = build_report(again, started.campaign_id)
    s = report.summary
    assert (s.verified, s.mismatched, s.not_rebuildable, s.total) == (1, 1, 1, 3)
    assert any(d.path == "other/x.py" for f in report.files for d in f.differences)


def test_database_selections_match_the_in_memory_twin(
    cstore: PostgresCampaignStore, fleet: PostgresStore, index: SimpleIndex
) -> None:
    started = campaigns.start(
        "seed", Selection(projects=("demo", "other")), store=cstore, index=index, dispatcher=None
    )
    by_name = {f.filename: f for f in cstore.files(started.campaign_id)}
    fleet.set_generator(by_name["demo-1.0-py3-none-any.whl"].file_id, "hatchling 1.25.0")
    fleet.set_generator(by_name["demo-2.0-py3-none-any.whl"].file_id, "hatchling 1.27.0")
    fleet.set_generator(by_name["other-1.0-py3-none-any.whl"].file_id, "flit_core 3.9.0")
    finish(fleet, by_name["demo-2.0.tar.gz"].attempt_id or 0, Verdict.MISMATCH)
    finish(fleet, by_name["other-1.0.tar.gz"].attempt_id or 0, Verdict.REPRODUCIBLE)

    def picked(selection: Selection) -> list[str]:
        return sorted(resolve(selection, cstore, index).picks)

    assert picked(Selection(uploaded=(day(3), day(5)))) == [
        "other-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "other-1.0-py3-none-any.whl",
        "other-1.0.tar.gz",
    ]
    assert picked(Selection(backends=("hatchling>=1.25,<1.27",))) == ["demo-1.0-py3-none-any.whl"]
    assert picked(Selection(backends=("flit-core~=3.9",))) == ["other-1.0-py3-none-any.whl"]
    assert picked(Selection(verdicts=(Verdict.MISMATCH, Verdict.FAILED))) == ["demo-2.0.tar.gz"]
    assert picked(Selection(projects=("demo",), project_window=(day(4), None))) == [
        "demo-2.0-py3-none-any.whl",
        "demo-2.0.tar.gz",
    ]


def test_a_tampered_upload_is_caught_by_the_lock_hash_and_fails_the_audit(
    cstore: PostgresCampaignStore, served: FixtureIndex, index: SimpleIndex
) -> None:
    genuine = hashlib.sha256(b"demo wheel 1.0").hexdigest()
    lock = LockInput(
        "uv.lock",
        f"""
version = 1
[[package]]
name = "demo"
version = "1.0"
source = {{ registry = "{served.url}" }}
wheels = [{{ url = "{served.base}/files/demo-1.0-py3-none-any.whl", hash = "sha256:{genuine}" }}]
""",
    )
    assert audit(lock, store=cstore, index=index).findings == ()
    served.add_file("demo", "demo-1.0-py3-none-any.whl", b"demo wheel 1.0 + backdoor", day(1))
    try:
        fresh = SimpleIndex(served.url, index.cache_dir / "fresh")
        result = audit(lock, store=cstore, index=fresh)
        assert result.exit_code == EXIT_MISMATCH
        assert [f.kind.value for f in result.findings] == ["lock-hash"]
        assert "expects sha256 " + genuine in (result.lines[0].note or "")
    finally:
        served.add_file("demo", "demo-1.0-py3-none-any.whl", b"demo wheel 1.0", day(1))
