"""The operator's fleet commands against the real PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from cli.main import main
from tests.support.postgres import fresh_database


def test_migrate_watch_and_status(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("REBUILDER_DATABASE_URL", database_url)
    assert main(["db", "migrate"]) == 0
    assert main(["db", "migrate"]) == 0  # idempotent
    with psycopg.connect(database_url) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert "0001_fleet.sql" in names

    prefix = f"cli-{uuid.uuid4().hex[:8]}"
    capsys.readouterr()
    assert main(["watch", "add", f"{prefix}-Alpha", f"{prefix}_beta"]) == 0
    assert main(["watch", "list", "--prefix", prefix]) == 0
    listed = capsys.readouterr().out.split()
    assert f"{prefix}-alpha" in listed and f"{prefix}-beta" in listed
    assert main(["watch", "remove", f"{prefix}-alpha"]) == 0
    capsys.readouterr()
    assert main(["watch", "list", "--prefix", prefix]) == 0
    assert capsys.readouterr().out.split() == [f"{prefix}-beta"]

    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "queued:" in out and "verdicts: reproducible" in out


def test_unreachable_database_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("REBUILDER_DATABASE_URL", "postgresql://127.0.0.1:9/none?connect_timeout=2")
    assert main(["status"]) == 2
    assert "error" in capsys.readouterr().err


def test_status_names_the_source_check_a_worker_is_running(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    with fresh_database() as url:
        monkeypatch.setenv("REBUILDER_DATABASE_URL", url)
        assert main(["db", "migrate"]) == 0
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO projects (name) VALUES ('demo')")
            conn.execute("INSERT INTO releases (project, version) VALUES ('demo', '1.0')")
            conn.execute(
                "INSERT INTO files (release_id, filename, kind, url, sha256, size) "
                "SELECT id, 'demo-1.0.tar.gz', 'sdist', 'http://127.0.0.1:9/d', %s, 1 "
                "FROM releases",
                ("a" * 64,),
            )
            check = conn.execute(
                "INSERT INTO source_checks (release_id, sdist_id, status, worker, started_at, "
                "heartbeat_at, tries) SELECT release_id, id, 'running', 'w-1', now(), now(), 1 "
                "FROM files RETURNING id"
            ).fetchone()
            assert check is not None
            conn.execute(
                "INSERT INTO workers (name, host, pid, version) VALUES "
                "('w-1', 'host', 1, 'test'), ('w-2', 'host', 2, 'test')"
            )
        capsys.readouterr()
        assert main(["status"]) == 0
        out = capsys.readouterr().out
    assert f"w-1 on source check {check[0]}" in out
    assert "w-2 idle" in out
