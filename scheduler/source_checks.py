"""The scheduler's source-check step: every recorded release with an sdist gets one check.

A hook of :class:`~scheduler.loop.Scheduler` (run after each tick's polling), so it sees
the releases that tick recorded. Each call:

1. **requests** a source check for every release with an sdist that never had one and
   that the rebuild policy chose: it has rebuilds (new, backfilled, a campaign's), or is
   among the ``newest_per_project`` last recorded of its project; the rest of a
   project's history is not checked unless ``newest_per_project`` is None
   (``rebuilder.source.checks.request_missing``: the priority follows the release's
   rebuilds, new releases and campaigns first, backfill at backfill priority). Only
   releases newer than the last scan are looked at, with a margin for ids committed out
   of order, and the whole table again every ``full_scan_seconds`` (an sdist uploaded
   after its release was recorded, a backlog larger than ``batch``);
2. **recovers**: running checks whose worker went silent are queued again, and queued
   checks never handed to the broker are sent (now).

Messages are sent only after the rows they name committed. A message sent twice is
harmless: workers claim a check before running it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from rebuilder.source.store import SourceCheckQueue
from rebuilder.worker.queue import Dispatcher, Priority

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceCheckConfig:
    """The knobs of the source-check step."""

    stale_after: timedelta = timedelta(minutes=2)  # a running check's silence limit
    redispatch_after: timedelta = timedelta(seconds=30)  # unsent queued checks' age
    batch: int = 200  # checks requested per call at most
    full_scan_seconds: float = 600.0  # how often every release is looked at again
    id_margin: int = 100  # release ids below the last scan's newest looked at again
    # The rebuilds' newest-plus-backfill policy: a release is checked when it has rebuilds,
    # or is among this many newest recorded releases of its project. None: all history.
    newest_per_project: int | None = 3


def _priority(value: int) -> Priority:
    try:
        return Priority(value)
    except ValueError:
        return max((p for p in Priority if p <= value), default=Priority.BACKFILL)


class SourceCheckStep:
    """Requests, sends and recovers source checks; call it once per scheduler tick."""

    def __init__(
        self,
        store: SourceCheckQueue,
        dispatcher: Dispatcher,
        config: SourceCheckConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._config = config or SourceCheckConfig()
        self._clock = clock
        self._newest: int | None = None  # the newest release id of the last scan
        self._full_scan_due = 0.0

    def __call__(self) -> None:
        self.request()
        self.recover()

    def request(self) -> list[tuple[int, int]]:
        """Queue and send checks of never-checked releases; the (id, priority) made."""
        config = self._config
        full = self._newest is None or self._clock() >= self._full_scan_due
        after = 0 if full or self._newest is None else max(0, self._newest - config.id_margin)
        newest = self._store.max_release_id()
        made = self._store.request_missing_source_checks(
            new_priority=int(Priority.NEW_RELEASE),
            backfill_priority=int(Priority.BACKFILL),
            after_release=after,
            limit=config.batch,
            newest_per_project=config.newest_per_project,
        )
        self._newest = newest
        if full:
            self._full_scan_due = self._clock() + config.full_scan_seconds
        if len(made) >= config.batch:
            self._full_scan_due = 0.0  # more are waiting: look at everything next time
        sent = self._send(made)
        if made:
            logger.info("queued %d source checks, sent %d", len(made), sent)
        return made

    def recover(self) -> tuple[int, int]:
        """Take back silent workers' checks and send what was never sent; (requeued, sent)."""
        requeued = self._store.requeue_stale_source_checks(self._config.stale_after)
        pending = self._store.undispatched_source_checks(self._config.redispatch_after)
        sent = self._send(pending)
        if pending:
            logger.info("re-sent %d queued source checks to the workers", sent)
        return len(requeued), sent

    def _send(self, checks: Sequence[tuple[int, int]]) -> int:
        sent: list[int] = []
        for check_id, priority in checks:
            try:
                self._dispatcher.enqueue(check_id, _priority(priority))
            except Exception as exc:  # noqa: BLE001 - any broker failure: recovery resends
                logger.warning(
                    "broker unavailable (%s); %d source checks left to send later",
                    exc,
                    len(checks) - len(sent),
                )
                break
            sent.append(check_id)
        if sent:
            self._store.mark_source_checks_dispatched(sent)
        return len(sent)


def source_check_hook(
    store: SourceCheckQueue,
    dispatcher: Dispatcher,
    config: SourceCheckConfig | None = None,
) -> Callable[[], None]:
    """The hook to give :class:`~scheduler.loop.Scheduler` (``hooks=``)."""
    return SourceCheckStep(store, dispatcher, config)
