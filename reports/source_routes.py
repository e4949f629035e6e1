"""Source checks on the status site: the release source page and its JSON API.

The repository URL, tag, file names, rule names and the diff come from packages and
their repositories: hostile text, reaching the HTML only through autoescaped templates.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from rebuilder.errors import UsageError
from rebuilder.source.views import (
    SOURCE_BUNDLE_NAME,
    SourceCheck,
    active_check,
    bundle,
    diff_sha256,
)
from rebuilder.source.views import latest_check as read_latest_check
from rebuilder.source.views import release_id as read_release_id
from rebuilder.store.projects import normalize
from reports import evidence
from reports.deps import PoolDep, templates

logger = logging.getLogger(__name__)

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["api"])

#: How much of a diff the page shows (the whole file is an evidence download).
DIFF_SHOWN_BYTES = 256 * 1024
MAX_FILES_SHOWN = 500
JSONL = "application/jsonl"
PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}


class SourceCheckOut(BaseModel):
    check_id: int
    project: str
    version: str
    verdict: str = Field(description="consistent, inconsistent, no-source or failed.")
    reason: str | None
    repository: str | None
    tag: str | None
    commit: str | None
    finished_at: datetime
    result: dict[str, Any] | None = Field(description="SourceResult.to_json() of the check.")
    evidence: dict[str, str] = Field(description="Relative path -> sha256 of each file.")
    bundle: str = Field(description="Where the signed source bundle is (404 until signed).")


@pages.get("/projects/{name}/{version}/source", response_class=HTMLResponse)
def source_page(request: Request, name: str, version: str, pool: PoolDep) -> Response:
    canonical = _canonical(name)
    if canonical != name:
        # A normalized name is only [a-z0-9-]; the version is percent-encoded.
        return RedirectResponse(_path(canonical, version), status_code=301)
    with pool.connection() as conn:
        release = read_release_id(conn, name, version)
        if release is None:
            raise HTTPException(404, "No such release.")
        check = read_latest_check(conn, name, version)
        signed = bool(bundle(conn, release)) if check is not None else False
        active = active_check(conn, release)
    diff, diff_cut = _diff(request, check)
    return templates.TemplateResponse(
        request,
        "source.html",
        {
            "project": name,
            "version": version,
            "check": check,
            "active": active,
            "explained": check.items("explained")[:MAX_FILES_SHOWN] if check else [],
            "differing": check.items("differing")[:MAX_FILES_SHOWN] if check else [],
            "from_git": check.items("from_git")[:MAX_FILES_SHOWN] if check else [],
            "diff": diff,
            "diff_cut": diff_cut,
            "signed": signed,
            "bundle_name": SOURCE_BUNDLE_NAME,
        },
        status_code=200,
    )


@api.get(
    "/projects/{name}/releases/{version}/source",
    response_model=SourceCheckOut,
    summary="A release's latest finished source check (its sdist against the git tag)",
    responses={400: PROBLEM, 404: PROBLEM, 422: PROBLEM},
)
def get_source_check(name: str, version: str, pool: PoolDep) -> SourceCheckOut:
    canonical = _canonical(name)
    with pool.connection() as conn:
        check = read_latest_check(conn, canonical, version)
    if check is None:
        raise HTTPException(404, "This release has no finished source check.")
    return SourceCheckOut(
        check_id=check.check_id,
        project=check.project,
        version=check.version,
        verdict=check.verdict,
        reason=check.reason,
        repository=check.repository,
        tag=check.tag,
        commit=check.commit,
        finished_at=check.finished_at,
        result=check.result,
        evidence=dict(check.evidence_manifest or {}),
        bundle=f"/api/v1/projects/{check.project}/releases/{_quote(check.version)}/source/bundle",
    )


@api.get(
    "/projects/{name}/releases/{version}/source/bundle",
    summary="The release's signed source bundle (one DSSE envelope per line)",
    response_class=Response,
    responses={200: {"content": {JSONL: {}}}, 404: PROBLEM, 422: PROBLEM},
)
def get_source_bundle(name: str, version: str, pool: PoolDep) -> Response:
    canonical = _canonical(name)
    with pool.connection() as conn:
        release = read_release_id(conn, canonical, version)
        lines = [] if release is None else bundle(conn, release)
    if release is None:
        raise HTTPException(404, "No such release.")
    if not lines:
        raise HTTPException(404, "This release has no signed source check yet.")
    return Response(
        "\n".join(lines) + "\n",
        media_type=JSONL,
        headers={"Content-Disposition": f'attachment; filename="{SOURCE_BUNDLE_NAME}"'},
    )


def _diff(request: Request, check: SourceCheck | None) -> tuple[str | None, bool]:
    """The start of the check's diff (decoded leniently) and whether it was cut."""
    found = diff_sha256(check.evidence_manifest if check else None)
    if found is None:
        return None, False
    try:
        path = evidence.blob_store(request).path_for(found[1])
        with path.open("rb") as handle:
            data = handle.read(DIFF_SHOWN_BYTES + 1)
    except (OSError, ValueError):
        logger.warning("diff blob %s of a source check is missing", found[1])
        return None, False
    cut = len(data) > DIFF_SHOWN_BYTES
    return data[:DIFF_SHOWN_BYTES].decode("utf-8", errors="replace"), cut


def _path(project: str, version: str) -> str:
    return f"/projects/{project}/{_quote(version)}/source"


def _quote(text: str) -> str:
    return quote(text, safe="")


def _canonical(name: str) -> str:
    try:
        return normalize(name)
    except UsageError:
        raise HTTPException(404, "Not a valid project name.") from None
