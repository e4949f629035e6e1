"""The status web app: pages, feeds, badges and the JSON API, on one FastAPI app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from rebuilder import __version__
from rebuilder.index.model import Index
from rebuilder.settings import Settings
from rebuilder.store.blobs import BlobStore
from rebuilder.store.db import Pool
from rebuilder.worker.queue import Dispatcher
from reports import api, campaign_routes, feeds, key_routes, pages, security, source_routes

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"

DESCRIPTION = """Verdicts of independent rebuilds of published Python packages.

Reads are public. Writes need the operator token: `Authorization: Bearer TOKEN`.
Lists are paginated with opaque cursors: pass an answer's `next` back as `?cursor=`.
Errors are RFC 9457 problem documents (`application/problem+json`).
"""


def create_app(
    settings: Settings,
    *,
    pool: Pool | None = None,
    open_pool: Callable[[], Pool] | None = None,
    dispatcher: Dispatcher | None = None,
    index: Index | None = None,
) -> FastAPI:
    """The web app, on the adapters the composition root (``cli.web``) made.

    Without ``pool`` it calls ``open_pool`` on start-up and closes that pool at exit.
    ``dispatcher`` sends requested rebuilds to the workers; None records them only
    (the scheduler sends queued attempts that were never dispatched). ``index`` is
    what campaign selections resolve against; without it starting a campaign over
    the API answers 503.
    """
    if pool is None and open_pool is None:
        raise ValueError("create_app needs a pool or a way to open one")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = pool is None
        app.state.pool = open_pool() if own and open_pool is not None else pool
        try:
            yield
        finally:
            if own:
                app.state.pool.close()

    app = FastAPI(
        title="pypi-rebuilder status API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load scripts from CDNs: /api lists the API.
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
        redirect_slashes=False,  # no redirects built from the request's path
    )
    app.state.settings = settings
    app.state.pool = pool
    app.state.dispatcher = dispatcher
    app.state.index = index
    app.state.blobs = BlobStore(settings.blob_dir)
    security.install(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(api.router, tags=["api"])
    app.include_router(source_routes.api)
    app.include_router(key_routes.api)
    app.include_router(api.bundles)
    app.include_router(pages.router)
    app.include_router(source_routes.pages)
    app.include_router(key_routes.pages)
    app.include_router(feeds.router)
    app.include_router(campaign_routes.router)
    return app
