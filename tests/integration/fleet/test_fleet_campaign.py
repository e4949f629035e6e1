"""A campaign on the real fleet: it overtakes a backlog of routine jobs already queued in
RabbitMQ, survives its worker and its scheduler being SIGKILLed, reports the tampered
file as a mismatch, and is closed by the scheduler when every file is judged."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli.broker import rabbitmq_broker
from rebuilder.index.simple import SimpleIndex
from rebuilder.sandbox.docker import DockerSandbox
from rebuilder.sandbox.image import ImageRef
from rebuilder.worker.queue import (
    ActorDispatcher,
    JobRunner,
    Priority,
    declare_rebuild_actor,
)
from tests.integration.fleet.conftest import BROKER_URL, FleetSetup
from tests.support.dists import SdistSpec, in_tree_backend_members, make_wheel, write_sdist
from tests.support.fleet import Fleet, wait_for
from tests.support.index_server import FixtureIndex
from tests.support.releases import maintainer_build, publish, tamper

pytestmark = pytest.mark.docker

SDE = {"SOURCE_DATE_EPOCH": "1700000000"}
BACKLOG = 12


@pytest.fixture
def setup(fleet_setup: FleetSetup) -> FleetSetup:
    return fleet_setup


def slow_project(tmp: Path, index: FixtureIndex, name: str, seconds: float) -> None:
    """A release whose build sleeps: routine work that keeps a worker busy."""
    members = in_tree_backend_members(name, "1.0", build_prelude=f"time.sleep({seconds})")
    sdist = write_sdist(tmp / f"{name}-1.0.tar.gz", SdistSpec(name, "1.0", members))
    folder = tmp / f"wheel-{name}"
    folder.mkdir()
    wheel = make_wheel(folder, name, "1.0", generator="in-tree")
    now = datetime.now(UTC)
    index.add_path(name, sdist, now)
    index.add_path(name, wheel, now)


def queue_backlog(setup: FleetSetup, names: list[str]) -> list[int]:
    """Record the releases and send their wheels at backfill priority, as a poll would."""
    index = SimpleIndex(setup.index.url, Path(setup.env["REBUILDER_CACHE_DIR"]) / "bl")
    file_ids = []
    for name in names:
        rows = setup.store.record_release(name, "1.0", list(index.release_files(name, "1.0")))
        file_ids += [r.id for r in rows if r.filename.endswith(".whl")]
    ids = setup.store.request_attempts_bulk(file_ids, int(Priority.BACKFILL))
    broker = rabbitmq_broker(BROKER_URL)

    def no_runner() -> JobRunner:
        raise AssertionError("the test only sends")

    dispatcher = ActorDispatcher(declare_rebuild_actor(broker, no_runner, queue_name=setup.queue))
    for attempt in ids:
        dispatcher.enqueue(attempt, Priority.BACKFILL)
    setup.store.mark_dispatched(ids)
    broker.close()
    return ids


def campaign(setup: FleetSetup, *args: str) -> dict[str, object]:
    flag = [] if args[0] == "report" else ["--json"]
    done = subprocess.run(
        [sys.executable, "-m", "cli", "campaign", *args, *flag],
        env=setup.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout)
    return found


def finished_backlog(setup: FleetSetup, backlog: list[int]) -> int:
    return sum(
        1
        for a in backlog
        if (row := setup.store.attempt(a)) is not None and row.finished_at is not None
    )


def test_campaign_overtakes_backlog_and_survives_a_worker_kill(
    tmp_path: Path, setup: FleetSetup, sandbox_image: ImageRef, sandbox: DockerSandbox
) -> None:
    genuine = maintainer_build(tmp_path, sandbox_image, sandbox, "1.0", SDE)
    publish(setup.index, genuine)
    evil = maintainer_build(tmp_path, sandbox_image, sandbox, "1.0", SDE, name="evil")
    publish(setup.index, evil, tamper(evil.wheel, "evil/__init__.py"), project="evil")
    slow_project(tmp_path, setup.index, "hostage", seconds=15)
    names = [f"routine{n:02d}" for n in range(BACKLOG)]
    for name in names:
        slow_project(tmp_path, setup.index, name, seconds=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    fleet = Fleet(setup.env, logs)
    try:
        backlog = queue_backlog(setup, names)
        fleet.start("worker-1", "worker")
        wait_for("the backlog to start", setup.store.running, timeout=60)

        # 1. a campaign queued behind the backlog is served next
        started = time.monotonic()
        made = campaign(
            setup,
            "start",
            "--name",
            "backend compromise",
            "--select",
            "demo==1.0",
            "--select",
            "evil==1.0",
        )
        campaign_id = int(str(made["id"]))

        def wheel_verdicts() -> dict[str, str]:
            return {
                r.filename: r.verdict.value
                for p in ("demo", "evil")
                for r in setup.store.latest_verdicts(project=p)
                if r.filename.endswith(".whl")
            }

        verdicts = wait_for(
            "the campaign's verdicts", lambda: wheel_verdicts() or None, timeout=120
        )
        first_result = time.monotonic() - started
        verdicts = wait_for(
            "both wheels' verdicts",
            lambda: wheel_verdicts() if len(wheel_verdicts()) == 2 else None,
            timeout=120,
        )
        assert verdicts == {genuine.wheel.name: "reproducible", evil.wheel.name: "mismatch"}
        # The worker held at most one routine message when the campaign arrived.
        assert finished_backlog(setup, backlog) <= 2, fleet.log_text()
        assert first_result < 60

        # 2. a campaign file whose worker is SIGKILLed mid-build is finished by another
        hostage = campaign(setup, "start", "--name", "hostage", "--select", "hostage==1.0")
        hostage_id = int(str(hostage["id"]))
        running = wait_for(
            "the hostage build",
            lambda: [r for r in setup.store.running() if r.filename.startswith("hostage-")],
            timeout=90,
        )
        fleet.kill("worker-1")
        fleet.start("scheduler", "scheduler")
        time.sleep(2)
        fleet.kill("scheduler")  # the scheduler too dies mid-campaign ...
        fleet.start("scheduler-2", "scheduler")  # ... and its successor takes the claim back
        fleet.start("worker-2", "worker")
        wait_for(
            "the hostage verdict",
            lambda: [
                r
                for r in setup.store.latest_verdicts(project="hostage")
                if r.filename.endswith(".whl")
            ],
            timeout=120,
        )
        row = setup.store.attempt(running[0].attempt_id)
        assert row is not None and (row.worker, row.tries) == ("worker-2", 2)

        # 3. the scheduler closes finished campaigns; the report says what verified
        wait_for(
            "the campaigns to close",
            lambda: all(
                campaign(setup, "status", str(c))["status"] == "done"
                for c in (campaign_id, hostage_id)
            ),
            timeout=60,
        )
        report = campaign(setup, "report", str(campaign_id), "--format", "json")
        summary = report["summary"]
        assert isinstance(summary, dict)
        assert (summary["verified"], summary["mismatched"], summary["pending"]) == (1, 1, 0)
    finally:
        codes = fleet.stop_all()
    assert all(code == 0 for code in codes.values()), (codes, fleet.log_text())
