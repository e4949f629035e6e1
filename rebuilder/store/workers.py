"""The worker registry: who is alive, since when, and on what (the ``workers`` table).

Workers announce themselves when they start, beat while they live (with the attempt they
are running), and say goodbye when they stop cleanly. A worker that stops beating is
shown as silent; its attempt is taken back by the scheduler's stale-claim recovery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import class_row

from rebuilder.store.db import Connection


@dataclass(frozen=True)
class WorkerRow:
    """One worker as last heard of."""

    name: str
    host: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    current_attempt: int | None
    stopped_at: datetime | None


def announce(conn: Connection, name: str, host: str, pid: int, version: str) -> None:
    """Register (or re-register after a restart) the worker ``name``."""
    conn.execute(
        """
        INSERT INTO workers (name, host, pid, version) VALUES (%s, %s, %s, %s)
        ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid,
            version = excluded.version, started_at = now(), heartbeat_at = now(),
            current_attempt = NULL, stopped_at = NULL
        """,
        (name, host, pid, version),
    )


def beat(conn: Connection, name: str, current_attempt: int | None) -> None:
    """The worker is alive, running ``current_attempt`` (None: idle)."""
    conn.execute(
        "UPDATE workers SET heartbeat_at = now(), current_attempt = %s WHERE name = %s",
        (current_attempt, name),
    )


def retire(conn: Connection, name: str) -> None:
    """The worker stopped cleanly."""
    conn.execute(
        "UPDATE workers SET stopped_at = now(), current_attempt = NULL WHERE name = %s",
        (name,),
    )


def workers(conn: Connection, *, include_stopped: bool = False) -> list[WorkerRow]:
    """Known workers, most recently heard of first."""
    with conn.cursor(row_factory=class_row(WorkerRow)) as cur:
        return cur.execute(
            """
            SELECT name, host, pid, version, started_at, heartbeat_at, current_attempt,
                stopped_at
            FROM workers WHERE %s OR stopped_at IS NULL
            ORDER BY heartbeat_at DESC, name
            """,
            (include_stopped,),
        ).fetchall()
