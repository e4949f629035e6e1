"""The in-process duplicate guard, step by step: no test here depends on thread timing.

Every interleaving is forced with events and joins, so a guard that lets a second
holder in (or that a refused holder releases on its way out) fails on every run.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rebuilder.verdict import Verdict
from rebuilder.worker.localruns import LocalRuns
from tests.unit.worker.test_runner import FakeJudge, Harness, verdict


def test_a_held_job_is_refused_to_another_holder_until_released() -> None:
    runs = LocalRuns()
    assert not runs.busy()
    with runs.hold(7) as first:
        assert first
        assert runs.busy()
        with runs.hold(7) as second:
            assert not second
        # the refused holder left: the job is still held by the first
        with runs.hold(7) as third:
            assert not third
        assert runs.busy()
    assert not runs.busy()
    with runs.hold(7) as again:
        assert again


def test_other_jobs_are_held_independently() -> None:
    runs = LocalRuns()
    with runs.hold(1) as one, runs.hold(2) as two:
        assert one and two
    with runs.hold(1) as one:
        assert one


def test_a_job_is_released_when_its_run_raises() -> None:
    runs = LocalRuns()
    with pytest.raises(RuntimeError), runs.hold(3) as held:
        assert held
        raise RuntimeError("the run failed")
    assert not runs.busy()
    with runs.hold(3) as held:
        assert held


def test_a_job_held_by_one_thread_is_refused_to_another() -> None:
    runs = LocalRuns()
    holding = threading.Event()
    release = threading.Event()
    seen: list[bool] = []

    def hold_until_released() -> None:
        with runs.hold(9) as held:
            seen.append(held)
            holding.set()
            release.wait()

    holder = threading.Thread(target=hold_until_released)
    holder.start()
    try:
        assert holding.wait(10)
        for _ in range(2):  # a refused holder must not release the job on its way out
            with runs.hold(9) as held:
                assert not held
        assert runs.busy()
    finally:
        release.set()
        holder.join()
    assert seen == [True]
    assert not runs.busy()


def test_a_redelivery_to_another_thread_while_the_attempt_runs_runs_nothing(
    tmp_path: Path,
) -> None:
    # The same worker name for all threads: the database claim cannot refuse this one
    # (it looks like our own claim to resume); only the in-process guard can.
    h = Harness(tmp_path, [verdict(Verdict.REPRODUCIBLE)])
    attempt = h.request()
    original_judge = h.judge
    judged: list[str | None] = []

    def judge_while_redelivered(image: str | None, root: Path) -> FakeJudge:
        judged.append(image)
        if len(judged) == 1:
            redelivery = threading.Thread(target=h.runner.run, args=(attempt,))
            redelivery.start()
            redelivery.join()  # runs to its end while this thread holds the attempt
        return original_judge(image, root)

    h.runner._judges = judge_while_redelivered
    h.runner.run(attempt)
    assert judged == [None]
    assert len(h.signer.signed) == 1
    row = h.store.attempt(attempt)
    assert row is not None and row.verdict is Verdict.REPRODUCIBLE and row.tries == 1
