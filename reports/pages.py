"""The server-rendered pages: home, search, project, file, and the API index.

Every value from a package (names, versions, file names, logs, differences) reaches the
HTML through autoescaped Jinja2 templates only. Pages work without JavaScript; the one
script (``static/search.js``) only fills the search box's suggestions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rebuilder.compare.textdiff import DIFF_NAME, MAX_TOTAL_BYTES
from rebuilder.errors import UsageError
from rebuilder.source import views as source_checks
from rebuilder.store import web_queries as queries
from rebuilder.store.blobs import BlobStore
from rebuilder.store.projects import normalize
from rebuilder.verdict import Diagnosis, Verdict
from reports import charts, evidence
from reports.deps import PoolDep, SettingsDep, get_stores, templates
from reports.keys import KEY_FILE_NAME, operator_keys
from reports.security import REPORT_CSP
from reports.verify_snippet import VerifyTarget, verify_commands

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

LOG_TAIL_BYTES = 128 * 1024
HEALTHY_SECONDS = 120.0
MAX_DIFFERENCES_SHOWN = 500
TEXT_DIFF_BYTES = MAX_TOTAL_BYTES + 4096  # the judge caps the file itself


HOME_LIST_LENGTH = 50
_VERDICT_FILTERS = tuple(v.value for v in Verdict)


@router.get("/", response_class=HTMLResponse)
def home(
    request: Request,
    pool: PoolDep,
    verdict: Annotated[str | None, Query(max_length=20)] = None,
    risk: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    verdict = verdict if verdict in _VERDICT_FILTERS else None
    risk = risk if risk in queries.RISKS else None
    with pool.connection() as conn:
        counts = queries.verdict_counts(conn)
        days = queries.daily_rates(conn, days=90)
        latest = queries.recent_by_finish(conn, verdict=verdict, risk=risk, limit=HOME_LIST_LENGTH)
        mismatches = queries.new_mismatches(conn, limit=10)
        queue = queries.queue_status(conn)
        workers = queries.workers(conn, limit=50)
        now = queries.database_now(conn)
    healthy = {w.name: (now - w.heartbeat_at).total_seconds() <= HEALTHY_SECONDS for w in workers}
    return templates.TemplateResponse(
        request,
        "home.html",
        {
            "counts": counts,
            "total": sum(counts.values()),
            "chart": charts.rate_chart(
                charts.day_bars(days), title="Share of rebuilds verified, per day (90 days)"
            ),
            "latest": latest,
            "verdict_filter": verdict,
            "risk_filter": risk,
            "verdict_filters": _VERDICT_FILTERS,
            "risk_filters": queries.RISKS,
            "mismatches": rank_by_risk(mismatches),
            "queue": queue,
            "workers": workers,
            "healthy": healthy,
            "now": now,
        },
    )


@router.get("/search", response_class=HTMLResponse)
def search(
    request: Request,
    pool: PoolDep,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    text = q.strip()
    try:
        name = normalize(text) if text else ""
    except UsageError:
        name = ""
    with pool.connection() as conn:
        if name and queries.project(conn, name) is not None:
            # A normalized name: only [a-z0-9-], so this stays on our own site.
            return RedirectResponse(f"/projects/{name}", status_code=303)
        near = queries.suggestions(conn, name or text.lower(), limit=20) if text else []
    return templates.TemplateResponse(
        request,
        "search.html",
        {"query": q, "normalized": name, "suggestions": near},
        status_code=200 if near or not text else 404,
    )


@router.get("/projects/{name}", response_class=HTMLResponse)
def project_page(
    request: Request,
    name: str,
    pool: PoolDep,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    canonical = _canonical(name)
    if canonical != name:
        return RedirectResponse(f"/projects/{canonical}", status_code=301)
    with pool.connection() as conn:
        found = queries.project(conn, name)
        if found is None:
            raise HTTPException(404, f"No project named {name!r} is known here.")
        releases = queries.releases(conn, name, limit=20, cursor=cursor)
        counts = queries.verdict_counts(conn, project=name)
        history = queries.project_attempts(conn, name, limit=30)
        trend = queries.release_trend(conn, name, releases=30)
        sources = source_checks.badges_of_releases(conn, [r.id for r in releases.items])
    return templates.TemplateResponse(
        request,
        "project.html",
        {
            "project": found,
            "releases": releases,
            "counts": counts,
            "history": history,
            "status": charts.badge_status(counts),
            "chart": charts.rate_chart(
                charts.release_bars(trend), title="Share of files verified, per release"
            ),
            "cursor": cursor,
            "sources": sources,
        },
    )


@router.get("/files/{file_id}", response_class=HTMLResponse)
def file_page(request: Request, file_id: int, pool: PoolDep, settings: SettingsDep) -> Response:
    with pool.connection() as conn:
        detail = queries.file_detail(conn, file_id)
        if detail is None:
            raise HTTPException(404, "No such file.")
        history = queries.attempts(conn, file_id=file_id, limit=20).items
        source = source_checks.latest_check(conn, detail.file.project, detail.file.version)
    checkpoint = evidence.latest_checkpoint_size(get_stores(request).log, detail.attestations)
    latest = detail.latest
    manifest = dict(latest.evidence_manifest or {}) if latest else {}
    blobs = evidence.blob_store(request)
    log_tail = None
    log_path = evidence.find(manifest, evidence.BUILD_LOG)
    if log_path is not None:
        log_tail = evidence.read_tail(blobs, manifest[log_path], LOG_TAIL_BYTES)
    f = detail.file
    return templates.TemplateResponse(
        request,
        "file.html",
        {
            "detail": detail,
            "file": f,
            "latest": latest,
            "history": history,
            "manifest": sorted(manifest),
            "diffoscope": evidence.find(manifest, evidence.DIFFOSCOPE_HTML),
            "log_path": log_path,
            "log_tail": log_tail,
            "strategy": (
                json.dumps(latest.strategy, indent=2, sort_keys=True)
                if latest and latest.strategy
                else None
            ),
            "differences": latest.differences[:MAX_DIFFERENCES_SHOWN] if latest else (),
            "diagnosis": _ranked(latest.diagnosis)[:MAX_DIFFERENCES_SHOWN] if latest else (),
            "text_diff": _text_diff(blobs, manifest),
            "more_differences": max(0, len(latest.differences) - MAX_DIFFERENCES_SHOWN)
            if latest
            else 0,
            "checkpoint": checkpoint,
            "bundle_path": evidence.bundle_relpath(f.project, f.version, f.filename),
            "index_url": settings.index_url,
            "source": source,
            "key_file": KEY_FILE_NAME if operator_keys(settings) else None,
            "verify_commands": verify_commands(
                VerifyTarget(
                    base_url=str(request.base_url),
                    file_id=f.file_id,
                    filename=f.filename,
                    sha256=f.sha256,
                    file_url=detail.url if detail.url.startswith(("https://", "http://")) else None,
                    bundle_path=evidence.bundle_relpath(f.project, f.version, f.filename),
                )
            ),
            "file_url": detail.url if detail.url.startswith(("https://", "http://")) else None,
        },
    )


@router.get("/files/{file_id}/diffoscope")
def diffoscope_report(request: Request, file_id: int, pool: PoolDep) -> Response:
    """The diffoscope HTML report, untrusted: no script, framed only by our file page."""
    manifest = _manifest(pool, file_id)
    path = evidence.find(manifest, evidence.DIFFOSCOPE_HTML)
    if path is None:
        raise HTTPException(404, "This file has no diffoscope report.")
    data = evidence.read(evidence.blob_store(request), manifest[path])
    return Response(
        data,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": REPORT_CSP,
            "X-Frame-Options": "SAMEORIGIN",
            "Cache-Control": "private, max-age=300",
        },
    )


@router.get("/files/{file_id}/evidence/{path:path}")
def evidence_file(request: Request, file_id: int, path: str, pool: PoolDep) -> Response:
    """One file of the latest attempt's evidence, as plain text or a download."""
    manifest = _manifest(pool, file_id)
    if path not in manifest:
        raise HTTPException(404, "No such evidence file.")
    data = evidence.read(evidence.blob_store(request), manifest[path])
    media_type, disposition = evidence.media_type(path)
    headers = {"Content-Security-Policy": "default-src 'none'; sandbox"}
    if disposition:
        headers["Content-Disposition"] = disposition
    return Response(data, media_type=media_type, headers=headers)


