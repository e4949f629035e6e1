"""Rows read back from storage become domain types, and the fake keeps the Protocol."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rebuilder.errors import FailureReason
from rebuilder.index.model import FileKind, IndexFile
from rebuilder.store import StoreError
from rebuilder.store.db import open_pool
from rebuilder.store.memory import MemoryStore
from rebuilder.store.records import AttemptRow, AttemptStatus, FileRow
from rebuilder.verdict import Difference, DifferenceKind, StabilizerUse, Verdict

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def test_attempt_rows_turn_database_values_into_domain_types() -> None:
    row = AttemptRow(
        id=1,
        file_id=2,
        status="done",  # type: ignore[arg-type]
        priority=5,
        campaign_id=None,
        requested_at=NOW,
        verdict="mismatch",  # type: ignore[arg-type]
        reason_class="build",  # type: ignore[arg-type]
        stabilizers=[{"name": "zip-order", "version": 1}],  # type: ignore[arg-type]
        differences=[{"path": "a.py", "kind": "content"}],  # type: ignore[arg-type]
    )
    assert row.status is AttemptStatus.DONE
    assert row.verdict is Verdict.MISMATCH
    assert row.reason_class is FailureReason.BUILD
    assert row.stabilizers == (StabilizerUse("zip-order", 1),)
    assert row.differences == (Difference("a.py", DifferenceKind.CONTENT),)


def test_unknown_values_from_storage_are_refused() -> None:
    with pytest.raises(ValueError, match="'paused'"):
        AttemptRow(1, 2, "paused", 5, None, NOW)  # type: ignore[arg-type]


def test_file_rows_give_back_index_files() -> None:
    row = FileRow(1, 1, "demo", "1.0", "demo-1.0.tar.gz", "sdist", "u", "a" * 64, 3, NOW, True)  # type: ignore[arg-type]
    file = row.to_index_file()
    assert file.kind is FileKind.SDIST
    assert (file.project, file.version, file.yanked, file.upload_time) == ("demo", "1.0", True, NOW)


def test_memory_store_uses_its_clock_for_stale_claims() -> None:
    now = [NOW]
    store = MemoryStore(clock=lambda: now[0])
    file = IndexFile("demo", "1.0", "demo-1.0.tar.gz", "u", "a" * 64, FileKind.SDIST, NOW)
    (row,) = store.record_release("demo", "1.0", [file])
    attempt_id = store.request_attempt(row.id, 1)
    assert attempt_id is not None
    store.start_attempt(attempt_id, "w")

    now[0] = NOW + timedelta(minutes=9)
    assert store.requeue_stale(timedelta(minutes=10)) == []
    now[0] = NOW + timedelta(minutes=11)
    assert store.requeue_stale(timedelta(minutes=10)) == [attempt_id]


def test_an_unreachable_database_is_a_store_error() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(StoreError, match="cannot connect"):
        open_pool("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1", timeout=1.0)
