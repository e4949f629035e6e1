"""The status web app: pages, feeds, badges and the JSON API, on one FastAPI app."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from rebuilder import __version__
from rebuilder.index.model import Index
from rebuilder.settings import Settings
from rebuilder.store.db import Pool
from rebuilder.worker.queue import Dispatcher
from reports import api, campaign_routes, feeds, key_routes, pages, security, source_routes
from reports.deps import WebStores

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
    pool: Pool,
    stores: WebStores,
    dispatcher: Dispatcher | None = None,
    index: Index | None = None,
) -> FastAPI:
    """The web app, on the adapters the composition root (``cli.web``) made.

    ``pool`` is open and stays the caller's to close; ``stores`` are built on it.
    ``dispatcher`` sends requested rebuilds to the workers; None records them only
    (the scheduler sends queued attempts that were never dispatched). ``index`` is
    what campaign selections resolve against; without it starting a campaign over
    the API answers 503.
    """
    app = FastAPI(
        title="pypi-rebuilder status API",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # Swagger UI and ReDoc load scripts from CDNs: /api lists the API.
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
        redirect_slashes=False,  # no redirects built from the request's path
    )
    app.state.settings = settings
    app.state.pool = pool
    app.state.dispatcher = dispatcher
    app.state.index = index
    app.state.stores = stores
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