@router.get("/api", response_class=HTMLResponse)
def api_index(request: Request) -> Response:
    """The API's endpoints, from its OpenAPI document, readable without JavaScript."""
    schema: dict[str, Any] = request.app.openapi()
    endpoints = [
        {
            "method": method.upper(),
            "path": path,
            "summary": op.get("summary", ""),
            "operator": bool(op.get("security")),
        }
        for path, ops in schema.get("paths", {}).items()
        for method, op in ops.items()
    ]
    return templates.TemplateResponse(request, "api.html", {"endpoints": endpoints})


_RISK_ORDER = {"review": 0, "packaging": 1, "none": 2}


def rank_by_risk(rows: Sequence[queries.FileVerdict]) -> list[queries.FileVerdict]:
    """Review first, then packaging, then the rest; the order within each kept.

    A mismatch with no recorded risk ranks as review: nothing showed it benign.
    """

    def key(row: queries.FileVerdict) -> int:
        risk = row.risk or ("review" if row.verdict == "mismatch" else None)
        return _RISK_ORDER.get(risk or "", 3)

    return sorted(rows, key=key)


def _ranked(diagnosis: Sequence[Diagnosis]) -> list[Diagnosis]:
    """Worst risk first, then by path."""
    return sorted(diagnosis, key=lambda d: (-d.risk.rank, d.path))


def _text_diff(blobs: BlobStore, manifest: dict[str, str]) -> str | None:
    """The capped unified diff the judge kept in the evidence, if any (escaped by Jinja)."""
    path = evidence.find(manifest, DIFF_NAME)
    if path is None:
        return None
    return evidence.read_tail(blobs, manifest[path], TEXT_DIFF_BYTES)


def _manifest(pool: PoolDep, file_id: int) -> dict[str, str]:
    with pool.connection() as conn:
        found = queries.file_verdict(conn, file_id)
        latest = (
            queries.attempt(conn, found.attempt_id)
            if found is not None and found.attempt_id is not None
            else None
        )
    if found is None:
        raise HTTPException(404, "No such file.")
    return dict(latest.evidence_manifest or {}) if latest else {}


def _canonical(name: str) -> str:
    try:
        return normalize(name)
    except UsageError:
        raise HTTPException(404, "Not a valid project name.") from None
