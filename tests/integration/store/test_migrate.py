"""Migrations on the real PostgreSQL: once, concurrently, and never silently changed."""

from __future__ import annotations

import multiprocessing
import uuid
from concurrent.futures import ProcessPoolExecutor

import psycopg
import psycopg.conninfo
import pytest
from psycopg import sql

from rebuilder.store.migrate import (
    Migration,
    MigrationError,
    applied_migrations,
    bundled_migrations,
    migrate,
)


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
    return {r[0] for r in rows}


def test_bundled_migrations_are_found_in_name_order() -> None:
    names = [m.name for m in bundled_migrations()]
    assert names == sorted(names)
    assert names[0] == "0001_fleet.sql"
    assert all(n.endswith(".sql") for n in names)


def test_migrate_applies_every_file_once_and_records_it(schema_url: str) -> None:
    everything = [m.name for m in bundled_migrations()]

    assert migrate(schema_url) == everything
    assert migrate(schema_url) == []

    recorded = applied_migrations(schema_url)
    assert recorded == {m.name: m.sha256 for m in bundled_migrations()}
    assert {"projects", "releases", "files", "attempts", "poll_cursors"} <= _tables(schema_url)


def test_concurrent_migrations_apply_each_file_exactly_once(schema_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=4, mp_context=context) as pool:
        results = list(pool.map(migrate, [schema_url] * 4))

    applied = [name for result in results for name in result]
    assert sorted(applied) == [m.name for m in bundled_migrations()]
    assert sum(1 for r in results if r) == 1  # one process did everything, the rest waited


def test_a_changed_applied_migration_is_refused(schema_url: str) -> None:
    first = Migration("0001_a.sql", "CREATE TABLE a (x integer);")
    later = Migration("0002_b.sql", "CREATE TABLE b (y integer);")
    assert migrate(schema_url, migrations=[first]) == ["0001_a.sql"]

    edited = Migration("0001_a.sql", "CREATE TABLE a (x bigint);")
    with pytest.raises(MigrationError, match=r"0001_a\.sql was changed"):
        migrate(schema_url, migrations=[edited, later])

    assert "b" not in _tables(schema_url)
    assert applied_migrations(schema_url) == {"0001_a.sql": first.sha256}


def test_a_failing_migration_is_rolled_back_and_not_recorded(schema_url: str) -> None:
    good = Migration("0001_a.sql", "CREATE TABLE a (x integer);")
    bad = Migration("0002_b.sql", "CREATE TABLE b (y integer); SELECT no_such_function();")
    with pytest.raises(MigrationError, match=r"0002_b\.sql failed"):
        migrate(schema_url, migrations=[good, bad])

    assert applied_migrations(schema_url) == {"0001_a.sql": good.sha256}
    tables = _tables(schema_url)
    assert "a" in tables
    assert "b" not in tables  # the whole file, not just its failing statement


def test_migrations_are_applied_in_name_order(schema_url: str) -> None:
    # 0002 depends on 0001; passing them reversed must still work.
    one = Migration("0001_a.sql", "CREATE TABLE a (x integer PRIMARY KEY);")
    two = Migration("0002_b.sql", "CREATE TABLE b (x integer REFERENCES a (x));")
    assert migrate(schema_url, migrations=[two, one]) == ["0001_a.sql", "0002_b.sql"]


def test_migrate_creates_a_missing_database(database_url: str) -> None:
    name = f"rebuilder_made_{uuid.uuid4().hex[:10]}"
    url = psycopg.conninfo.make_conninfo(database_url, dbname=name)
    try:
        applied = migrate(url)
        assert "0001_fleet.sql" in applied
        assert migrate(url) == []  # made once, migrated once
    finally:
        admin = psycopg.conninfo.make_conninfo(database_url, dbname="postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
