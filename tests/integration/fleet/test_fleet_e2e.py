"""The fleet for real: scheduler and worker processes on PostgreSQL, RabbitMQ and Docker,
against a local fixture index. Releases appear, get rebuilt, judged, signed and logged;
a worker SIGKILLed mid-build and a scheduler SIGKILLed mid-run lose nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cli.main import main
from rebuilder.attest.bundle import bundle_path
from rebuilder.sandbox.docker import DockerSandbox
from rebuilder.sandbox.image import ImageRef
from rebuilder.store.records import AttemptStatus
from rebuilder.store.repository import PostgresStore
from rebuilder.verdict import Verdict
from tests.integration.fleet.conftest import FleetSetup
from tests.support.dists import SdistSpec, in_tree_backend_members, make_wheel, write_sdist
from tests.support.fleet import Fleet, source_checks_pending, wait_for
from tests.support.index_server import FixtureIndex
from tests.support.releases import maintainer_build, publish, tamper

pytestmark = pytest.mark.docker

T = TypeVar("T")
SDE = {"SOURCE_DATE_EPOCH": "1700000000"}


@pytest.fixture
def setup(fleet_setup: FleetSetup) -> FleetSetup:
    return fleet_setup


def verdicts(store: PostgresStore, project: str) -> dict[str, Verdict]:
    return {
        row.filename: row.verdict
        for row in store.latest_verdicts(project=project)
        if row.filename.endswith(".whl")
    }


def slow_release(tmp: Path, index: FixtureIndex, seconds: int) -> str:
    """A project whose build sleeps: long enough to kill its worker mid-build."""
    spec = SdistSpec(
        "slow",
        "1.0",
        in_tree_backend_members("slow", "1.0", build_prelude=f"time.sleep({seconds})"),
    )
    sdist = write_sdist(tmp / "slow-1.0.tar.gz", spec)
    wheel = make_wheel(tmp, "slow", "1.0", generator="in-tree")
    now = datetime.now(UTC)
    index.add_path("slow", sdist, now)
    index.add_path("slow", wheel, now)
    return wheel.name


def test_fleet_rebuilds_judges_signs_and_survives_kills(
    tmp_path: Path,
    setup: FleetSetup,
    sandbox_image: ImageRef,
    sandbox: DockerSandbox,
    docker_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    genuine = maintainer_build(tmp_path, sandbox_image, sandbox, "1.0", SDE)
    publish(setup.index, genuine)
    evil = maintainer_build(tmp_path, sandbox_image, sandbox, "1.0", SDE, name="evil")
    publish(setup.index, evil, tamper(evil.wheel, "evil/__init__.py"), project="evil")
    logs = tmp_path / "logs"
    logs.mkdir()
    fleet = Fleet(setup.env, logs)
    try:
        fleet.start("scheduler", "scheduler")
        fleet.start("worker-1", "worker")
        setup.store.watch_add(["demo", "evil"])

        # 1. a watched genuine release is reproducible, a tampered one a mismatch
        found = wait_for(
            "verdicts of demo and evil",
            lambda: (
                (verdicts(setup.store, "demo"), verdicts(setup.store, "evil"))
                if verdicts(setup.store, "demo") and verdicts(setup.store, "evil")
                else None
            ),
        )
        assert found == (
            {genuine.wheel.name: Verdict.REPRODUCIBLE},
            {evil.wheel.name: Verdict.MISMATCH},
        ), fleet.log_text()

        # 2. the attestations are in the log and verify offline against the file
        (row,) = [r for r in setup.store.latest_verdicts(project="demo")]
        lines = setup.store.bundle_lines(row.file_id)
        assert len(lines) == 2
        bundle = tmp_path / "attestations" / bundle_path("demo", "1.0", genuine.wheel.name)
        bundle.parent.mkdir(parents=True)
        bundle.write_text("".join(line + "\n" for line in lines))
        monkeypatch.setenv("REBUILDER_SIGNING_KEY", setup.env["REBUILDER_SIGNING_KEY"])
        assert (
            main(["verify", str(genuine.wheel), "--attestations", str(tmp_path / "attestations")])
            == 0
        )
        attempt = setup.store.attempt(row.attempt_id)
        assert attempt is not None and attempt.evidence_manifest
        assert "strategy.json" in attempt.evidence_manifest
        with setup.store.connection() as conn:
            (generator,) = conn.execute(
                "SELECT generator FROM files WHERE id = %s", (row.file_id,)
            ).fetchone() or (None,)
        assert generator == "setuptools (84.2.1)"

        # 3. the scheduler is SIGKILLed; a new one finds the next release
        fleet.kill("scheduler")
        fleet.start("scheduler-2", "scheduler")
        newer = maintainer_build(tmp_path, sandbox_image, sandbox, "1.1", SDE)
        publish(setup.index, newer)
        wait_for("demo 1.1", lambda: newer.wheel.name in verdicts(setup.store, "demo"))
        assert verdicts(setup.store, "demo")[newer.wheel.name] is Verdict.REPRODUCIBLE

        # 4. a worker SIGKILLed mid-build: its attempt is taken back and finished once
        slow_wheel = slow_release(tmp_path, setup.index, seconds=12)
        setup.store.watch_add(["slow"])
        running = wait_for(
            "the slow build to start",
            lambda: [r for r in setup.store.running() if r.filename == slow_wheel],
            timeout=60,
        )
        killed_pid = fleet.procs["worker-1"].pid
        fleet.kill("worker-1")
        fleet.start("worker-2", "worker")
        # the new worker removes the dead worker's build container at once
        wait_for(
            "the orphaned build container to go",
            lambda: (
                not docker_client.containers.list(
                    all=True, filters={"label": f"org.pypi-rebuilder.owner-pid={killed_pid}"}
                )
            ),
            timeout=30,
        )
        wait_for("the slow build to finish", lambda: verdicts(setup.store, "slow"), timeout=120)
        done = setup.store.attempt(running[0].attempt_id)
        assert done is not None and done.status is AttemptStatus.DONE
        assert (done.worker, done.tries) == ("worker-2", 2)
        # the releases' source checks run beside the rebuilds and may finish later
        wait_for(
            "every source check to finish",
            lambda: source_checks_pending(setup.store) == 0,
            timeout=180,
        )
        with setup.store.connection() as conn:
            attempts = conn.execute(
                "SELECT count(*) FROM attempts a JOIN files f ON f.id = a.file_id "
                "WHERE f.filename = %s",
                (slow_wheel,),
            ).fetchone()
            logged = conn.execute(
                "SELECT count(*), count(DISTINCT entry) FROM log_entries"
            ).fetchone()
            attested = conn.execute(
                "SELECT (SELECT count(*) FROM attestations)"
                " + (SELECT count(*) FROM source_attestations)"  # the releases' source checks
            ).fetchone()
        assert attempts == (1,)
        assert logged is not None and logged[0] == logged[1]  # no envelope twice
        assert attested == (logged[0],)  # every logged envelope belongs to one outcome
        assert not list((Path(setup.env["REBUILDER_DATA_DIR"]) / "work").iterdir())
    finally:
        codes = fleet.stop_all()
    assert all(code == 0 for code in codes.values()), (codes, fleet.log_text())
