"""Campaign pages and API (incident-response bulk rebuilds).

Pages: ``/campaigns`` (the list) and ``/campaigns/{id}`` (live progress, refreshed by
``<meta http-equiv=refresh>`` while the campaign runs; no script). JSON API under
``/api/v1/campaigns``: start (operator token), list, one campaign with its progress,
cancel (operator token), and the report in any format.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from rebuilder.campaigns import CampaignError
from rebuilder.campaigns import campaign as campaigns
from rebuilder.campaigns.model import CampaignStatus
from rebuilder.campaigns.selection import LockInput, Selection, parse_time, resolve
from rebuilder.campaigns.store import CampaignStarter, CampaignStore
from rebuilder.errors import UsageError
from rebuilder.index.model import Index
from rebuilder.verdict import Verdict
from reports.api import ERRORS, WRITE_ERRORS
from reports.campaign_report import (
    MEDIA_TYPES,
    build_report,
    campaign_json,
    file_json,
    render,
)
from reports.deps import DispatcherDep, OperatorDep, StoresDep, templates
from reports.formats import ReportFormat
from reports.security import OWN_CSP_HEADER

logger = logging.getLogger(__name__)

router = APIRouter()

REFRESH_SECONDS = 5
MAX_LOCK_CHARS = 4 * 1024 * 1024
# The standalone report page carries its own inline styles and no script at all.
REPORT_PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


def get_index(request: Request) -> Index:
    """The index selections are resolved against (given to the app by the composition root)."""
    index: Index | None = request.app.state.index
    if index is None:
        raise HTTPException(503, "This web app was started without an index to select from.")
    return index


IndexDep = Annotated[Index, Depends(get_index)]


class WindowIn(BaseModel):
    since: datetime | None = None
    until: datetime | None = None


class LockIn(BaseModel):
    name: str = Field(max_length=200, description="File name; tells the format (uv.lock, ...).")
    text: str = Field(max_length=MAX_LOCK_CHARS)


class CampaignIn(BaseModel):
    """A campaign to start: a name and any combination of selections."""

    name: str = Field(min_length=1, max_length=200)
    specs: list[str] = Field(default=[], max_length=10_000, description="NAME==VERSION or purls")
    locks: list[LockIn] = Field(default=[], max_length=20)
    projects: list[str] = Field(default=[], max_length=1_000)
    project_window: WindowIn | None = None
    uploaded: WindowIn | None = Field(default=None, description="Recorded files uploaded then")
    backends: list[str] = Field(default=[], max_length=20, description="e.g. hatchling>=1.25")
    verdicts: list[Verdict] = Field(default=[], description="Latest verdict is one of these")
    force: bool = False
    image: str | None = Field(default=None, max_length=500)
    dry_run: bool = False

    def selection(self) -> Selection:
        def window(w: WindowIn | None) -> tuple[datetime | None, datetime | None]:
            if w is None:
                return (None, None)
            return (_aware(w.since), _aware(w.until))

        return Selection(
            specs=tuple(self.specs),
            locks=tuple(LockInput(lock.name, lock.text) for lock in self.locks),
            projects=tuple(self.projects),
            project_window=window(self.project_window),
            uploaded=None if self.uploaded is None else window(self.uploaded),
            backends=tuple(self.backends),
            verdicts=tuple(self.verdicts),
        )


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else parse_time(value.isoformat())


def _store(stores: StoresDep) -> CampaignStore:
    return stores.campaigns


def _starter(stores: StoresDep) -> CampaignStarter:
    return stores.starter


StoreDep = Annotated[CampaignStore, Depends(_store)]
StarterDep = Annotated[CampaignStarter, Depends(_starter)]


def _summary(store: CampaignStore, campaign_id: int) -> dict[str, Any]:
    try:
        report = build_report(store, campaign_id)
    except UsageError:
        raise HTTPException(404, "No such campaign.") from None
    return campaign_json(report)


@router.post(
    "/api/v1/campaigns",
    status_code=202,
    responses={**WRITE_ERRORS, 503: WRITE_ERRORS[404]},
    tags=["campaigns"],
    summary="Start a campaign (operator); with dry_run, only count the files",
)
def start_campaign(
    body: CampaignIn,
    store: StarterDep,
    index: IndexDep,
    dispatcher: DispatcherDep,
    _operator: OperatorDep,
) -> Response:
    selection = body.selection()
    try:
        if body.dry_run:
            return JSONResponse(resolve(selection, store, index).to_json(), status_code=200)
        started = campaigns.start(
            body.name,
            selection,
            store=store,
            index=index,
            dispatcher=dispatcher,
            force=body.force,
            image=body.image,
        )
    except (UsageError, CampaignError) as exc:
        raise HTTPException(422, exc.diagnostics()) from None
    created = started.created
    logger.info("campaign %s started over the API", started.campaign_id)
    return JSONResponse(
        {
            "id": started.campaign_id,
            "files": len(started.resolved.picks),
            "queued": len(created.queued),
            "adopted": len(created.adopted),
            "reused": created.reused,
            "dispatched": started.dispatched,
            "findings": [f.to_json() for f in started.resolved.findings],
        },
        status_code=202,
    )


@router.get(
    "/api/v1/campaigns", responses=ERRORS, tags=["campaigns"], summary="Campaigns, newest first"
)
def list_campaigns(
    store: StoreDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    return [
        {
            "id": row.id,
            "name": row.name,
            "status": row.status.value,
            "created_at": row.created_at.isoformat(),
            "finished_at": None if row.finished_at is None else row.finished_at.isoformat(),
            "progress": store.progress(row.id).to_json(),
        }
        for row in store.campaigns(limit=limit)
    ]


@router.get(
    "/api/v1/campaigns/{campaign_id}",
    responses=ERRORS,
    tags=["campaigns"],
    summary="One campaign: status, progress, summary, findings",
)
def get_campaign(campaign_id: int, store: StoreDep) -> dict[str, Any]:
    try:
        campaigns.status(store, campaign_id)  # closes it when everything is judged
    except CampaignError:
        raise HTTPException(404, "No such campaign.") from None
    return _summary(store, campaign_id)


@router.post(
    "/api/v1/campaigns/{campaign_id}/cancel",
    responses={**WRITE_ERRORS, 409: WRITE_ERRORS[404]},
    tags=["campaigns"],
    summary="Cancel a running campaign (operator): queued rebuilds are withdrawn",
)
def cancel_campaign(campaign_id: int, store: StoreDep, _operator: OperatorDep) -> dict[str, Any]:
    if store.campaign(campaign_id) is None:
        raise HTTPException(404, "No such campaign.")
    try:
        withdrawn = campaigns.cancel(store, campaign_id)
    except CampaignError as exc:
        raise HTTPException(409, exc.diagnostics()) from None
    return {"id": campaign_id, "status": "cancelled", "withdrawn": len(withdrawn)}


@router.get(
    "/api/v1/campaigns/{campaign_id}/report",
    responses=ERRORS,
    tags=["campaigns"],
    summary="The campaign's report as md, json, csv or a standalone html page",
)
def campaign_report(
    campaign_id: int,
    request: Request,
    store: StoreDep,
    format: Annotated[ReportFormat, Query()] = ReportFormat.JSON,
) -> Response:
    try:
        report = build_report(store, campaign_id, base_url=str(request.base_url).rstrip("/"))
    except UsageError:
        raise HTTPException(404, "No such campaign.") from None
    headers = {"Content-Disposition": f'inline; filename="campaign-{campaign_id}.{format.value}"'}
    if format is ReportFormat.HTML:
        headers[OWN_CSP_HEADER] = REPORT_PAGE_CSP
    return Response(render(report, format), media_type=MEDIA_TYPES[format], headers=headers)


# -- pages -----------------------------------------------------------------------------


@router.get("/campaigns", response_class=HTMLResponse, include_in_schema=False)
def campaigns_page(request: Request, store: StoreDep) -> Response:
    rows = []
    for row in store.campaigns(limit=100):
        progress = store.progress(row.id)
        rows.append(
            {
                "c": row,
                "p": progress,
                "mismatch": progress.verdicts.get(Verdict.MISMATCH, 0),
                "failed": progress.verdicts.get(Verdict.FAILED, 0),
            }
        )
    return templates.TemplateResponse(request, "campaigns.html", {"rows": rows})


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse, include_in_schema=False)
def campaign_page(request: Request, campaign_id: int, store: StoreDep) -> Response:
    try:
        campaigns.status(store, campaign_id)
        report = build_report(store, campaign_id)
    except (CampaignError, UsageError):
        raise HTTPException(404, "No such campaign.") from None
    running = report.campaign.status is CampaignStatus.RUNNING
    return templates.TemplateResponse(
        request,
        "campaign.html",
        {
            "c": report.campaign,
            "p": report.progress,
            "s": report.summary,
            "files": [file_json(report, f) for f in report.files],
            "refresh": REFRESH_SECONDS if running else None,
            "formats": [f.value for f in ReportFormat],
        },
    )
