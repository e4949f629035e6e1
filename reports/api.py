"""The JSON API under ``/api/v1/``: public reads, operator-only writes.

Lists are keyset-paginated: each answer carries ``next`` (an opaque cursor, null on the
last page) to pass back as ``?cursor=``. Errors are RFC 9457 problem documents.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from rebuilder.attest.bundle import BUNDLE_NAME
from rebuilder.errors import RebuilderError, UsageError
from rebuilder.store import web_queries as queries
from rebuilder.store.projects import normalize
from rebuilder.store.protocols import WebStore
from rebuilder.store.records import AttemptRow
from rebuilder.verdict import Risk, Verdict
from rebuilder.worker.queue import Priority
from reports.deps import DispatcherDep, OperatorDep, PoolDep, SettingsDep, StoresDep

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1")

JSONL = "application/jsonl"
CursorQuery = Annotated[str | None, Query(max_length=512, description="From `next`.")]
LimitQuery = Annotated[int, Query(ge=1, le=queries.MAX_PAGE)]
PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
ERRORS: dict[int | str, dict[str, Any]] = {400: PROBLEM, 404: PROBLEM, 422: PROBLEM}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {**ERRORS, 401: PROBLEM, 403: PROBLEM}


class _Model(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Project(_Model):
    name: str
    watched: bool
    added_at: datetime


class FileOut(_Model):
    file_id: int
    release_id: int
    project: str
    version: str
    filename: str
    kind: str
    sha256: str
    size: int | None
    upload_time: datetime | None
    yanked: bool
    attempt_id: int | None = Field(description="The latest finished attempt.")
    verdict: Verdict | None
    previous_verdict: Verdict | None
    finished_at: datetime | None
    risk: Risk | None = Field(
        default=None,
        description="Of the latest verdict: none, packaging (every difference diagnosed "
        "benign) or review; null when nothing was compared.",
    )


class Release(_Model):
    id: int
    project: str
    version: str
    discovered_at: datetime
    files: list[FileOut]


class AttemptBrief(_Model):
    id: int
    file_id: int
    project: str
    version: str
    filename: str
    status: str
    priority: int
    campaign_id: int | None
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    verdict: Verdict | None
    reason_class: str | None
    seconds: float | None


class DifferenceOut(BaseModel):
    path: str
    kind: str


class DiagnosisOut(BaseModel):
    path: str
    kind: str
    cause: str = Field(description="From the versioned taxonomy of docs/diagnosis.md.")
    detail: str
    risk: Risk


class StabilizerOut(BaseModel):
    name: str
    version: int


class AttemptOut(BaseModel):
    id: int
    file_id: int
    status: str
    priority: int
    campaign_id: int | None
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    image: str | None
    image_digest: str | None
    verdict: Verdict | None
    reason_class: str | None
    reason: str | None
    stabilizers: list[StabilizerOut]
    differences: list[DifferenceOut]
    diagnosis: list[DiagnosisOut] = Field(default_factory=list)
    risk: Risk | None = None
    seconds: float | None
    rebuilt_sha256: str | None
    strategy: dict[str, Any] | None
    evidence: dict[str, str] = Field(description="Relative path -> sha256 of each file.")


class ProjectPage(BaseModel):
    items: list[Project]
    next: str | None


class ReleasePage(BaseModel):
    items: list[Release]
    next: str | None


class FilePage(BaseModel):
    items: list[FileOut]
    next: str | None


class AttemptPage(BaseModel):
    items: list[AttemptBrief]
    next: str | None


class DayOut(BaseModel):
    day: date
    counts: dict[str, int]
    rate: float | None


class Summary(BaseModel):
    counts: dict[str, int] = Field(description="Files by their latest verdict.")
    days: list[DayOut]


class WorkerOut(BaseModel):
    name: str
    host: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    current_attempt: int | None
    seconds_since_heartbeat: float


class QueueOut(BaseModel):
    queued: int = Field(description="Rebuild attempts waiting.")
    running: int = Field(description="Rebuild attempts running.")
    source_checks_queued: int = Field(0, description="Source checks (one per release) waiting.")
    source_checks_running: int = Field(0, description="Source checks running.")
    workers: list[WorkerOut]


class Checkpoint(BaseModel):
    origin: str
    tree_size: int
    root_hash: str
    key_name: str
    note: str = Field(description="The signed note (C2SP checkpoint), what clients verify.")
    created_at: datetime


class WatchIn(BaseModel):
    projects: list[str] = Field(min_length=1, max_length=1000)


class WatchOut(BaseModel):
    added: list[str]


class PriorityName(StrEnum):
    BACKFILL = "backfill"
    NEW_RELEASE = "new_release"
    CAMPAIGN = "campaign"


class RebuildIn(BaseModel):
    priority: PriorityName = PriorityName.CAMPAIGN


class RebuildOut(BaseModel):
    attempt_id: int
    dispatched: bool = Field(description="False: recorded; the scheduler will send it.")


# ---------------------------------------------------------------- reads


@router.get("/summary", response_model=Summary, summary="Verdict counts and daily rates")
def summary(pool: PoolDep, days: Annotated[int, Query(ge=1, le=3660)] = 90) -> Summary:
    with pool.connection() as conn:
        counts = queries.verdict_counts(conn)
        rates = queries.daily_rates(conn, days=days)
    return Summary(
        counts=counts, days=[DayOut(day=d.day, counts=d.counts, rate=d.rate) for d in rates]
    )


@router.get("/projects", response_model=ProjectPage, summary="Projects by name", responses=ERRORS)
def list_projects(
    pool: PoolDep,
    prefix: Annotated[str, Query(max_length=200, description="Any spelling.")] = "",
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> ProjectPage:
    wanted = _prefix(prefix)
    with pool.connection() as conn:
        page = queries.projects(conn, prefix=wanted, limit=limit, cursor=cursor)
    return ProjectPage(items=[Project.model_validate(p) for p in page.items], next=page.next_cursor)


@router.get("/projects/{name}", response_model=Project, summary="One project", responses=ERRORS)
def get_project(name: str, pool: PoolDep) -> Project:
    with pool.connection() as conn:
        found = queries.project(conn, _name(name))
    if found is None:
        raise HTTPException(404, "No such project.")
    return Project.model_validate(found)


@router.get(
    "/projects/{name}/releases",
    response_model=ReleasePage,
    summary="A project's releases with files and verdicts, newest first",
    responses=ERRORS,
)
def list_releases(
    name: str, pool: PoolDep, cursor: CursorQuery = None, limit: LimitQuery = 20
) -> ReleasePage:
    canonical = _name(name)
    with pool.connection() as conn:
        if queries.project(conn, canonical) is None:
            raise HTTPException(404, "No such project.")
        page = queries.releases(conn, canonical, limit=min(limit, 50), cursor=cursor)
    return ReleasePage(items=[Release.model_validate(r) for r in page.items], next=page.next_cursor)


@router.get(
    "/projects/{name}/releases/{version}",
    response_model=Release,
    summary="One release with its files",
    responses=ERRORS,
)
def get_release(name: str, version: str, pool: PoolDep) -> Release:
    with pool.connection() as conn:
        found = queries.release(conn, _name(name), version)
    if found is None:
        raise HTTPException(404, "No such release.")
    return Release.model_validate(found)


@router.get("/files/{file_id}", response_model=FileOut, summary="One file", responses=ERRORS)
def get_file(file_id: int, pool: PoolDep) -> FileOut:
    with pool.connection() as conn:
        found = queries.file_verdict(conn, file_id)
    if found is None:
        raise HTTPException(404, "No such file.")
    return FileOut.model_validate(found)


@router.get(
    "/files/{file_id}/attempts",
    response_model=AttemptPage,
    summary="A file's attempts, newest first",
    responses=ERRORS,
)
def list_file_attempts(
    file_id: int, pool: PoolDep, cursor: CursorQuery = None, limit: LimitQuery = 50
) -> AttemptPage:
    with pool.connection() as conn:
        if queries.file_verdict(conn, file_id) is None:
            raise HTTPException(404, "No such file.")
        page = queries.attempts(conn, file_id=file_id, limit=limit, cursor=cursor)
    return AttemptPage(
        items=[AttemptBrief.model_validate(a) for a in page.items], next=page.next_cursor
    )


@router.get(
    "/files/{file_id}/bundle",
    summary="The file's attestation bundle (one DSSE envelope per line)",
    response_class=Response,
    responses={200: {"content": {JSONL: {}}}, 404: PROBLEM, 422: PROBLEM},
)
def get_bundle(file_id: int, pool: PoolDep, stores: StoresDep) -> Response:
    with pool.connection() as conn:
        if queries.file_verdict(conn, file_id) is None:
            raise HTTPException(404, "No such file.")
    return _bundle(stores.attempts, file_id)


@router.get(
    "/attempts",
    response_model=AttemptPage,
    summary="Attempts, newest first",
    responses=ERRORS,
)
def list_attempts(
    pool: PoolDep,
    verdict: Verdict | None = None,
    status: Annotated[str | None, Query(pattern="^(queued|running|done|active)$")] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> AttemptPage:
    with pool.connection() as conn:
        page = queries.attempts(
            conn,
            verdict=None if verdict is None else verdict.value,
            status=status,
            limit=limit,
            cursor=cursor,
        )
    return AttemptPage(
        items=[AttemptBrief.model_validate(a) for a in page.items], next=page.next_cursor
    )


@router.get(
    "/attempts/{attempt_id}",
    response_model=AttemptOut,
    summary="One attempt with its whole outcome",
    responses=ERRORS,
)
def get_attempt(attempt_id: int, pool: PoolDep) -> AttemptOut:
    with pool.connection() as conn:
        found = queries.attempt(conn, attempt_id)
    if found is None:
        raise HTTPException(404, "No such attempt.")
    return _attempt_out(found)


@router.get(
    "/verdicts",
    response_model=FilePage,
    summary="Files by their latest verdict, most recently judged first",
    responses=ERRORS,
)
def list_verdicts(
    pool: PoolDep,
    verdict: Verdict | None = None,
    risk: Annotated[
        Risk | None, Query(description="only files whose latest verdict has this risk")
    ] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> FilePage:
    with pool.connection() as conn:
        page = queries.latest_rebuilds(
            conn,
            limit=limit,
            verdict=None if verdict is None else verdict.value,
            cursor=cursor,
            risk=None if risk is None else risk.value,
        )
    return FilePage(items=[FileOut.model_validate(f) for f in page.items], next=page.next_cursor)


@router.get("/queue", response_model=QueueOut, summary="Queue depth and worker health")
def get_queue(pool: PoolDep) -> QueueOut:
    with pool.connection() as conn:
        queue = queries.queue_status(conn)
        workers = queries.workers(conn)
        now = queries.database_now(conn)
    return QueueOut(
        queued=queue.queued,
        running=queue.running,
        source_checks_queued=queue.source_queued,
        source_checks_running=queue.source_running,
        workers=[
            WorkerOut(
                name=w.name,
                host=w.host,
                pid=w.pid,
                version=w.version,
                started_at=w.started_at,
                heartbeat_at=w.heartbeat_at,
                current_attempt=w.current_attempt,
                seconds_since_heartbeat=max(0.0, (now - w.heartbeat_at).total_seconds()),
            )
            for w in workers
        ],
    )


@router.get(
    "/log/checkpoint",
    response_model=Checkpoint,
    summary="The transparency log's latest signed checkpoint",
    responses=ERRORS,
)
def get_checkpoint(stores: StoresDep, settings: SettingsDep) -> Checkpoint:
    stored = stores.log(settings.log_origin).latest_checkpoint()
    if stored is None:
        raise HTTPException(404, "The log has no checkpoint yet.")
    return Checkpoint(
        origin=stored.origin,
        tree_size=stored.tree_size,
        root_hash=stored.root_hash.hex(),
        key_name=stored.key_name,
        note=stored.note,
        created_at=stored.created_at,
    )


@router.get(
    "/log/inclusion",
    summary="Proof that log entry `index` is in the tree of `tree_size` entries",
    responses={200: {"content": {"application/json": {}}}, **ERRORS},
)
def get_inclusion(
    stores: StoresDep,
    settings: SettingsDep,
    index: Annotated[int, Query(ge=0)],
    tree_size: Annotated[int, Query(ge=1)],
) -> dict[str, Any]:
    try:
        return stores.log(settings.log_origin).inclusion_proof(index, tree_size).to_json()
    except RebuilderError as exc:
        raise HTTPException(400, exc.diagnostics()) from exc


@router.get(
    "/log/consistency",
    summary="Proof that the tree of `old_size` entries is a prefix of `new_size`",
    responses={200: {"content": {"application/json": {}}}, **ERRORS},
)
def get_consistency(
    stores: StoresDep,
    settings: SettingsDep,
    old_size: Annotated[int, Query(ge=0)],
    new_size: Annotated[int, Query(ge=0)],
) -> dict[str, Any]:
    try:
        return stores.log(settings.log_origin).consistency_proof(old_size, new_size).to_json()
    except RebuilderError as exc:
        raise HTTPException(400, exc.diagnostics()) from exc


@router.get(
    "/log/entries/{index}",
    summary="One log entry (a DSSE envelope line)",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}, **ERRORS},
)
def get_entry(index: int, stores: StoresDep, settings: SettingsDep) -> Response:
    if index < 0:
        raise HTTPException(404, "No such entry.")
    try:
        data = stores.log(settings.log_origin).entry(index)
    except RebuilderError as exc:
        raise HTTPException(404, exc.diagnostics()) from exc
    return Response(data, media_type="application/json")


# ---------------------------------------------------------------- writes


@router.post(
    "/watch",
    response_model=WatchOut,
    summary="Watch projects for new releases (operator)",
    responses=WRITE_ERRORS,
)
def add_watch(body: WatchIn, stores: StoresDep, _operator: OperatorDep) -> WatchOut:
    try:
        added = stores.attempts.watch_add(body.projects)
    except UsageError as exc:
        raise HTTPException(422, exc.diagnostics()) from exc
    logger.info("operator watched %d new projects", len(added))
    return WatchOut(added=added)


@router.post(
    "/files/{file_id}/rebuild",
    response_model=RebuildOut,
    status_code=202,
    summary="Request a rebuild of one file (operator)",
    responses={**WRITE_ERRORS, 409: PROBLEM},
)
def request_rebuild(
    file_id: int,
    stores: StoresDep,
    dispatcher: DispatcherDep,
    _operator: OperatorDep,
    body: RebuildIn | None = None,
) -> RebuildOut:
    priority = Priority[(body or RebuildIn()).priority.name]
    store = stores.attempts
    if store.file(file_id) is None:
        raise HTTPException(404, "No such file.")
    attempt_id = store.request_attempt(file_id, int(priority))
    if attempt_id is None:
        raise HTTPException(409, "This file already has a queued or running attempt.")
    dispatched = False
    if dispatcher is not None:
        try:
            dispatcher.enqueue(attempt_id, priority)
            store.mark_dispatched([attempt_id])
            dispatched = True
        except Exception:  # noqa: BLE001 - the scheduler re-sends undispatched attempts
            logger.warning("attempt %s recorded but not sent to the broker", attempt_id)
    logger.info("operator requested attempt %s of file %s", attempt_id, file_id)
    return RebuildOut(attempt_id=attempt_id, dispatched=dispatched)


# ---------------------------------------------------------------- helpers


bundles = APIRouter(include_in_schema=False)


@bundles.get("/pypi/{project}/{version}/{filename}/" + BUNDLE_NAME)
def bundle_by_path(
    project: str, version: str, filename: str, pool: PoolDep, stores: StoresDep
) -> Response:
    """The bundle at the layout other rebuilders publish (``pypi/P/V/F/...jsonl``)."""
    with pool.connection() as conn:
        file_id = queries.file_id_by_name(conn, _name(project), version, filename)
    if file_id is None:
        raise HTTPException(404, "No such file.")
    return _bundle(stores.attempts, file_id)


def _bundle(store: WebStore, file_id: int) -> Response:
    lines = store.bundle_lines(file_id)
    if not lines:
        raise HTTPException(404, "This file has no attestations yet.")
    return Response(
        "\n".join(lines) + "\n",
        media_type=JSONL,
        headers={"Content-Disposition": f'attachment; filename="{BUNDLE_NAME}"'},
    )


def _attempt_out(row: AttemptRow) -> AttemptOut:
    return AttemptOut(
        id=row.id,
        file_id=row.file_id,
        status=row.status.value,
        priority=row.priority,
        campaign_id=row.campaign_id,
        requested_at=row.requested_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        worker=row.worker,
        image=row.image,
        image_digest=row.image_digest,
        verdict=row.verdict,
        reason_class=None if row.reason_class is None else row.reason_class.value,
        reason=row.reason,
        stabilizers=[StabilizerOut(name=s.name, version=s.version) for s in row.stabilizers],
        differences=[DifferenceOut(path=d.path, kind=d.kind.value) for d in row.differences],
        diagnosis=[DiagnosisOut.model_validate(d.to_json()) for d in row.diagnosis],
        risk=row.risk,
        seconds=row.seconds,
        rebuilt_sha256=row.rebuilt_sha256,
        strategy=None if row.strategy is None else dict(row.strategy),
        evidence=dict(row.evidence_manifest or {}),
    )


def _name(name: str) -> str:
    try:
        return normalize(name)
    except UsageError:
        raise HTTPException(404, "Not a valid project name.") from None


def _prefix(prefix: str) -> str:
    """A search prefix in normalized form (lower case, separators folded to '-')."""
    text = prefix.strip().lower()
    out: list[str] = []
    for c in text:
        sep = c in "-_."
        if sep and out and out[-1] == "-":
            continue
        out.append("-" if sep else c)
    return "".join(out)
