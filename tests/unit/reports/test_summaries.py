"""Migration 0400's summaries stay equal to what they summarize.

Attempts go through the real store (request, start, finish) and through plain inserts;
after each step the trigger-kept tables are compared with the same figures computed
from ``attempts`` directly. The backfill of a database that had attempts before the
migration is checked the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from rebuilder.errors import FailureReason
from rebuilder.store.db import open_pool
from rebuilder.store.migrate import bundled_migrations, migrate
from rebuilder.store.repository import PostgresStore
from rebuilder.verdict import FileResult, Verdict
from tests.support.webdata import add_done, add_file

TRUTH = {
    "file_verdicts": """
        SELECT file_id, id, verdict, previous_verdict FROM (
            SELECT file_id, id, verdict,
                lag(verdict) OVER (PARTITION BY file_id ORDER BY id) AS previous_verdict,
                row_number() OVER (PARTITION BY file_id ORDER BY id DESC) AS nth
            FROM attempts WHERE status = 'done') x
        WHERE nth = 1 ORDER BY file_id""",
    "project_verdicts": """
        SELECT r.project, a.verdict, count(*) FROM (
            SELECT DISTINCT ON (file_id) file_id, verdict FROM attempts
            WHERE status = 'done' ORDER BY file_id, id DESC) a
        JOIN files f ON f.id = a.file_id JOIN releases r ON r.id = f.release_id
        GROUP BY 1, 2 ORDER BY 1, 2""",
    "verdict_days": """
        SELECT (finished_at AT TIME ZONE 'UTC')::date, verdict, count(*) FROM attempts
        WHERE status = 'done' GROUP BY 1, 2 ORDER BY 1, 2""",
    "attempt_projects": """
        SELECT a.id, r.project FROM attempts a JOIN files f ON f.id = a.file_id
        JOIN releases r ON r.id = f.release_id ORDER BY 1""",
}
KEPT = {
    "file_verdicts": "SELECT file_id, attempt_id, verdict, previous_verdict FROM file_verdicts "
    "ORDER BY file_id",
    "project_verdicts": "SELECT project, verdict, n FROM project_verdicts WHERE n > 0 "
    "ORDER BY 1, 2",
    "verdict_days": "SELECT day, verdict, n FROM verdict_days ORDER BY 1, 2",
    "attempt_projects": "SELECT attempt_id, project FROM attempt_projects ORDER BY 1",
}


def _check(url: str, *, previous: bool = True) -> None:
    with psycopg.connect(url) as conn:
        for table, truth in TRUTH.items():
            kept = conn.execute(KEPT[table]).fetchall()
            wanted = conn.execute(truth).fetchall()
            if not previous and table == "file_verdicts":
                kept, wanted = [r[:3] for r in kept], [r[:3] for r in wanted]
            assert kept == wanted, table


@pytest.fixture
def schema(database_url: str) -> Iterator[str]:
    name = f"sum_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(database_url, options=f"-csearch_path={name}")
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def _result(verdict: Verdict, filename: str) -> FileResult:
    return FileResult(
        project="p",
        version="1",
        filename=filename,
        verdict=verdict,
        upstream_sha256=None,
        reason_class=FailureReason.BUILD if verdict is Verdict.FAILED else None,
        reason="boom" if verdict is Verdict.FAILED else None,
    )


def test_triggers_follow_the_store_and_plain_inserts(schema: str) -> None:
    migrate(schema)
    pool = open_pool(schema, min_size=1, max_size=2, name="summaries")
    store = PostgresStore(pool)
    try:
        with psycopg.connect(schema, autocommit=True) as conn:
            files = [add_file(conn, f"proj-{i % 3}", f"1.{i}", f"f{i}.whl") for i in range(9)]
        _check(schema)
        for round_, verdict in enumerate((Verdict.REPRODUCIBLE, Verdict.MISMATCH, Verdict.FAILED)):
            for n, file_id in enumerate(files):
                if (n + round_) % 2:
                    continue
                attempt_id = store.request_attempt(file_id, 5)
                assert attempt_id is not None
                assert store.start_attempt(attempt_id, "w") is not None
                assert store.finish_attempt(
                    attempt_id, _result(verdict, f"f{n}.whl"), None, None, worker="w"
                )
                _check(schema)
        with psycopg.connect(schema, autocommit=True) as conn:
            add_done(conn, files[0], "equivalent", days_ago=3)
            add_done(conn, files[1], "unsupported", days_ago=40)
            # An older attempt that finishes after a newer one leaves the latest alone.
            old = store.request_attempt(files[2], 5)
            assert old is not None
            store.start_attempt(old, "w")
            conn.execute(
                "INSERT INTO attempts (file_id, status, finished_at, verdict) "
                "VALUES (%s, 'done', now(), 'reproducible')",
                (files[2],),
            )
            store.finish_attempt(old, _result(Verdict.MISMATCH, "f2.whl"), None, None, worker="w")
            # "previous" is what the file showed before: the late attempt never showed.
            row = conn.execute(
                "SELECT verdict, previous_verdict FROM file_verdicts WHERE file_id = %s",
                (files[2],),
            ).fetchone()
            assert row == ("reproducible", "failed")
        _check(schema, previous=False)
    finally:
        pool.close()


def test_the_migration_fills_summaries_of_earlier_attempts(schema: str) -> None:
    earlier = [m for m in bundled_migrations() if m.name < "0400"]
    migrate(schema, migrations=earlier)
    with psycopg.connect(schema, autocommit=True) as conn:
        for i in range(6):
            file_id = add_file(conn, f"old-{i % 2}", f"0.{i}", f"old{i}.whl")
            add_done(conn, file_id, "mismatch", days_ago=i + 2)
            add_done(
                conn,
                file_id,
                "reproducible" if i % 3 else "failed",
                days_ago=i,
                reason_class=None if i % 3 else "build",
            )
        conn.execute("INSERT INTO attempts (file_id, priority) SELECT id, 1 FROM files LIMIT 2")
    migrate(schema)
    _check(schema)
