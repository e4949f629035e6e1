"""The schema itself refuses duplicates and impossible states, whatever the code does."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from psycopg import errors

from rebuilder.store import StoreError, projects
from rebuilder.store import poll_cursors as cursors
from rebuilder.store.db import Pool
from rebuilder.store.repository import PostgresStore

from .factories import sha, wheel


@pytest.fixture
def conn(pg_store: PostgresStore, fleet_pool: Pool) -> Any:
    with fleet_pool.connection() as c:
        yield c


def _file_id(conn: Any) -> int:
    conn.execute("INSERT INTO projects (name) VALUES ('demo')")
    conn.execute("INSERT INTO releases (project, version) VALUES ('demo', '1.0')")
    row = conn.execute(
        """
        INSERT INTO files (release_id, filename, kind, url, sha256)
        SELECT id, 'demo-1.0-py3-none-any.whl', 'wheel', 'http://127.0.0.1:9/x', %s
        FROM releases RETURNING id
        """,
        (sha("x"),),
    ).fetchone()
    return int(row[0])


def test_one_release_row_per_version(conn: Any) -> None:
    _file_id(conn)
    with pytest.raises(errors.UniqueViolation):
        conn.execute("INSERT INTO releases (project, version) VALUES ('demo', '1.0')")


def test_one_file_row_per_filename_even_in_another_release(conn: Any) -> None:
    _file_id(conn)
    conn.execute("INSERT INTO releases (project, version) VALUES ('demo', '2.0')")
    with pytest.raises(errors.UniqueViolation):
        conn.execute(
            """
            INSERT INTO files (release_id, filename, kind, url, sha256)
            SELECT id, 'demo-1.0-py3-none-any.whl', 'wheel', 'http://127.0.0.1:9/y', %s
            FROM releases WHERE version = '2.0'
            """,
            (sha("y"),),
        )


@pytest.mark.parametrize(
    ("first", "second"), [("queued", "queued"), ("running", "queued"), ("queued", "running")]
)
def test_at_most_one_active_attempt_per_file(conn: Any, first: str, second: str) -> None:
    file_id = _file_id(conn)
    insert = """
        INSERT INTO attempts (file_id, status, worker, started_at)
        VALUES (%s, %s, 'w', now())
    """
    conn.execute(insert, (file_id, first))
    with pytest.raises(errors.UniqueViolation):
        conn.execute(insert, (file_id, second))


def test_finished_attempts_do_not_block_a_new_one(conn: Any) -> None:
    file_id = _file_id(conn)
    done = """
        INSERT INTO attempts (file_id, status, verdict, finished_at)
        VALUES (%s, 'done', 'mismatch', now())
    """
    conn.execute(done, (file_id,))
    conn.execute(done, (file_id,))
    conn.execute("INSERT INTO attempts (file_id) VALUES (%s)", (file_id,))


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO projects (name) VALUES ('Not_Normalized')",
        "INSERT INTO attempts (file_id, status) VALUES ({file}, 'running')",  # no worker
        "INSERT INTO attempts (file_id, status) VALUES ({file}, 'done')",  # no verdict
        "INSERT INTO attempts (file_id, verdict) VALUES ({file}, 'great')",
        """INSERT INTO attempts (file_id, status, verdict, finished_at)
           VALUES ({file}, 'done', 'failed', now())""",  # failed without a reason class
        "INSERT INTO attempts (file_id, rebuilt_sha256) VALUES ({file}, 'ABC')",
    ],
)
def test_impossible_states_are_refused(conn: Any, statement: str) -> None:
    file_id = _file_id(conn)
    with pytest.raises(errors.CheckViolation):
        conn.execute(statement.format(file=file_id))


@pytest.mark.parametrize(
    ("field", "value", "constraint"),
    [
        ("sha256", "xyz", "files_sha256_check"),
        ("filename", "", "files_filename_check"),
        ("filename", "x" * 1025 + ".whl", "files_filename_check"),
    ],
)
def test_files_refuse_malformed_hashes_and_names(
    pg_store: PostgresStore, field: str, value: str, constraint: str
) -> None:
    bad = replace(wheel("demo", "1.0"), **{field: value})
    with pytest.raises(StoreError, match=constraint):
        pg_store.record_release("demo", "1.0", [bad])
    assert pg_store.release_versions("demo") == set()  # the whole release rolled back


def test_cursor_moves_only_with_the_caller_transaction(
    pg_store: PostgresStore, fleet_pool: Pool
) -> None:
    class CrashError(Exception):
        pass

    with fleet_pool.connection() as conn, pytest.raises(CrashError), conn.transaction():
        projects.record_release(conn, "demo", "1.0", [wheel("demo", "1.0")])
        cursors.set_cursor(conn, "changelog", "42")
        raise CrashError

    assert pg_store.get_cursor("changelog") is None
    assert pg_store.release_versions("demo") == set()

    with fleet_pool.connection() as conn, conn.transaction():
        projects.record_release(conn, "demo", "1.0", [wheel("demo", "1.0")])
        cursors.set_cursor(conn, "changelog", "42")
    assert pg_store.get_cursor("changelog") == "42"
    assert pg_store.release_versions("demo") == {"1.0"}


def test_database_errors_become_store_errors(pg_store: PostgresStore) -> None:
    with pytest.raises(StoreError, match="PostgreSQL failed while queueing file 999999"):
        pg_store.request_attempt(999_999, 1)  # no such file
