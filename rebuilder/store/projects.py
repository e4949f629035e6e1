"""Projects, releases and published files in PostgreSQL.

Functions take a connection (autocommit) and run in their own transaction, or in a
savepoint of the caller's when one is open, so a poller can record releases and move
its cursor in one commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from packaging.utils import InvalidName, canonicalize_name
from psycopg.rows import class_row

from rebuilder.errors import UsageError
from rebuilder.index.model import IndexFile
from rebuilder.store import StoreError
from rebuilder.store.db import Connection
from rebuilder.store.records import FileRow, ProjectRow

logger = logging.getLogger(__name__)


def normalize(name: str) -> str:
    """The PEP 503 form of a project name; UsageError when it is not a valid name."""
    try:
        return canonicalize_name(name, validate=True)
    except InvalidName:
        raise UsageError(f"not a valid project name: {name!r}") from None


def watch_add(conn: Connection, names: Iterable[str]) -> list[str]:
    """Watch these projects; the normalized names that were not watched before."""
    wanted = sorted({normalize(n) for n in names})
    with conn.transaction():
        rows = conn.execute(
            """
            INSERT INTO projects (name, watched)
            SELECT name, true FROM unnest(%s::text[]) AS name
            ON CONFLICT (name) DO UPDATE SET watched = true WHERE NOT projects.watched
            RETURNING name
            """,
            (wanted,),
        ).fetchall()
    return sorted(str(row[0]) for row in rows)


def watch_remove(conn: Connection, names: Iterable[str]) -> list[str]:
    """Stop watching these projects (their history stays); the names that were watched."""
    wanted = sorted({normalize(n) for n in names})
    with conn.transaction():
        rows = conn.execute(
            "UPDATE projects SET watched = false WHERE name = ANY(%s) AND watched RETURNING name",
            (wanted,),
        ).fetchall()
    return sorted(str(row[0]) for row in rows)


def watched(conn: Connection, *, prefix: str = "") -> list[ProjectRow]:
    """The watched projects, by name; only those starting with ``prefix`` when given."""
    with conn.cursor(row_factory=class_row(ProjectRow)) as cur:
        return cur.execute(
            """
            SELECT name, watched, added_at FROM projects
            WHERE watched AND name LIKE %s ORDER BY name
            """,
            (_like_prefix(prefix),),
        ).fetchall()


def record_release(
    conn: Connection, project: str, version: str, files: Sequence[IndexFile]
) -> list[FileRow]:
    """Record a release and its files; the files that were new (already known ones skip).

    Idempotent: recording the same release again returns ``[]``. A file already known
    under the same name with another sha256 is kept as first recorded, and logged.
    """
    name = normalize(project)
    for file in files:
        if normalize(file.project) != name or file.version != version:
            msg = f"{file.filename} is not a file of {name} {version}"
            raise ValueError(msg)
    with conn.transaction():
        conn.execute("INSERT INTO projects (name) VALUES (%s) ON CONFLICT DO NOTHING", (name,))
        conn.execute(
            "INSERT INTO releases (project, version) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (name, version),
        )
        found = conn.execute(
            "SELECT id FROM releases WHERE project = %s AND version = %s", (name, version)
        ).fetchone()
        if found is None:
            msg = f"release {name} {version} vanished while it was recorded"
            raise StoreError(msg)
        release_id = int(found[0])
        if not files:
            return []
        with conn.cursor(row_factory=class_row(FileRow)) as cur:
            new = cur.execute(
                """
                INSERT INTO files AS f
                    (release_id, filename, kind, url, sha256, size, upload_time, yanked)
                SELECT %(release)s, * FROM unnest(
                    %(filename)s::text[], %(kind)s::text[], %(url)s::text[],
                    %(sha256)s::text[], %(size)s::bigint[], %(upload_time)s::timestamptz[],
                    %(yanked)s::boolean[])
                ON CONFLICT (filename) DO NOTHING
                RETURNING f.id, f.release_id, %(project)s::text AS project,
                    %(version)s::text AS version, f.filename, f.kind, f.url, f.sha256,
                    f.size, f.upload_time, f.yanked
                """,
                {
                    "release": release_id,
                    "project": name,
                    "version": version,
                    "filename": [f.filename for f in files],
                    "kind": [f.kind.value for f in files],
                    "url": [f.url for f in files],
                    "sha256": [f.sha256.lower() for f in files],
                    "size": [f.size for f in files],
                    "upload_time": [f.upload_time for f in files],
                    "yanked": [f.yanked for f in files],
                },
            ).fetchall()
        if len(new) < len(files):
            _warn_conflicts(conn, files)
    return sorted(new, key=lambda row: row.id)


def release_versions(conn: Connection, project: str) -> set[str]:
    """The versions of ``project`` already recorded."""
    rows = conn.execute(
        "SELECT version FROM releases WHERE project = %s", (normalize(project),)
    ).fetchall()
    return {str(row[0]) for row in rows}


def file_by_id(conn: Connection, file_id: int) -> FileRow | None:
    """The file recorded under ``file_id``, if any."""
    with conn.cursor(row_factory=class_row(FileRow)) as cur:
        return cur.execute(
            """
            SELECT f.id, f.release_id, r.project, r.version, f.filename, f.kind, f.url,
                f.sha256, f.size, f.upload_time, f.yanked
            FROM files f JOIN releases r ON r.id = f.release_id
            WHERE f.id = %s
            """,
            (file_id,),
        ).fetchone()


def set_generator(conn: Connection, file_id: int, generator: str) -> None:
    """Record the WHEEL Generator line read from the published wheel (first one wins)."""
    conn.execute(
        "UPDATE files SET generator = %s WHERE id = %s AND generator IS NULL",
        (generator[:200], file_id),
    )


def _warn_conflicts(conn: Connection, files: Sequence[IndexFile]) -> None:
    known = dict(
        conn.execute(
            "SELECT filename, sha256 FROM files WHERE filename = ANY(%s)",
            ([f.filename for f in files],),
        ).fetchall()
    )
    for file in files:
        recorded = known.get(file.filename)
        if recorded is not None and recorded != file.sha256.lower():
            logger.warning(
                "index now lists %s with sha256 %s; recorded %s is kept",
                file.filename,
                file.sha256,
                recorded,
            )


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
