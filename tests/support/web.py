"""The web app as tests make it: on a given open pool, with the stores ``cli.web`` builds."""

from __future__ import annotations

from fastapi import FastAPI

from cli.web import web_stores
from rebuilder.index.model import Index
from rebuilder.settings import Settings
from rebuilder.store.db import Pool
from rebuilder.worker.queue import Dispatcher
from reports.app import create_app


def make_app(
    settings: Settings,
    pool: Pool,
    *,
    dispatcher: Dispatcher | None = None,
    index: Index | None = None,
) -> FastAPI:
    """``create_app`` on ``pool`` and the production stores built on it."""
    stores = web_stores(settings, pool)
    return create_app(settings, pool=pool, stores=stores, dispatcher=dispatcher, index=index)
