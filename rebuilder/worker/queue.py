"""The rebuild queue: one RabbitMQ priority queue, one actor taking attempt ids.

Messages carry only an attempt id (the worker loads the rest from the database), so a
message delivered twice is harmless: claiming the attempt decides who runs it.
dramatiq acknowledges a message only after the actor returned (late acks): a worker
killed mid-build leaves its message to be redelivered. Priorities are RabbitMQ's own
(``x-max-priority``), so a campaign job overtakes a backlog already queued.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import IntEnum
from typing import Any, Protocol

import dramatiq

from rebuilder.errors import FailureReason, RebuilderError

logger = logging.getLogger(__name__)

QUEUE = "rebuilds"
ACTOR = "rebuild_attempt"
SOURCE_ACTOR = "trace_release"  # source checks (rebuilder.source.job), same queue
MAX_PRIORITY = 10
MAX_RETRIES = 5


class Priority(IntEnum):
    """Who waits for the result: an incident responder first, a backfill last."""

    BACKFILL = 1
    NEW_RELEASE = 5
    CAMPAIGN = 9


class JobRunner(Protocol):
    """Runs one attempt to its recorded outcome (see the worker's job module)."""

    def run(self, attempt_id: int) -> None: ...


class Dispatcher(Protocol):
    """Sends attempt ids to the workers. Call only after the attempt row committed."""

    def enqueue(self, attempt_id: int, priority: Priority) -> None: ...


def is_transient(error: BaseException) -> bool:
    """Trouble that may pass (a service away, a disk full); a build's own failure doesn't."""
    if isinstance(error, RebuilderError):
        return error.reason is FailureReason.INFRASTRUCTURE
    return isinstance(error, ConnectionError | TimeoutError | OSError)


class DeferredError(dramatiq.Retry):
    """A job put back on purpose, to run again after ``delay`` ms.

    Not an error (dramatiq logs no traceback for it) and not bounded by ``MAX_RETRIES``:
    the runner that raises it bounds how often it defers.
    """


def _retry_when(retries: int, error: BaseException) -> bool:
    if isinstance(error, DeferredError):
        return True
    return retries < MAX_RETRIES and is_transient(error)


def declare_rebuild_actor(
    broker: dramatiq.Broker,
    runner: Callable[[], JobRunner],
    *,
    queue_name: str = QUEUE,
    time_limit_ms: int = 3_600_000,
) -> dramatiq.Actor[[int], None]:
    """The actor that runs attempts, bound to ``broker``; ``runner`` is made per call."""

    def rebuild_attempt(attempt_id: int) -> None:
        runner().run(int(attempt_id))

    options: dict[str, Any] = {
        "retry_when": _retry_when,
        "min_backoff": 1_000,
        "max_backoff": 300_000,
        "time_limit": time_limit_ms,
    }
    decorate = dramatiq.actor(actor_name=ACTOR, queue_name=queue_name, broker=broker, **options)
    actor: dramatiq.Actor[[int], None] = decorate(rebuild_attempt)
    return actor


def declare_source_actor(
    broker: dramatiq.Broker,
    runner: Callable[[], JobRunner],
    *,
    queue_name: str = QUEUE,
    time_limit_ms: int = 3_600_000,
) -> dramatiq.Actor[[int], None]:
    """The actor that runs source checks (ids of ``source_checks`` rows), on the same queue."""

    def trace_release(check_id: int) -> None:
        runner().run(int(check_id))

    options: dict[str, Any] = {
        "retry_when": _retry_when,
        "min_backoff": 1_000,
        "max_backoff": 300_000,
        "time_limit": time_limit_ms,
    }
    decorate = dramatiq.actor(
        actor_name=SOURCE_ACTOR, queue_name=queue_name, broker=broker, **options
    )
    actor: dramatiq.Actor[[int], None] = decorate(trace_release)
    return actor


class ActorDispatcher:
    """A :class:`Dispatcher` sending through a dramatiq actor."""

    def __init__(self, actor: dramatiq.Actor[[int], None]) -> None:
        self._actor = actor

    def enqueue(self, attempt_id: int, priority: Priority) -> None:
        self._actor.send_with_options(args=(attempt_id,), broker_priority=int(priority))
        logger.debug("enqueued attempt %s at priority %s", attempt_id, priority.name)
