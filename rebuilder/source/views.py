"""Reading the fleet's source checks (``source_checks``) for the pages and the API.

A source check judges a release's sdist against the git tag naming its version; the
fleet stores its verdict, the ``SourceResult.to_json()`` document and an evidence
manifest (see ``rebuilder.source.checks``). Everything here is read-only and bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import class_row

from rebuilder.source.checks import bundle_lines
from rebuilder.store.db import Connection

logger = logging.getLogger(__name__)

#: The diff of an inconsistent release, in its evidence manifest.
DIFF_PATCH = "diff.patch"
#: The file name of a release's signed source bundle.
SOURCE_BUNDLE_NAME = "source.intoto.jsonl"


@dataclass(frozen=True)
class SourceCheck:
    """A release's latest finished source check."""

    release_id: int
    project: str
    version: str
    check_id: int
    verdict: str
    reason: str | None
    repository: str | None
    tag: str | None
    commit: str | None
    finished_at: datetime
    result: dict[str, Any] | None
    evidence_manifest: dict[str, str] | None

    @property
    def repository_url(self) -> str | None:
        """The repository as a link target: only http(s) URLs (anything else is text)."""
        repo = self.repository
        if (
            repo
            and repo.startswith(("https://", "http://"))
            and not any(c.isspace() or ord(c) < 0x20 for c in repo)
        ):
            return repo
        return None

    def items(self, key: str) -> list[dict[str, Any]]:
        """The list ``key`` of the result document, only its object members."""
        value = (self.result or {}).get(key)
        return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []

    @property
    def repo_only_count(self) -> int:
        value = (self.result or {}).get("repo_only_count")
        return value if isinstance(value, int) else 0


_COLUMNS = """r.id AS release_id, r.project, r.version, c.id AS check_id, c.verdict, c.reason,
    c.repository, c.tag, c.commit, c.finished_at, c.result, c.evidence_manifest"""

_LATEST = """
    CROSS JOIN LATERAL (
        SELECT * FROM source_checks WHERE release_id = r.id AND status = 'done'
        ORDER BY id DESC LIMIT 1
    ) c
"""


def latest_check(conn: Connection, project: str, version: str) -> SourceCheck | None:
    """The latest finished check of one release (``project`` normalized), if any."""
    with conn.cursor(row_factory=class_row(SourceCheck)) as cur:
        return cur.execute(
            f"SELECT {_COLUMNS} FROM releases r {_LATEST} "  # noqa: S608 - our own SQL only
            "WHERE r.project = %s AND r.version = %s",
            (project, version),
        ).fetchone()


def verdicts_of_releases(conn: Connection, release_ids: Sequence[int]) -> dict[int, str]:
    """The latest finished check's verdict of each of these releases that has one."""
    if not release_ids:
        return {}
    rows = conn.execute(
        """
        SELECT r.id, c.verdict FROM unnest(%s::bigint[]) AS r(id)
        CROSS JOIN LATERAL (
            SELECT verdict FROM source_checks WHERE release_id = r.id AND status = 'done'
            ORDER BY id DESC LIMIT 1
        ) c
        """,
        (list(release_ids)[:1000],),
    ).fetchall()
    return {int(r[0]): str(r[1]) for r in rows}


@dataclass(frozen=True)
class SourceBadge:
    """A release's latest finished source check, as the project page shows it."""

    verdict: str
    reason: str | None

    @property
    def short_reason(self) -> str | None:
        """The reason of a ``failed`` or ``no-source`` check, cut for a table cell."""
        if self.verdict not in {"failed", "no-source"} or not self.reason:
            return None
        return self.reason if len(self.reason) <= 160 else self.reason[:157] + "..."


def badges_of_releases(conn: Connection, release_ids: Sequence[int]) -> dict[int, SourceBadge]:
    """The latest finished check (verdict and reason) of each of these releases."""
    if not release_ids:
        return {}
    rows = conn.execute(
        """
        SELECT r.id, c.verdict, c.reason FROM unnest(%s::bigint[]) AS r(id)
        CROSS JOIN LATERAL (
            SELECT verdict, reason FROM source_checks WHERE release_id = r.id AND status = 'done'
            ORDER BY id DESC LIMIT 1
        ) c
        """,
        (list(release_ids)[:1000],),
    ).fetchall()
    return {int(r[0]): SourceBadge(str(r[1]), None if r[2] is None else str(r[2])) for r in rows}


@dataclass(frozen=True)
class ActiveCheck:
    """A release's source check waiting or running, and what its worker found so far."""

    check_id: int
    status: str  # queued or running
    tries: int
    repository: str | None  # kept when a try met a repository host that did not answer


def active_check(conn: Connection, release: int) -> ActiveCheck | None:
    """The release's queued or running source check, if any."""
    with conn.cursor(row_factory=class_row(ActiveCheck)) as cur:
        return cur.execute(
            """
            SELECT id AS check_id, status, tries, repository FROM source_checks
            WHERE release_id = %s AND status IN ('queued', 'running')
            ORDER BY id DESC LIMIT 1
            """,
            (release,),
        ).fetchone()


def release_id(conn: Connection, project: str, version: str) -> int | None:
    """The id of a release, if it is recorded."""
    row = conn.execute(
        "SELECT id FROM releases WHERE project = %s AND version = %s", (project, version)
    ).fetchone()
    return None if row is None else int(row[0])


def bundle(conn: Connection, release: int) -> list[str]:
    """The envelope lines of the release's signed source bundle (empty: none yet)."""
    return bundle_lines(conn, release)


def diff_sha256(manifest: Mapping[str, str] | None) -> tuple[str, str] | None:
    """The manifest path and blob of the check's ``diff.patch``, if it has one."""
    hits = [p for p in (manifest or {}) if p.rsplit("/", 1)[-1] == DIFF_PATCH]
    if not hits:
        return None
    path = min(hits, key=lambda p: (p.count("/"), p))
    return path, (manifest or {})[path]
