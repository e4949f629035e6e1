"""The fleet across a network partition: a worker, then a scheduler, on "another host".

The remote process runs in its own network namespace and reaches PostgreSQL and
RabbitMQ through forwarders on the host side of a veth pair (tests/support/partition.py);
the fixture index listens on the host's end of the pair, so both sides record the same
file URLs. The link is cut silently (packets dropped both ways) for longer than the
claim timeout, then healed.

Worker: the remote worker claims a slow build, is cut off, its claim goes stale and a
local worker takes the attempt over. The remote worker finishes its build after the heal
and tries to record: the database claim refuses it. Exactly one outcome, one set of log
entries, nothing left in the broker or in the dispatch window.

Scheduler: the remote scheduler leads, is cut off, steps down (its lock connection gives
the server up first), and the local standby takes the lock only after that; the old
leader never leads again while the standby lives, and the standby acts.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from cli.broker import rabbitmq_broker
from rebuilder.attest.publish import load_or_create_key
from rebuilder.sandbox.docker import DockerSandbox
from rebuilder.sandbox.image import ImageRef
from rebuilder.store.db import Pool, open_pool, server_keepalive
from rebuilder.store.migrate import migrate
from rebuilder.store.records import AttemptStatus
from rebuilder.store.repository import PostgresStore
from tests.integration.fleet.conftest import BROKER_URL, _require_broker
from tests.support.dists import SdistSpec, in_tree_backend_members, make_wheel, write_sdist
from tests.support.fleet import Fleet, fleet_env, wait_for
from tests.support.index_server import FixtureIndex
from tests.support.partition import RemoteHost, require_namespaces
from tests.support.postgres import fresh_database
from tests.support.releases import SETUPTOOLS, maintainer_build, publish
from tests.support.wheelhouse import load_into

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

CLAIM_TIMEOUT = 6  # seconds without a heartbeat before the scheduler takes a claim back
NETWORK_TIMEOUT = 3  # seconds a PostgreSQL connection may stay silent on our side
# The cut lasts past the claim timeout and past the servers' give-up time (twice the
# network timeout, plus probes); the slow build outlives it, so its result comes late.
PARTITION_SECONDS = CLAIM_TIMEOUT + 2 * NETWORK_TIMEOUT + 4
BUILD_SECONDS = PARTITION_SECONDS + 24


@dataclass
class Partitioned:
    remote: RemoteHost
    index: FixtureIndex
    store: PostgresStore
    pool: Pool
    env: dict[str, str]  # the local processes' environment
    remote_env: dict[str, str]  # what differs for a process in the namespace
    fleet: Fleet
    queue: str


def _via(url: str, address: tuple[str, int]) -> str:
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@{address[0]}:{address[1]}" if auth else f"{address[0]}:{address[1]}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def partitioned(tmp_path: Path) -> Iterator[Partitioned]:
    require_namespaces()
    _require_broker()
    queue = f"rebuilds-test-{uuid.uuid4().hex[:8]}"
    with RemoteHost() as remote, fresh_database() as url:
        assert remote.exists()
        # The index listens on the host's end of the link: reachable from both sides.
        index = FixtureIndex(host=remote.host_ip).start()
        load_into(index, only=[SETUPTOOLS])
        migrate(url)
        key = tmp_path / "signing-key.pem"
        load_or_create_key(key)
        env = fleet_env(
            database_url=url,
            broker_url=BROKER_URL,
            queue=queue,
            index_url=index.url,
            root=tmp_path,
            key=key,
        )
        env["REBUILDER_CLAIM_TIMEOUT"] = str(CLAIM_TIMEOUT)
        env["REBUILDER_NETWORK_TIMEOUT"] = str(NETWORK_TIMEOUT)
        env["REBUILDER_BUILD_TIMEOUT"] = "120"
        # The forwarders give a silent peer up as the server is asked to (twice our side).
        keepalive = server_keepalive(NETWORK_TIMEOUT)
        pg_port = urlsplit(url).port or 5432
        mq_port = urlsplit(BROKER_URL).port or 5672
        remote_env = {
            "REBUILDER_DATABASE_URL": _via(url, remote.forward(pg_port, keepalive=keepalive)),
            "REBUILDER_BROKER_URL": _via(BROKER_URL, remote.forward(mq_port, keepalive=keepalive)),
        }
        logs = tmp_path / "logs"
        logs.mkdir()
        fleet = Fleet(env, logs)
        pool = open_pool(url, max_size=4)
        try:
            yield Partitioned(
                remote, index, PostgresStore(pool), pool, env, remote_env, fleet, queue
            )
        finally:
            fleet.stop_all()
            pool.close()
            index.stop()
            broker = rabbitmq_broker(BROKER_URL)
            for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
                broker.channel.queue_delete(name)
            broker.close()
    assert not remote.exists(), "the namespace outlived the test"


def _records(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def _first(log: Path, text: str) -> datetime | None:
    for record in _records(log):
        if text in record.get("message", ""):
            return datetime.fromisoformat(record["time"])
    return None


def _count(log: Path, text: str) -> int:
    return sum(text in r.get("message", "") for r in _records(log))


def slow_release(tmp: Path, index: FixtureIndex, seconds: int) -> str:
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


def _queue_counts(queue: str) -> tuple[int, int]:
    """(ready messages, consumers) of the broker's queue."""
    broker = rabbitmq_broker(BROKER_URL)
    try:
        frame = broker.channel.queue_declare(queue, passive=True, durable=True)
        return frame.method.message_count, frame.method.consumer_count
    finally:
        broker.close()


