"""The fleet's operator commands: ``db migrate``, ``watch``, ``status``."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape

from rebuilder.settings import Settings
from rebuilder.spec import parse_spec
from rebuilder.store.db import open_pool
from rebuilder.store.migrate import migrate
from rebuilder.store.repository import PostgresStore
from rebuilder.verdict import Verdict


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

    sub.add_parser("status", help="queue depth, running jobs and verdict counts")


@contextmanager
def _store(settings: Settings) -> Iterator[PostgresStore]:
    pool = open_pool(settings.database_url, max_size=2, timeout=10.0)
    try:
        yield PostgresStore(pool)
    finally:
        pool.close()


def db_command(args: argparse.Namespace, settings: Settings) -> int:
    del args  # one action so far: migrate
    applied = migrate(settings.database_url)
    Console().print(
        f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "")
    )
    return 0


def watch_command(args: argparse.Namespace, settings: Settings) -> int:
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
    return 0
