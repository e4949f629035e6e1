"""Backfills: 100,000 files enqueued in one statement, each once.

How long it takes (with the messages sent to RabbitMQ) is measured by
``python -m benchmarks.fleet --backfill 100000``, not here.
"""

from __future__ import annotations

from rebuilder.store.db import Pool
from rebuilder.store.repository import PostgresStore

BACKFILL = 100_000


def _many_files(pool: Pool, count: int) -> list[int]:
    with pool.connection() as conn, conn.transaction():
        conn.execute("INSERT INTO projects (name) VALUES ('backfill')")
        conn.execute("INSERT INTO releases (project, version) VALUES ('backfill', '1.0')")
        rows = conn.execute(
            """
            INSERT INTO files (release_id, filename, kind, url, sha256)
            SELECT r.id, 'backfill-1.0-' || g || '-py3-none-any.whl', 'wheel',
                   'http://127.0.0.1:9/' || g, encode(sha256(g::text::bytea), 'hex')
            FROM releases r, generate_series(1, %s) AS g
            RETURNING id
            """,
            (count,),
        ).fetchall()
    return [int(r[0]) for r in rows]


def test_enqueue_a_backfill_of_100k_files(pg_store: PostgresStore, fleet_pool: Pool) -> None:
    file_ids = _many_files(fleet_pool, BACKFILL)

    made = pg_store.request_attempts_bulk(file_ids, 1)

    assert len(made) == BACKFILL
    assert len(set(made)) == BACKFILL
    assert pg_store.queue_depth() == BACKFILL
    assert pg_store.request_attempts_bulk(file_ids, 1) == []  # every file is busy now
