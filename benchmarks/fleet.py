"""Measure the fleet on this machine: throughput, bookkeeping overhead, memory, and a soak.

Usage::

    .venv/bin/python -m benchmarks.fleet [--releases 60] [--workers 2] [--report FILE]
    .venv/bin/python -m benchmarks.fleet --soak-minutes 30 --publish-every 20 [--report FILE]

Everything runs on loopback: a local fixture index serving genuine releases (each built
first the way a maintainer would, in the sandbox), a throwaway PostgreSQL database, its
own RabbitMQ queue, and the real scheduler and worker processes (``rebuilder scheduler``,
``rebuilder worker``). It needs the test wheelhouse (``python -m tests.support.wheelhouse
fetch``), Docker with the sandbox image, PostgreSQL and RabbitMQ.

Throughput mode publishes ``--releases`` releases at once, watches them all and times
the fleet until every wheel has a verdict. Overhead is the part of each attempt's
wall time (claim to recorded outcome) not spent in the rebuild pipeline itself
(``attempts.seconds``): claiming, signing, storing evidence, logging.

Soak mode publishes a new release every ``--publish-every`` seconds for
``--soak-minutes`` and samples each process's memory and open files, the build
containers and the queue latency (request to start) over time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker

from cli.broker import rabbitmq_broker
from rebuilder.attest.publish import load_or_create_key
from rebuilder.sandbox.docker import ROLE_BUILD, ROLE_LABEL, DockerSandbox
from rebuilder.sandbox.image import ensure_image
from rebuilder.store.db import open_pool
from rebuilder.store.migrate import migrate
from rebuilder.store.repository import PostgresStore
from scheduler.loop import Scheduler, SchedulerConfig
from tests.support.fleet import Fleet, fleet_env, open_files, rss_bytes
from tests.support.index_server import FixtureIndex
from tests.support.postgres import fresh_database
from tests.support.releases import SETUPTOOLS, maintainer_build, publish
from tests.support.wheelhouse import load_into

BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"
SDE = {"SOURCE_DATE_EPOCH": "1700000000"}
MiB = 1024 * 1024


@dataclass
class Samples:
    """Per-process memory and open files over time, and fleet-wide gauges."""

    rss: dict[str, list[int]] = field(default_factory=dict)
    fds: dict[str, list[int]] = field(default_factory=dict)
    containers: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def take(self, fleet: Fleet, client: docker.DockerClient, t: float) -> None:
        self.times.append(t)
        for name, proc in fleet.procs.items():
            rss, fds = rss_bytes(proc.pid), open_files(proc.pid)
            if rss is not None:
                self.rss.setdefault(name, []).append(rss)
            if fds is not None:
                self.fds.setdefault(name, []).append(fds)
        running = client.containers.list(
            all=True, sparse=True, filters={"label": f"{ROLE_LABEL}={ROLE_BUILD}"}
        )
        self.containers.append(len(running))


class Bench:
    def __init__(self, root: Path, workers: int) -> None:
        self.root = root
        self.workers = workers
        self.client = docker.from_env()
        self.image = ensure_image(client=self.client)
        self.sandbox = DockerSandbox(client=self.client)
        self.built = 0

    def release(self, index: FixtureIndex, n: int, version: str = "1.0") -> str:
        name = f"bench{n:04d}"
        made = maintainer_build(self.root, self.image, self.sandbox, version, SDE, name=name)
        publish(index, made, project=name)
        self.built += 1
        return name


def _fleet(root: Path, url: str, index: FixtureIndex, queue: str, workers: int) -> Fleet:
    key = root / "signing-key.pem"
    load_or_create_key(key)
    env = fleet_env(
        database_url=url,
        broker_url=BROKER_URL,
        queue=queue,
        index_url=index.url,
        root=root,
        key=key,
    )
    env["REBUILDER_CLAIM_TIMEOUT"] = "120"
    env["REBUILDER_LOG_FORMAT"] = "json"
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    fleet = Fleet(env, logs)
    fleet.start("scheduler", "scheduler")
    for n in range(1, workers + 1):
        fleet.start(f"worker-{n}", "worker")
    return fleet


def _attempt_rows(store: PostgresStore) -> list[tuple[float, float, float, float, str]]:
    """(requested, started, finished, pipeline seconds, verdict) of the finished attempts."""
    with store.connection() as conn:
        rows = conn.execute(
            """
            SELECT extract(epoch FROM requested_at), extract(epoch FROM started_at),
                extract(epoch FROM finished_at), seconds, verdict
            FROM attempts WHERE status = 'done' ORDER BY id
            """
        ).fetchall()
    return [(float(a), float(b), float(c), float(d or 0), str(e)) for a, b, c, d, e in rows]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def throughput(args: argparse.Namespace, root: Path) -> str:
    bench = Bench(root, args.workers)
    queue = f"rebuilds-bench-{uuid.uuid4().hex[:8]}"
    with FixtureIndex() as index, fresh_database() as url:
        load_into(index, only=[SETUPTOOLS])
        t0 = time.monotonic()
        names = [bench.release(index, n) for n in range(args.releases)]
        print(
            f"built {len(names)} maintainer releases in {time.monotonic() - t0:.0f} s",
            file=sys.stderr,
        )
        migrate(url)
        pool = open_pool(url, max_size=2)
        store = PostgresStore(pool)
        fleet = _fleet(root, url, index, queue, args.workers)
        samples = Samples()
        try:
            start = time.monotonic()
            store.watch_add(names)
            while True:
                samples.take(fleet, bench.client, time.monotonic() - start)
                done = len(_attempt_rows(store))
                if done >= len(names):
                    break
                if time.monotonic() - start > args.timeout:
                    print(f"timeout with {done}/{len(names)} done", file=sys.stderr)
                    break
                time.sleep(1)
            rows = _attempt_rows(store)
        finally:
            codes = fleet.stop_all()
            pool.close()
            _drop_queue(queue)
    return _throughput_report(args, rows, samples, codes)


def _throughput_report(
    args: argparse.Namespace,
    rows: list[tuple[float, float, float, float, str]],
    samples: Samples,
    codes: dict[str, int],
) -> str:
    first = min(r[0] for r in rows)
    last = max(r[2] for r in rows)
    span = last - first
    per_hour = len(rows) / span * 3600 if span else 0.0
    held = [r[2] - r[1] for r in rows]
    pipeline = [r[3] for r in rows]
    overhead = [h - p for h, p in zip(held, pipeline, strict=True)]
    share = sum(overhead) / sum(held) if sum(held) else 0.0
    verdicts: dict[str, int] = {}
    for r in rows:
        verdicts[r[4]] = verdicts.get(r[4], 0) + 1
    lines = [
        f"### Fleet throughput: {len(rows)} wheels, {args.workers} worker(s)",
        "",
        f"- command: `python -m benchmarks.fleet --releases {args.releases} "
        f"--workers {args.workers}`",
        f"- verdicts: {', '.join(f'{k} {v}' for k, v in sorted(verdicts.items()))}",
        f"- first request to last outcome: {span:.1f} s -> **{per_hour:.0f} rebuilds/hour**",
        f"- per attempt, claim to recorded outcome: median {statistics.median(held):.2f} s, "
        f"of which the rebuild pipeline {statistics.median(pipeline):.2f} s",
        f"- fleet overhead (claim, sign, evidence to blobs, log append, record): median "
        f"{statistics.median(overhead):.3f} s, p95 {_pct(overhead, 0.95):.3f} s, "
        f"**{share:.1%}** of attempt time",
        "- peak resident memory: "
        + ", ".join(f"{n} {max(v) / MiB:.0f} MiB" for n, v in sorted(samples.rss.items())),
        f"- processes stopped cleanly: {all(c == 0 for c in codes.values())} ({codes})",
    ]
    return "\n".join(lines) + "\n"


def corpus(args: argparse.Namespace, root: Path) -> str:
    """The fleet on real releases from the configured index (live PyPI by default)."""
    from rebuilder.index.simple import SimpleIndex  # noqa: PLC0415
    from rebuilder.settings import Settings  # noqa: PLC0415
    from rebuilder.spec import parse_spec  # noqa: PLC0415
    from rebuilder.worker.queue import (  # noqa: PLC0415
        ActorDispatcher,
        JobRunner,
        Priority,
        declare_rebuild_actor,
    )

    settings = Settings()
    specs = [
        line.split("#")[0].strip()
        for line in args.corpus.read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    queue = f"rebuilds-bench-{uuid.uuid4().hex[:8]}"
    index = SimpleIndex(settings.index_url, settings.cache_dir / "index")
    with fresh_database() as url:
        migrate(url)
        pool = open_pool(url, max_size=2)
        store = PostgresStore(pool)
        key = root / "signing-key.pem"
        load_or_create_key(key)
        env = fleet_env(
            database_url=url,
            broker_url=BROKER_URL,
            queue=queue,
            index_url=settings.index_url,
            root=root,
            key=key,
        )
        # Warm caches: the same downloads, index pages and uv cache as `rebuilder check`.
        env["REBUILDER_CACHE_DIR"] = str(settings.cache_dir)
        env["REBUILDER_PAGE_TTL"] = str(settings.page_ttl)
        env["REBUILDER_CLAIM_TIMEOUT"] = "300"
        env["REBUILDER_BUILD_TIMEOUT"] = str(settings.build_timeout)
        logs = root / "logs"
        logs.mkdir(exist_ok=True)
        fleet = Fleet(env, logs)
        broker = rabbitmq_broker(BROKER_URL)

        def no_runner() -> JobRunner:
            raise RuntimeError("this process only sends")

        dispatcher = ActorDispatcher(declare_rebuild_actor(broker, no_runner, queue_name=queue))
        wanted: list[int] = []
        for text in specs:
            spec = parse_spec(text)
            assert spec.version is not None, f"{text}: the corpus pins versions"
            files = list(index.release_files(spec.project, spec.version))
            rows = store.record_release(spec.project, spec.version, files)
            wanted += [r.id for r in rows if r.kind.value == "wheel"]
        samples = Samples()
        client = docker.from_env()
        try:
            for n in range(1, args.workers + 1):
                fleet.start(f"worker-{n}", "worker")
            time.sleep(3)
            start = time.monotonic()
            ids = store.request_attempts_bulk(wanted, int(Priority.NEW_RELEASE))
            for attempt in ids:
                dispatcher.enqueue(attempt, Priority.NEW_RELEASE)
            store.mark_dispatched(ids)
            while len(_attempt_rows(store)) < len(ids):
                samples.take(fleet, client, time.monotonic() - start)
                if time.monotonic() - start > args.timeout:
                    print("timeout", file=sys.stderr)
                    break
                time.sleep(1)
            rows = _attempt_rows(store)
        finally:
            codes = fleet.stop_all()
            pool.close()
            broker.close()
            _drop_queue(queue)
    args.releases = len(specs)
    return _throughput_report(args, rows, samples, codes).replace(
        f"--releases {len(specs)}", f"--corpus {args.corpus.name}"
    )


def campaign_latency(args: argparse.Namespace, root: Path) -> str:
    """Time from starting a campaign to its first result, with a routine backlog queued."""
    from rebuilder.campaigns.campaign import start as start_campaign  # noqa: PLC0415
    from rebuilder.campaigns.selection import Selection  # noqa: PLC0415
    from rebuilder.campaigns.store import PostgresCampaignStore  # noqa: PLC0415
    from rebuilder.index.simple import SimpleIndex  # noqa: PLC0415
    from rebuilder.worker.queue import (  # noqa: PLC0415
        ActorDispatcher,
        JobRunner,
        Priority,
        declare_rebuild_actor,
    )
    from tests.support.dists import (  # noqa: PLC0415
        SdistSpec,
        in_tree_backend_members,
        make_wheel,
        write_sdist,
    )

    bench = Bench(root, args.workers)
    queue = f"rebuilds-bench-{uuid.uuid4().hex[:8]}"
    with FixtureIndex() as index, fresh_database() as url:
        load_into(index, only=[SETUPTOOLS])
        urgent = bench.release(index, 0)
        wheels = root / "backlog"
        wheels.mkdir()
        names = [f"routine{n:04d}" for n in range(args.backlog)]
        for name in names:
            members = in_tree_backend_members(name, "1.0")
            sdist = write_sdist(wheels / f"{name}-1.0.tar.gz", SdistSpec(name, "1.0", members))
            index.add_path(name, sdist)
            index.add_path(name, make_wheel(wheels, name, "1.0", generator="in-tree"))
        migrate(url)
        pool = open_pool(url, max_size=4)
        store = PostgresStore(pool)
        source = SimpleIndex(index.url, root / "index-cache")
        file_ids = []
        for name in names:
            rows = store.record_release(name, "1.0", list(source.release_files(name, "1.0")))
            file_ids += [r.id for r in rows if r.kind.value == "wheel"]
        broker = rabbitmq_broker(BROKER_URL)

        def no_runner() -> JobRunner:
            raise RuntimeError("this process only sends")

        dispatcher = ActorDispatcher(declare_rebuild_actor(broker, no_runner, queue_name=queue))
        backlog = store.request_attempts_bulk(file_ids, int(Priority.BACKFILL))
        for attempt in backlog:
            dispatcher.enqueue(attempt, Priority.BACKFILL)
        store.mark_dispatched(backlog)
        fleet = _fleet(root, url, index, queue, args.workers)
        try:
            deadline = time.monotonic() + 120
            while len(store.running()) < args.workers and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(3)  # the workers are well into their routine jobs
            t0 = time.monotonic()
            t0_wall = time.time()
            started = start_campaign(
                "latency",
                Selection(specs=(f"{urgent}==1.0",)),
                store=PostgresCampaignStore(pool),
                index=source,
                dispatcher=dispatcher,
            )

            def wheel_rows() -> list[Any]:
                found = store.latest_verdicts(project=urgent)
                return [r for r in found if r.filename.endswith(".whl")]

            while not wheel_rows():
                time.sleep(0.1)
            latency = time.monotonic() - t0
            (row,) = wheel_rows()
            attempt = store.attempt(row.attempt_id)
            assert attempt is not None and attempt.started_at and attempt.finished_at
            waited = (attempt.started_at - attempt.requested_at).total_seconds()
            rebuild = attempt.seconds or 0.0
            routine_rows = [r for r in _attempt_rows(store) if r[0] < t0_wall]
            routine_done = len(routine_rows)
            routine = [r[3] for r in routine_rows] or [0.0]
        finally:
            codes = fleet.stop_all()
            pool.close()
            broker.close()
            _drop_queue(queue)
    del started
    return (
        "\n".join(
            [
                f"### Campaign latency: a backlog of {args.backlog} routine jobs, "
                f"{args.workers} worker(s)",
                "",
                "- command: `python -m benchmarks.fleet --campaign-latency "
                f"--backlog {args.backlog} --workers {args.workers}`",
                f"- campaign start to its first result: **{latency:.1f} s**",
                f"- of which waiting for a free worker (request to claim): {waited:.1f} s; "
                f"the campaign's rebuild itself {rebuild:.1f} s",
                f"- a routine rebuild takes {statistics.median(routine):.1f} s (median); "
                f"{routine_done} routine jobs had finished when the campaign's result arrived",
                f"- target (one rebuild + 5 s = {rebuild + 5:.1f} s): "
                + ("met" if latency <= rebuild + 5 else "NOT met"),
                f"- processes stopped cleanly: {all(c == 0 for c in codes.values())}",
            ]
        )
        + "\n"
    )


def backfill(args: argparse.Namespace, root: Path) -> str:
    """Time enqueueing a backfill: attempts created in the database and sent to RabbitMQ."""
    from rebuilder.worker.queue import (  # noqa: PLC0415
        ActorDispatcher,
        JobRunner,
        Priority,
        declare_rebuild_actor,
    )

    del root
    queue = f"rebuilds-bench-{uuid.uuid4().hex[:8]}"
    with fresh_database() as url:
        migrate(url)
        pool = open_pool(url, max_size=2)
        store = PostgresStore(pool)
        with store.connection() as conn, conn.transaction():
            conn.execute("INSERT INTO projects (name) VALUES ('backfill')")
            conn.execute("INSERT INTO releases (project, version) VALUES ('backfill', '1.0')")
            rows = conn.execute(
                """
                INSERT INTO files (release_id, filename, kind, url, sha256)
                SELECT r.id, 'backfill-1.0-' || g || '-py3-none-any.whl', 'wheel',
                       'http://127.0.0.1:9/' || g, encode(sha256(g::text::bytea), 'hex')
                FROM releases r, generate_series(1, %s) AS g
                RETURNING id
                """,
                (args.backfill,),
            ).fetchall()
        file_ids = [int(r[0]) for r in rows]
        broker = rabbitmq_broker(BROKER_URL)

        def no_runner() -> JobRunner:
            raise RuntimeError("this process only sends")

        dispatcher = ActorDispatcher(declare_rebuild_actor(broker, no_runner, queue_name=queue))
        scheduler = Scheduler(
            store=store,
            index=_NoIndex(),
            dispatcher=dispatcher,
            config=SchedulerConfig(redispatch_after=timedelta(0)),
        )
        try:
            t0 = time.monotonic()
            ids = store.request_attempts_bulk(file_ids, int(Priority.BACKFILL))
            t1 = time.monotonic()
            scheduler.recover()  # one scheduler tick's dispatch: the first window
            t2 = time.monotonic()
            depth, sent = store.queue_depth(), store.in_flight()
        finally:
            pool.close()
            broker.close()
            _drop_queue(queue)
    return (
        "\n".join(
            [
                f"### Enqueueing a backfill of {len(ids):,} files",
                "",
                f"- command: `python -m benchmarks.fleet --backfill {args.backfill}`",
                "- attempts created and durable in PostgreSQL (one statement): "
                f"**{t1 - t0:.2f} s** (queue depth {depth:,})",
                f"- first dispatch window handed to RabbitMQ by a scheduler tick: {t2 - t1:.2f} s "
                f"({sent:,} messages, {sent / max(t2 - t1, 1e-9):,.0f}/s with publisher confirms)",
                f"- the rest is sent as workers take messages (at most "
                f"{SchedulerConfig().dispatch_window:,} wait in RabbitMQ); sending all "
                f"{len(ids):,} at once would take about "
                f"{len(ids) / max(sent / (t2 - t1), 1):.0f} s",
            ]
        )
        + "\n"
    )


class _NoIndex:
    def refresh(self, project: str) -> list[Any]:
        raise AssertionError(f"the backfill benchmark polls nothing ({project})")


def soak(args: argparse.Namespace, root: Path) -> str:
    bench = Bench(root, args.workers)
    queue = f"rebuilds-soak-{uuid.uuid4().hex[:8]}"
    with FixtureIndex() as index, fresh_database() as url:
        load_into(index, only=[SETUPTOOLS])
        migrate(url)
        pool = open_pool(url, max_size=2)
        store = PostgresStore(pool)
        fleet = _fleet(root, url, index, queue, args.workers)
        samples = Samples()
        published = failed_publish = 0
        try:
            start = time.monotonic()
            end = start + args.soak_minutes * 60
            next_publish = start
            while time.monotonic() < end:
                now = time.monotonic()
                if now >= next_publish:
                    next_publish = now + args.publish_every
                    try:
                        name = bench.release(index, published + failed_publish)
                    except Exception as exc:  # the publisher's own build, not the fleet's
                        failed_publish += 1
                        print(f"publishing failed ({exc}); going on", file=sys.stderr)
                        continue
                    store.watch_add([name])
                    published += 1
                samples.take(fleet, bench.client, now - start)
                time.sleep(5)
            deadline = time.monotonic() + 300
            while len(_attempt_rows(store)) < published and time.monotonic() < deadline:
                time.sleep(2)
            rows = _attempt_rows(store)
        finally:
            codes = fleet.stop_all()
            pool.close()
            _drop_queue(queue)
    return _soak_report(args, published, rows, samples, codes)


def _soak_report(
    args: argparse.Namespace,
    published: int,
    rows: list[tuple[float, float, float, float, str]],
    samples: Samples,
    codes: dict[str, int],
) -> str:
    waits = [1000 * (r[1] - r[0]) for r in rows]  # ms
    half = len(rows) // 2
    window = max(1, int(300 / 5))  # samples are 5 s apart: 5 minutes
    lines = [
        f"### Soak: {args.soak_minutes:g} min, a release every {args.publish_every:g} s, "
        f"{args.workers} worker(s)",
        "",
        f"- command: `python -m benchmarks.fleet --soak-minutes {args.soak_minutes:g} "
        f"--publish-every {args.publish_every:g} --workers {args.workers}`",
        f"- releases published {published}, rebuilt {len(rows)}",
        f"- queue latency (request to claim): median {statistics.median(waits):.0f} ms, "
        f"p95 {_pct(waits, 0.95):.0f} ms, max {max(waits):.0f} ms; p95 first half "
        f"{_pct(waits[:half], 0.95):.0f} ms, second half {_pct(waits[half:], 0.95):.0f} ms",
        "",
        "| process | RSS minutes 5-10 (MiB) | RSS last 5 min (MiB) | peak (MiB) "
        "| open files minutes 5-10 | open files last 5 min |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(samples.rss):
        rss = samples.rss[name]
        fds = samples.fds.get(name, [0])
        early = slice(window, 2 * window)  # after start-up has settled
        lines.append(
            f"| {name} | {statistics.mean(rss[early] or rss) / MiB:.1f} | "
            f"{statistics.mean(rss[-window:]) / MiB:.1f} | {max(rss) / MiB:.1f} | "
            f"{max(fds[early] or fds)} | {max(fds[-window:])} |"
        )
    lines += [
        "",
        f"- build containers present: max {max(samples.containers)}, at the end "
        f"{samples.containers[-1]}",
        f"- processes stopped cleanly: {all(c == 0 for c in codes.values())} ({codes})",
    ]
    return "\n".join(lines) + "\n"


def _drop_queue(queue: str) -> None:
    broker = rabbitmq_broker(BROKER_URL)
    try:
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            broker.channel.queue_delete(name)
    finally:
        broker.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--soak-minutes", type=float, default=0.0)
    parser.add_argument("--publish-every", type=float, default=20.0)
    parser.add_argument("--report", type=Path)
    parser.add_argument("--corpus", type=Path, help="NAME==VERSION lines, from the live index")
    parser.add_argument("--campaign-latency", action="store_true")
    parser.add_argument("--backlog", type=int, default=1000)
    parser.add_argument("--backfill", type=int, default=0, help="time enqueueing N files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rebuilder-bench-") as tmp:
        root = Path(tmp)
        if args.corpus:
            text = corpus(args, root)
        elif args.backfill:
            text = backfill(args, root)
        elif args.campaign_latency:
            text = campaign_latency(args, root)
        elif args.soak_minutes:
            text = soak(args, root)
        else:
            text = throughput(args, root)
    print(text)
    if args.report:
        args.report.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
