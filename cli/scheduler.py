"""The scheduler process: lead (one at a time), poll, dispatch, recover, until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Protocol

from cli.broker import rabbitmq_broker
from cli.signing import operator_log_signing
from rebuilder.campaigns.campaign import closing_hook
from rebuilder.campaigns.store import PostgresCampaignStore
from rebuilder.errors import RebuilderError
from rebuilder.index.http import make_session
from rebuilder.index.simple import SimpleIndex
from rebuilder.settings import Settings
from rebuilder.signals import stop_on_signals
from rebuilder.source.store import PostgresSourceChecks
from rebuilder.store.db import Pool, open_pool
from rebuilder.store.leader import Leadership
from rebuilder.store.log import TransparencyLog
from rebuilder.store.migrate import migrate
from rebuilder.store.protocols import SchedulerStore
from rebuilder.store.records import ProjectRow
from rebuilder.store.repository import PostgresStore
from rebuilder.worker.queue import (
    ActorDispatcher,
    Dispatcher,
    JobRunner,
    declare_rebuild_actor,
    declare_source_actor,
)
from scheduler.checkpoints import Checkpointer
from scheduler.errors import SchedulerError
from scheduler.feeds import ChangelogClient, RssUpdates, rss_updates_url, xmlrpc_url
from scheduler.firehose import Firehose, FirehoseConfig
from scheduler.loop import Scheduler, SchedulerConfig, SchedulerObserver
from scheduler.metrics import SchedulerMetrics
from scheduler.source_checks import SourceCheckConfig, source_check_hook

logger = logging.getLogger(__name__)

SEEDED_CURSOR = "watch-list-seeded"


class WatchListStore(Protocol):
    """The part of the store the watch-list seeding uses."""

    def get_cursor(self, name: str) -> str | None: ...

    def set_cursor(self, name: str, value: str) -> None: ...

    def watched(self, *, prefix: str = "") -> list[ProjectRow]: ...

    def watch_add(self, names: Iterable[str]) -> list[str]: ...


def seed_watch_list(store: WatchListStore, names: list[str]) -> list[str]:
    """Watch ``names`` on the fleet's first start, and only when its watch list is empty.

    An operator who ran ``rebuilder watch add`` before the first start keeps exactly the
    list they made; either way this never happens again (removals stick).
    """
    if store.get_cursor(SEEDED_CURSOR) is not None:
        return []
    added = store.watch_add(names) if names and not store.watched() else []
    store.set_cursor(SEEDED_CURSOR, "1")
    return added


def _no_runner() -> JobRunner:
    raise SchedulerError("the scheduler only sends attempts; it does not run them")


def _checkpoints(settings: Settings, pool: Pool) -> list[Callable[[], None]]:
    """The hook signing log checkpoints, unless the operator's key cannot sign them."""
    try:
        return [checkpoint_hook(settings, pool)]
    except RebuilderError as exc:
        logger.warning("log checkpoints will not be signed: %s", exc.diagnostics())
        return []


def run_scheduler(
    settings: Settings,
    stop: threading.Event | None = None,
    *,
    hooks: list[Callable[[], None]] | None = None,
) -> int:
    """Run the scheduler until ``stop`` is set (or SIGTERM/SIGINT); the exit status."""
    stop = stop or threading.Event()
    migrate(settings.database_url)
    pool = open_pool(
        settings.database_url, min_size=1, max_size=4, network_timeout=settings.network_timeout
    )
    store = PostgresStore(pool)
    seeded = seed_watch_list(
        store, [n.strip() for n in settings.watch_default.split(",") if n.strip()]
    )
    if seeded:
        logger.info("watching the default projects: %s", ", ".join(seeded))
    metrics = SchedulerMetrics()
    if settings.metrics_port:
        metrics.serve(settings.metrics_port)
    broker = rabbitmq_broker(settings.broker_url)
    actor = declare_rebuild_actor(broker, _no_runner, queue_name=settings.queue_name)
    source_actor = declare_source_actor(broker, _no_runner, queue_name=settings.queue_name)
    source_checks = source_check_hook(
        PostgresSourceChecks(pool),
        ActorDispatcher(source_actor),
        SourceCheckConfig(
            stale_after=timedelta(seconds=settings.claim_timeout),
            newest_per_project=None
            if settings.source_check_history
            else settings.backfill_releases,
        ),
    )
    scheduler = Scheduler(
        store=store,
        index=SimpleIndex(
            settings.index_url, settings.cache_dir / "index", page_ttl_seconds=settings.page_ttl
        ),
        dispatcher=ActorDispatcher(actor),
        config=SchedulerConfig(
            poll_interval=settings.poll_interval,
            backfill_releases=settings.backfill_releases,
            stale_after=timedelta(seconds=settings.claim_timeout),
        ),
        observer=metrics,
        hooks=[
            closing_hook(PostgresCampaignStore(pool)),
            source_checks,
            *_checkpoints(settings, pool),
            *firehose_hooks(settings, store, ActorDispatcher(actor), metrics),
            *(hooks or []),
        ],
    )
    stop_on_signals(stop)
    leader = Leadership(settings.database_url, network_timeout=settings.network_timeout)
    logger.info("scheduler started; polling %s", settings.index_url)
    try:
        scheduler.run(leader, stop)
    finally:
        broker.close()
        pool.close()
    return 0


def checkpoint_hook(settings: Settings, pool: Pool) -> Callable[[], None]:
    """The scheduler hook that signs the fleet's checkpoints (the operator's key).

    Raises:
        UsageError: the signing key cannot sign checkpoints, or no key name is usable.
    """
    signing = operator_log_signing(settings)
    log = TransparencyLog(pool, settings.log_origin)
    logger.info(
        "checkpoints of %s every %g s at most, signed as %s",
        settings.log_origin,
        settings.checkpoint_interval,
        signing.name,
    )
    return Checkpointer(log, signing.signer, signing.name, interval=settings.checkpoint_interval)


def firehose_hooks(
    settings: Settings,
    store: SchedulerStore,
    dispatcher: Dispatcher,
    observer: SchedulerObserver | None = None,
) -> list[Callable[[], None]]:
    """The firehose as the scheduler's hook list (empty when ``feeds`` is off)."""
    if not settings.feeds:
        return []
    session = make_session()
    index = SimpleIndex(
        settings.index_url, settings.cache_dir / "index", page_ttl_seconds=settings.page_ttl
    )
    return [
        Firehose(
            store=store,
            index=index,
            dispatcher=dispatcher,
            changelog=ChangelogClient(xmlrpc_url(settings.index_url), session),
            updates=RssUpdates(rss_updates_url(settings.index_url), session),
            config=FirehoseConfig(
                follow=settings.follow, poll_interval=min(60.0, settings.poll_interval)
            ),
            observer=observer,
        )
    ]
