"""Atom feeds of new mismatches and failures, and SVG badges per project."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from fastapi import APIRouter, HTTPException, Request, Response

from rebuilder.store import web_queries as queries
from reports import charts
from reports.deps import PoolDep
from reports.pages import _canonical, rank_by_risk

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

ATOM = "application/atom+xml; charset=utf-8"
FEED_LENGTH = 50


@router.get("/feeds/problems.atom")
def global_feed(request: Request, pool: PoolDep) -> Response:
    with pool.connection() as conn:
        entries = queries.problems(conn, limit=FEED_LENGTH)
    return _atom(request, "Rebuild mismatches and failures", "/feeds/problems.atom", entries)


@router.get("/projects/{name}/feed.atom")
def project_feed(request: Request, name: str, pool: PoolDep) -> Response:
    canonical = _canonical(name)
    with pool.connection() as conn:
        if queries.project(conn, canonical) is None:
            raise HTTPException(404, "No such project.")
        entries = queries.problems(conn, project=canonical, limit=FEED_LENGTH)
    return _atom(
        request,
        f"Rebuild mismatches and failures of {canonical}",
        f"/projects/{canonical}/feed.atom",
        entries,
    )


@router.get("/projects/{name}/badge.svg")
def badge(name: str, pool: PoolDep) -> Response:
    canonical = _canonical(name)
    with pool.connection() as conn:
        if queries.project(conn, canonical) is None:
            raise HTTPException(404, "No such project.")
        counts = queries.verdict_counts(conn, project=canonical)
    return Response(
        charts.badge("rebuild", charts.badge_status(counts)),
        media_type="image/svg+xml",
        headers={
            "Cache-Control": "public, max-age=300",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            # READMEs on other sites embed badges as images.
            "Cross-Origin-Resource-Policy": "cross-origin",
        },
    )


def _atom(request: Request, title: str, path: str, entries: list[queries.FileVerdict]) -> Response:
    base = str(request.base_url).rstrip("/")
    updated = max(
        (e.finished_at for e in entries if e.finished_at is not None),
        default=datetime(1970, 1, 1, tzinfo=UTC),
    )
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">',
        f"<title>{escape(title)}</title>",
        f"<id>{escape(base + path)}</id>",
        f'<link rel="self" href={quoteattr(base + path)}/>',
        f"<link href={quoteattr(base + '/')}/>",
        f"<updated>{updated.isoformat()}</updated>",
        "<author><name>pypi-rebuilder</name></author>",
    ]
    # Mismatches to review first, then packaging-only ones, then failures.
    for e in rank_by_risk(entries):
        link = f"{base}/files/{e.file_id}"
        risk = e.risk or ("review" if e.verdict == "mismatch" else None)
        label = f"{e.verdict} (risk {risk})" if e.verdict == "mismatch" else str(e.verdict)
        summary = f"{e.filename}: {label}"
        if e.previous_verdict and e.previous_verdict != e.verdict:
            summary += f" (was {e.previous_verdict})"
        parts.append(
            "<entry>"
            f"<title>{escape(f'{e.project} {e.version}: {label}')}</title>"
            f"<id>{escape(f'{link}#attempt-{e.attempt_id}')}</id>"
            f"<link href={quoteattr(link)}/>"
            f"<updated>{(e.finished_at or updated).isoformat()}</updated>"
            f"<summary>{escape(summary)}</summary>"
            + (f"<category term={quoteattr('risk:' + risk)}/>" if risk else "")
            + "</entry>"
        )
    parts.append("</feed>")
    return Response("\n".join(parts), media_type=ATOM)
