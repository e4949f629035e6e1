"""Source checks on the real PostgreSQL: one active check per release, claimed once,
finished once with its statements in the transparency log, recovered when lost; and the
in-memory twin the unit tests use keeps the same promises."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import psycopg
import pytest

from rebuilder.source.checks import SourceCheckVerdict, SourceOutcome
from rebuilder.source.store import PostgresSourceChecks
from rebuilder.store.db import Pool
from rebuilder.store.log import TransparencyLog
from rebuilder.store.outcomes import SignedStatement
from rebuilder.store.records import AttemptStatus
from rebuilder.store.repository import PostgresStore
from rebuilder.worker.queue import Priority
from tests.support.source_checks import MemorySourceChecks

from .factories import index_file, wheel

ORIGIN = "test.example/source-log"
COMMIT = "ab" * 20


@dataclass
class Checks:
    """One implementation, with a way to record a release (sdist + wheel) in it."""

    store: PostgresSourceChecks | MemorySourceChecks
    add_release: Callable[[str, str], int]
    backdate: Callable[[int, float], None]


@pytest.fixture
def pg_checks(pg_store: PostgresStore, fleet_pool: Pool) -> PostgresSourceChecks:
    return PostgresSourceChecks(fleet_pool)


def _pg_add(pg_store: PostgresStore) -> Callable[[str, str], int]:
    def add(project: str, version: str) -> int:
        files = [
            index_file(project, version, f"{project}-{version}.tar.gz"),
            wheel(project, version),
        ]
        rows = pg_store.record_release(project, version, files)
        return rows[0].release_id

    return add


def _pg_backdate(pool: Pool) -> Callable[[int, float], None]:
    def backdate(check_id: int, seconds: float) -> None:
        with pool.connection() as conn:
            conn.execute(
                "UPDATE source_checks SET requested_at = requested_at - %(d)s, "
                "started_at = started_at - %(d)s, heartbeat_at = heartbeat_at - %(d)s "
                "WHERE id = %(id)s",
                {"d": timedelta(seconds=seconds), "id": check_id},
            )

    return backdate


@pytest.fixture(params=["memory", "postgres"])
def checks(request: pytest.FixtureRequest) -> Checks:
    if request.param == "memory":
        memory = MemorySourceChecks()
        return Checks(memory, memory.add_release, memory.backdate)
    pg: PostgresStore = request.getfixturevalue("pg_store")
    pool: Pool = request.getfixturevalue("fleet_pool")
    return Checks(PostgresSourceChecks(pool), _pg_add(pg), _pg_backdate(pool))


def _outcome(verdict: SourceCheckVerdict = SourceCheckVerdict.CONSISTENT) -> SourceOutcome:
    return SourceOutcome(
        verdict,
        repository="file:///repos/demo",
        tag="v1.0",
        commit=COMMIT,
        result={"verdict": verdict.value, "commit": COMMIT},
        seconds=1.5,
    )


def _record(c: Checks, check: int, worker: str, tag: str) -> bool:
    return c.store.record_source_outcome(
        check,
        _outcome(),
        worker=worker,
        evidence_manifest={"report.json": "e" * 64},
        statements=[SignedStatement("source-check", f'{{"payload":"s-{tag}"}}')],
        log_origin=ORIGIN,
    )


def test_one_active_check_per_release_claimed_once_finished_once(checks: Checks) -> None:
    c = checks
    release = c.add_release("demo", "1.0")
    check = c.store.request_source_check(release, 5)
    assert check is not None
    assert c.store.request_source_check(release, 5) is None  # one queued already
    row = c.store.start_source_check(check, "w1")
    assert row is not None and row.status is AttemptStatus.RUNNING and row.tries == 1
    assert (row.project, row.version, row.release_id) == ("demo", "1.0", release)
    assert c.store.start_source_check(check, "w2") is None  # claimed once
    assert c.store.request_source_check(release, 5) is None  # one running
    assert not _record(c, check, "intruder", "x")  # not the holder: refused
    assert _record(c, check, "w1", "a")
    assert not _record(c, check, "w1", "b")  # finished once
    done = c.store.source_check(check)
    assert done is not None and done.status is AttemptStatus.DONE
    assert done.verdict is SourceCheckVerdict.CONSISTENT and done.commit == COMMIT
    assert done.evidence_manifest == {"report.json": "e" * 64}
    assert done.result == {"verdict": "consistent", "commit": COMMIT}
    again = c.store.request_source_check(release, 1)  # a re-check may be asked for
    assert again is not None and again != check


def test_a_claim_given_back_or_gone_stale_is_queued_and_unsent(checks: Checks) -> None:
    c = checks
    release = c.add_release("demo", "1.0")
    check = c.store.request_source_check(release, 5)
    assert check is not None
    c.backdate(check, 60)
    assert c.store.undispatched_source_checks(timedelta(seconds=30)) == [(check, 5)]
    c.store.mark_source_checks_dispatched([check])
    assert c.store.undispatched_source_checks(timedelta(seconds=30)) == []
    assert c.store.start_source_check(check, "w1") is not None
    assert c.store.source_heartbeat(check, "w1")
    assert not c.store.source_heartbeat(check, "w2")
    assert not c.store.give_back_source_check(check, "w2")
    assert c.store.give_back_source_check(check, "w1")
    assert c.store.undispatched_source_checks(timedelta(seconds=-1)) == [(check, 5)]
    assert c.store.start_source_check(check, "w2") is not None
    assert c.store.requeue_stale_source_checks(timedelta(seconds=60)) == []
    c.backdate(check, 600)
    assert c.store.requeue_stale_source_checks(timedelta(seconds=60)) == [check]
    row = c.store.source_check(check)
    assert row is not None and row.status is AttemptStatus.QUEUED and row.worker is None
    assert not _record(c, check, "w2", "late")  # the silent worker's outcome is refused


def test_a_deferred_check_waits_for_the_broker_and_keeps_what_the_worker_found(
    checks: Checks,
) -> None:
    c = checks
    check = c.store.request_source_check(c.add_release("demo", "1.0"), 5)
    assert check is not None
    assert c.store.start_source_check(check, "w1") is not None
    url = "https://forge.example/demo"
    assert not c.store.defer_source_check(check, "w2", count_try=True, repository=url)
    assert c.store.defer_source_check(check, "w1", count_try=True, repository=url)
    row = c.store.source_check(check)
    assert row is not None and row.status is AttemptStatus.QUEUED and row.worker is None
    assert (row.tries, row.repository) == (1, url)
    # still marked sent: the scheduler does not send a second message
    assert c.store.undispatched_source_checks(timedelta(seconds=-1)) == []
    assert c.store.start_source_check(check, "w1") is not None
    assert c.store.defer_source_check(check, "w1", count_try=False, repository=None)
    row = c.store.source_check(check)
    assert row is not None and (row.tries, row.repository) == (1, url)  # no try counted


def test_only_releases_with_an_sdist_and_no_check_are_requested(
    pg_store: PostgresStore, pg_checks: PostgresSourceChecks
) -> None:
    add = _pg_add(pg_store)
    new = add("demo", "2.0")
    history = add("demo", "1.0")
    campaign = add("demo", "0.9")
    (solo,) = pg_store.record_release("solo", "1.0", [index_file("solo", "1.0", "solo-1.0.tar.gz")])
    (wheels,) = pg_store.record_release("wheels", "1.0", [wheel("wheels", "1.0")])
    gone_files = [index_file("gone", "1.0", "gone-1.0.tar.gz", yanked=True)]
    (gone,) = pg_store.record_release("gone", "1.0", gone_files)
    with pg_checks.connection() as conn:
        for release, priority, status in (
            (new, 5, "queued"),
            (campaign, 1, "done"),
            (campaign, 9, "queued"),
        ):
            conn.execute(
                "INSERT INTO attempts (file_id, priority, status, verdict, finished_at) "
                "SELECT id, %s, %s, CASE WHEN %s = 'done' THEN 'reproducible' END, "
                "CASE WHEN %s = 'done' THEN now() END FROM files "
                "WHERE release_id = %s AND kind = 'wheel'",
                (priority, status, status, status, release),
            )
    made = pg_checks.request_missing_source_checks(
        new_priority=int(Priority.NEW_RELEASE),
        backfill_priority=int(Priority.BACKFILL),
        after_release=0,
        limit=100,
    )
    by_release = {}
    for check, priority in made:
        row = pg_checks.source_check(check)
        assert row is not None and row.priority == priority
        by_release[row.release_id] = priority
    assert by_release == {new: 5, history: 1, campaign: 9, solo.release_id: 5}
    assert wheels.release_id not in by_release and gone.release_id not in by_release
    assert [p for _, p in made] == sorted((p for _, p in made), reverse=True)
    # once per release, even when the check is done
    again = pg_checks.request_missing_source_checks(
        new_priority=5, backfill_priority=1, after_release=0, limit=100
    )
    assert again == []
    assert pg_checks.max_release_id() == max(by_release.keys() | {gone.release_id})
    # only newer releases are looked at when asked
    newer = add("demo", "3.0")
    fresh = pg_checks.request_missing_source_checks(
        new_priority=5, backfill_priority=1, after_release=newer, limit=100
    )
    assert fresh == []
    fresh = pg_checks.request_missing_source_checks(
        new_priority=5, backfill_priority=1, after_release=newer - 1, limit=100
    )
    assert len(fresh) == 1


def test_only_rebuilt_or_newest_releases_are_requested_when_limited(
    pg_store: PostgresStore, pg_checks: PostgresSourceChecks
) -> None:
    add = _pg_add(pg_store)
    big = [add("big", f"1.{n}") for n in range(6)]  # recorded oldest first, like a poll
    solo = [
        pg_store.record_release(
            "solo", f"0.{n}", [index_file("solo", f"0.{n}", f"solo-0.{n}.tar.gz")]
        )[0].release_id
        for n in range(4)
    ]
    with pg_checks.connection() as conn:
        conn.execute(
            "INSERT INTO attempts (file_id, priority) SELECT id, 1 FROM files "
            "WHERE release_id = ANY(%s) AND kind = 'wheel'",
            ([big[0], big[5]],),
        )
    made = pg_checks.request_missing_source_checks(
        new_priority=5, backfill_priority=1, after_release=0, limit=100, newest_per_project=2
    )
    released = set()
    for check, _ in made:
        row = pg_checks.source_check(check)
        assert row is not None
        released.add(row.release_id)
    # big: the two newest, and the oldest (it has a rebuild); solo: its two newest.
    assert released == {big[0], big[4], big[5], solo[2], solo[3]}
    rest = pg_checks.request_missing_source_checks(
        new_priority=5, backfill_priority=1, after_release=0, limit=100
    )
    assert len(rest) == 5  # None: the whole history


def test_the_outcome_and_its_log_entries_commit_together(
    pg_store: PostgresStore, pg_checks: PostgresSourceChecks
) -> None:
    release = _pg_add(pg_store)("demo", "1.0")
    check = pg_checks.request_source_check(release, 5)
    assert check is not None and pg_checks.start_source_check(check, "w1") is not None
    statements = [
        SignedStatement("source-check", '{"payload":"one"}'),
        SignedStatement("provenance", '{"payload":"two"}'),
    ]
    with pg_checks.connection() as conn:
        before = TransparencyLog(conn, ORIGIN).size()
    recorded = pg_checks.record_source_outcome(
        check,
        _outcome(SourceCheckVerdict.INCONSISTENT),
        worker="w1",
        evidence_manifest=None,
        statements=statements,
        log_origin=ORIGIN,
    )
    assert recorded
    assert pg_checks.source_bundle_lines(release) == ['{"payload":"one"}', '{"payload":"two"}']
    with pg_checks.connection() as conn:
        assert TransparencyLog(conn, ORIGIN).size() == before + 2
        kinds = conn.execute(
            "SELECT kind FROM source_attestations WHERE check_id = %s ORDER BY position",
            (check,),
        ).fetchall()
    assert kinds == [("source-check",), ("provenance",)]
    (latest,) = pg_checks.latest_source_checks(project="Demo")
    assert (latest.check_id, latest.verdict, latest.commit) == (
        check,
        SourceCheckVerdict.INCONSISTENT,
        COMMIT,
    )
    counts = pg_checks.source_verdict_counts()
    assert counts[SourceCheckVerdict.INCONSISTENT] == 1 and sum(counts.values()) == 1
    assert pg_checks.source_queue_depth() == (0, 0)


def test_a_refused_outcome_logs_nothing(
    pg_store: PostgresStore, pg_checks: PostgresSourceChecks
) -> None:
    release = _pg_add(pg_store)("demo", "1.0")
    check = pg_checks.request_source_check(release, 5)
    assert check is not None and pg_checks.start_source_check(check, "w1") is not None
    with pg_checks.connection() as conn:
        before = TransparencyLog(conn, ORIGIN).size()
    refused = pg_checks.record_source_outcome(
        check,
        _outcome(),
        worker="w2",
        evidence_manifest=None,
        statements=[SignedStatement("source-check", '{"payload":"refused"}')],
        log_origin=ORIGIN,
    )
    assert not refused
    with pg_checks.connection() as conn:
        assert TransparencyLog(conn, ORIGIN).size() == before
    assert pg_checks.source_bundle_lines(release) == []


def test_of_many_concurrent_claims_exactly_one_wins(
    pg_store: PostgresStore, pg_checks: PostgresSourceChecks
) -> None:
    release = _pg_add(pg_store)("demo", "1.0")
    check = pg_checks.request_source_check(release, 5)
    assert check is not None
    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(lambda i: pg_checks.start_source_check(check, f"w{i}"), range(8)))
    assert sum(c is not None for c in claims) == 1


def test_the_schema_refuses_nonsense(
    pg_store: PostgresStore, pg_checks: PostgresSourceChecks
) -> None:
    release = _pg_add(pg_store)("demo", "1.0")
    check = pg_checks.request_source_check(release, 5)
    assert check is not None
    with pg_checks.connection() as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE source_checks SET commit = 'not-a-sha' WHERE id = %s", (check,))
        with pytest.raises(psycopg.errors.CheckViolation):  # done without a verdict
            conn.execute(
                "UPDATE source_checks SET status = 'done', finished_at = now() WHERE id = %s",
                (check,),
            )
        with pytest.raises(psycopg.errors.CheckViolation):  # failed without a reason
            conn.execute(
                "UPDATE source_checks SET status = 'done', finished_at = now(), "
                "verdict = 'failed' WHERE id = %s",
                (check,),
            )
        with pytest.raises(psycopg.errors.UniqueViolation):  # two active checks
            conn.execute(
                "INSERT INTO source_checks (release_id, sdist_id) "
                "SELECT release_id, sdist_id FROM source_checks WHERE id = %s",
                (check,),
            )
