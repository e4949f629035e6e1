"""Poll cursors: where each poller stopped, so a restart resumes exactly there."""

from __future__ import annotations

from rebuilder.store.db import Connection


def get_cursor(conn: Connection, name: str) -> str | None:
    """The saved value of cursor ``name``, None before the first poll."""
    row = conn.execute("SELECT value FROM poll_cursors WHERE name = %s", (name,)).fetchone()
    return None if row is None else str(row[0])


def set_cursor(conn: Connection, name: str, value: str) -> None:
    """Save cursor ``name``. Call inside the transaction that recorded what it covers."""
    with conn.transaction():
        conn.execute(
            """
            INSERT INTO poll_cursors (name, value) VALUES (%s, %s)
            ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = now()
            """,
            (name, value),
        )
