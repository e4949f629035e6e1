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


def new_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 8,
    timeout: float = 30.0,
    name: str = "rebuilder",
) -> Pool:
    """A pool on ``url``, still closed: call ``open()`` in the process that uses it."""
    return ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        name=name,
        open=False,
        kwargs={"autocommit": True},
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
) -> Pool:
    """A pool on ``url``, opened, with ``min_size`` connections ready.

    Raises StoreError when the database cannot be reached within ``timeout`` seconds.
    """
    pool = new_pool(url, min_size=min_size, max_size=max_size, timeout=timeout, name=name)
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
