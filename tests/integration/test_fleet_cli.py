"""The operator's fleet commands against the real PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from cli.main import main


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
