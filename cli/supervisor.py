"""``rebuilder fleet``: the whole fleet on one machine, started and watched by one command.

It prepares what every process needs once (the schema, the sandbox image, the signing
key), then starts the scheduler, the workers and the web app as child processes of the
``rebuilder`` command, each logging JSON lines to its own file, and restarts any that
dies (with a growing delay, so a crash loop does not spin). SIGINT/SIGTERM stop them all
gracefully: the workers finish their running rebuild first.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 60.0
MAX_RESTART_DELAY = 60.0


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)

    def start(self, clock: Callable[[], float]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log is None:
            self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            list(self.argv),
            env=dict(self.env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C reaches only the supervisor
        )
        self.started_at = clock()
        logger.info("started %s (pid %d), log %s", self.name, self.process.pid, self.log_path)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.alive() and self.process is not None:
            self.process.terminate()

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None


def rebuilder_argv(*args: str) -> list[str]:
    """The command line running ``rebuilder ARGS`` with this interpreter."""
    return [sys.executable, "-m", "cli", *args]


def plan_children(
    *, workers: int, web: bool, log_dir: Path, env: Mapping[str, str], verbose: int
) -> list[Child]:
    """The processes of a one-machine fleet."""
    flags = ["-" + "v" * verbose] if verbose else []
    base = {**env, "REBUILDER_LOG_FORMAT": "json"}
    children = [
        Child("scheduler", rebuilder_argv(*flags, "scheduler"), base, log_dir / "scheduler.log")
    ]
    host = os.uname().nodename
    for n in range(1, workers + 1):
        worker_env = {**base, "REBUILDER_WORKER_NAME": f"{host}/worker-{n}"}
        children.append(
            Child(
                f"worker-{n}",
                rebuilder_argv(*flags, "worker"),
                worker_env,
                log_dir / f"worker-{n}.log",
            )
        )
    if web:
        children.append(Child("web", rebuilder_argv(*flags, "web"), base, log_dir / "web.log"))
    return children


def supervise(
    children: Sequence[Child],
    stop: threading.Event,
    *,
    clock: Callable[[], float] = time.monotonic,
    poll_seconds: float = 1.0,
) -> None:
    """Keep ``children`` running until ``stop`` is set; then stop them all."""
    for child in children:
        child.start(clock)
    try:
        while not stop.wait(poll_seconds):
            now = clock()
            for child in children:
                if child.alive():
                    continue
                if child.process is not None:
                    code = child.process.returncode
                    uptime = now - child.started_at
                    child.restarts = 0 if uptime > 5 * MAX_RESTART_DELAY else child.restarts + 1
                    delay = min(MAX_RESTART_DELAY, 2.0 ** min(child.restarts, 6))
                    child.next_start = now + delay
                    child.process = None
                    logger.warning(
                        "%s exited with status %s; restarting in %.0f s (see %s)",
                        child.name,
                        code,
                        delay,
                        child.log_path,
                    )
                if now >= child.next_start:
                    child.start(clock)
    finally:
        for child in children:
            child.stop()
        deadline = clock() + STOP_GRACE_SECONDS
        for child in children:
            if child.process is not None:
                try:
                    child.process.wait(timeout=max(0.1, deadline - clock()))
                except subprocess.TimeoutExpired:
                    logger.warning("%s did not stop in time; killing it", child.name)
                    child.process.kill()
                    child.process.wait()
            child.close()
