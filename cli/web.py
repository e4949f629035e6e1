"""``rebuilder web``: serve the status page and API with uvicorn."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from rebuilder.settings import Settings
    from rebuilder.store.db import Pool
    from rebuilder.worker.queue import Dispatcher
    from reports.deps import WebStores

logger = logging.getLogger(__name__)


def add_web_command(sub: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """Add ``web`` to the CLI's subcommands."""
    web = sub.add_parser(
        "web",
        help="serve the status page and JSON API",
        description="Serve the status page and the JSON API (/api/v1/) of the fleet's "
        "database. Writes need REBUILDER_OPERATOR_TOKEN.",
    )
    web.add_argument("--host", default=None, help="address to listen on (default: web_host)")
    web.add_argument("--port", type=int, default=None, help="port (default: web_port)")
    web.add_argument(
        "--no-broker",
        action="store_true",
        help="record requested rebuilds only; the scheduler sends them to the workers",
    )


def web_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the web app until interrupted."""
    import uvicorn  # noqa: PLC0415 - only this command needs the server

    from rebuilder.store.db import open_pool  # noqa: PLC0415

    dispatcher = None if args.no_broker else _dispatcher(settings)
    pool = open_pool(settings.database_url, name="web")
    try:
        app = web_app(settings, pool, dispatcher=dispatcher)
        host = args.host or settings.web_host
        port = args.port if args.port is not None else settings.web_port
        logger.info("serving the status page on http://%s:%s/", host, port)
        uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False)
    finally:
        pool.close()
    return 0


def web_app(settings: Settings, pool: Pool, *, dispatcher: Dispatcher | None = None) -> FastAPI:
    """The status web app on the production adapters: ``pool``, the settings' index."""
    from rebuilder.index.simple import SimpleIndex  # noqa: PLC0415 - per command
    from reports.app import create_app  # noqa: PLC0415

    index = SimpleIndex(
        settings.index_url, settings.cache_dir / "index", page_ttl_seconds=settings.page_ttl
    )
    return create_app(
        settings, pool=pool, stores=web_stores(settings, pool), dispatcher=dispatcher, index=index
    )


def web_stores(settings: Settings, pool: Pool) -> WebStores:
    """The web app's stores on ``pool``, built once: PostgreSQL and the settings' blob dir."""
    from rebuilder.campaigns.store import PostgresCampaignStore  # noqa: PLC0415 - per command
    from rebuilder.store.blobs import BlobStore  # noqa: PLC0415
    from rebuilder.store.log import TransparencyLog  # noqa: PLC0415
    from rebuilder.store.repository import PostgresStore  # noqa: PLC0415
    from reports.deps import WebStores  # noqa: PLC0415

    campaigns = PostgresCampaignStore(pool)

    def log(origin: str) -> TransparencyLog:
        return TransparencyLog(pool, origin=origin)

    return WebStores(
        attempts=PostgresStore(pool),
        campaigns=campaigns,
        starter=campaigns,
        blobs=BlobStore(settings.blob_dir),
        log=log,
    )


def _dispatcher(settings: Settings) -> Dispatcher:
    from cli.broker import rabbitmq_broker  # noqa: PLC0415 - dramatiq only when sending
    from rebuilder.worker.queue import (  # noqa: PLC0415 - dramatiq only when sending
        ActorDispatcher,
        declare_rebuild_actor,
    )

    broker = rabbitmq_broker(settings.broker_url)

    def no_runner() -> Any:  # noqa: ANN401 - the web app only sends, never runs jobs
        raise RuntimeError("the web app does not run rebuilds")

    return ActorDispatcher(declare_rebuild_actor(broker, no_runner))
