"""The connection pool of one process.

Created closed and opened explicitly at process start: a pool opened before a fork
would share its sockets with the children. Connections are in autocommit mode; every
write runs inside an explicit ``with conn.transaction():`` block, so nothing is left
half done and nothing holds a transaction open between calls.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from rebuilder.store import StoreError

logger = logging.getLogger(__name__)

Connection = psycopg.Connection[Any]
Pool = ConnectionPool[psycopg.Connection[Any]]


# How long a connection may go without an answer from its peer before it counts as lost.
DEFAULT_NETWORK_TIMEOUT = 15.0


def client_keepalive(network_timeout: float) -> dict[str, int]:
    """libpq parameters: this side gives a silent server up within ``network_timeout`` s.

    Keepalive probes find a dead peer on an idle connection; ``tcp_user_timeout`` bounds
    how long sent data may stay unacknowledged (a query sent into a cut network). Without
    them a cut link blocks a call until the kernel gives up, many minutes later.
    """
    seconds = max(2, round(network_timeout))
    return {
        "keepalives": 1,
        "keepalives_idle": max(1, seconds // 3),
        "keepalives_interval": max(1, seconds // 6),
        "keepalives_count": 2,
        "tcp_user_timeout": seconds * 1000,
    }


def server_keepalive(network_timeout: float) -> dict[str, int]:
    """Session settings: the server gives this client up after about twice the client's
    own limit, never before it (so a cut-off client has stopped acting by then)."""
    seconds = max(2, round(network_timeout))
    return {
        "tcp_keepalives_idle": seconds,
        "tcp_keepalives_interval": max(1, seconds // 3),
        "tcp_keepalives_count": 3,
        "tcp_user_timeout": 2 * seconds * 1000,
    }


def network_params(
    network_timeout: float = DEFAULT_NETWORK_TIMEOUT, url: str = ""
) -> dict[str, Any]:
    """Connection keyword arguments bounding every network wait on both ends.

    A URL that sets its own ``options`` keeps them (the server side is then the
    operator's to configure).
    """
    params: dict[str, Any] = dict(client_keepalive(network_timeout))
    if "options=" not in url:
        server = server_keepalive(network_timeout)
        params["options"] = " ".join(f"-c {k}={v}" for k, v in server.items())
    return params


def new_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 8,
    timeout: float = 30.0,
    name: str = "rebuilder",
    network_timeout: float = DEFAULT_NETWORK_TIMEOUT,
) -> Pool:
    """A pool on ``url``, still closed: call ``open()`` in the process that uses it."""
    return ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        name=name,
        open=False,
        kwargs={"autocommit": True, **network_params(network_timeout, url)},
        # A database restart leaves dead sockets in the pool; check before lending.
        check=ConnectionPool.check_connection,
    )


def open_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 8,
    timeout: float = 30.0,
    name: str = "rebuilder",
    network_timeout: float = DEFAULT_NETWORK_TIMEOUT,
) -> Pool:
    """A pool on ``url``, opened, with ``min_size`` connections ready.

    Raises StoreError when the database cannot be reached within ``timeout`` seconds.
    """
    pool = new_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        name=name,
        network_timeout=network_timeout,
    )
    try:
        pool.open(wait=True, timeout=timeout)
    except PoolTimeout:
        pool.close()
        raise StoreError(f"cannot connect to PostgreSQL within {timeout:g} s") from None
    logger.debug("pool %s open (%s..%s connections)", name, min_size, max_size)
    return pool


def database_error(exc: psycopg.Error, doing: str) -> StoreError:
    """A StoreError telling what failed, without the connection details."""
    detail = exc.diag.message_primary or str(exc).strip() or type(exc).__name__
    return StoreError(f"PostgreSQL failed while {doing}: {detail}")


@contextmanager
def borrow(pool: Pool, doing: str = "using the database") -> Iterator[Connection]:
    """A connection from ``pool`` (autocommit); psycopg errors become StoreError."""
    try:
        with pool.connection() as conn:
            yield conn
    except psycopg.Error as exc:
        raise database_error(exc, doing) from None
