"""The fleet's message broker: RabbitMQ with priority queues, built from its URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker


def rabbitmq_broker(url: str) -> RabbitmqBroker:
    """A broker on RabbitMQ with priority queues and publisher confirms."""
    from dramatiq.brokers.rabbitmq import RabbitmqBroker  # noqa: PLC0415 - pika on demand

    from rebuilder.worker.queue import MAX_PRIORITY  # noqa: PLC0415

    return RabbitmqBroker(url=url, max_priority=MAX_PRIORITY, confirm_delivery=True)
