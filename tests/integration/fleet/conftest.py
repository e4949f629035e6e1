"""One fleet's worth of real services for a test: a fixture index (with the pinned
setuptools wheel), a fresh PostgreSQL database, its own RabbitMQ queue, a signing key
and the environment the fleet's processes read."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.broker import rabbitmq_broker
from rebuilder.attest.publish import load_or_create_key
from rebuilder.store.db import Pool, open_pool
from rebuilder.store.migrate import migrate
from rebuilder.store.repository import PostgresStore
from tests.support.fleet import fleet_env
from tests.support.index_server import FixtureIndex
from tests.support.postgres import fresh_database
from tests.support.releases import SETUPTOOLS
from tests.support.wheelhouse import load_into

BROKER_URL = os.environ.get("REBUILDER_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")


@dataclass
class FleetSetup:
    env: dict[str, str]
    index: FixtureIndex
    store: PostgresStore
    pool: Pool
    queue: str
    root: Path


def _require_broker() -> None:
    broker = rabbitmq_broker(BROKER_URL)
    try:
        broker.channel  # noqa: B018 - connects now, so a missing server shows here
    except Exception as exc:  # pika raises many unrelated connection errors
        if os.environ.get("CI"):
            pytest.fail(f"RabbitMQ is required under CI: {exc}")
        pytest.skip(f"no RabbitMQ: {exc}")
    finally:
        broker.close()


@pytest.fixture
def fleet_setup(tmp_path: Path) -> Iterator[FleetSetup]:
    _require_broker()
    queue = f"rebuilds-test-{uuid.uuid4().hex[:8]}"
    with FixtureIndex() as index, fresh_database() as url:
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
        pool = open_pool(url, max_size=4)
        try:
            yield FleetSetup(env, index, PostgresStore(pool), pool, queue, tmp_path)
        finally:
            pool.close()
            broker = rabbitmq_broker(BROKER_URL)
            for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
                broker.channel.queue_delete(name)
            broker.close()
