"""The fleet's workers: dramatiq actors on RabbitMQ that run rebuild attempts."""
