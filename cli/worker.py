"""The worker process: consume attempt ids from RabbitMQ and run them until told to stop.

``rebuilder worker`` builds everything from the one Settings object: the database pool
(migrating the schema first, which is safe when several start at once), the blob store,
the signing key, the rebuild pipeline, the dramatiq worker. It registers itself in the
``workers`` table, beats while idle, and on SIGTERM/SIGINT finishes the running rebuild
(unstarted prefetched messages go back to RabbitMQ) before it retires.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import dramatiq

from cli.broker import rabbitmq_broker
from cli.rerun import image_describer
from rebuilder import __version__
from rebuilder.attest.publish import Attestor, load_or_create_key
from rebuilder.errors import RebuilderError
from rebuilder.sandbox.owners import (
    owner_labels,
    remove_dead_owners,
)
from rebuilder.second_opinion import ProjectLocks, SecondOpinionJudge
from rebuilder.settings import Settings
from rebuilder.signals import stop_on_signals
from rebuilder.source.job import (
    SourceAttestor,
    SourceCheckRunner,
    SourceRunnerConfig,
    WorkerPresence,
)
from rebuilder.source.store import PostgresSourceChecks
from rebuilder.store.blobs import BlobStore, store_evidence
from rebuilder.store.db import Pool, open_pool
from rebuilder.store.migrate import migrate
from rebuilder.store.repository import PostgresStore
from rebuilder.workdirs import sweep_dead
from rebuilder.worker.metrics import WorkerMetrics
from rebuilder.worker.queue import declare_rebuild_actor, declare_source_actor
from rebuilder.worker.runner import AttemptRunner, FileJudge, JudgeFactory, RunnerConfig

logger = logging.getLogger(__name__)

IDLE_BEAT_SECONDS = 15.0


class BlobEvidence:
    """Keeps evidence folders in the content-addressed blob store."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    def keep(self, folder: Path) -> dict[str, str]:
        return store_evidence(self._blobs, folder)


class OrphanSweeper:
    """Removes build containers left behind by killed workers on this Docker engine.

    Containers started on this host by a worker process that is gone are removed at
    once (they carry their owner's host and pid). As a fallback (a worker in another
    pid namespace, say) any build container older than the build time limit plus a
    margin belongs to nobody: a live worker stops its own build at that limit.
    """

    def __init__(self, build_timeout: float, *, every: float = 60.0) -> None:
        self._age = timedelta(seconds=build_timeout + 30.0)
        self._every = every
        self._last = 0.0

    def maybe_sweep(self) -> None:
        if time.monotonic() - self._last >= self._every:
            self.sweep()

    def sweep(self) -> None:
        from rebuilder.sandbox.docker import (  # noqa: PLC0415 - docker on demand
            connect,
            remove_orphans,
        )

        self._last = time.monotonic()
        try:
            client = connect()
            removed = remove_dead_owners(client)
            removed += remove_orphans(client, self._age)
        except Exception as exc:  # noqa: BLE001 - the engine away: the next sweep tries again
            logger.warning("could not sweep orphaned build containers: %s", exc)
            return
        if removed:
            logger.info("removed %d orphaned build containers", len(removed))


def default_worker_name() -> str:
    """``host:pid``: unique among live workers, readable on the status page."""
    return f"{socket.gethostname()}:{os.getpid()}"


def production_judges(settings: Settings) -> JudgeFactory:
    """A :class:`~rebuilder.worker.runner.JudgeFactory` over the real index, uv and Docker."""
    from cli.wiring import production_rebuilder  # noqa: PLC0415 - docker on demand

    locks = ProjectLocks()

    def make(image: str | None, evidence_root: Path) -> FileJudge:
        update: dict[str, object] = {"out_dir": evidence_root}
        if image is not None:
            update["image"] = image
        scoped = settings.model_copy(update=update)
        judge = production_rebuilder(scoped, labels=owner_labels())
        if not settings.second_opinion:
            return judge
        from cli.source_wiring import production_source_tracer  # noqa: PLC0415 - docker

        # The source check's evidence goes below the attempt's folder too: the rebuild
        # from git is copied into the wheel's evidence when the git-tag route takes it.
        return SecondOpinionJudge(judge, production_source_tracer(scoped), locks)

    return make


