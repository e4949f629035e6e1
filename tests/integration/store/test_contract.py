"""One suite, two stores: PostgreSQL and the in-memory fake must behave the same."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from rebuilder.errors import FailureReason, UsageError
from rebuilder.index.model import FileKind
from rebuilder.store import StoreError
from rebuilder.store.memory import MemoryStore
from rebuilder.store.records import AttemptStatus
from rebuilder.store.repository import PostgresStore
from rebuilder.verdict import Difference, DifferenceKind, Risk, StabilizerUse, Verdict

from .factories import index_file, result_for, wheel

Store = MemoryStore | PostgresStore  # the suite runs against both


def _queued(store: Store, project: str = "demo", version: str = "1.0") -> tuple[int, int]:
    (row,) = store.record_release(project, version, [wheel(project, version)])
    attempt_id = store.request_attempt(row.id, 5)
    assert attempt_id is not None
    return row.id, attempt_id


def test_watch_list_normalizes_and_reports_changes(store: Store) -> None:
    assert store.watch_add(["Requests", "zope.interface", "requests"]) == [
        "requests",
        "zope-interface",
    ]
    assert store.watch_add(["REQUESTS", "attrs"]) == ["attrs"]
    assert [p.name for p in store.watched()] == ["attrs", "requests", "zope-interface"]
    assert [p.name for p in store.watched(prefix="re")] == ["requests"]

    assert store.watch_remove(["requests", "never-watched"]) == ["requests"]
    assert [p.name for p in store.watched()] == ["attrs", "zope-interface"]
    assert store.watch_add(["requests"]) == ["requests"]


def test_watch_list_refuses_invalid_names(store: Store) -> None:
    with pytest.raises(UsageError):
        store.watch_add(["not a name!"])


def test_record_release_is_idempotent_and_returns_only_new_files(store: Store) -> None:
    sdist = index_file("demo", "1.0", "demo-1.0.tar.gz")
    whl = wheel("demo", "1.0")

    first = store.record_release("Demo", "1.0", [sdist])
    again = store.record_release("demo", "1.0", [sdist, whl])
    third = store.record_release("demo", "1.0", [sdist, whl])

    assert [f.filename for f in first] == ["demo-1.0.tar.gz"]
    assert [f.filename for f in again] == [whl.filename]
    assert third == []
    assert store.release_versions("demo") == {"1.0"}
    assert store.file(again[0].id) == again[0]
    assert again[0].to_index_file() == whl
    assert first[0].release_id == again[0].release_id


def test_record_release_refuses_files_of_another_release(store: Store) -> None:
    with pytest.raises(ValueError, match=r"not a file of demo 1\.0"):
        store.record_release("demo", "1.0", [wheel("demo", "2.0")])


def test_record_release_moves_the_cursor_with_it(store: Store) -> None:
    assert store.get_cursor("changelog") is None
    store.record_release("demo", "1.0", [wheel("demo", "1.0")], cursor=("changelog", "100"))
    assert store.get_cursor("changelog") == "100"
    store.set_cursor("changelog", "101")
    assert store.get_cursor("changelog") == "101"


def test_one_active_attempt_per_file(store: Store) -> None:
    file_id, attempt_id = _queued(store)

    assert store.request_attempt(file_id, 9) is None
    assert store.start_attempt(attempt_id, "w1") is not None
    assert store.request_attempt(file_id, 9) is None  # running counts as active

    store.finish_attempt(attempt_id, result_for(wheel("demo", "1.0")), None, None)
    image = "sandbox@sha256:" + "c" * 64
    again = store.request_attempt(file_id, 9, image=image)
    assert again is not None
    assert again != attempt_id
    row = store.attempt(again)
    assert row is not None
    assert (row.status, row.priority, row.image) == (AttemptStatus.QUEUED, 9, image)


def test_unknown_files_cannot_be_queued(store: Store) -> None:
    with pytest.raises(StoreError):
        store.request_attempts_bulk([424242], 1)
    assert store.queue_depth() == 0


def test_bulk_request_skips_busy_files_and_repeats(store: Store) -> None:
    rows = store.record_release(
        "demo", "1.0", [wheel("demo", "1.0", f"cp3{i}-none-any") for i in range(5)]
    )
    ids = [r.id for r in rows]
    busy = store.request_attempt(ids[0], 5)
    assert busy is not None

    made = store.request_attempts_bulk([*ids, *ids], 1)

    assert len(made) == 4
    assert store.queue_depth() == 5
    assert store.request_attempts_bulk(ids, 1) == []
    assert store.queued_ids()[0] == busy  # higher priority first


def test_recording_queues_wheels_and_refused_names_for_a_verdict(store: Store) -> None:
    """A file whose name is refused is queued like a wheel (its verdict says why); an
    sdist, another format and a yanked wheel are not."""
    files = [
        wheel("demo", "1.0"),
        index_file("demo", "1.0", "demo-1.0.tar.gz"),
        index_file("demo", "1.0", "demo-1.0.egg", kind=FileKind.OTHER),
        index_file("demo", "1.0", "../demo-1.0-py3-none-any.whl", kind=FileKind.OTHER),
        index_file("demo", "1.0", "demo-1.0-py2-none-any.whl", yanked=True),
    ]

    new, queued = store.record_and_queue("demo", "1.0", files, priority=3)

    assert len(new) == len(files)  # every listed file is recorded, the refused one too
    names = []
    for attempt_id in queued:
        attempt = store.attempt(attempt_id)
        assert attempt is not None
        row = store.file(attempt.file_id)
        assert row is not None
        names.append(row.filename)
    assert sorted(names) == ["../demo-1.0-py3-none-any.whl", "demo-1.0-py3-none-any.whl"]
    assert store.queue_depth() == 2


def test_a_claim_succeeds_once(store: Store) -> None:
    _, attempt_id = _queued(store)

    claimed = store.start_attempt(attempt_id, "w1")
    assert claimed is not None
    assert (claimed.status, claimed.worker, claimed.tries) == (AttemptStatus.RUNNING, "w1", 1)
    assert claimed.started_at is not None
    assert store.start_attempt(attempt_id, "w2") is None  # the duplicate message
    assert store.start_attempt(999_999, "w2") is None


def test_concurrent_claims_have_exactly_one_winner(store: Store) -> None:
    _, attempt_id = _queued(store)
    start = threading.Barrier(8)

    def claim(n: int) -> str | None:
        start.wait()
        row = store.start_attempt(attempt_id, f"worker-{n}")
        return None if row is None else row.worker

    with ThreadPoolExecutor(max_workers=8) as pool:
        winners = [w for w in pool.map(claim, range(8)) if w is not None]

    assert len(winners) == 1
    row = store.attempt(attempt_id)
    assert row is not None
    assert row.worker == winners[0]
    assert row.tries == 1


def test_finish_records_everything(store: Store) -> None:
    _, attempt_id = _queued(store)
    store.start_attempt(attempt_id, "w1")
    result = result_for(wheel("demo", "1.0"), Verdict.EQUIVALENT)
    strategy = {"schema": 1, "backend": {"generator": "hatchling 1.25.0"}}
    manifest = {"build.log": "a" * 64, "diff/report.txt": "b" * 64}

    assert store.finish_attempt(
        attempt_id,
        result,
        strategy,
        "sha256:" + "c" * 64,
        worker="w1",
        evidence_manifest=manifest,
    )

    row = store.attempt(attempt_id)
    assert row is not None
    assert row.status is AttemptStatus.DONE
    assert row.verdict is Verdict.EQUIVALENT
    assert row.stabilizers == (StabilizerUse("zip-order", 1), StabilizerUse("mtime", 2))
    assert row.differences == ()
    assert row.strategy == strategy
    assert row.image_digest == "sha256:" + "c" * 64
    assert row.rebuilt_sha256 == result.rebuilt_sha256
    assert row.timings == {"build": 10.25, "compare": 2.0}
    assert row.seconds == 12.5
    assert row.evidence == result.evidence
    assert row.evidence_manifest == manifest
    assert row.finished_at is not None
    assert row.worker == "w1"


def test_finish_records_failures_and_mismatches(store: Store) -> None:
    files = [wheel("demo", "1.0", "py2-none-any"), wheel("demo", "1.0", "py3-none-any")]
    rows = store.record_release("demo", "1.0", files)
    failed, mismatch = (store.request_attempt(r.id, 1) for r in rows)
    assert failed is not None
    assert mismatch is not None
    store.finish_attempt(failed, result_for(files[0], Verdict.FAILED), None, None)
    store.finish_attempt(mismatch, result_for(files[1], Verdict.MISMATCH), None, None)

    failed_row, mismatch_row = store.attempt(failed), store.attempt(mismatch)
    assert failed_row is not None
    assert mismatch_row is not None
    assert (failed_row.reason_class, failed_row.reason) == (FailureReason.BUILD, "backend crashed")
    assert mismatch_row.differences == (Difference("pkg/__init__.py", DifferenceKind.CONTENT),)
    assert mismatch_row.diagnosis == result_for(files[1], Verdict.MISMATCH).diagnosis
    assert (mismatch_row.risk, failed_row.risk) == (Risk.REVIEW, None)


def test_an_outcome_is_recorded_once(store: Store) -> None:
    _, attempt_id = _queued(store)
    store.start_attempt(attempt_id, "w1")
    file = wheel("demo", "1.0")

    assert store.finish_attempt(attempt_id, result_for(file, Verdict.MISMATCH), None, None)
    assert not store.finish_attempt(attempt_id, result_for(file, Verdict.REPRODUCIBLE), None, None)
    row = store.attempt(attempt_id)
    assert row is not None
    assert row.verdict is Verdict.MISMATCH


def test_finish_refuses_a_result_for_another_file(store: Store) -> None:
    _, attempt_id = _queued(store)
    with pytest.raises(StoreError, match="outcome refused"):
        store.finish_attempt(attempt_id, result_for("other-1.0-py3-none-any.whl"), None, None)
    with pytest.raises(StoreError, match="no attempt"):
        store.finish_attempt(999_999, result_for("x.whl"), None, None)


def test_a_worker_that_lost_its_claim_cannot_finish(store: Store) -> None:
    _, attempt_id = _queued(store)
    store.start_attempt(attempt_id, "slow")
    time.sleep(0.01)
    assert store.requeue_stale(timedelta(0)) == [attempt_id]
    assert store.start_attempt(attempt_id, "fresh") is not None

    file = wheel("demo", "1.0")
    assert not store.heartbeat(attempt_id, "slow")
    assert not store.finish_attempt(attempt_id, result_for(file), None, None, worker="slow")
    assert store.finish_attempt(attempt_id, result_for(file), None, None, worker="fresh")


def test_requeue_stale_takes_back_silent_claims_only(store: Store) -> None:
    _, silent = _queued(store, "silent")
    _, alive = _queued(store, "alive")
    _, waiting = _queued(store, "waiting")
    store.start_attempt(silent, "dead-worker")
    store.start_attempt(alive, "live-worker")

    assert store.requeue_stale(timedelta(hours=1)) == []
    time.sleep(0.3)
    assert store.heartbeat(alive, "live-worker")

    assert store.requeue_stale(timedelta(seconds=0.2)) == [silent]

    row = store.attempt(silent)
    assert row is not None
    assert (row.status, row.worker, row.started_at) == (AttemptStatus.QUEUED, None, None)
    assert sorted(store.queued_ids()) == sorted([silent, waiting])
    again = store.start_attempt(silent, "new-worker")
    assert again is not None
    assert again.tries == 2


def test_status_views(store: Store) -> None:
    files = [wheel("demo", "1.0", f"py3{i}-none-any") for i in range(4)]
    rows = store.record_release("demo", "1.0", files)
    ids = store.request_attempts_bulk([r.id for r in rows], 1)
    for attempt_id, file, verdict in zip(
        ids[:2], files[:2], [Verdict.REPRODUCIBLE, Verdict.MISMATCH], strict=True
    ):
        store.start_attempt(attempt_id, "w")
        store.finish_attempt(attempt_id, result_for(file, verdict), None, None)
    store.start_attempt(ids[2], "w9")
    # A newer attempt of the first file changes its latest verdict.
    newer = store.request_attempt(rows[0].id, 9)
    assert newer is not None
    store.finish_attempt(newer, result_for(files[0], Verdict.FAILED), None, None)

    assert store.queue_depth() == 1
    assert [(r.attempt_id, r.worker, r.filename) for r in store.running()] == [
        (ids[2], "w9", files[2].filename)
    ]
    counts = store.verdict_counts()
    assert counts[Verdict.FAILED] == 1
    assert counts[Verdict.MISMATCH] == 1
    assert counts[Verdict.REPRODUCIBLE] == 0
    assert sum(counts.values()) == 2

    latest = store.latest_verdicts()
    assert [(v.filename, v.verdict) for v in latest] == [
        (files[0].filename, Verdict.FAILED),
        (files[1].filename, Verdict.MISMATCH),
    ]
    assert latest[0].reason_class is FailureReason.BUILD
    assert [v.attempt_id for v in store.latest_verdicts(verdict=Verdict.MISMATCH)] == [ids[1]]
    assert store.latest_verdicts(project="other") == []
    assert len(store.latest_verdicts(project="Demo")) == 2  # names are normalized
    assert len(store.latest_verdicts(limit=1)) == 1
