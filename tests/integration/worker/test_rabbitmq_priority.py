"""Real RabbitMQ: a campaign job queued after a backlog is delivered first."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from cli.broker import rabbitmq_broker
from rebuilder.worker.queue import ActorDispatcher, Priority, declare_rebuild_actor

BROKER_URL = os.environ.get("REBUILDER_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")


@pytest.fixture
def broker() -> Iterator[RabbitmqBroker]:
    broker = rabbitmq_broker(BROKER_URL)
    try:
        broker.channel  # noqa: B018 - connects now, so a missing server shows here
    except Exception as exc:  # pika raises many unrelated connection errors
        if os.environ.get("CI"):
            pytest.fail(f"RabbitMQ is required under CI: {exc}")
        pytest.skip(f"no RabbitMQ: {exc}")
    yield broker
    broker.close()


class Recorder:
    def __init__(self, expected: int) -> None:
        self.order: list[int] = []
        self.done = threading.Event()
        self._expected = expected
        self._lock = threading.Lock()

    def run(self, attempt_id: int) -> None:
        with self._lock:
            self.order.append(attempt_id)
            if len(self.order) == self._expected:
                self.done.set()


def test_campaign_jobs_overtake_a_queued_backlog(broker: RabbitmqBroker) -> None:
    queue = f"rebuilds-test-{uuid.uuid4().hex[:8]}"
    recorder = Recorder(expected=21)
    actor = declare_rebuild_actor(broker, lambda: recorder, queue_name=queue)
    dispatcher = ActorDispatcher(actor)
    try:
        for attempt in range(1, 21):
            dispatcher.enqueue(attempt, Priority.BACKFILL)
        dispatcher.enqueue(100, Priority.CAMPAIGN)
        worker = dramatiq.Worker(broker, queues={queue}, worker_threads=1)
        worker.start()
        try:
            assert recorder.done.wait(30), f"only {recorder.order} arrived"
        finally:
            worker.stop()
        assert recorder.order[0] == 100
        assert sorted(recorder.order[1:]) == list(range(1, 21))
    finally:
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            broker.channel.queue_delete(name)
