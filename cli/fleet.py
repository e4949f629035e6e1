"""The fleet's operator commands: ``db migrate``, ``watch``, ``status``."""

from __future__ import annotations

import argparse
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rebuilder.errors import UsageError

if TYPE_CHECKING:
    from rebuilder.settings import Settings
    from rebuilder.store.repository import PostgresStore
    from rebuilder.store.workers import WorkerRow


def add_fleet_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the fleet commands on the main parser."""
    db = sub.add_parser("db", help="the fleet's PostgreSQL database")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("migrate", help="apply the pending schema migrations (safe to race)")

    watch = sub.add_parser("watch", help="the projects whose new releases are rebuilt")
    watch_sub = watch.add_subparsers(dest="watch_command", required=True, metavar="ACTION")
    for action, text in (("add", "watch these projects"), ("remove", "stop watching them")):
        parser = watch_sub.add_parser(action, help=text)
        parser.add_argument("names", nargs="+", metavar="NAME")
    listing = watch_sub.add_parser("list", help="the watched projects")
    listing.add_argument("--prefix", default="", help="only names starting with this")

    sub.add_parser("status", help="queue depth, running jobs, workers and verdict counts")

    worker = sub.add_parser(
        "worker",
        help="run a rebuild worker (consumes the queue until SIGTERM)",
        description="Consume attempt ids from RabbitMQ and rebuild them in the sandbox. "
        "Any number may run, on any host that reaches the same database and broker. "
        "REBUILDER_WORKER_THREADS rebuilds run at once.",
    )
    worker.add_argument("--threads", type=int, help="rebuilds at once (default: settings)")
    sub.add_parser(
        "scheduler",
        help="run the scheduler (polls the index, dispatches, recovers lost jobs)",
        description="Poll the watched projects for new releases and send their rebuilds to "
        "the workers. Run one or more: a database lock keeps all but one idle.",
    )
    health = sub.add_parser(
        "health",
        help="exit 0 when this host's fleet process is healthy (for container healthchecks)",
        description="database: PostgreSQL answers and the schema is current. broker: RabbitMQ "
        "answers. worker: a worker of this host beat recently.",
    )
    health.add_argument("what", choices=("database", "broker", "worker"))
    fleet = sub.add_parser(
        "fleet",
        help="start the whole fleet on this machine: scheduler, workers, web app",
        description="Migrate the database, make sure the sandbox image and the signing key "
        "exist, then run the scheduler, the workers and the status web app as supervised "
        "child processes (restarted if they die) until interrupted.",
    )
    fleet.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    fleet.add_argument("--no-web", action="store_true", help="do not start the web app")


@contextmanager
def _store(settings: Settings) -> Iterator[PostgresStore]:
    from rebuilder.store.db import open_pool  # noqa: PLC0415 - each command imports what it uses
    from rebuilder.store.repository import PostgresStore  # noqa: PLC0415

    pool = open_pool(settings.database_url, max_size=2, timeout=10.0)
    try:
        yield PostgresStore(pool)
    finally:
        pool.close()


def db_command(args: argparse.Namespace, settings: Settings) -> int:
    del args  # one action so far: migrate
    from rich.console import Console  # noqa: PLC0415 - each command imports what it uses

    from rebuilder.store.migrate import migrate  # noqa: PLC0415

    applied = migrate(settings.database_url)
    Console().print(
        f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "")
    )
    return 0


def watch_command(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console  # noqa: PLC0415 - each command imports what it uses
    from rich.markup import escape  # noqa: PLC0415

    from rebuilder.spec import parse_spec  # noqa: PLC0415

    console = Console()
    with _store(settings) as store:
        if args.watch_command == "list":
            for project in store.watched(prefix=args.prefix):
                console.print(escape(project.name))
            return 0
        names = [parse_spec(name).project for name in args.names]
        if args.watch_command == "add":
            changed = store.watch_add(names)
        else:
            changed = store.watch_remove(names)
        console.print(f"{args.watch_command}: {', '.join(changed) or 'nothing changed'}")
    return 0


def status_command(args: argparse.Namespace, settings: Settings) -> int:
    del args
    from rich.console import Console  # noqa: PLC0415 - each command imports what it uses
    from rich.markup import escape  # noqa: PLC0415

    from rebuilder.source import checks as sources  # noqa: PLC0415
    from rebuilder.verdict import Verdict  # noqa: PLC0415

    console = Console()
    with _store(settings) as store:
        counts = store.verdict_counts()
        console.print(f"queued: {store.queue_depth()}")
        running = store.running()
        console.print(f"running: {len(running)}")
        for row in running:
            console.print(
                f"  {escape(row.filename)} on {escape(row.worker)} since {row.started_at:%H:%M:%S}"
            )
        console.print("verdicts: " + ", ".join(f"{v.value} {counts.get(v, 0)}" for v in Verdict))
        with store.connection("counting source verdicts") as conn:
            source_counts = sources.verdict_counts(conn)
            source_queued, source_running = sources.queue_depth(conn)
            tracing = sources.running_by_worker(conn)
        console.print(
            "source checks: "
            + ", ".join(f"{v.value} {n}" for v, n in source_counts.items())
            + f" (queued {source_queued}, running {source_running})"
        )
        workers = store.workers()
        console.print(f"workers: {len(workers)}")
        now = datetime.now(UTC)
        for w in workers:
            silent = (now - w.heartbeat_at).total_seconds()
            if w.current_attempt:
                state = f"on attempt {w.current_attempt}"
            elif w.name in tracing:
                state = f"on source check {tracing[w.name]}"
            else:
                state = "idle"
            health = "" if silent < 60 else f" [yellow](silent for {silent:.0f} s)[/]"
            console.print(f"  {escape(w.name)} {state}{health}")
    return 0


def scheduler_command(args: argparse.Namespace, settings: Settings) -> int:
    del args
    from cli.scheduler import run_scheduler  # noqa: PLC0415 - the CLI wires all packages

    return run_scheduler(settings)


def live_workers(
    workers: Sequence[WorkerRow], host: str, limit: float, now: datetime
) -> list[WorkerRow]:
    """The workers of ``host`` that beat within ``limit`` seconds (``health worker``)."""
    return [w for w in workers if w.host == host and (now - w.heartbeat_at).total_seconds() < limit]


def health_command(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console  # noqa: PLC0415 - each command imports what it uses

    console = Console(stderr=True)
    if args.what == "broker":
        from cli.broker import rabbitmq_broker  # noqa: PLC0415 - pika on demand

        broker = rabbitmq_broker(settings.broker_url)
        try:
            broker.channel  # noqa: B018 - opening the channel is the check
        except Exception as exc:  # noqa: BLE001 - pika raises many unrelated errors
            console.print(f"broker: {exc}")
            return 1
        finally:
            broker.close()
        return 0
    with _store(settings) as store:
        if args.what == "database":
            store.queue_depth()
            return 0
        host = socket.gethostname()
        limit = max(60.0, settings.claim_timeout)
        fresh = live_workers(store.workers(), host, limit, datetime.now(UTC))
    if not fresh:
        console.print(f"no worker of {host} beat in the last {limit:.0f} s")
        return 1
    return 0


def worker_command(args: argparse.Namespace, settings: Settings) -> int:
    from cli.worker import run_worker  # noqa: PLC0415 - dramatiq on demand

    if args.threads is not None:
        settings = settings.model_copy(update={"worker_threads": args.threads})
    return run_worker(settings)


def fleet_command(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console  # noqa: PLC0415 - each command imports what it uses
    from rich.markup import escape  # noqa: PLC0415

    from cli.supervisor import plan_children, supervise  # noqa: PLC0415
    from cli.wiring import image_choice  # noqa: PLC0415 - docker on demand
    from rebuilder.attest.publish import load_or_create_key  # noqa: PLC0415
    from rebuilder.signals import stop_on_signals  # noqa: PLC0415
    from rebuilder.store.migrate import migrate  # noqa: PLC0415

    console = Console(stderr=True)
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    console.print("[bold]==>[/] preparing the database")
    migrate(settings.database_url)
    console.print("[bold]==>[/] checking the sandbox image (built on first use)")
    image = image_choice(settings)
    signer = load_or_create_key(settings.signing_key_path)
    log_dir = settings.fleet_dir / "logs"
    children = plan_children(
        workers=args.workers,
        web=not args.no_web,
        log_dir=log_dir,
        env=dict(os.environ),
        verbose=max(1, args.verbose),
    )
    console.print(
        f"[bold green]fleet starting[/]: 1 scheduler, {args.workers} worker(s)"
        + ("" if args.no_web else ", web app")
        + f"\n  index:       {escape(settings.index_url)}"
        + f"\n  sandbox:     {escape(image.digest)}"
        + f"\n  signing key: {escape(signer.key_id)}"
        + (
            ""
            if args.no_web
            else f"\n  status page: http://{settings.web_host}:{settings.web_port}/"
        )
        + f"\n  logs:        {escape(str(log_dir))}"
        + "\n  follow it:   rebuilder status | rebuilder watch add NAME | Ctrl-C stops"
    )
    stop = threading.Event()
    stop_on_signals(stop)
    supervise(children, stop)
    console.print("fleet stopped")
    return 0