def production_source_runner(
    settings: Settings, pool: Pool, name: str, attestor: Attestor, presence: WorkerPresence
) -> SourceCheckRunner:
    """The runner of source checks (``trace_release`` messages) on the real git and index."""
    from cli.source_wiring import production_recorded_tracer  # noqa: PLC0415 - docker

    return SourceCheckRunner(
        store=PostgresSourceChecks(pool),
        tracer=production_recorded_tracer(settings),
        signer=SourceAttestor(signer=attestor.signer, builder_id=settings.builder_id),
        evidence=BlobEvidence(BlobStore(settings.blob_dir)),
        config=SourceRunnerConfig(
            worker=name,
            log_origin=settings.log_origin,
            work_root=settings.fleet_dir / "work",
            heartbeat_seconds=settings.claim_timeout / 6,
        ),
        presence=presence,
    )


def run_worker(settings: Settings, stop: threading.Event | None = None) -> int:
    """Run a worker until ``stop`` is set (or SIGTERM/SIGINT); the exit status."""
    stop = stop or threading.Event()
    threads = max(1, settings.worker_threads)
    name = settings.worker_name or default_worker_name()
    migrate(settings.database_url)
    pool = open_pool(
        settings.database_url,
        min_size=1,
        max_size=2 * threads + 2,
        network_timeout=settings.network_timeout,
    )
    store = PostgresStore(pool)
    metrics = WorkerMetrics()
    if settings.metrics_port:
        metrics.serve(settings.metrics_port)
    signer = Attestor(
        signer=load_or_create_key(settings.signing_key_path),
        builder_id=settings.builder_id,
        root=settings.fleet_dir / "attestations",
        describe_image=image_describer(settings),
    )
    runner = AttemptRunner(
        store=store,
        judges=production_judges(settings),
        signer=signer,
        evidence=BlobEvidence(BlobStore(settings.blob_dir)),
        config=RunnerConfig(
            worker=name,
            log_origin=settings.log_origin,
            work_root=settings.fleet_dir / "work",
            heartbeat_seconds=settings.claim_timeout / 6,
        ),
        observer=metrics,
    )
    source_runner = production_source_runner(settings, pool, name, signer, store)
    broker = rabbitmq_broker(settings.broker_url)
    declare_rebuild_actor(broker, lambda: runner, queue_name=settings.queue_name)
    declare_source_actor(broker, lambda: source_runner, queue_name=settings.queue_name)
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=1000)
    # One message in hand per thread: a campaign job sent later must not wait behind
    # routine jobs already prefetched by a busy worker.
    worker.queue_prefetch = threads
    stop_on_signals(stop)
    store.announce_worker(name, socket.gethostname(), os.getpid(), __version__)
    worker.start()
    logger.info("worker %s started (%d threads)", name, threads, extra={"worker": name})
    sweeper = OrphanSweeper(settings.build_timeout)
    sweeper.sweep()
    sweep_dead(settings.cache_dir / "work")  # work folders of killed processes
    try:
        while not stop.wait(IDLE_BEAT_SECONDS):
            sweeper.maybe_sweep()
            if not runner.busy() and not source_runner.busy():
                try:
                    store.worker_beat(name, None)
                except RebuilderError as exc:
                    logger.warning("worker heartbeat failed: %s", exc)
    finally:
        logger.info("worker %s stopping: finishing the running rebuild", name)
        worker.stop()
        try:
            store.retire_worker(name)
        except RebuilderError as exc:
            logger.warning("could not record the worker's stop: %s", exc)
        broker.close()
        pool.close()
    return 0
