"""One active scheduler: a PostgreSQL session advisory lock decides which.

The lock lives as long as the leader's connection, so a scheduler that dies (crash,
SIGKILL, lost network) releases it with its session, and a waiting one takes over.
The leader checks its connection every round; losing it means stepping down.

Across a partition the order matters: the leader's connection gives a silent server up
within ``network_timeout`` seconds (TCP_USER_TIMEOUT and keepalives on its side), while
the server is asked to keep the session, and so the lock, for about twice as long
(``tcp_keepalives_*`` and ``tcp_user_timeout`` of the session). A cut-off leader has
therefore stopped acting before a standby can take the lock: never two at once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

import psycopg

from rebuilder.store import StoreError
from rebuilder.store.db import DEFAULT_NETWORK_TIMEOUT, network_params

logger = logging.getLogger(__name__)

# A fixed key in the advisory-lock space of the database ("rebuild" as ASCII).
SCHEDULER_LOCK_KEY = 0x7265_6275_696C_64


class Leadership:
    """Holds (or waits for) the scheduler lock on a dedicated connection."""

    def __init__(
        self,
        url: str,
        *,
        key: int = SCHEDULER_LOCK_KEY,
        connect: Callable[[str], psycopg.Connection[tuple[object, ...]]] | None = None,
        network_timeout: float = DEFAULT_NETWORK_TIMEOUT,
    ) -> None:
        self._url = url
        self._key = key
        params = network_params(network_timeout, url)
        self._connect = connect or (
            lambda u: psycopg.connect(
                u, autocommit=True, connect_timeout=max(2, round(network_timeout)), **params
            )
        )
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True when this process now leads."""
        if self.is_leader():
            return True
        try:
            conn = self._connect(self._url)
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
        except psycopg.Error as exc:
            raise StoreError(f"cannot reach PostgreSQL for the scheduler lock: {exc}") from None
        if row is not None and row[0] is True:
            self._conn = conn
            logger.info("this scheduler is now the leader")
            return True
        conn.close()
        return False

    def is_leader(self) -> bool:
        """True while the lock's session is alive (checked with a round trip)."""
        if self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            logger.warning("lost the scheduler lock's connection: stepping down")
            self._drop()
            return False
        return True

    def wait(self, *, poll_seconds: float = 5.0, stop: Callable[[], bool] = lambda: False) -> bool:
        """Block until leading (True) or until ``stop()`` says so (False)."""
        while not stop():
            if self.try_acquire():
                return True
            time.sleep(poll_seconds)
        return False

    def release(self) -> None:
        """Step down (on a clean shutdown)."""
        if self._conn is not None:
            # If the session is already gone, the lock went with it.
            with contextlib.suppress(psycopg.Error):
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
