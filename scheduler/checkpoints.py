"""Checkpoints signed by the fleet: on every scheduler tick, when the log grew and the
interval since the latest checkpoint has passed, sign the log's head.

Only the leading scheduler ticks, so one process signs at a time;
:meth:`rebuilder.store.log.TransparencyLog.checkpoint` checks that the entries still
lead to the latest stored checkpoint before it signs anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from rebuilder.attest.keys import Signer
from rebuilder.store.log import StoredCheckpoint

logger = logging.getLogger(__name__)


class CheckpointLog(Protocol):
    """What the checkpointer needs of the log (``rebuilder.store.log.TransparencyLog``)."""

    @property
    def origin(self) -> str: ...

    def size(self) -> int: ...

    def latest_checkpoint(self) -> StoredCheckpoint | None: ...

    def checkpoint(self, signer: Signer, name: str) -> str: ...


def _now() -> datetime:
    return datetime.now(UTC)


class Checkpointer:
    """Signs a checkpoint when the log grew and ``interval`` passed since the latest one.

    The time of the latest checkpoint is the one stored with it, so a restarted
    scheduler keeps the pace.
    """

    def __init__(
        self,
        log: CheckpointLog,
        signer: Signer,
        name: str,
        *,
        interval: float = 60.0,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        if interval < 0:
            raise ValueError("the checkpoint interval is not negative")
        self._log = log
        self._signer = signer
        self._name = name
        self._interval = timedelta(seconds=interval)
        self._clock = clock

    def due(self) -> bool:
        """Whether a new checkpoint should be signed now."""
        latest = self._log.latest_checkpoint()
        size = self._log.size()
        if latest is None:
            return size > 0
        if size <= latest.tree_size:
            return False
        return self._clock() - latest.created_at >= self._interval

    def tick(self) -> str | None:
        """Sign a checkpoint if one is due; the new signed note, or None."""
        if not self.due():
            return None
        note = self._log.checkpoint(self._signer, self._name)
        logger.info("signed a checkpoint of log %s", self._log.origin)
        return note

    def __call__(self) -> None:
        self.tick()
