"""Actor logic with dramatiq's stub broker: ids in, runner called, retries only if transient."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from rebuilder.errors import ResolveError, SandboxError
from rebuilder.worker.queue import (
    ActorDispatcher,
    Priority,
    declare_rebuild_actor,
    is_transient,
)


@dataclass
class FakeRunner:
    """Fails the first ``failures[id]`` runs of an attempt with the given error."""

    failures: dict[int, list[BaseException]] = field(default_factory=dict)
    runs: list[int] = field(default_factory=list)

    def run(self, attempt_id: int) -> None:
        self.runs.append(attempt_id)
        pending = self.failures.get(attempt_id)
        if pending:
            raise pending.pop(0)


@pytest.fixture
def broker() -> Iterator[StubBroker]:
    stub = StubBroker()
    stub.emit_after("process_boot")
    yield stub
    stub.flush_all()
    stub.close()


def _work(broker: StubBroker) -> None:
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    broker.join("rebuilds", fail_fast=False)
    worker.join()
    worker.stop()


def test_attempt_ids_reach_the_runner_with_their_priority(broker: StubBroker) -> None:
    runner = FakeRunner()
    actor = declare_rebuild_actor(broker, lambda: runner)
    dispatcher = ActorDispatcher(actor)
    dispatcher.enqueue(7, Priority.CAMPAIGN)
    dispatcher.enqueue(8, Priority.BACKFILL)
    raw = list(broker.queues["rebuilds"].queue)
    queued = [dramatiq.Message.decode(m).options.get("broker_priority") for m in raw]
    assert queued == [Priority.CAMPAIGN, Priority.BACKFILL]
    _work(broker)
    assert sorted(runner.runs) == [7, 8]


def test_transient_trouble_is_retried_and_build_failures_are_not(broker: StubBroker) -> None:
    runner = FakeRunner(
        failures={1: [SandboxError("docker went away")], 2: [ResolveError("no such version")]}
    )
    actor = declare_rebuild_actor(broker, lambda: runner)
    actor.send_with_options(args=(1,), min_backoff=1, max_backoff=5)
    actor.send(2)
    _work(broker)
    assert runner.runs.count(1) == 2  # failed once, retried, then done
    assert runner.runs.count(2) == 1  # deterministic: recorded, not retried


def test_what_counts_as_transient() -> None:
    assert is_transient(SandboxError("engine down"))
    assert is_transient(ConnectionError())
    assert not is_transient(ResolveError("unsatisfiable"))
    assert not is_transient(ValueError("a bug"))


def test_a_deferred_job_is_always_retried_without_an_error_line() -> None:
    from rebuilder.worker.queue import DeferredError, _retry_when  # noqa: PLC0415

    assert _retry_when(1000, DeferredError("host away", delay=60_000))
    assert not _retry_when(1000, ConnectionError("broker away"))


def test_a_job_given_back_is_retried_a_bounded_number_of_times_without_a_traceback() -> None:
    import dramatiq  # noqa: PLC0415

    from rebuilder.worker.queue import MAX_RETRIES, _retry_when  # noqa: PLC0415
    from rebuilder.worker.runner import RetryLaterError  # noqa: PLC0415

    error = RetryLaterError("attempt 3: the Docker engine is restarting")
    assert isinstance(error, dramatiq.Retry)  # dramatiq logs no traceback for it
    assert error.delay is None  # dramatiq's own backoff
    assert str(error) == error.diagnostics() == "attempt 3: the Docker engine is restarting"
    assert _retry_when(0, error) and not _retry_when(MAX_RETRIES, error)


def test_dramatiq_retries_a_given_back_job_with_no_error_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import dramatiq  # noqa: PLC0415
    from dramatiq.brokers.stub import StubBroker  # noqa: PLC0415

    from rebuilder.worker.queue import declare_source_actor  # noqa: PLC0415
    from rebuilder.worker.runner import RetryLaterError  # noqa: PLC0415

    runs: list[int] = []

    class Flaky:
        def run(self, attempt_id: int) -> None:
            runs.append(attempt_id)
            if len(runs) == 1:
                raise RetryLaterError(f"source check {attempt_id}: the index answered 503")

    broker = StubBroker()
    broker.emit_after("process_boot")
    actor = declare_source_actor(broker, Flaky, queue_name="flaky")
    actor.options["min_backoff"] = 10
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    try:
        actor.send(7)
        broker.join("flaky", timeout=10_000)
        worker.join()
    finally:
        worker.stop()
    assert runs == [7, 7]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
