"""The running fleet's store operations, on both stores: outcomes with their attestations,
giving claims back, dispatch tracking and the worker registry."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from rebuilder.store.memory import MemoryStore
from rebuilder.store.outcomes import SignedStatement
from rebuilder.store.records import AttemptStatus
from rebuilder.store.repository import PostgresStore
from rebuilder.verdict import Verdict

from .factories import index_file, result_for, wheel

ORIGIN = "test.example/log"

Store = MemoryStore | PostgresStore  # the suite runs against both


def _running(store: Store, worker: str = "w1") -> tuple[int, int]:
    (row,) = store.record_release("demo", "1.0", [wheel("demo", "1.0")])
    attempt = store.request_attempt(row.id, 5)
    assert attempt is not None
    assert store.start_attempt(attempt, worker) is not None
    return row.id, attempt


def _statements(tag: str) -> list[SignedStatement]:
    return [
        SignedStatement("provenance", f'{{"payload":"p-{tag}"}}'),
        SignedStatement("vsa", f'{{"payload":"v-{tag}"}}'),
    ]


def _record(store: Store, attempt: int, worker: str, tag: str) -> bool:
    return store.record_outcome(
        attempt,
        result_for(wheel("demo", "1.0")),
        worker=worker,
        strategy_json={"schema": 1},
        image_digest="sha256:" + "d" * 64,
        evidence_manifest={"build.log": "e" * 64},
        statements=_statements(tag),
        log_origin=ORIGIN,
    )


def test_an_outcome_is_recorded_with_its_bundle(store: Store) -> None:
    file_id, attempt = _running(store)
    assert _record(store, attempt, "w1", "a")
    row = store.attempt(attempt)
    assert row is not None and row.status is AttemptStatus.DONE
    assert row.verdict is Verdict.REPRODUCIBLE
    assert store.bundle_lines(file_id) == ['{"payload":"p-a"}', '{"payload":"v-a"}']


def test_a_refused_outcome_logs_nothing(store: Store) -> None:
    file_id, attempt = _running(store, "w1")
    assert not _record(store, attempt, "intruder", "x")  # not the holder
    assert store.bundle_lines(file_id) == []
    assert _record(store, attempt, "w1", "a")
    assert not _record(store, attempt, "w1", "b")  # finished once
    assert store.bundle_lines(file_id) == ['{"payload":"p-a"}', '{"payload":"v-a"}']


def test_the_latest_attempt_gives_the_bundle(store: Store) -> None:
    file_id, first = _running(store)
    assert _record(store, first, "w1", "a")
    second = store.request_attempt(file_id, 9)
    assert second is not None and store.start_attempt(second, "w2") is not None
    assert _record(store, second, "w2", "b")
    assert store.bundle_lines(file_id) == ['{"payload":"p-b"}', '{"payload":"v-b"}']


def test_a_claim_given_back_is_queued_and_unsent(store: Store) -> None:
    _, attempt = _running(store, "w1")
    store.mark_dispatched([attempt])
    assert not store.release_attempt(attempt, "w2")
    assert store.release_attempt(attempt, "w1")
    row = store.attempt(attempt)
    assert row is not None and row.status is AttemptStatus.QUEUED and row.worker is None
    assert store.undispatched(timedelta(seconds=-1)) == [(attempt, 5)]
    store.mark_dispatched([attempt])
    assert store.undispatched(timedelta(seconds=-1)) == []


def test_worker_registry(store: Store) -> None:
    store.announce_worker("host/worker-1", "host", 42, "0.1.0")
    store.announce_worker("host/worker-2", "host", 43, "0.1.0")
    store.worker_beat("host/worker-1", 17)
    store.retire_worker("host/worker-2")
    live = store.workers()
    assert [(w.name, w.current_attempt) for w in live] == [("host/worker-1", 17)]
    assert {w.name for w in store.workers(include_stopped=True)} == {
        "host/worker-1",
        "host/worker-2",
    }
    store.announce_worker("host/worker-2", "host", 44, "0.1.0")  # restarted
    assert {w.name for w in store.workers()} == {"host/worker-1", "host/worker-2"}


def test_concurrent_outcomes_get_distinct_log_entries(pg_store: PostgresStore) -> None:
    attempts = []
    for n in range(12):
        (row,) = pg_store.record_release("demo", f"1.{n}", [wheel("demo", f"1.{n}")])
        attempt = pg_store.request_attempt(row.id, 5)
        assert attempt is not None and pg_store.start_attempt(attempt, "w") is not None
        attempts.append((row.id, attempt, n))

    def finish(item: tuple[int, int, int]) -> bool:
        _, attempt, n = item
        return pg_store.record_outcome(
            attempt,
            result_for(wheel("demo", f"1.{n}")),
            worker="w",
            strategy_json=None,
            image_digest=None,
            evidence_manifest=None,
            statements=_statements(str(n)),
            log_origin=ORIGIN,
        )

    with ThreadPoolExecutor(6) as pool:
        assert all(pool.map(finish, attempts))
    with pg_store.connection() as conn:
        rows = conn.execute("SELECT leaf_index FROM attestations ORDER BY leaf_index").fetchall()
        size = conn.execute("SELECT tree_size FROM log_heads WHERE origin = %s", (ORIGIN,))
        (tree_size,) = size.fetchone() or (0,)
    indexes = [r[0] for r in rows]
    # 24 distinct, gapless entries at the end of the log (earlier tests logged before)
    assert indexes == list(range(tree_size - 24, tree_size))


def test_record_and_queue_queues_the_new_wheels_with_the_release(store: Store) -> None:
    files = [wheel("demo", "2.0"), index_file("demo", "2.0", "demo-2.0.tar.gz")]
    rows, queued = store.record_and_queue("demo", "2.0", files, priority=5, cursor=("c", "7"))
    assert sorted(r.filename for r in rows) == ["demo-2.0-py3-none-any.whl", "demo-2.0.tar.gz"]
    assert len(queued) == 1  # the wheel only: the sdist is the rebuild's input
    attempt = store.attempt(queued[0])
    assert attempt is not None and attempt.priority == 5
    assert store.get_cursor("c") == "7"
    assert store.undispatched(timedelta(seconds=-1)) == [(queued[0], 5)]
    assert store.record_and_queue("demo", "2.0", files, priority=5) == ([], [])
