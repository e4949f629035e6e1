"""What every route of the web app shares: settings, the pool, the operator check, templates.

The app keeps its :class:`~rebuilder.settings.Settings`, its psycopg pool and the
stores built on it (:class:`WebStores`) in ``app.state`` (see
:func:`reports.app.create_app`); routes take them through these FastAPI dependencies,
never from the environment or a module global.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from rebuilder.campaigns.store import CampaignStarter, CampaignStore
from rebuilder.settings import Settings
from rebuilder.store.blobs import BlobStore
from rebuilder.store.db import Pool
from rebuilder.store.log import TransparencyLog
from rebuilder.store.protocols import WebStore
from rebuilder.worker.queue import Dispatcher

logger = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).parent / "templates"

# Autoescape on for every template, whatever its extension: all package data is hostile.
templates = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
)


@dataclass(frozen=True)
class WebStores:
    """What the routes read and write through, built once by the composition root (``cli.web``).

    ``campaigns`` and ``starter`` are usually one object seen through two Protocols;
    ``log`` gives the transparency log of an origin.
    """

    attempts: WebStore
    campaigns: CampaignStore
    starter: CampaignStarter
    blobs: BlobStore
    log: Callable[[str], TransparencyLog]


_bearer = HTTPBearer(auto_error=False, description="The operator token (writes only).")


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return cast(Settings, request.app.state.settings)


def get_pool(request: Request) -> Pool:
    """The app's psycopg connection pool (autocommit connections)."""
    return cast(Pool, request.app.state.pool)


def get_stores(request: Request) -> WebStores:
    """The stores the app was created with."""
    return cast(WebStores, request.app.state.stores)


def get_dispatcher(request: Request) -> Dispatcher | None:
    """Where requested attempts are sent; None when no broker is configured."""
    return cast("Dispatcher | None", getattr(request.app.state, "dispatcher", None))


def require_operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Let the request through only with the operator's Bearer token.

    401 without ``Authorization: Bearer ...``; 403 with a wrong token, or when the
    deployment has no operator token configured (writes are then refused to everyone).
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="This operation needs the operator token (Authorization: Bearer ...).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected = get_settings(request).operator_token
    if not expected:
        logger.warning("write refused: no operator token is configured")
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="Writes are disabled: this deployment has no operator token.",
        )
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        logger.warning("write refused: wrong operator token")
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="Wrong operator token.")


SettingsDep = Annotated[Settings, Depends(get_settings)]
PoolDep = Annotated[Pool, Depends(get_pool)]
StoresDep = Annotated[WebStores, Depends(get_stores)]
DispatcherDep = Annotated["Dispatcher | None", Depends(get_dispatcher)]
OperatorDep = Annotated[None, Depends(require_operator)]
