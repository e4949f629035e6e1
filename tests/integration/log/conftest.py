"""Fixtures of the log CLI tests: a migrated schema of their own on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rebuilder.store.db import Pool, open_pool
from rebuilder.store.migrate import migrate
from rebuilder.store.repository import PostgresStore
from tests.integration.store.conftest import _drop_schema, _new_schema


@pytest.fixture
def fleet_url(database_url: str) -> Iterator[str]:
    """A new schema with every migration applied, for one test."""
    name, url = _new_schema(database_url)
    migrate(url)
    try:
        yield url
    finally:
        _drop_schema(database_url, name)


@pytest.fixture
def pool(fleet_url: str) -> Iterator[Pool]:
    pool = open_pool(fleet_url, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def store(pool: Pool) -> PostgresStore:
    return PostgresStore(pool)