def test_a_partitioned_workers_late_result_is_refused_by_its_claim(
    partitioned: Partitioned,
    tmp_path: Path,
    sandbox_image: ImageRef,
    docker_client: Any,
) -> None:
    p = partitioned
    fleet, store = p.fleet, p.store
    wheel = slow_release(tmp_path, p.index, BUILD_SECONDS)
    fleet.start("scheduler", "scheduler")
    fleet.start("remote", "worker", wrap=p.remote.command([]), env=p.remote_env)
    store.watch_add(["slow"])
    claimed = wait_for(
        "the remote worker to claim the slow build",
        lambda: [r for r in store.running() if r.filename == wheel and r.worker == "remote"],
        timeout=90,
    )
    attempt_id = claimed[0].attempt_id
    fleet.start("local", "worker")  # after the claim: it gets the attempt only if taken back
    time.sleep(2)  # the build is under way in the remote worker's container
    cut_at = time.monotonic()
    p.remote.cut()
    try:
        row = wait_for(
            "the local worker to take the attempt over",
            lambda: (a := store.attempt(attempt_id)) and a.worker == "local" and a,
            timeout=CLAIM_TIMEOUT + 60,
        )
        assert row.status is AttemptStatus.RUNNING and row.tries == 2
        assert time.monotonic() - cut_at > CLAIM_TIMEOUT  # cut for longer than the claim
        # Held until the servers' side has surely given the remote connections up too.
        time.sleep(max(0.0, PARTITION_SECONDS - (time.monotonic() - cut_at)))
    finally:
        p.remote.heal()
    remote_log = fleet.logs / "remote.log"
    wait_for(
        "the remote worker's late outcome",
        lambda: (
            _count(remote_log, f"attempt {attempt_id}: outcome refused (claim lost)")
            or _count(remote_log, f"attempt {attempt_id}: reproducible")
            or _count(remote_log, f"attempt {attempt_id}: mismatch")
        ),
        timeout=BUILD_SECONDS + 60,
    )
    done = wait_for(
        "the attempt's one outcome",
        lambda: (a := store.attempt(attempt_id)) and a.status is AttemptStatus.DONE and a,
        timeout=BUILD_SECONDS + 60,
    )
    # The late result reached the database after the heal and was refused by the claim.
    assert _count(remote_log, f"attempt {attempt_id}: outcome refused (claim lost)") == 1, (
        fleet.log_text()
    )
    assert (done.worker, done.tries) == ("local", 2)
    local_log = fleet.logs / "local.log"
    assert _count(local_log, f"attempt {attempt_id}: {done.verdict}") == 1, fleet.log_text()

    # After the heal the fleet goes on: a new release is dispatched and judged.
    genuine = maintainer_build(
        tmp_path,
        sandbox_image,
        DockerSandbox(client=docker_client),
        "1.0",
        {"SOURCE_DATE_EPOCH": "1700000000"},
    )
    publish(p.index, genuine)
    store.watch_add(["demo"])
    wait_for(
        "demo to be judged after the heal",
        lambda: any(r.filename == genuine.wheel.name for r in store.latest_verdicts()),
        timeout=120,
    )
    with store.connection() as conn:
        outcomes = conn.execute(
            "SELECT count(*) FROM attempts a JOIN files f ON f.id = a.file_id "
            "WHERE f.filename = %s",
            (wheel,),
        ).fetchone()
        logged = conn.execute("SELECT count(*), count(DISTINCT entry) FROM log_entries").fetchone()
        attested = conn.execute(
            "SELECT (SELECT count(*) FROM attestations)"
            " + (SELECT count(*) FROM source_attestations)"
        ).fetchone()
        twice = conn.execute(
            "SELECT attempt_id, position FROM attestations GROUP BY attempt_id, position "
            "HAVING count(*) > 1"
        ).fetchall()
        signed = conn.execute(
            "SELECT count(*) FROM attestations WHERE attempt_id = %s", (attempt_id,)
        ).fetchone()
    assert outcomes == (1,)  # one attempt, one outcome
    assert logged is not None and logged[0] == logged[1]  # no log entry twice
    assert attested == (logged[0],)  # every logged envelope belongs to one recorded outcome
    assert twice == []  # no statement of an attempt signed into the log twice
    assert signed is not None and signed[0] >= 1
    # The broker side: the remote worker's unacked delivery came back (the broker returns
    # it when the cut-off connection is given up) and was consumed as a duplicate, ignored
    # by the claim: three deliveries in all (the first, the returned one, the re-sent
    # one), and nothing is waiting or counted as in flight.
    deliveries = sum(
        _count(log, f"attempt {attempt_id}: rebuilding") + _count(log, f"attempt {attempt_id} is ")
        for log in (remote_log, local_log)
    )
    assert deliveries >= 3, fleet.log_text()
    wait_for("the queue to drain", lambda: _queue_counts(p.queue)[0] == 0, timeout=60)
    wait_for("the dispatch window to empty", lambda: store.in_flight() == 0, timeout=60)
    assert store.queue_depth() == 0
    codes = fleet.stop_all()
    assert all(code == 0 for code in codes.values()), (codes, fleet.log_text())


