"""The fleet under faults, on the machine's real services: the broker restarted with
jobs queued, PostgreSQL and the Docker engine restarted mid-build, the evidence disk
full. Afterwards every queued job has exactly one outcome, no envelope is logged twice,
and no work folder or build container is left behind.

These restart the machine's own services (root only); they run last and one at a time.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rebuilder.sandbox.docker import DockerSandbox
from rebuilder.sandbox.image import ImageRef
from tests.integration.fleet.conftest import FleetSetup
from tests.support import services
from tests.support.fleet import Fleet, source_checks_pending, wait_for
from tests.support.releases import maintainer_build, publish

pytestmark = pytest.mark.docker

SDE = {"SOURCE_DATE_EPOCH": "1700000000"}


@pytest.fixture
def setup(fleet_setup: FleetSetup) -> FleetSetup:
    return fleet_setup


def outcomes_are_whole(setup: FleetSetup) -> None:
    """Every attempt and source check done, once each; every logged envelope attested once.

    A release's source check runs beside its wheel's rebuild and may finish after it: the
    fleet is waited on until none is left, then nothing may remain in the work folder.
    """
    wait_for(
        "every source check to finish",
        lambda: source_checks_pending(setup.store) == 0,
        timeout=240,
    )
    with setup.store.connection() as conn:
        not_done = conn.execute("SELECT count(*) FROM attempts WHERE status <> 'done'").fetchone()
        checks = conn.execute(
            "SELECT count(*), count(DISTINCT release_id) FROM source_checks"
        ).fetchone()
        per_file = conn.execute(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM attempts GROUP BY file_id) c"
        ).fetchone()
        logged = conn.execute("SELECT count(*), count(DISTINCT entry) FROM log_entries").fetchone()
        attested = conn.execute(
            "SELECT (SELECT count(*) FROM attestations)"
            " + (SELECT count(*) FROM source_attestations)"  # the releases' source checks
        ).fetchone()
    assert not_done == (0,)
    assert per_file == (1,)
    assert checks is not None and checks[0] == checks[1]
    assert logged is not None and logged[0] == logged[1]
    assert attested == (logged[0],)
    work = Path(setup.env["REBUILDER_DATA_DIR"]) / "work"
    assert not work.exists() or not list(work.iterdir())


def reproducible(setup: FleetSetup, project: str) -> bool:
    rows = setup.store.latest_verdicts(project=project)
    return bool(rows) and all(r.verdict.value == "reproducible" for r in rows)


def test_the_fleet_rides_out_restarts_of_its_services_and_a_full_disk(
    tmp_path: Path, setup: FleetSetup, sandbox_image: ImageRef, sandbox: DockerSandbox
) -> None:
    releases = {
        name: maintainer_build(tmp_path, sandbox_image, sandbox, "1.0", SDE, name=name)
        for name in ("alpha", "bravo", "charlie", "delta", "echo")
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    fleet = Fleet(setup.env, logs)
    try:
        fleet.start("scheduler", "scheduler")

        # 1. RabbitMQ restarted while jobs wait in the queue (no worker running)
        for name in ("alpha", "bravo"):
            publish(setup.index, releases[name], project=name)
        setup.store.watch_add(["alpha", "bravo"])
        wait_for("jobs to be queued", lambda: setup.store.queue_depth() == 2, timeout=60)
        services.restart_rabbitmq()
        fleet.start("worker-1", "worker")
        wait_for(
            "alpha and bravo",
            lambda: reproducible(setup, "alpha") and reproducible(setup, "bravo"),
            timeout=180,
        )

        # 2. PostgreSQL restarted while a rebuild runs
        publish(setup.index, releases["charlie"], project="charlie")
        setup.store.watch_add(["charlie"])
        wait_for("charlie to start", setup.store.running, timeout=60)
        services.restart_postgres()
        wait_for("charlie", lambda: reproducible(setup, "charlie"), timeout=240)

        # 3. the Docker engine restarted while a rebuild runs
        publish(setup.index, releases["delta"], project="delta")
        setup.store.watch_add(["delta"])
        wait_for("delta to start", setup.store.running, timeout=60)
        services.restart_docker()
        wait_for("delta", lambda: reproducible(setup, "delta"), timeout=240)

        # 4. the evidence disk is full: the attempt waits, then succeeds once there is room
        blobs = Path(setup.env["REBUILDER_DATA_DIR"]) / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(blobs)], check=True)
        try:
            filler = blobs / "filler"
            # dd stops at "no space left on device": the tmpfs is full
            subprocess.run(
                ["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True, check=False
            )
            publish(setup.index, releases["echo"], project="echo")
            setup.store.watch_add(["echo"])
            wait_for(
                "echo to be given back for lack of space",
                lambda: _tries(setup, "echo") >= 2,
                timeout=120,
            )
            filler.unlink()
            wait_for("echo", lambda: reproducible(setup, "echo"), timeout=240)
        finally:
            subprocess.run(["umount", "-l", str(blobs)], check=False)
        outcomes_are_whole(setup)
    finally:
        codes = fleet.stop_all()
    assert all(code == 0 for code in codes.values()), (codes, fleet.log_text())


def _tries(setup: FleetSetup, project: str) -> int:
    """How many times the attempt of ``project`` was claimed so far."""
    with setup.store.connection() as conn:
        row = conn.execute(
            "SELECT coalesce(max(a.tries), 0) FROM attempts a JOIN files f ON f.id = a.file_id "
            "JOIN releases r ON r.id = f.release_id WHERE r.project = %s",
            (project,),
        ).fetchone()
    return 0 if row is None else int(row[0])
