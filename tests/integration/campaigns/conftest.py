"""Campaign tests on the real PostgreSQL, against a fixture index on 127.0.0.1.

One migrated schema per module; every test starts from empty tables. The fixture
index holds genuine files and one whose bytes changed after a lock was written (the
"tampered" upload a lock's hash catches). End-to-end tests with real workers (a worker
killed mid-campaign, a scheduler restart, overtaking a backlog) add a module here using
the same fixtures plus the broker.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from rebuilder.campaigns.store import PostgresCampaignStore
from rebuilder.index.simple import SimpleIndex
from rebuilder.store.db import Pool, open_pool
from rebuilder.store.migrate import migrate
from rebuilder.store.repository import PostgresStore
from tests.support.index_server import FixtureIndex
from tests.support.postgres import database_url

__all__ = ["database_url"]

TABLES = (
    "campaign_files",
    "attestations",
    "attempts",
    "campaigns",
    "files",
    "releases",
    "projects",
    "poll_cursors",
)


def day(n: int, hour: int = 12) -> datetime:
    return datetime(2024, 5, n, hour, tzinfo=UTC)


@pytest.fixture(scope="module")
def campaign_url(database_url: str) -> Iterator[str]:
    name = f"c_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    url = make_conninfo(database_url, options=f"-csearch_path={name}")
    migrate(url)
    try:
        yield url
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def campaign_pool(campaign_url: str) -> Iterator[Pool]:
    pool = open_pool(campaign_url, min_size=1, max_size=6)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def pool(campaign_pool: Pool) -> Pool:
    with campaign_pool.connection() as conn:
        conn.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                sql.SQL(", ").join(sql.Identifier(t) for t in TABLES)
            )
        )
    return campaign_pool


@pytest.fixture
def cstore(pool: Pool) -> PostgresCampaignStore:
    return PostgresCampaignStore(pool)


@pytest.fixture
def fleet(pool: Pool) -> PostgresStore:
    return PostgresStore(pool)


@pytest.fixture(scope="module")
def served() -> Iterator[FixtureIndex]:
    """demo 1.0 (sdist + pure wheel), demo 2.0, other 1.0 (+ a platform wheel)."""
    with FixtureIndex() as index:
        index.add_file("demo", "demo-1.0.tar.gz", b"demo sdist 1.0", day(1))
        index.add_file("demo", "demo-1.0-py3-none-any.whl", b"demo wheel 1.0", day(1))
        index.add_file("demo", "demo-2.0.tar.gz", b"demo sdist 2.0", day(5))
        index.add_file("demo", "demo-2.0-py3-none-any.whl", b"demo wheel 2.0", day(5))
        index.add_file("other", "other-1.0.tar.gz", b"other sdist", day(3))
        index.add_file("other", "other-1.0-py3-none-any.whl", b"other wheel", day(3))
        index.add_file(
            "other", "other-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", b"other native", day(3)
        )
        yield index


@pytest.fixture
def index(served: FixtureIndex, tmp_path: Path) -> SimpleIndex:
    return SimpleIndex(served.url, tmp_path / "cache")