def test_a_partitioned_scheduler_steps_down_before_a_standby_takes_over(
    partitioned: Partitioned,
    tmp_path: Path,
    sandbox_image: ImageRef,
    docker_client: Any,
) -> None:
    p = partitioned
    fleet, store = p.fleet, p.store
    remote_log, local_log = fleet.logs / "remote.log", fleet.logs / "standby.log"
    fleet.start("remote", "scheduler", wrap=p.remote.command([]), env=p.remote_env)
    wait_for("the remote scheduler to lead", lambda: _first(remote_log, "now the leader"))
    fleet.start("standby", "scheduler")
    time.sleep(3)
    assert _first(local_log, "now the leader") is None  # one leader while the link holds
    p.remote.cut()
    try:
        took_over = wait_for(
            "the standby to take over", lambda: _first(local_log, "now the leader"), timeout=90
        )
    finally:
        p.remote.heal()
    stepped_down = _first(remote_log, "stepping down")
    assert stepped_down is not None, fleet.log_text()
    assert stepped_down < took_over, (stepped_down, took_over)  # never two at once
    # Healed: the old leader finds the lock taken and waits; the standby acts.
    time.sleep(2 * NETWORK_TIMEOUT + 5)
    genuine = maintainer_build(
        tmp_path,
        sandbox_image,
        DockerSandbox(client=docker_client),
        "1.0",
        {"SOURCE_DATE_EPOCH": "1700000000"},
    )
    publish(p.index, genuine)
    store.watch_add(["demo"])
    wait_for(
        "the new leader to request a rebuild of demo",
        lambda: store.queue_depth() > 0 or store.latest_verdicts(),
        timeout=60,
    )
    assert _count(remote_log, "now the leader") == 1  # led once, never again
    assert _count(local_log, "now the leader") == 1
    after = [
        r
        for r in _records(remote_log)
        if datetime.fromisoformat(r["time"]) > stepped_down
        and r.get("message", "").startswith("tick:")
    ]
    assert after == [], after  # the old leader did nothing after stepping down
    codes = fleet.stop_all()
    assert all(code == 0 for code in codes.values()), (codes, fleet.log_text())
