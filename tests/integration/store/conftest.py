"""Fixtures of the fleet's storage tests on the real PostgreSQL.

Every test that needs an empty database gets a schema of its own (``schema_url``); the
store tests share one migrated schema whose tables are emptied before each test.
Schemas keep these tests apart from the transparency log's, which share the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from rebuilder.store.db import Pool, open_pool
from rebuilder.store.memory import MemoryStore
from rebuilder.store.migrate import migrate
from rebuilder.store.repository import PostgresStore

FLEET_TABLES = ("attempts", "files", "releases", "projects", "poll_cursors", "workers")


def _new_schema(database_url: str) -> tuple[str, str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    return name, make_conninfo(database_url, options=f"-csearch_path={name}")


def _drop_schema(database_url: str, name: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def schema_url(database_url: str) -> Iterator[str]:
    """A connection string whose ``search_path`` is a new, empty schema."""
    name, url = _new_schema(database_url)
    try:
        yield url
    finally:
        _drop_schema(database_url, name)


@pytest.fixture(scope="session")
def fleet_url(database_url: str) -> Iterator[str]:
    """A schema with every migration applied, for the whole session."""
    name, url = _new_schema(database_url)
    migrate(url)
    try:
        yield url
    finally:
        _drop_schema(database_url, name)


@pytest.fixture(scope="session")
def fleet_pool(fleet_url: str) -> Iterator[Pool]:
    pool = open_pool(fleet_url, min_size=1, max_size=12)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def pg_store(fleet_pool: Pool) -> PostgresStore:
    """A PostgreSQL store on empty tables."""
    with fleet_pool.connection() as conn:
        conn.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                sql.SQL(", ").join(sql.Identifier(t) for t in FLEET_TABLES)
            )
        )
    return PostgresStore(fleet_pool)


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest) -> MemoryStore | PostgresStore:
    """Each store implementation in turn: the contract tests run against both."""
    if request.param == "memory":
        return MemoryStore()
    pg: PostgresStore = request.getfixturevalue("pg_store")
    return pg
